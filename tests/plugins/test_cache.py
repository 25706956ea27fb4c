"""
cache: Clock-driven behaviour of the cache wrapper in front of a scripted
upstream (TTL countdown, clamps, what is stored, prefetch, serve_stale,
capacity), and its Corefile parsing.
"""

from prometheus_client import REGISTRY
from twisted.internet.task import Clock
from twisted.names import dns
from twisted.trial import unittest

from tests.plugins.middleware_support import (
    Upstream, a, build, by_name, cname, kquery, server_label, soa, values)
from twisted_kdns import config
from twisted_kdns.errors import ConfigErrors, NXDomain, Refused, ServFail
from twisted_kdns.plugins.cache.store import real_capacity
from twisted_kdns.response import Response


def metric(name, server, **labels):
    labels.setdefault("zones", ".")
    labels.setdefault("view", "")
    labels["server"] = server
    return REGISTRY.get_sample_value(name, labels) or 0.0


class CacheParseTests(unittest.SynchronousTestCase):
    def parse(self, body):
        plan = config.load(text=".:53 {\n%s\n whoami\n}\n" % (body,))
        return plan.blocks[0].configs["cache"]

    def parse_error(self, body):
        e = self.assertRaises(ConfigErrors, self.parse, body)
        return str(e)

    def test_seedForms(self):
        """The seed's C{cache 30} and C{cache 300 { success 9984 30; denial 9984 5; prefetch 10 60s }} parse with CoreDNS's meaning."""
        cfg = self.parse(" cache 30")
        self.assertEqual((cfg.success.ttl, cfg.denial.ttl, cfg.success.capacity), (30, 30, 9984))
        cfg = self.parse(" cache 300 {\n  success 9984 30\n  denial 9984 5\n  prefetch 10 60s\n }")
        self.assertEqual((cfg.success.ttl, cfg.denial.ttl), (30, 5))
        self.assertEqual((cfg.prefetch, cfg.prefetch_window, cfg.prefetch_percentage), (10, 60.0, 10))

    def test_defaults(self):
        """A bare C{cache} uses CoreDNS defaults: 3600/1800 s caps, 5 s floor, SERVFAIL 5 s, 9984 entries."""
        cfg = self.parse(" cache")
        self.assertEqual((cfg.success.ttl, cfg.denial.ttl, cfg.success.min_ttl), (3600, 1800, 5))
        self.assertEqual((cfg.servfail, cfg.success.capacity, cfg.denial.capacity), (5.0, 9984, 9984))

    def test_allOptions(self):
        """Every option of the syntax is accepted and recorded."""
        cfg = self.parse(" cache 60 example.org {\n  success 5000 100 10\n  denial 2000 50 1\n"
                         "  prefetch 3 30s 20%\n  serve_stale 10m verify 2s 30 1m\n"
                         "  serve_stale_policy prefer_positive\n  servfail 10s\n"
                         "  disable denial cluster.local\n  keepttl\n }")
        self.assertEqual(cfg.zones, [b"example.org"])
        self.assertEqual((cfg.success.capacity, cfg.success.ttl, cfg.success.min_ttl), (4864, 100, 10))
        self.assertEqual((cfg.denial.capacity, cfg.denial.min_ttl), (1792, 1))
        self.assertEqual((cfg.prefetch, cfg.prefetch_window, cfg.prefetch_percentage), (3, 30.0, 20))
        self.assertEqual((cfg.stale, cfg.verify, cfg.verify_timeout, cfg.stale_ttl, cfg.stale_recheck),
                         (600.0, True, 2.0, 30, 60.0))
        self.assertTrue(cfg.prefer_positive and cfg.keepttl)
        self.assertEqual(cfg.servfail, 10.0)
        self.assertEqual(cfg.disable, {"success": None, "denial": (b"cluster.local",)})

    def test_capacityRounding(self):
        """Capacity is CoreDNS's 256 shards of max(CAP/256, 4) entries."""
        self.assertEqual([real_capacity(c) for c in (10000, 9984, 100, 0, 2600)], [9984, 9984, 1024, 1024, 2560])

    def test_errors(self):
        """Bad values are refused with CoreDNS-shaped errors naming the file and line."""
        self.assertIn("plugin/cache: Corefile:2 - Error during parsing: cache TTL can not be zero or negative",
                      self.parse_error(" cache 0"))
        self.assertIn("percentage should fall in range [10, 90]: 95",
                      self.parse_error(" cache {\n  prefetch 2 1m 95%\n }"))
        self.assertIn("Corefile:3", self.parse_error(" cache {\n  prefetch 0\n }"))
        self.assertIn("over 5 minutes", self.parse_error(" cache {\n  servfail 6m\n }"))
        self.assertIn("unknown property 'bogus'", self.parse_error(" cache {\n  bogus\n }"))
        self.assertIn("refresh mode", self.parse_error(" cache {\n  serve_stale 1h later\n }"))
        self.assertIn("disable must be", self.parse_error(" cache {\n  disable everything\n }"))
        self.assertIn("requires serve_stale", self.parse_error(" cache {\n  serve_stale_policy prefer_positive\n }"))


class CacheBehaviourTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.server = server_label()
        self.table = {(b"www.example.org", dns.A): [a(b"www.example.org", "192.0.2.1", 120),
                                                     a(b"www.example.org", "192.0.2.2", 300)]}
        self.upstream = Upstream(by_name(self.table))

    def cache(self, body="cache", plugins=None):
        return build(self, "cache", body, self.upstream, reactor=self.clock, plugins=plugins)

    def ask(self, cache, name="www.example.org", qtype=dns.A, **kw):
        d = cache.query(kquery(name, qtype, server=self.server, **kw))
        return d

    def answer(self, cache, *args, **kw):
        return self.successResultOf(self.ask(cache, *args, **kw))

    def test_missThenHitWithUniformTtl(self):
        """The first answer comes from upstream with every RR at the minimum TTL; the second from memory, counted down."""
        cache = self.cache()
        first = self.answer(cache)
        self.assertEqual([rr.ttl for rr in first.answers], [120, 120])
        self.clock.advance(7.5)
        second = self.answer(cache)
        self.assertEqual(len(self.upstream.asked), 1)
        self.assertEqual([rr.ttl for rr in second.answers], [113, 113])
        self.assertEqual(values(second), ["192.0.2.1", "192.0.2.2"])
        self.assertEqual(metric("coredns_cache_hits_total", self.server, type="success"), 1)
        self.assertEqual(metric("coredns_cache_misses_total", self.server), 1)
        self.assertEqual(metric("coredns_cache_requests_total", self.server), 2)

    def test_hitsSetAuthoritative(self):
        """A non-authoritative upstream answer is served with AA on hits, as CoreDNS does; RA is kept."""
        cache = self.cache()
        self.assertFalse(self.answer(cache).aa)
        hit = self.answer(cache)
        self.assertTrue(hit.aa)
        self.assertTrue(hit.ra)

    def test_storedResponseNeverMutated(self):
        """Hits are built from copies: the records stored are those upstream gave, TTLs untouched."""
        cache = self.cache()
        self.answer(cache)
        self.clock.advance(30)
        hit = self.answer(cache)
        stored = list(cache.success.items.values())[0].response
        self.assertEqual([rr.ttl for rr in stored.answers], [120, 300])
        self.assertNotIdentical(hit.answers[0], stored.answers[0])

    def test_expiryRefetches(self):
        """After the TTL the entry is gone and the next query goes upstream, seeing new data."""
        cache = self.cache()
        self.answer(cache)
        self.table[(b"www.example.org", dns.A)] = [a(b"www.example.org", "192.0.2.9", 120)]
        self.clock.advance(119)
        self.assertEqual(values(self.answer(cache)), ["192.0.2.1", "192.0.2.2"])
        self.clock.advance(1)
        self.assertEqual(values(self.answer(cache)), ["192.0.2.9"])
        self.assertEqual(len(self.upstream.asked), 2)

    def test_ttlClamps(self):
        """The lifetime is clamped to [MINTTL, TTL]: C{cache 30} caps 120 to 30; a 1 s record lives 5 s."""
        cache = self.cache("cache 30")
        self.assertEqual([rr.ttl for rr in self.answer(cache).answers], [30, 30])
        self.table[(b"short.example.org", dns.A)] = [a(b"short.example.org", "192.0.2.5", 1)]
        self.assertEqual(self.answer(cache, "short.example.org").answers[0].ttl, 5)
        self.clock.advance(4)
        self.assertEqual(self.answer(cache, "short.example.org").answers[0].ttl, 1)
        self.assertEqual(len(self.upstream.asked), 2)

    def test_keyHasTypeDoCdAndCase(self):
        """DO, CD, type and class make distinct entries; the name is case-insensitive."""
        cache = self.cache()
        self.answer(cache)
        self.answer(cache, "WWW.Example.ORG")
        self.assertEqual(len(self.upstream.asked), 1)
        self.answer(cache, do=True)
        self.answer(cache, cd=True)
        self.failureResultOf(self.ask(cache, qtype=dns.AAAA), NXDomain)
        self.assertEqual(len(self.upstream.asked), 4)
        self.assertEqual(sorted(k[:3] for k in cache.success.items),
                         [(False, False, dns.A), (False, True, dns.A), (True, False, dns.A)])

    def test_negativeCachedWithDenialLimits(self):
        """NXDOMAIN with an SOA is cached for the SOA TTL clamped by C{denial}, and replayed as NXDOMAIN with the SOA."""
        cache = self.cache("cache {\n denial 100 20\n}")
        first = self.failureResultOf(self.ask(cache, "nope.example.org"), NXDomain)
        self.assertEqual(first.value.response.authority[0].ttl, 20)
        self.clock.advance(19)
        again = self.failureResultOf(self.ask(cache, "nope.example.org"), NXDomain)
        self.assertEqual(again.value.response.authority[0].ttl, 1)
        self.assertEqual(again.value.response.authority[0].type, dns.SOA)
        self.assertEqual(len(self.upstream.asked), 1)
        self.assertEqual(metric("coredns_cache_hits_total", self.server, type="denial"), 1)
        self.clock.advance(1)
        self.failureResultOf(self.ask(cache, "nope.example.org"), NXDomain)
        self.assertEqual(len(self.upstream.asked), 2)

    def test_nodataCached(self):
        """NOERROR with no answer and an SOA (NODATA) is a denial entry."""
        self.upstream.answer = Response([], [soa(b"example.org", 60)], aa=True)
        cache = self.cache()
        self.answer(cache)
        self.answer(cache)
        self.assertEqual((len(self.upstream.asked), len(cache.denial)), (1, 1))

    def test_notStored(self):
        """REFUSED, NXDOMAIN without SOA, an unterminated CNAME chain and AXFR are never cached."""
        for answer, qtype in [(Refused(), dns.A), (NXDomain(), dns.A),
                              (Response([cname(b"www.example.org", b"elsewhere.example.net")]), dns.A),
                              (Response([a(b"www.example.org", "192.0.2.1")]), dns.AXFR)]:
            self.upstream.answer = answer
            self.upstream.asked = []
            cache = self.cache()
            for _ in range(2):
                self.ask(cache, qtype=qtype).addErrback(lambda f: None)
            self.assertEqual(len(self.upstream.asked), 2, (answer, qtype))
            self.assertEqual(len(cache.success) + len(cache.denial), 0)

    def test_mismatchedReplyDropped(self):
        """A reply whose answer is for another name is not cached and counts in drops_total."""
        self.upstream.answer = Response([a(b"other.example.org", "192.0.2.7")])
        cache = self.cache()
        self.answer(cache)
        self.assertEqual(len(cache.success), 0)
        self.assertEqual(metric("coredns_cache_drops_total", self.server), 1)

    def test_servfailCachedBriefly(self):
        """A relayed SERVFAIL is cached for C{servfail} (5 s by default) and not at all with C{servfail 0}."""
        self.upstream.answer = ServFail()
        cache = self.cache()
        self.failureResultOf(self.ask(cache), ServFail)
        self.failureResultOf(self.ask(cache), ServFail)
        self.assertEqual(len(self.upstream.asked), 1)
        self.clock.advance(5)
        self.failureResultOf(self.ask(cache), ServFail)
        self.assertEqual(len(self.upstream.asked), 2)
        off = self.cache("cache {\n servfail 0s\n}")
        self.failureResultOf(self.ask(off), ServFail)
        self.failureResultOf(self.ask(off), ServFail)
        self.assertEqual(len(self.upstream.asked), 4)

    def test_localFailureNotCached(self):
        """A SERVFAIL carrying an error (upstream unreachable) is not cached: the next query tries again."""
        self.upstream.answer = ServFail("plugin/forward: no healthy upstream")
        cache = self.cache()
        for _ in range(2):
            self.failureResultOf(self.ask(cache), ServFail)
        self.assertEqual((len(self.upstream.asked), len(cache.denial)), (2, 0))

    def test_servfailNeverShadowsPositive(self):
        """A SERVFAIL arriving while a positive entry is valid is not stored over it."""
        cache = self.cache()
        self.answer(cache)
        self.upstream.answer = ServFail("down")
        key = list(cache.success.items)[0]
        self.assertIdentical(cache.store(kquery("www.example.org", server=self.server), key,
                                         ServFail().response, self.clock.seconds()), None)
        self.assertEqual(values(self.answer(cache)), ["192.0.2.1", "192.0.2.2"])

    def test_disable(self):
        """C{disable success ZONE} stops positive caching under ZONE only; C{disable denial} all negatives."""
        self.table[(b"svc.cluster.local", dns.A)] = [a(b"svc.cluster.local", "10.0.0.1")]
        cache = self.cache("cache {\n disable success cluster.local\n disable denial\n}")
        for _ in range(2):
            self.answer(cache, "svc.cluster.local")
            self.answer(cache)
            self.failureResultOf(self.ask(cache, "nope.example.org"), NXDomain)
        names = [kq.qname for kq in self.upstream.asked]
        self.assertEqual(names.count(b"svc.cluster.local"), 2)
        self.assertEqual(names.count(b"www.example.org"), 1)
        self.assertEqual(names.count(b"nope.example.org"), 2)

    def test_keepttl(self):
        """C{keepttl} serves the records' own TTLs, unchanged by age or clamping."""
        cache = self.cache("cache {\n keepttl\n}")
        self.answer(cache)
        self.clock.advance(50)
        self.assertEqual([rr.ttl for rr in self.answer(cache).answers], [120, 300])

    def test_zonesBypass(self):
        """Queries outside the cache's zones go straight to the next plugin."""
        self.table[(b"www.example.net", dns.A)] = [a(b"www.example.net", "192.0.2.8")]
        cache = self.cache("cache 30 example.org")
        for _ in range(2):
            self.answer(cache, "www.example.net")
        self.assertEqual(len(self.upstream.asked), 2)

    def test_capacityBound(self):
        """More distinct names than capacity: the cache stays at capacity and counts evictions (LRU)."""
        cache = self.cache("cache {\n success 1024\n}")
        self.upstream.answer = lambda kq: Response([a(kq.name.name, "192.0.2.1")])
        for i in range(1500):
            self.answer(cache, "n%d.example.org" % (i,))
        self.assertEqual(len(cache.success), 1024)
        self.assertEqual(metric("coredns_cache_evictions_total", self.server, type="success"), 476)
        self.assertEqual(metric("coredns_cache_entries", self.server, type="success"), 1024)
        self.assertIn((False, False, dns.A, dns.IN, b"n1499.example.org"), cache.success.items)
        self.assertNotIn((False, False, dns.A, dns.IN, b"n0.example.org"), cache.success.items)

    def test_prefetchRefreshesPopularName(self):
        """A name hit AMOUNT times within DURATION is refreshed in the background once its TTL drops under PCT."""
        cache = self.cache("cache {\n prefetch 3 1m 50%\n}")
        self.table[(b"www.example.org", dns.A)] = [a(b"www.example.org", "192.0.2.1", 100)]
        self.answer(cache)
        for _ in range(3):
            self.clock.advance(10)
            self.answer(cache)
        self.assertEqual(len(self.upstream.asked), 1)  # ttl 70 > 50: not yet
        self.table[(b"www.example.org", dns.A)] = [a(b"www.example.org", "192.0.2.77", 100)]
        self.clock.advance(25)
        stale = self.answer(cache)  # ttl 45 <= 50: refresh starts, this reply is the old entry
        self.assertEqual(values(stale), ["192.0.2.1"])
        self.assertEqual(len(self.upstream.asked), 2)
        self.assertEqual(metric("coredns_cache_prefetch_total", self.server), 1)
        self.clock.advance(1)
        fresh = self.answer(cache)
        self.assertEqual(values(fresh), ["192.0.2.77"])
        self.assertEqual(fresh.answers[0].ttl, 99)
        self.assertEqual(len(self.upstream.asked), 2)

    def test_prefetchNeedsSteadyHits(self):
        """Hits separated by more than DURATION do not make a name popular."""
        cache = self.cache("cache {\n prefetch 2 10s 90%\n}")
        self.answer(cache)
        for _ in range(5):
            self.clock.advance(11)
            self.answer(cache)
        self.assertEqual(len(self.upstream.asked), 1)

    def test_serveStaleImmediate(self):
        """With the upstream down, an expired entry is served with TTL 0 and a background refresh is tried."""
        cache = self.cache("cache {\n serve_stale 1h\n}")
        self.answer(cache)
        self.upstream.answer = ServFail("upstream down")
        self.clock.advance(200)
        stale = self.answer(cache)
        self.assertEqual(values(stale), ["192.0.2.1", "192.0.2.2"])
        self.assertEqual([rr.ttl for rr in stale.answers], [0, 0])
        self.assertEqual(len(self.upstream.asked), 2)
        self.assertEqual(metric("coredns_cache_served_stale_total", self.server), 1)
        self.clock.advance(3600)
        self.failureResultOf(self.ask(cache), ServFail)  # beyond the stale window

    def test_serveStaleRefreshReplaces(self):
        """The background refresh of a stale entry stores the new answer for the next query."""
        cache = self.cache("cache {\n serve_stale 1h immediate 5\n}")
        self.answer(cache)
        self.table[(b"www.example.org", dns.A)] = [a(b"www.example.org", "192.0.2.50", 60)]
        self.clock.advance(121)
        self.assertEqual([rr.ttl for rr in self.answer(cache).answers], [5, 5])
        self.assertEqual(values(self.answer(cache)), ["192.0.2.50"])

    def test_serveStaleVerify(self):
        """C{verify} asks upstream first: a good answer is served fresh, a failure falls back to the stale entry."""
        cache = self.cache("cache {\n serve_stale 1h verify\n}")
        self.answer(cache)
        self.clock.advance(121)
        self.table[(b"www.example.org", dns.A)] = [a(b"www.example.org", "192.0.2.60", 60)]
        fresh = self.answer(cache)
        self.assertEqual((values(fresh), fresh.answers[0].ttl), (["192.0.2.60"], 60))
        self.clock.advance(61)
        self.upstream.answer = ServFail("down")
        stale = self.answer(cache)
        self.assertEqual((values(stale), stale.answers[0].ttl), (["192.0.2.60"], 0))

    def test_serveStaleVerifyTimeout(self):
        """C{verify TIMEOUT}: a hung upstream is given TIMEOUT, then the stale entry is served."""
        cache = self.cache("cache {\n serve_stale 1h verify 2s\n}")
        self.answer(cache)
        self.clock.advance(121)
        self.upstream.answer = None
        d = self.ask(cache)
        self.assertNoResult(d)
        self.clock.advance(2)
        self.assertEqual(values(self.successResultOf(d)), ["192.0.2.1", "192.0.2.2"])
        self.upstream.pending[0].callback(Response([a(b"www.example.org", "192.0.2.61", 60)]))
        self.assertEqual(values(self.answer(cache)), ["192.0.2.61"])

    def test_failureRecheckRateLimitsRefreshes(self):
        """C{FAILURE_RECHECK}: after a failed stale refresh, stale hits do not ask upstream again until it passed."""
        cache = self.cache("cache {\n serve_stale 1h immediate 0 30s\n}")
        self.answer(cache)
        self.upstream.answer = ServFail()
        self.clock.advance(121)
        self.answer(cache)
        self.assertEqual(len(self.upstream.asked), 2)
        self.clock.advance(10)
        self.answer(cache)
        self.assertEqual(len(self.upstream.asked), 2)
        self.clock.advance(20)
        self.answer(cache)
        self.assertEqual(len(self.upstream.asked), 3)

    def test_preferPositive(self):
        """C{serve_stale_policy prefer_positive}: a fresh positive entry wins over a cached negative one for the same key."""
        cache = self.cache("cache {\n serve_stale 1h\n serve_stale_policy prefer_positive\n}")
        self.answer(cache)
        key = list(cache.success.items)[0]
        negative = NXDomain(authority=[soa(b"example.org")]).response
        cache.store(kquery("www.example.org", server=self.server), key, negative, self.clock.seconds())
        self.assertEqual(len(cache.denial), 1)
        self.assertEqual(values(self.answer(cache)), ["192.0.2.1", "192.0.2.2"])
        plain = self.cache("cache {\n serve_stale 1h\n}")
        self.answer(plain)
        plain.store(kquery("www.example.org", server=self.server), key, negative, self.clock.seconds())
        self.failureResultOf(self.ask(plain), NXDomain)

    def test_invalidate(self):
        """C{invalidate(names)} drops entries for those names and names under them, positive and negative."""
        cache = self.cache()
        self.table[(b"a.svc.example.org", dns.A)] = [a(b"a.svc.example.org", "10.0.0.1")]
        self.answer(cache, "a.svc.example.org")
        self.answer(cache)
        self.failureResultOf(self.ask(cache, "b.svc.example.org"), NXDomain)
        self.assertEqual(cache.invalidate([b"svc.example.org"]), 2)
        self.assertEqual([k[-1] for k in cache.success.items], [b"www.example.org"])
        self.assertEqual(len(cache.denial), 0)
