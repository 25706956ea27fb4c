"""
forward's metrics, defined once at module level.

CoreDNS renamed its forward metrics: current releases export the
C{coredns_proxy_*} family (C{proxy_name="forward"}), older dashboards
(CoreDNS 1.7-1.10, the Grafana "CoreDNS" board) query
C{coredns_forward_*}.  Both are exported so either kind of dashboard works;
the two that never moved (C{healthcheck_broken}, C{max_concurrent_rejects})
exist once.

The per-query series (requests, responses, both duration histograms) are
plain integers on the reactor thread, exported by L{ForwardCollector} when
scraped: four prometheus_client calls per query cost about 5 us (each takes
a lock), a tenth of a forwarded query's budget (issue 8).
"""

from bisect import bisect_left

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

TIME_BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))

# Current CoreDNS (plugin/pkg/proxy).
PROXY_HC_FAILURES = Counter(
    "coredns_proxy_healthcheck_failures", "Counter of the number of failed healthchecks.",
    ["proxy_name", "to"])
PROXY_CONN_HITS = Counter(
    "coredns_proxy_conn_cache_hits", "Counter of connection cache hits per upstream and protocol.",
    ["proxy_name", "to", "proto"])
PROXY_CONN_MISSES = Counter(
    "coredns_proxy_conn_cache_misses", "Counter of connection cache misses per upstream and protocol.",
    ["proxy_name", "to", "proto"])

# Both generations.
HC_BROKEN = Counter(
    "coredns_forward_healthcheck_broken",
    "Counter of the number of complete failures of the healthchecks.")
MAX_CONCURRENT_REJECTS = Counter(
    "coredns_forward_max_concurrent_rejects",
    "Counter of the number of queries rejected because the concurrent queries were at maximum.")

# CoreDNS 1.7-1.10 names, still used by many dashboards.
HC_FAILURES = Counter("coredns_forward_healthcheck_failures",
                      "Counter of the number of failed healthchecks.", ["to"])
CONN_HITS = Counter("coredns_forward_conn_cache_hits",
                    "Counter of connection cache hits per upstream and protocol.", ["to", "proto"])
CONN_MISSES = Counter("coredns_forward_conn_cache_misses",
                      "Counter of connection cache misses per upstream and protocol.", ["to", "proto"])

RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
               6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
               16: "BADVERS"}


def rcode_name(rcode):
    return RCODE_NAMES.get(rcode, str(rcode))


def conn_hit(to, proto):
    PROXY_CONN_HITS.labels("forward", to, proto).inc()
    CONN_HITS.labels(to, proto).inc()


def conn_miss(to, proto):
    PROXY_CONN_MISSES.labels("forward", to, proto).inc()
    CONN_MISSES.labels(to, proto).inc()


def healthcheck_failed(to):
    PROXY_HC_FAILURES.labels("forward", to).inc()
    HC_FAILURES.labels(to).inc()


class _Rcode(object):
    """Responses with one rcode from one upstream: count, duration buckets, duration sum."""

    __slots__ = ("count", "buckets", "total")

    def __init__(self):
        self.count = 0
        self.buckets = [0] * (len(TIME_BUCKETS) + 1)
        self.total = 0.0


class UpstreamCounts(object):
    """The per-query counts of one upstream label (shared by every Upstream with that label)."""

    __slots__ = ("to", "requests", "by_rcode")

    def __init__(self, to):
        self.to = to
        self.requests = 0
        self.by_rcode = {}

    def request(self):
        self.requests += 1

    def response(self, rcode, seconds):
        r = self.by_rcode.get(rcode)
        if r is None:
            r = self.by_rcode[rcode] = _Rcode()
        r.count += 1
        r.total += seconds
        r.buckets[bisect_left(TIME_BUCKETS, seconds)] += 1


def _histogram(family, labels, r):
    buckets = []
    cumulative = 0
    for bound, count in zip(TIME_BUCKETS, r.buckets):
        cumulative += count
        buckets.append((floatToGoString(bound), cumulative))
    buckets.append(("+Inf", cumulative + r.buckets[-1]))
    family.add_metric(labels, buckets, r.total)


class ForwardCollector(object):
    """
    Exports C{coredns_forward_requests_total}, C{coredns_forward_responses_total},
    C{coredns_forward_request_duration_seconds} and
    C{coredns_proxy_request_duration_seconds} from the plain counts.
    """

    def __init__(self):
        self.upstreams = {}

    def counts(self, to):
        """The counts for upstream label C{to} (the same object for the same label)."""
        c = self.upstreams.get(to)
        if c is None:
            c = self.upstreams[to] = UpstreamCounts(to)
        return c

    def _families(self):
        return (CounterMetricFamily("coredns_forward_requests", "Counter of requests made per upstream.",
                                    labels=["to"]),
                CounterMetricFamily("coredns_forward_responses", "Counter of responses received per upstream.",
                                    labels=["rcode", "to"]),
                HistogramMetricFamily("coredns_forward_request_duration_seconds",
                                      "Histogram of the time each request took.", labels=["to", "rcode"]),
                HistogramMetricFamily("coredns_proxy_request_duration_seconds",
                                      "Histogram of the time each request took.",
                                      labels=["proxy_name", "to", "rcode"]))

    def describe(self):
        return self._families()

    def collect(self):
        requests, responses, duration, proxy_duration = self._families()
        for to, c in list(self.upstreams.items()):
            requests.add_metric([to], c.requests)
            for rcode, r in list(c.by_rcode.items()):
                name = rcode_name(rcode)
                responses.add_metric([name, to], r.count)
                _histogram(duration, [to, name], r)
                _histogram(proxy_duration, ["forward", to, name], r)
        return [requests, responses, duration, proxy_duration]


COUNTS = ForwardCollector()
REGISTRY.register(COUNTS)
