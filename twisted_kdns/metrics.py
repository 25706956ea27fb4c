# -*- test-case-name: tests.test_metrics -*-
"""
The process-wide metrics, with CoreDNS's names, labels and buckets so that
existing CoreDNS dashboards and alerts work unchanged.

Every metric is defined once, here, at import time (prometheus_client
refuses a second registration).  Plugins define their own next to their
code.  Our own additions use the C{kdns_} prefix.

Recording is done by L{QueryRecorder}, which the C{prometheus} plugin hooks
onto each query of its server block; it caches the labelled children per
label tuple, because C{.labels()} is the expensive part of the client.
"""

import platform
import time

from prometheus_client import Counter, Gauge, Histogram
from twisted.names import dns

from twisted_kdns import __version__

# CoreDNS plugin/metrics/vars: TimeBuckets = 0.00025 * 2^i, i = 0..15.
TIME_BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))
SLIM_TIME_BUCKETS = (0.00025, 0.0025, 0.025, 0.25, 2.5)
SIZE_BUCKETS = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000, 64000)

REQUESTS = Counter(
    "coredns_dns_requests_total", "Counter of DNS requests made per zone, protocol and family.",
    ["server", "zone", "view", "proto", "family", "type"])
REQUEST_DURATION = Histogram(
    "coredns_dns_request_duration_seconds", "Histogram of the time (in seconds) each request took per zone.",
    ["server", "zone", "view"], buckets=TIME_BUCKETS)
REQUEST_SIZE = Histogram(
    "coredns_dns_request_size_bytes", "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
    ["server", "zone", "view", "proto"], buckets=SIZE_BUCKETS)
DO_REQUESTS = Counter(
    "coredns_dns_do_requests_total", "Counter of DNS requests with DO bit set per zone.",
    ["server", "zone", "view"])
RESPONSE_SIZE = Histogram(
    "coredns_dns_response_size_bytes", "Size of the returned response in bytes.",
    ["server", "zone", "view", "proto"], buckets=SIZE_BUCKETS)
RESPONSES = Counter(
    "coredns_dns_responses_total", "Counter of response status codes.",
    ["server", "zone", "view", "rcode", "plugin"])
PANICS = Counter("coredns_panics_total", "A metrics that counts the number of panics.")
BUILD_INFO = Gauge(
    "coredns_build_info", "A metric with a constant '1' value labeled by version, revision, and goversion "
    "from which CoreDNS was built.", ["version", "revision", "goversion"])
PLUGIN_ENABLED = Gauge(
    "coredns_plugin_enabled", "A metric that indicates whether a plugin is enabled on per server and zone basis.",
    ["server", "zone", "view", "name"])
RELOAD_FAILED = Counter("coredns_reload_failed_total", "Counter of the number of failed reload attempts.")
RELOAD_VERSION = Gauge(
    "coredns_reload_version_info", "A metric with a constant '1' value labeled by hash, and value which type of "
    "hash generated.", ["hash", "value"])
HEALTH_DURATION = Histogram(
    "coredns_health_request_duration_seconds", "Histogram of the time (in seconds) each request took.",
    buckets=SLIM_TIME_BUCKETS)
HEALTH_FAILURES = Counter(
    "coredns_health_request_failures_total", "The number of times the health check failed.")

# Our own.
REACTOR_LAG = Gauge(
    "kdns_reactor_lag_seconds", "How late the last 1-second reactor tick fired: time queries wait behind "
    "other work on the single reactor thread (Python's equivalent of an overload signal).")
RELOADS = Counter("kdns_reloads_total", "Configuration reloads attempted, by result.", ["result"])
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


class QueryRecorder(object):
    """
    Records the per-query metrics of server blocks that have C{prometheus}.

    C{record} has the hook signature C{(kquery, reply_message, wire)}.  The
    children of each label combination are looked up once and cached: the
    label space is small (listeners x zones x 20 types x rcodes x plugins).

    @ivar clock: the clock that stamped C{kquery.started} (the dispatcher's).
    """

    def __init__(self, clock=time.monotonic, view=""):
        self.clock = clock
        self.view = view
        self._requests = {}
        self._responses = {}

    def _request_children(self, server, zone, proto, family, qtype):
        key = (server, zone, proto, family, qtype)
        children = self._requests.get(key)
        if children is None:
            z = zone_label(zone)
            view = self.view
            children = (
                REQUESTS.labels(server, z, view, proto, family, type_label(qtype)),
                REQUEST_DURATION.labels(server, z, view),
                REQUEST_SIZE.labels(server, z, view, proto),
                RESPONSE_SIZE.labels(server, z, view, proto),
                DO_REQUESTS.labels(server, z, view),
            )
            self._requests[key] = children
        return children

    def _response_child(self, server, zone, rcode, plugin):
        key = (server, zone, rcode, plugin)
        child = self._responses.get(key)
        if child is None:
            child = RESPONSES.labels(server, zone_label(zone), self.view, rcode_label(rcode), plugin)
            self._responses[key] = child
        return child

    def record(self, kq, reply, wire):
        family = "2" if ":" in kq.client[0] else "1"
        requests, duration, req_size, resp_size, do = self._request_children(
            kq.server, kq.zone, kq.transport, family, kq.type)
        requests.inc()
        if kq.do:
            do.inc()
        duration.observe(max(0.0, self.clock() - kq.started))
        req_size.observe(kq.size)
        resp_size.observe(len(wire))
        response = kq.response
        self._response_child(kq.server, kq.zone, reply_rcode(reply),
                             response.plugin if response is not None else "").inc()


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
