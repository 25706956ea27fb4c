"""
cache: the per-query counters (requests, hits, misses) kept as integers and
exported by a collector (plugins/cache/counts.py) under CoreDNS's names,
help texts and labels.
"""

from prometheus_client import REGISTRY, generate_latest
from twisted.internet.task import Clock
from twisted.names import dns
from twisted.trial import unittest

from tests.plugins.middleware_support import Upstream, a, build, by_name, kquery, server_label
from twisted_kdns.errors import NXDomain


class CacheCountsExportTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.server = server_label()
        table = {(b"www.example.org", dns.A): [a(b"www.example.org", "192.0.2.1", 120)]}
        self.cache = build(self, "cache", "cache", Upstream(by_name(table)), reactor=self.clock)

    def ask(self, name):
        d = self.cache.query(kquery(name, dns.A, server=self.server))
        d.addErrback(lambda f: f.trap(NXDomain))
        self.successResultOf(d)

    def lines(self):
        text = generate_latest(REGISTRY).decode("utf-8")
        return [line for line in text.splitlines() if self.server in line or line.startswith("# ")]

    def test_exposition(self):
        """Three hits and two misses (one denial) give CoreDNS's series with exact values, help and type."""
        for name in ("www.example.org", "www.example.org", "www.example.org", "nx.example.org",
                     "nx.example.org", "www.example.org"):
            self.ask(name)
        lines = self.lines()
        labels = 'server="%s",view="",zones="."' % (self.server,)
        expected = [
            "coredns_cache_requests_total{%s} 6.0" % (labels,),
            "coredns_cache_misses_total{%s} 2.0" % (labels,),
            'coredns_cache_hits_total{server="%s",type="success",view="",zones="."} 3.0' % (self.server,),
            'coredns_cache_hits_total{server="%s",type="denial",view="",zones="."} 1.0' % (self.server,),
            "# HELP coredns_cache_requests_total The count of cache requests.",
            "# TYPE coredns_cache_requests_total counter",
            "# HELP coredns_cache_hits_total The count of cache hits.",
            "# HELP coredns_cache_misses_total The count of cache misses. Deprecated, derive misses "
            "from cache hits/requests counters.",
        ]
        for line in expected:
            self.assertIn(line, lines)
        self.assertEqual(REGISTRY.get_sample_value(
            "coredns_cache_requests_total", {"server": self.server, "zones": ".", "view": ""}), 6)
