# -*- test-case-name: tests.plugins.test_loop -*-
"""
loop: stop the process when queries forwarded upstream come back to us,
as CoreDNS's loop plugin does.

At startup a probe C{<random>.<random>.<first zone> HINFO} is sent through
the rest of the chain (the plugins after C{loop}: in practice C{forward}).
Every arrival of that exact probe name is counted; more than two means the
upstream sends our own queries back to us, and the process exits (CoreDNS's
C{log.Fatalf}), because a forwarding loop turns every query into a storm.
Unlike CoreDNS the message also names the upstream that loops (found by the
source port the bounced probe arrives from, else the upstreams the probe's
zone forwards to) and the usual fix.  Once one probe exchange completed,
the plugin steps aside for good; other queries always pass untouched.

The exit goes through L{exit_process} (C{os._exit}: twistd would swallow a
normal exit code) so that tests can observe it without dying.
"""

import os
import random

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import dns
from twisted.python.failure import Failure

from twisted_kdns.errors import DNSRcode, Drop, PassToNext
from twisted_kdns.names import fqdn
from twisted_kdns.plugin import Wrapper, once
from twisted_kdns.query import KdnsQuery

KIND = "wrapper"
ONCE = True
log = Logger(namespace="kdns.plugins.loop")

exit_process = os._exit  # replaced by tests; called as exit_process(1)

RETRY_EVERY = 1.0
GIVE_UP_AFTER = 30.0
DOC = "https://coredns.io/plugins/loop#troubleshooting"
FIX = ("the upstream resolves through this server: forward to resolvers that do not point back here, "
       "e.g. 'forward . /run/systemd/resolve/resolv.conf' instead of /etc/resolv.conf naming 127.0.0.53 "
       "on systemd-resolved hosts, or in Kubernetes give the kubelet --resolv-conf a file with the real "
       "upstream nameservers")


class LoopConfig(object):
    def __init__(self, file=None, line=None):
        self.file = file
        self.line = line


def parse(directives):
    args = once(directives, "loop")
    args.count(0, 0)
    args.no_block()
    return LoopConfig(args.d.file, args.d.line)


def probe_name(zone, rng):
    """C{<n>.<n>.<zone>} with two random 62-bit numbers, as CoreDNS."""
    labels = b"%d.%d" % (rng.getrandbits(62), rng.getrandbits(62))
    return labels + b"." + zone if zone else labels


class Loop(Wrapper):
    """
    @ivar seen: arrivals of the probe name since the last failed exchange.
    @ivar disabled: a probe exchange finished (or the window passed).
    """

    name = "loop"

    def __init__(self, next, zone, reactor, forward=None, rng=None):
        Wrapper.__init__(self, next)
        self.zone = zone
        self.reactor = reactor
        self.forward = forward
        self.probe = probe_name(zone, rng or random.SystemRandom())
        self.seen = 0
        self.disabled = False
        self.detected = False
        self.started = None
        self.call = None

    def query(self, kq, timeout=None):
        if not self.disabled and kq.type == dns.HINFO and kq.qname == self.probe:
            self.seen += 1
            if self.seen > 2:
                if not self.detected:
                    self.detected = True
                    self.fatal(kq)
                return defer.fail(Drop())
        return self.next.query(kq)

    # -- the probe --------------------------------------------------------

    def start(self):
        self.started = self.reactor.seconds()
        self.call = self.reactor.callLater(0, self.send_probe)

    def stop(self):
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None
        self.disabled = True

    def send_probe(self):
        self.call = None
        if self.disabled:
            return
        kq = KdnsQuery(self.probe, dns.HINFO, client=("127.0.0.1", 0), transport="udp",
                       zone=self.zone, server="loop")
        try:
            d = self.next.query(kq)
        except Exception:
            d = defer.fail(Failure())
        d.addBoth(self._probed)

    def _probed(self, result):
        if self.disabled or self.detected:
            return None
        failed = isinstance(result, Failure) and not result.check(DNSRcode, PassToNext)
        if not failed:
            # Any answer (NXDOMAIN, SERVFAIL...) proves the probe did not loop.
            self.disabled = True
            return None
        self.seen = 0
        if self.reactor.seconds() - self.started >= GIVE_UP_AFTER:
            self.disabled = True
            return None
        self.call = self.reactor.callLater(RETRY_EVERY, self.send_probe)
        return None

    # -- the verdict ------------------------------------------------------

    def culprit(self, kq):
        """Which upstream loops: by the source port of the bounced probe, else the candidates."""
        fwd = self.forward
        if fwd is None:
            return "an upstream of the plugins after loop"
        host, port = kq.client
        if hasattr(fwd, "upstream_for_port"):
            u = fwd.upstream_for_port(port)
            if u is not None:
                return _describe(u)
        if hasattr(fwd, "upstreams_for"):
            ups = fwd.upstreams_for(self.probe)
            if ups:
                return " or ".join(_describe(u) for u in ups)
        return "an upstream of forward"

    def fatal(self, kq):
        client = "%s:%s" % kq.client
        log.critical(
            'plugin/loop: Loop ({client} -> {listen}) detected for zone "{zone}", see {doc}. '
            'Query: "HINFO {name}". forward sends it to {upstream}, which sends it back here. '
            'Fix: {fix}', client=client, listen=kq.server or kq.local, zone=fqdn(self.zone), doc=DOC,
            name=fqdn(self.probe), upstream=self.culprit(kq), fix=FIX)
        exit_process(1)


def _describe(upstream):
    spec = upstream.spec
    where = " (from %s)" % (spec.source,) if spec.source else ""
    return "%r%s" % (spec, where)


class LoopService(service.Service):
    """Sends the startup probe once listeners are up; stops it on shutdown."""

    def __init__(self, loop):
        self.loop = loop

    def startService(self):
        service.Service.startService(self)
        self.loop.start()

    def stopService(self):
        service.Service.stopService(self)
        self.loop.stop()


def setup(config, ctx, next):
    if next is None:
        return None
    zone = ctx.zones[0] if ctx.zones else b""
    loop = Loop(next, zone, ctx.reactor, forward=ctx.plugins.get("forward"))
    ctx.add_service(LoopService(loop))
    return loop
