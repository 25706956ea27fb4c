# -*- test-case-name: tests.plugins.test_forward_parse -*-
"""
Parsing C{forward FROM TO... { options }} into a L{ForwardConfig}.

Pure: files named as upstreams are read (a resolv.conf is configuration),
nothing is opened on the network.  Errors carry CoreDNS's shape
(C{plugin/forward: FILE:LINE - Error during parsing: ...}).
"""

import ipaddress
import os

from twisted.names import dns

from twisted_kdns.errors import ConfigError
from twisted_kdns.plugin import Args

MAX_TO = 15
POLICIES = ("random", "round_robin", "sequential")
RCODES = {
    "NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5,
    "YXDOMAIN": 6, "YXRRSET": 7, "NXRRSET": 8, "NOTAUTH": 9, "NOTZONE": 10,
}


class UpstreamSpec(object):
    """
    One upstream address as configured.

    @ivar host: IP address text (no brackets, no zone).
    @ivar port: int.
    @ivar tls: C{True} for C{tls://}.
    @ivar servername: a C{tls://IP%NAME} server name, or C{None}.
    @ivar source: the resolv.conf path it came from, or C{None}.
    """

    __slots__ = ("host", "port", "tls", "servername", "source")

    def __init__(self, host, port, tls=False, servername=None, source=None):
        self.host = host
        self.port = port
        self.tls = tls
        self.servername = servername
        self.source = source

    @property
    def key(self):
        return (self.host, self.port, self.tls)

    @property
    def label(self):
        """CoreDNS's C{to} label: C{IP:PORT} (C{[v6]:PORT})."""
        host = "[%s]" % (self.host,) if ":" in self.host else self.host
        return "%s:%d" % (host, self.port)

    def __repr__(self):
        return "%s%s" % ("tls://" if self.tls else "", self.label)


class ForwardConfig(object):
    """One C{forward} directive, with CoreDNS's defaults."""

    def __init__(self):
        self.from_zone = b""
        self.to = []             # static UpstreamSpec
        self.files = []          # resolv.conf paths (re-read on change)
        self.ignored = []        # except names
        self.force_tcp = False
        self.prefer_udp = False
        self.expire = 10.0
        self.max_fails = 2
        self.read_timeout = 2.0
        self.health_check = 0.5
        self.hc_recursion = True
        self.hc_domain = b""
        self.tls_args = None     # None or [CERT KEY [CA]] / [CA] / []
        self.tls_servername = None
        self.policy = "random"
        self.max_concurrent = 0
        self.next_rcodes = frozenset()
        self.failover_rcodes = frozenset()
        self.next_on_nodata = False
        self.failfast = False
        self.file = None
        self.line = None

    def has_tls(self):
        return any(s.tls for s in self.to)


def split_host_port(text, default_port):
    """C{(ip, port)} from C{IP}, C{IP:PORT}, C{[V6]:PORT} or a bare V6; C{ValueError} otherwise."""
    host, port = text, default_port
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(text)
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(text)
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = int(p)
    host = host.split("%")[0]
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(text)
    return str(ipaddress.ip_address(host)), port


def read_resolv_conf(path):
    """
    The C{nameserver} addresses of a resolv.conf-style file, as
    L{UpstreamSpec}s on port 53 (IPv6 zone suffixes dropped, as CoreDNS).

    @raise OSError: unreadable.
    """
    out = []
    with open(path, "rb") as f:
        for raw in f:
            fields = raw.decode("utf-8", "replace").split("#", 1)[0].split(";", 1)[0].split()
            if len(fields) >= 2 and fields[0] == "nameserver":
                try:
                    host, port = split_host_port(fields[1].split("%")[0], 53)
                except ValueError:
                    continue
                out.append(UpstreamSpec(host, port, source=path))
    return out


def _resolve_path(path, corefile):
    if not os.path.isabs(path) and corefile and os.path.dirname(corefile):
        return os.path.join(os.path.dirname(os.path.abspath(corefile)), path)
    return path


def parse_to(args, text):
    """An upstream argument: a list of L{UpstreamSpec}s, or a file path (C{str})."""
    lower = text.lower()
    tls = False
    rest = text
    if lower.startswith("dns://"):
        rest = text[6:]
    elif lower.startswith("tls://"):
        rest, tls = text[6:], True
    elif lower.startswith(("https://", "grpc://", "quic://", "h3://")):
        raise args.error("transport %s is not supported by this version of kdns: %s"
                         % (text.split("://")[0], text))
    elif "://" in text:
        raise args.error("unknown transport in %s" % (text,))
    servername = None
    if tls and "%" in rest and not rest.startswith("["):
        rest, servername = rest.split("%", 1)
    try:
        host, port = split_host_port(rest, 853 if tls else 53)
        return [UpstreamSpec(host, port, tls, servername)]
    except ValueError:
        pass
    if rest is text:
        path = _resolve_path(text, args.d.file)
        if os.path.isfile(path):
            return path
    raise args.error("not an IP address or file: %r" % (text,))


def parse_one(args):
    """One C{forward} directive."""
    cfg = ForwardConfig()
    cfg.file, cfg.line = args.d.file, args.d.line
    values = args.values
    if len(values) < 2:
        raise args.error("Wrong argument count or unexpected line ending after '%s'"
                         % (values[-1] if values else "forward",))
    zones = args.zones([values[0]])
    cfg.from_zone = zones[0]
    if len(values) - 1 > MAX_TO:
        raise args.error("more than %d TOs configured: %d" % (MAX_TO, len(values) - 1))
    seen = set()
    for text in values[1:]:
        got = parse_to(args, text)
        if isinstance(got, str):
            if got in cfg.files:
                continue
            cfg.files.append(got)
            try:
                got = read_resolv_conf(got)
            except OSError as e:
                raise args.error("cannot read %s: %s" % (got, e.strerror))
        for spec in got:
            if spec.key not in seen:
                seen.add(spec.key)
                cfg.to.append(spec)
    for sub in args.block():
        _option(cfg, sub)
    if not cfg.to:
        raise args.error("no valid upstream addresses found")
    return cfg


def _option(cfg, sub):
    name = sub.name
    if name == "except":
        vals = sub.count(1)
        cfg.ignored = sub.zones(vals)
    elif name == "force_tcp":
        sub.count(0, 0)
        cfg.force_tcp = True
    elif name == "prefer_udp":
        sub.count(0, 0)
        cfg.prefer_udp = True
    elif name == "expire":
        cfg.expire = sub.duration(sub.count(1, 1)[0], "expire", allow_bare_seconds=False)
    elif name == "read_timeout":
        cfg.read_timeout = sub.duration(sub.count(1, 1)[0], "read_timeout", allow_bare_seconds=False)
        if cfg.read_timeout <= 0:
            raise sub.error("read_timeout can't be zero or negative: %s" % (sub.values[0],))
    elif name == "max_fails":
        cfg.max_fails = sub.integer(sub.count(1, 1)[0], 0, None, "max_fails")
    elif name == "health_check":
        vals = sub.count(1, 4)
        cfg.health_check = sub.duration(vals[0], "health_check", allow_bare_seconds=False)
        rest = vals[1:]
        while rest:
            word = rest.pop(0)
            if word == "no_rec":
                cfg.hc_recursion = False
            elif word == "domain":
                if not rest:
                    raise sub.error("health_check domain requires a domain name")
                cfg.hc_domain = sub.zones([rest.pop(0)])[0]
            else:
                raise sub.error("health_check: unknown option %s" % (word,))
    elif name == "tls":
        cfg.tls_args = sub.count(0, 3)
        for path in cfg.tls_args:
            if not os.path.isfile(_resolve_path(path, sub.d.file)):
                raise sub.error("tls: file not found: %s" % (path,))
        cfg.tls_args = [_resolve_path(p, sub.d.file) for p in cfg.tls_args]
    elif name == "tls_servername":
        cfg.tls_servername = sub.count(1, 1)[0]
    elif name == "policy":
        policy = sub.count(1, 1)[0]
        if policy not in POLICIES:
            raise sub.error("unknown policy '%s'" % (policy,))
        cfg.policy = policy
    elif name == "max_concurrent":
        cfg.max_concurrent = sub.integer(sub.count(1, 1)[0], 0, None, "max_concurrent")
    elif name in ("next", "failover"):
        codes = set()
        for text in sub.count(1):
            code = RCODES.get(text.upper())
            if code is None:
                raise sub.error("%s is not a valid rcode" % (text,))
            if name == "failover" and code == dns.OK:
                raise sub.error("NoError cannot be used in failover")
            codes.add(code)
        if name == "next":
            cfg.next_rcodes = frozenset(codes)
        else:
            cfg.failover_rcodes = frozenset(codes)
    elif name == "next_on_nodata":
        sub.count(0, 0)
        cfg.next_on_nodata = True
    elif name == "failfast_all_unhealthy_upstreams":
        sub.count(0, 0)
        cfg.failfast = True
    else:
        raise sub.unknown()


def parse(directives):
    """
    Every C{forward} directive of a block, in Corefile order.  Several are
    allowed (each usually for its own FROM zone); the router picks the
    longest FROM that contains the name.
    """
    configs = []
    for directive in directives:
        configs.append(parse_one(Args(directive, "forward")))
    return configs


__all__ = ["ForwardConfig", "UpstreamSpec", "parse", "read_resolv_conf", "split_host_port",
           "ConfigError"]
