# -*- test-case-name: tests.test_metrics -*-
"""
The process-wide metrics, with CoreDNS's names, labels and buckets so that
existing CoreDNS dashboards and alerts work unchanged.

Every metric is defined once, here, at import time (prometheus_client
refuses a second registration).  Plugins define their own next to their
code.  Our own additions use the C{kdns_} prefix.

The per-query C{coredns_dns_*} series are the hot path: one C{Counter.inc}
or C{Histogram.observe} of prometheus_client takes a lock and costs a few
microseconds, and a query touches eight of them.  L{DnsMetrics} instead
adds to plain per-label-set counters on the reactor thread (about a
microsecond in all) and is itself the registered collector that turns them
into the CoreDNS families when scraped.
"""

import platform
import time
from bisect import bisect_left

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString
from twisted.names import dns

from twisted_kdns import __version__

# CoreDNS plugin/metrics/vars: TimeBuckets = 0.00025 * 2^i, i = 0..15.
TIME_BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))
SLIM_TIME_BUCKETS = (0.00025, 0.0025, 0.025, 0.25, 2.5)
SIZE_BUCKETS = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000, 64000)

PANICS = Counter("coredns_panics", "A metrics that counts the number of panics.")
BUILD_INFO = Gauge(
    "coredns_build_info", "A metric with a constant '1' value labeled by version, revision, and goversion "
    "from which CoreDNS was built.", ["version", "revision", "goversion"])
PLUGIN_ENABLED = Gauge(
    "coredns_plugin_enabled", "A metric that indicates whether a plugin is enabled on per server and zone basis.",
    ["server", "zone", "view", "name"])
RELOAD_FAILED = Counter("coredns_reload_failed", "Counter of the number of failed reload attempts.")
RELOAD_VERSION = Gauge(
    "coredns_reload_version_info", "A metric with a constant '1' value labeled by hash, and value which type of "
    "hash generated.", ["hash", "value"])
HEALTH_DURATION = Histogram(
    "coredns_health_request_duration_seconds", "Histogram of the time (in seconds) each request took.",
    buckets=SLIM_TIME_BUCKETS)
HEALTH_FAILURES = Counter(
    "coredns_health_request_failures", "The number of times the health check failed.")

# Our own.
REACTOR_LAG = Gauge(
    "kdns_reactor_lag_seconds", "How late the last 1-second reactor tick fired: time queries wait behind "
    "other work on the single reactor thread (Python's equivalent of an overload signal).")
RELOADS = Counter("kdns_reloads", "Configuration reloads attempted, by result.", ["result"])
GENERATION_INFO = Gauge(
    "kdns_config_generation", "Number of the running configuration generation (1 at start, +1 per reload).")

BUILD_INFO.labels(__version__, "", "python" + platform.python_version()).set(1)

# CoreDNS plugin/metrics/vars/report.go: the types with their own label value.
MONITORED_TYPES = {getattr(dns, n): n for n in (
    "A", "AAAA", "CNAME", "NS", "PTR", "SOA", "SRV", "TXT", "MX", "IXFR", "AXFR")}
MONITORED_TYPES.update({43: "DS", 48: "DNSKEY", 50: "NSEC3", 47: "NSEC", 46: "RRSIG", 65: "HTTPS",
                        64: "SVCB", 255: "ANY"})

RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
               6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADVERS",
               17: "BADKEY", 18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG", 22: "BADTRUNC",
               23: "BADCOOKIE"}


def type_label(qtype):
    """The C{type} label: the type's name for the monitored ones, else C{other}."""
    return MONITORED_TYPES.get(qtype, "other")


def rcode_label(rcode):
    """The C{rcode} label as CoreDNS prints it (C{RCODE17} style when unknown)."""
    return RCODE_NAMES.get(rcode, "RCODE%d" % (rcode,))


def zone_label(zone):
    """A block zone (normalised bytes) as CoreDNS labels it: C{example.org.}, root C{.}."""
    return zone.decode("ascii", "replace") + "." if zone else "."


def reply_rcode(reply):
    """The full (extended) rcode of an encoded reply message."""
    rcode = reply.rCode
    for rr in reply.additional:
        if rr.type == dns.OPT:
            rcode |= (rr.ttl >> 24) << 4
    return rcode


class _Series(object):
    """Counts of one (server, zone, proto, family, type) combination."""

    __slots__ = ("requests", "do", "duration", "duration_sum", "request", "request_sum",
                 "response", "response_sum")

    def __init__(self):
        self.requests = 0
        self.do = 0
        self.duration = [0] * (len(TIME_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.request = [0] * (len(SIZE_BUCKETS) + 1)
        self.request_sum = 0
        self.response = [0] * (len(SIZE_BUCKETS) + 1)
        self.response_sum = 0


def _histogram(family, labels, counts, total, bounds):
    buckets = []
    cumulative = 0
    for bound, count in zip(bounds, counts):
        cumulative += count
        buckets.append((floatToGoString(bound), cumulative))
    buckets.append(("+Inf", cumulative + counts[-1]))
    family.add_metric(labels, buckets, total)


class DnsMetrics(object):
    """
    The per-query CoreDNS metrics of blocks that have C{prometheus}:
    C{coredns_dns_requests_total}, C{_request_duration_seconds},
    C{_request_size_bytes}, C{_response_size_bytes}, C{_do_requests_total}
    and C{_responses_total}, with CoreDNS's labels and buckets.

    L{record} has the hook signature C{(kquery, reply_message, wire)} and
    runs on the reactor thread; L{collect} (a prometheus_client collector)
    aggregates the counts into the families when scraped.

    @ivar clock: the clock that stamped C{kquery.started} (the dispatcher's).
    """

    def __init__(self, clock=time.monotonic, view=""):
        self.clock = clock
        self.view = view
        self._series = {}
        self._responses = {}

    def record(self, kq, reply, wire):
        client = kq.client[0]
        key = (kq.server, kq.zone, kq.transport, "2" if ":" in client else "1", kq.type)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series()
        series.requests += 1
        if kq.edns is not None and kq.edns.do:
            series.do += 1
        elapsed = self.clock() - kq.started
        if elapsed < 0:
            elapsed = 0.0
        series.duration[bisect_left(TIME_BUCKETS, elapsed)] += 1
        series.duration_sum += elapsed
        size = kq.size
        series.request[bisect_left(SIZE_BUCKETS, size)] += 1
        series.request_sum += size
        size = len(wire)
        series.response[bisect_left(SIZE_BUCKETS, size)] += 1
        series.response_sum += size
        response = kq.response
        rkey = (kq.server, kq.zone, reply_rcode(reply), response.plugin if response is not None else "")
        responses = self._responses
        responses[rkey] = responses.get(rkey, 0) + 1

    def _families(self):
        return (
            CounterMetricFamily("coredns_dns_requests", "Counter of DNS requests made per zone, protocol and family.",
                                labels=["server", "zone", "view", "proto", "family", "type"]),
            HistogramMetricFamily("coredns_dns_request_duration_seconds",
                                  "Histogram of the time (in seconds) each request took per zone.",
                                  labels=["server", "zone", "view"]),
            HistogramMetricFamily("coredns_dns_request_size_bytes",
                                  "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
                                  labels=["server", "zone", "view", "proto"]),
            CounterMetricFamily("coredns_dns_do_requests", "Counter of DNS requests with DO bit set per zone.",
                                labels=["server", "zone", "view"]),
            HistogramMetricFamily("coredns_dns_response_size_bytes", "Size of the returned response in bytes.",
                                  labels=["server", "zone", "view", "proto"]),
            CounterMetricFamily("coredns_dns_responses", "Counter of response status codes.",
                                labels=["server", "zone", "view", "rcode", "plugin"]),
        )

    def describe(self):
        return self._families()

    def collect(self):
        requests, duration, req_size, do, resp_size, responses = self._families()
        view = self.view
        by_zone = {}
        by_proto = {}
        for (server, zone, proto, family, qtype), s in list(self._series.items()):
            z = zone_label(zone)
            requests.add_metric([server, z, view, proto, family, type_label(qtype)], s.requests)
            agg = by_zone.get((server, z))
            if agg is None:
                agg = by_zone[(server, z)] = [[0] * len(s.duration), 0.0, 0]
            agg[0] = [a + b for a, b in zip(agg[0], s.duration)]
            agg[1] += s.duration_sum
            agg[2] += s.do
            agg = by_proto.get((server, z, proto))
            if agg is None:
                agg = by_proto[(server, z, proto)] = [[0] * len(s.request), 0, [0] * len(s.response), 0]
            agg[0] = [a + b for a, b in zip(agg[0], s.request)]
            agg[1] += s.request_sum
            agg[2] = [a + b for a, b in zip(agg[2], s.response)]
            agg[3] += s.response_sum
        for (server, z), (counts, total, do_count) in by_zone.items():
            _histogram(duration, [server, z, view], counts, total, TIME_BUCKETS)
            do.add_metric([server, z, view], do_count)
        for (server, z, proto), (rq, rq_sum, rs, rs_sum) in by_proto.items():
            _histogram(req_size, [server, z, view, proto], rq, rq_sum, SIZE_BUCKETS)
            _histogram(resp_size, [server, z, view, proto], rs, rs_sum, SIZE_BUCKETS)
        for (server, zone, rcode, plugin), count in list(self._responses.items()):
            responses.add_metric([server, zone_label(zone), view, rcode_label(rcode), plugin], count)
        return [requests, duration, req_size, do, resp_size, responses]


#: The one recorder of the process, registered with the default registry.
DNS = DnsMetrics()
REGISTRY.register(DNS)


def count_panics(kq, reply, wire):
    """
    Service-wide observer: a plugin raising an unexpected exception is our
    equivalent of a recovered Go panic (the dispatcher answered SERVFAIL).
    """
    if kq is None or kq.error is None:
        return
    from twisted_kdns.errors import DNSRcode
    from twisted.internet.defer import TimeoutError
    if not kq.error.check(DNSRcode, TimeoutError):
        PANICS.inc()


def publish_plugins(generation):
    """
    Set C{coredns_plugin_enabled} for the blocks of C{generation} that have
    C{prometheus}: one series per listen address, zone and chain plugin
    (not the process-wide ones such as bind, health, ready, reload).  The
    previous generation's series are removed first.
    """
    from twisted_kdns import registry
    PLUGIN_ENABLED.clear()
    for runtime in generation.blocks:
        configs = runtime.plan.configs
        if "prometheus" not in configs:
            continue
        names = [n for n in configs if getattr(registry.load(n), "KIND", None) in ("terminal", "wrapper")]
        hosts = runtime.ctx.bind or [""]
        for key in runtime.plan.block.keys:
            for host in hosts:
                server = "dns://%s:%d" % ("[%s]" % host if ":" in host else host, key.port)
                for name in names:
                    PLUGIN_ENABLED.labels(server, zone_label(key.zone), "", name).set(1)
