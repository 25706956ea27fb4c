# -*- test-case-name: tests.plugins.test_forward_resolvconf -*-
"""
The forward plugin's background service: health probes may run while it
is started, idle TCP/TLS connections are closed after C{expire}, and
resolv.conf upstreams get a startup check for nameservers that point back
at this server and a watch that re-reads the files when they change.

CoreDNS reads the file once (a change needs a restart, coredns#6715) and
finds a self-pointing nameserver only through C{loop} killing the process
(coredns#2087).  Here a self-pointing nameserver read from a file is named
at startup with the fix and left out, and the files are polled (mtime and
size, every 2 s) and re-read on change.
"""

import ipaddress
import os

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from twisted_kdns.plugins.forward.options import read_resolv_conf

log = Logger(namespace="kdns.plugins.forward")

WATCH_INTERVAL = 2.0
SWEEP_INTERVAL = 1.0
FIX = ("point forward at the real upstream resolvers instead: on a systemd-resolved host use "
       "'forward . /run/systemd/resolve/resolv.conf' (the stub 127.0.0.53 only forwards back); "
       "in Kubernetes give the kubelet --resolv-conf a file with real nameservers or run the "
       "pod with dnsPolicy: Default on a node whose resolv.conf does not name this server")


def listen_addresses(ctx):
    """
    C{(address, port)} pairs this process listens on, from every block of
    the Corefile (C{""} = every address).  C{bind} with interface names
    counts as every address: good enough to spot loopback loops.
    """
    out = set()
    blocks = list(ctx.corefile.blocks) if ctx.corefile is not None else []
    if not blocks and ctx.block is not None:
        blocks = [ctx.block]
    for block in blocks:
        addrs = []
        for d in block.by_name().get("bind", []):
            for v in d.values:
                try:
                    addrs.append(str(ipaddress.ip_address(v)))
                except ValueError:
                    addrs.append("")
        if block is ctx.block and ctx.bind:
            addrs = list(ctx.bind)
        for key in block.keys:
            for a in addrs or [""]:
                out.add((a, key.port))
    return out


def points_at_us(spec, listening):
    """C{True} when upstream C{spec} is one of our own listeners."""
    try:
        ip = ipaddress.ip_address(spec.host)
    except ValueError:
        return False
    for addr, port in listening:
        if port != spec.port:
            continue
        if addr in ("", "0.0.0.0", "::"):
            if ip.is_loopback or ip.is_unspecified:
                return True
        elif ipaddress.ip_address(addr) == ip:
            return True
    return False


def self_report(cfg, spec, listening):
    where = "%s:%s" % (cfg.file, cfg.line)
    ports = sorted({p for _, p in listening})
    return ("forward (%s): nameserver %s in %s points back at this server (it listens on port %s), "
            "so every query sent there would loop; leaving it out. Fix: %s"
            % (where, spec.host, spec.source, ",".join(map(str, ports)), FIX))


class ForwardService(service.Service):
    """
    The block's forward background work: upstream health probes may only
    run while this is started; resolv.conf files are checked for
    self-pointing nameservers at start and watched while running.
    """

    def __init__(self, forwards, ctx, interval=None):
        self.forwards = forwards
        self.ctx = ctx
        self.reactor = ctx.reactor
        self.interval = WATCH_INTERVAL if interval is None else interval
        self.loop = None
        self.sweeper = None
        self.listening = set()
        self.stamps = {}

    def startService(self):
        service.Service.startService(self)
        self.listening = listen_addresses(self.ctx)
        for fwd in self.forwards:
            if fwd.cfg.files:
                self.stamps[id(fwd)] = self._stamps(fwd)
                self._apply(fwd, startup=True)
            else:
                for u in fwd.upstreams:
                    if points_at_us(u.spec, self.listening):
                        log.warn("forward ({file}:{line}): upstream {to} is this server itself; "
                                 "the loop plugin will stop the process if queries come back",
                                 file=fwd.cfg.file, line=fwd.cfg.line, to=u.label)
            fwd.start()
        if any(f.cfg.files for f in self.forwards):
            self.loop = task.LoopingCall(self.check)
            self.loop.clock = self.reactor
            self.loop.start(self.interval, now=False)
        self.sweeper = task.LoopingCall(self.sweep)
        self.sweeper.clock = self.reactor
        self.sweeper.start(SWEEP_INTERVAL, now=False)

    def sweep(self):
        """Close pooled TCP/TLS connections idle longer than C{expire}, as CoreDNS does."""
        for fwd in self.forwards:
            for u in fwd.upstreams:
                u.stream.sweep()

    def stopService(self):
        service.Service.stopService(self)
        for loop in (self.loop, self.sweeper):
            if loop is not None and loop.running:
                loop.stop()
        self.loop = self.sweeper = None
        return defer.gatherResults([f.stop() for f in self.forwards])

    @staticmethod
    def _stamps(fwd):
        out = {}
        for path in fwd.cfg.files:
            try:
                st = os.stat(path)
                out[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError:
                out[path] = None
        return out

    def check(self):
        """Re-read a forward's files when one changed (mtime, size or inode)."""
        for fwd in self.forwards:
            if not fwd.cfg.files:
                continue
            stamps = self._stamps(fwd)
            if stamps != self.stamps.get(id(fwd)):
                self.stamps[id(fwd)] = stamps
                self._apply(fwd)

    def _apply(self, fwd, startup=False):
        cfg = fwd.cfg
        specs = [s for s in cfg.to if s.source is None]
        seen = {s.key for s in specs}
        for path in cfg.files:
            try:
                found = read_resolv_conf(path)
            except OSError as e:
                log.warn("forward: cannot read {path}: {err}; keeping the current upstreams",
                         path=path, err=e.strerror)
                return
            for spec in found:
                if spec.key in seen:
                    continue
                seen.add(spec.key)
                if points_at_us(spec, self.listening):
                    log.error("{msg}", msg=self_report(cfg, spec, self.listening))
                    continue
                specs.append(spec)
        before = [u.spec.key for u in fwd.upstreams]
        fwd.replace_upstreams(specs)
        after = [u.spec.key for u in fwd.upstreams]
        if not specs:
            log.error("forward ({file}:{line}): no usable upstream left in {paths}: queries for "
                      "{zone} get SERVFAIL until the file names one", file=cfg.file, line=cfg.line,
                      paths=", ".join(cfg.files), zone=(cfg.from_zone.decode() + ".") if cfg.from_zone else ".")
        elif not startup and before != after:
            log.info("forward: {paths} changed, upstreams now {to}", paths=", ".join(cfg.files),
                     to=" ".join(u.label for u in fwd.upstreams))
