"""
forward's metrics, defined once at module level.

CoreDNS renamed its forward metrics: current releases export the
C{coredns_proxy_*} family (C{proxy_name="forward"}), older dashboards
(CoreDNS 1.7-1.10, the Grafana "CoreDNS" board) query
C{coredns_forward_*}.  Both are exported so either kind of dashboard works;
the two that never moved (C{healthcheck_broken}, C{max_concurrent_rejects})
exist once.
"""

from prometheus_client import Counter, Histogram

TIME_BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))

# Current CoreDNS (plugin/pkg/proxy).
PROXY_DURATION = Histogram(
    "coredns_proxy_request_duration_seconds",
    "Histogram of the time each request took.",
    ["proxy_name", "to", "rcode"], buckets=TIME_BUCKETS)
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
REQUESTS = Counter("coredns_forward_requests", "Counter of requests made per upstream.", ["to"])
RESPONSES = Counter("coredns_forward_responses", "Counter of responses received per upstream.",
                    ["rcode", "to"])
DURATION = Histogram("coredns_forward_request_duration_seconds",
                     "Histogram of the time each request took.", ["to", "rcode"],
                     buckets=TIME_BUCKETS)
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


def children(to, rcode):
    """The (proxy duration, forward duration, responses) metric children of one upstream and rcode."""
    name = rcode_name(rcode)
    return (PROXY_DURATION.labels("forward", to, name), DURATION.labels(to, name),
            RESPONSES.labels(name, to))
