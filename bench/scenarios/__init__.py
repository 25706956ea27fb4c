"""
The benchmark scenarios (issue 8).  Each one lists the servers it compares;
every server answers the same names from its own kind of data.

  A  cluster names: 1,000 Services (kubernetes plugin, manifests source) vs
     unbound local-data and dnsmasq addn-hosts
  B  cache hits for forwarded names (warm cache, upstream dnsmasq on loopback)
  C  cache misses: forwarding to the loopback upstream with caching off
  D  A over TCP (the names of A)
  E  ndots:5 search-path traffic, 4 of 5 queries NXDOMAIN; kdns with and
     without `autopath @kubernetes` (with it, the client sends one query per
     lookup, so that row is compared in lookups per second)
"""


class Probe(object):
    """One query a server must answer correctly before it is measured."""

    def __init__(self, name, rcode="NOERROR", address=None):
        self.name = name
        self.rcode = rcode
        self.address = address

    def check(self, answer):
        """C{None} when C{answer} (C{(rcode, addresses)}) is right, else why not."""
        if answer is None:
            return "no answer to %s" % (self.name,)
        rcode, addrs = answer
        if rcode != self.rcode:
            return "%s: %s, expected %s" % (self.name, rcode, self.rcode)
        if self.address is not None and self.address not in addrs:
            return "%s: %s, expected %s" % (self.name, addrs or "no address", self.address)
        return None


class ServerSpec(object):
    """
    A server row of a scenario.

    @ivar kind: C{"unbound"}, C{"dnsmasq"}, C{"kdns"} or C{"floor"} (not a
        DNS server: bench/lib/floor_server.py, the Twisted datagram floor).
    @ivar corefile: for kdns, C{"production"} or C{"core"} (bench/configs/).
    @ivar requires: kdns plugins without which the row is skipped; the other
        production plugins are dropped (and named) when not available.
    @ivar drop / add: production Corefile edits for this row.
    @ivar qpl: queries the client sends per lookup (E: 5 without autopath).
    @ivar env: extra environment for the server (kdns-nofast: KDNS_FASTPATH=0).
    """

    def __init__(self, name, kind, queries, probes, cache=True, corefile="production",
                 requires=(), drop=(), add=(), pods="insecure", qpl=1, env=None):
        self.name = name
        self.kind = kind
        self.queries = queries
        self.probes = probes
        self.cache = cache
        self.corefile = corefile
        self.requires = tuple(requires)
        self.drop = tuple(drop)
        self.add = tuple(add)
        self.pods = pods
        self.qpl = qpl
        self.env = env or {}


class Scenario(object):
    def __init__(self, key, title, servers, tcp=False, prime=False, upstream=False):
        self.key = key
        self.title = title
        self.servers = servers
        self.tcp = tcp
        self.prime = prime
        self.upstream = upstream


# The same server with the wire-level memo (twisted_kdns/server/fastpath.py) off.
NOFAST = {"KDNS_FASTPATH": "0"}


def _cluster(key, title, tcp):
    probes = [Probe("svc7.ns7.svc.cluster.local", address="10.96.0.8"),
              Probe("svc999.ns9.svc.cluster.local", address="10.96.3.250")]
    return Scenario(key, title, tcp=tcp, upstream=True, servers=[
        ServerSpec("unbound", "unbound", "cluster", probes),
        ServerSpec("dnsmasq", "dnsmasq", "cluster", probes),
        ServerSpec("kdns", "kdns", "cluster", probes, requires=("kubernetes",)),
        ServerSpec("kdns-nofast", "kdns", "cluster", probes, requires=("kubernetes",), env=NOFAST),
        ServerSpec("kdns-core", "kdns", "cluster", probes, corefile="core"),
        ServerSpec("twisted-floor", "floor", "cluster", probes),
    ])


def all_scenarios():
    fwd = [Probe("name7.example.org", address="10.20.0.1")]
    miss = [Probe("miss7.example.net", address="10.30.0.1")]
    search = [Probe("www1.example.com.ns0.svc.cluster.local", "NXDOMAIN"),
              Probe("www1.example.com.corp.internal", "NXDOMAIN"),
              Probe("www1.example.com", address="10.40.0.1")]
    auto = [Probe("www1.example.com.ns0.svc.cluster.local", address="10.40.0.1")]
    return [
        _cluster("A", "cluster names: 1,000 Services (UDP)", tcp=False),
        Scenario("B", "cache hits: forwarded names, warm cache", prime=True, upstream=True, servers=[
            ServerSpec("unbound", "unbound", "forwarded", fwd),
            ServerSpec("dnsmasq", "dnsmasq", "forwarded", fwd),
            ServerSpec("kdns", "kdns", "forwarded", fwd, requires=("forward", "cache")),
            ServerSpec("kdns-nofast", "kdns", "forwarded", fwd, requires=("forward", "cache"), env=NOFAST),
        ]),
        Scenario("C", "cache misses: forwarding, cache off", upstream=True, servers=[
            ServerSpec("unbound", "unbound", "misses", miss, cache=False),
            ServerSpec("dnsmasq", "dnsmasq", "misses", miss, cache=False),
            ServerSpec("kdns", "kdns", "misses", miss, requires=("forward",), drop=("cache",)),
        ]),
        _cluster("D", "cluster names over TCP", tcp=True),
        Scenario("E", "ndots:5 search path, 4 of 5 NXDOMAIN", prime=True, upstream=True, servers=[
            ServerSpec("unbound", "unbound", "searchpath", search, qpl=5),
            ServerSpec("dnsmasq", "dnsmasq", "searchpath", search, qpl=5),
            ServerSpec("kdns", "kdns", "searchpath", search, qpl=5,
                       requires=("kubernetes", "forward")),
            ServerSpec("kdns+autopath", "kdns", "autopath", auto, qpl=1, pods="verified",
                       requires=("kubernetes", "forward", "autopath"),
                       add=("    autopath @kubernetes",)),
        ]),
    ]
