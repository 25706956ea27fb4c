# -*- test-case-name: tests.plugins.test_autopath -*-
"""
autopath: walk the client's search path on the server, so a pod with
C{ndots:5} asking C{www.example.com.default.svc.cluster.local} gets the
answer for C{www.example.com} in one round trip instead of five.

As CoreDNS: only names equal to or under the first search domain are
walked; each candidate goes through the rest of the chain (cache,
kubernetes, forward); the first reply that is not NXDOMAIN (nor a bare
SERVFAIL/REFUSED) wins and gets a CNAME from the asked name to its first
different owner prepended; if every candidate is NXDOMAIN the first reply is
returned unchanged so the client walks its own list.  A failure that carries
an error (a broken upstream) ends the walk with that failure.

The search path is a resolv.conf C{search} list plus the root, or with
C{@kubernetes} per client: C{<ns>.svc.<zone>}, C{svc.<zone>}, C{<zone>},
this host's own search list, then the root, where C{<ns>} is the namespace
of the pod whose IP sent the query (needs C{pods verified}).
"""

from prometheus_client import Counter
from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import dns
from twisted.python.failure import Failure

from twisted_kdns.errors import ConfigError, DNSRcode
from twisted_kdns.names import is_subdomain, match_zone, normalize
from twisted_kdns.plugin import Wrapper, once
from twisted_kdns.plugins._middleware import call_next, deliver, settle

KIND = "wrapper"
ONCE = True
log = Logger(namespace="kdns.plugins.autopath")

SUCCESS = Counter("coredns_autopath_success_total",
                  "Counter of requests that did autopath.", ["server"])
NOT_WRITTEN = frozenset([dns.ESERVER, dns.EREFUSED, dns.EFORMAT, dns.ENOTIMP])


class AutopathConfig(object):
    def __init__(self):
        self.zones = None
        self.plugin = None     # "kubernetes" for @kubernetes
        self.search = []       # static list (normalised), without the root sentinel
        self.resolv_conf = None
        self.file = None
        self.line = None


def read_search(path):
    """The C{search} (or C{domain}) names of a resolv.conf, normalised; the last line wins, like libc."""
    search = []
    with open(path, "rb") as f:
        for raw in f:
            fields = raw.split(b"#", 1)[0].split(b";", 1)[0].split()
            if len(fields) >= 2 and fields[0] in (b"search", b"domain"):
                search = [normalize(x.decode("ascii", "replace")) for x in fields[1:]]
    return search


def parse(directives):
    args = once(directives, "autopath")
    args.no_block()
    values = args.count(1)
    cfg = AutopathConfig()
    cfg.file, cfg.line = args.d.file, args.d.line
    resolv = values[-1]
    if values[:-1]:
        cfg.zones = args.zones(values[:-1])
    if resolv.startswith("@"):
        cfg.plugin = resolv[1:]
        if cfg.plugin != "kubernetes":
            raise args.error("%s: plugin does not provide a search path (only @kubernetes)" % (resolv,))
    else:
        cfg.resolv_conf = resolv
        try:
            cfg.search = read_search(resolv)
        except OSError as e:
            raise args.error("failed to parse %r: %s" % (resolv, e.strerror or e))
    return cfg


class KubernetesSearch(object):
    """The per-client search path CoreDNS's kubernetes plugin builds for autopath."""

    def __init__(self, kubernetes, host_search):
        self.kubernetes = kubernetes
        self.zones = {z: True for z in getattr(kubernetes, "zones", ())}
        self.host_search = host_search

    def __call__(self, kq):
        zone = match_zone(kq.qname, self.zones)
        if zone is None or getattr(self.kubernetes, "pods", None) != "verified":
            return None
        namespace = self.kubernetes.pod_namespace(kq.client[0])
        if namespace is None:
            return None
        ns = namespace.encode("ascii", "replace") if isinstance(namespace, str) else namespace
        if zone:
            first = [ns + b".svc." + zone, b"svc." + zone, zone]
        else:
            first = [ns + b".svc", b"svc", b""]
        return first + list(self.host_search) + [b""]


class AutopathResolver(Wrapper):
    name = "autopath"

    def __init__(self, next, zones, search=None, search_for=None):
        Wrapper.__init__(self, next)
        self.zones = {z: True for z in zones}
        self.search = list(search) + [b""] if search is not None else None
        self.search_for = search_for

    def query(self, kq, timeout=None):
        if match_zone(kq.qname, self.zones) is None:
            return call_next(self.next, kq)
        search = self.search_for(kq) if self.search_for is not None else self.search
        if not search or not search[0]:
            return call_next(self.next, kq)
        first = search[0]
        if kq.qname == first or not is_subdomain(kq.qname, first):
            return call_next(self.next, kq)
        base = kq.qname[:-len(first) - 1]
        names = [base + b"." + s if s else base for s in search]
        return self._walk(kq, names, 0, None)

    def _walk(self, kq, names, index, first):
        if index >= len(names):
            return defer.fail(first) if isinstance(first, Failure) else defer.succeed(first)
        candidate = kq if names[index] == kq.qname and index == 0 else kq.derive(name=names[index])
        d = call_next(self.next, candidate)
        d.addBoth(self._step, kq, names, index, first)
        return d

    def _step(self, outcome, kq, names, index, first):
        if index == 0:
            first = outcome
        if isinstance(outcome, Failure):
            exc = outcome.value
            if not isinstance(exc, DNSRcode) or exc.reason:
                return outcome  # an error: stop here, as CoreDNS does
            if exc.response.rcode in NOT_WRITTEN or exc.response.rcode == dns.ENAME:
                return self._walk(kq, names, index + 1, first)
        response = settle(outcome)
        if response is None:
            return outcome
        if response.rcode == dns.ENAME or response.rcode in NOT_WRITTEN:
            return self._walk(kq, names, index + 1, first)
        if index > 0 or names[0] != kq.qname:
            response = self._cnamer(response, kq.name.name)
        SUCCESS.labels(kq.server).inc()
        return deliver(response)

    @staticmethod
    def _cnamer(response, original):
        """Prepend CoreDNS's CNAME from the asked name to the first answer owner that differs."""
        wanted = original.lower().rstrip(b".")
        for rr in response.answers:
            owner = rr.name.name
            if owner.lower().rstrip(b".") == wanted:
                continue
            link = dns.RRHeader(original, dns.CNAME, dns.IN, rr.ttl, dns.Record_CNAME(owner, rr.ttl),
                                auth=rr.auth)
            return response.replace(answers=[link] + list(response.answers))
        return response


def setup(config, ctx, next):
    zones = config.zones if config.zones is not None else ctx.zones
    if config.plugin is None:
        return AutopathResolver(next, zones, search=config.search)
    kubernetes = ctx.plugins.get(config.plugin)
    if kubernetes is None or not hasattr(kubernetes, "pod_namespace"):
        raise ConfigError("autopath @%s needs the %s plugin in the same server block"
                          % (config.plugin, config.plugin), config.file, config.line, "autopath")
    if getattr(kubernetes, "pods", None) != "verified":
        log.warn("autopath @kubernetes does nothing unless kubernetes has 'pods verified'")
    try:
        host_search = read_search("/etc/resolv.conf")
    except OSError:
        host_search = []
    return AutopathResolver(next, zones, search_for=KubernetesSearch(kubernetes, host_search))
