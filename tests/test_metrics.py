"""
The core metrics (L{twisted_kdns.metrics}): CoreDNS's names, labels and
buckets (reference section e), and what a real server records per query,
compared before/after with C{REGISTRY.get_sample_value}.
"""

import dns.flags
import dns.message
import dns.rcode
from prometheus_client import REGISTRY
from twisted.internet import defer
from twisted.names import dns as tdns
from twisted.python.failure import Failure
from twisted.trial import unittest

from tests.helpers import query, start_server
from tests.test_web import http_get
from twisted_kdns import metrics
from twisted_kdns.errors import ServFail
from twisted_kdns.query import KdnsQuery

# Reference section e, "Core" table plus reload and health (name, type, labels).
EXPECTED = [
    ("coredns_build_info", "gauge", ["version", "revision", "goversion"]),
    ("coredns_panics", "counter", []),
    ("coredns_dns_requests", "counter", ["server", "zone", "view", "proto", "family", "type"]),
    ("coredns_dns_request_duration_seconds", "histogram", ["server", "zone", "view"]),
    ("coredns_dns_request_size_bytes", "histogram", ["server", "zone", "view", "proto"]),
    ("coredns_dns_do_requests", "counter", ["server", "zone", "view"]),
    ("coredns_dns_response_size_bytes", "histogram", ["server", "zone", "view", "proto"]),
    ("coredns_dns_responses", "counter", ["server", "zone", "view", "rcode", "plugin"]),
    ("coredns_plugin_enabled", "gauge", ["server", "zone", "view", "name"]),
    ("coredns_reload_failed", "counter", []),
    ("coredns_reload_version_info", "gauge", ["hash", "value"]),
    ("coredns_health_request_duration_seconds", "histogram", []),
    ("coredns_health_request_failures", "counter", []),
]
TIME = [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512,
        1.024, 2.048, 4.096, 8.192]
SIZE = [0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000, 64000]
BY_NAME = {
    "coredns_build_info": metrics.BUILD_INFO, "coredns_panics": metrics.PANICS,
    "coredns_plugin_enabled": metrics.PLUGIN_ENABLED, "coredns_reload_failed": metrics.RELOAD_FAILED,
    "coredns_reload_version_info": metrics.RELOAD_VERSION,
    "coredns_health_request_duration_seconds": metrics.HEALTH_DURATION,
    "coredns_health_request_failures": metrics.HEALTH_FAILURES,
}

HOSTS = """\
example.org:0 {
    bind 127.0.0.1
    prometheus 127.0.0.1:0
    hosts {
        10.1.2.3 a.example.org
    }
}
"""
SERVER = "dns://127.0.0.1:0"


def value(_metric, **labels):
    return REGISTRY.get_sample_value(_metric, labels) or 0.0


def bucket_edges(metric):
    return [float(b) for b in metric._upper_bounds[:-1]]


def recorded_families():
    """The per-query families of a fresh L{metrics.DnsMetrics} after one recorded query."""
    recorder = metrics.DnsMetrics(clock=lambda: 1.0)
    kq = KdnsQuery(b"a.example.org", client=("::1", 53000), server="dns://:53", zone=b"example.org", size=40)
    kq.started = 0.9993  # 0.7 ms: in the 1 ms bucket, not the 0.5 ms one
    recorder.record(kq, tdns.Message(rCode=3), b"x" * 120)
    return {f.name: f for f in recorder.collect()}


class DefinitionTests(unittest.SynchronousTestCase):
    def test_namesTypesLabels(self):
        """Each core metric has CoreDNS's name, type and label names, in CoreDNS's order."""
        families = recorded_families()
        for name, kind, labels in EXPECTED:
            if name in BY_NAME:
                metric = BY_NAME[name]
                self.assertEqual((metric._name, metric._type, list(metric._labelnames)), (name, kind, labels), name)
            else:
                family = families[name]
                sample = family.samples[0]
                self.assertEqual((family.type, [k for k in sample.labels if k != "le"]), (kind, labels), name)

    def test_perQuerySamples(self):
        """One recorded query gives CoreDNS's series: type, family 2 for IPv6, rcode name, sizes, duration."""
        families = recorded_families()
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
        self.assertEqual(samples[("coredns_dns_requests_total", tuple(sorted(dict(
            server="dns://:53", zone="example.org.", view="", proto="udp", family="2", type="A").items())))], 1)
        self.assertEqual(samples[("coredns_dns_responses_total", tuple(sorted(dict(
            server="dns://:53", zone="example.org.", view="", rcode="NXDOMAIN", plugin="").items())))], 1)
        self.assertEqual(samples[("coredns_dns_response_size_bytes_sum", tuple(sorted(dict(
            server="dns://:53", zone="example.org.", view="", proto="udp").items())))], 120)
        self.assertEqual(samples[("coredns_dns_response_size_bytes_bucket", tuple(sorted(dict(
            server="dns://:53", zone="example.org.", view="", proto="udp", le="100.0").items())))], 0)
        self.assertEqual(samples[("coredns_dns_response_size_bytes_bucket", tuple(sorted(dict(
            server="dns://:53", zone="example.org.", view="", proto="udp", le="200.0").items())))], 1)
        self.assertEqual(samples[("coredns_dns_request_duration_seconds_bucket", tuple(sorted(dict(
            server="dns://:53", zone="example.org.", view="", le="0.001").items())))], 1)
        self.assertEqual(samples[("coredns_dns_request_duration_seconds_bucket", tuple(sorted(dict(
            server="dns://:53", zone="example.org.", view="", le="0.0005").items())))], 0)

    def test_buckets(self):
        """Durations use TimeBuckets, sizes the size buckets, health the slim ones."""
        families = recorded_families()

        def edges(name):
            return [float(s.labels["le"]) for s in families[name].samples
                    if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"]
        self.assertEqual(edges("coredns_dns_request_duration_seconds"), TIME)
        self.assertEqual(edges("coredns_dns_request_size_bytes"), SIZE)
        self.assertEqual(edges("coredns_dns_response_size_bytes"), SIZE)
        self.assertEqual(bucket_edges(metrics.HEALTH_DURATION), [0.00025, 0.0025, 0.025, 0.25, 2.5])

    def test_buildInfo(self):
        """coredns_build_info is 1 with our version in the version label."""
        from twisted_kdns import __version__
        samples = [s for f in REGISTRY.collect() if f.name == "coredns_build_info" for s in f.samples]
        self.assertEqual(len(samples), 1)
        self.assertEqual((samples[0].labels["version"], samples[0].value), (__version__, 1.0))

    def test_labels(self):
        """Type, rcode and zone label values are spelled as CoreDNS spells them."""
        self.assertEqual([metrics.type_label(t) for t in (tdns.A, tdns.AAAA, 65, 255, tdns.HINFO, 99)],
                         ["A", "AAAA", "HTTPS", "ANY", "other", "other"])
        self.assertEqual([metrics.rcode_label(r) for r in (0, 3, 2, 16, 30)],
                         ["NOERROR", "NXDOMAIN", "SERVFAIL", "BADVERS", "RCODE30"])
        self.assertEqual([metrics.zone_label(z) for z in (b"", b"example.org")], [".", "example.org."])

    def test_panicsCountUnexpectedErrorsOnly(self):
        """An unexpected plugin exception counts as a panic; a DNS rcode or no query does not."""
        before = value("coredns_panics_total")
        kq = KdnsQuery(b"a.example.org")
        kq.error = Failure(ServFail("upstream"))
        metrics.count_panics(kq, None, b"")
        metrics.count_panics(None, None, b"")
        self.assertEqual(value("coredns_panics_total"), before)
        kq.error = Failure(ZeroDivisionError())
        metrics.count_panics(kq, None, b"")
        self.assertEqual(value("coredns_panics_total"), before + 1)


class RecordingTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_queriesCounted(self):
        """UDP and TCP queries add to requests_total by proto/family/type and responses_total by rcode and plugin."""
        _, port = start_server(self, HOSTS)
        zone = "example.org."
        req = dict(server=SERVER, zone=zone, view="", family="1", type="A")
        before_udp = value("coredns_dns_requests_total", proto="udp", **req)
        before_tcp = value("coredns_dns_requests_total", proto="tcp", **req)
        ok = dict(server=SERVER, zone=zone, view="", rcode="NOERROR", plugin="hosts")
        before_ok = value("coredns_dns_responses_total", **ok)
        fail = dict(server=SERVER, zone=zone, view="", rcode="SERVFAIL", plugin="")
        before_fail = value("coredns_dns_responses_total", **fail)
        before_dur = value("coredns_dns_request_duration_seconds_count", server=SERVER, zone=zone, view="")
        yield query(port, "a.example.org.", "A")
        yield query(port, "a.example.org.", "A")
        yield query(port, "a.example.org.", "A", tcp=True)
        r = yield query(port, "missing.example.org.", "A")
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(value("coredns_dns_requests_total", proto="udp", **req), before_udp + 3)
        self.assertEqual(value("coredns_dns_requests_total", proto="tcp", **req), before_tcp + 1)
        self.assertEqual(value("coredns_dns_responses_total", **ok), before_ok + 3)
        self.assertEqual(value("coredns_dns_responses_total", **fail), before_fail + 1)
        self.assertEqual(value("coredns_dns_request_duration_seconds_count", server=SERVER, zone=zone, view=""),
                         before_dur + 4)

    @defer.inlineCallbacks
    def test_sizes(self):
        """Request and response size histograms add exactly the bytes on the wire."""
        _, port = start_server(self, HOSTS)
        labels = dict(server=SERVER, zone="example.org.", view="", proto="udp")
        req_before = value("coredns_dns_request_size_bytes_sum", **labels)
        resp_before = value("coredns_dns_response_size_bytes_sum", **labels)
        message = dns.message.make_query("a.example.org.", "A")
        reply = yield query(port, message)
        self.assertEqual(value("coredns_dns_request_size_bytes_sum", **labels) - req_before,
                         len(message.to_wire()))
        self.assertEqual(value("coredns_dns_response_size_bytes_sum", **labels) - resp_before,
                         len(reply.to_wire()))

    @defer.inlineCallbacks
    def test_doBit(self):
        """A query with the DO bit counts in coredns_dns_do_requests_total; one without does not."""
        _, port = start_server(self, HOSTS)
        labels = dict(server=SERVER, zone="example.org.", view="")
        before = value("coredns_dns_do_requests_total", **labels)
        yield query(port, "a.example.org.", "A", use_edns=0, want_dnssec=True)
        yield query(port, "a.example.org.", "A", use_edns=0)
        self.assertEqual(value("coredns_dns_do_requests_total", **labels), before + 1)

    @defer.inlineCallbacks
    def test_onlyBlocksWithPrometheus(self):
        """A block without C{prometheus} records nothing, even when another block has it."""
        text = HOSTS + "other.test:0 {\n bind 127.0.0.1\n hosts {\n  10.9.9.9 b.other.test\n }\n}\n"
        svc, port = start_server(self, text)
        self.assertEqual(len(svc.listeners), 1)  # both blocks on 127.0.0.1 port 0: one listener
        before = value("coredns_dns_requests_total", server=SERVER, zone="other.test.", view="",
                       proto="udp", family="1", type="A")
        reply = yield query(port, "b.other.test.", "A")
        self.assertEqual(len(reply.answer), 1)
        self.assertEqual(value("coredns_dns_requests_total", server=SERVER, zone="other.test.", view="",
                               proto="udp", family="1", type="A"), before)

    @defer.inlineCallbacks
    def test_metricsEndpoint(self):
        """C{/metrics} on the configured address serves the counters after a query."""
        svc, port = start_server(self, HOSTS)
        yield query(port, "a.example.org.", "AAAA")
        status, body, ctype = yield http_get(svc.web_port("metrics"), "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("text/plain"))
        self.assertIn(b'coredns_dns_requests_total{family="1",proto="udp",server="dns://127.0.0.1:0",'
                      b'type="AAAA",view="",zone="example.org."}', body)
        self.assertIn(b"coredns_build_info{", body)

    def test_pluginEnabled(self):
        """coredns_plugin_enabled is 1 for the chain plugins of blocks with prometheus, not for bind."""
        start_server(self, HOSTS)
        labels = dict(server=SERVER, zone="example.org.", view="")
        self.assertEqual(value("coredns_plugin_enabled", name="hosts", **labels), 1.0)
        self.assertEqual(value("coredns_plugin_enabled", name="prometheus", **labels), 1.0)
        self.assertIsNone(REGISTRY.get_sample_value("coredns_plugin_enabled", dict(name="bind", **labels)))
