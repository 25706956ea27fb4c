"""
The UDP fast path (twisted_kdns/server/fastpath.py) must give the same bytes
as the full path, apart from the TTLs counting down. It must keep the
cache's and prometheus' counts, and it must step aside whenever the full
path could answer differently: after an invalidation, a reload or an
expiry, with log hooks, or when loadbalance shuffles.

Each test serves every query through two dispatchers that share one built
configuration, so they share one cache. One dispatcher has the fast path and
the other does not, and the two replies are compared byte for byte.
"""

import dns.flags
import dns.message
import dns.rcode
from prometheus_client import REGISTRY
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.helpers import query, start_server
from twisted_kdns.config import build, load
from twisted_kdns.server import fastpath
from twisted_kdns.server.dispatch import Dispatcher

BIG = "\n".join("        10.9.0.%d big.example.org" % i for i in range(1, 41))

PRODUCTION = """
example.org:53 {
    errors
    prometheus 127.0.0.1:0
    loadbalance
    cache 30
    hosts {
        10.0.0.1 svc.example.org
        10.0.0.2 other.example.org
        10.0.1.1 two.example.org
        10.0.1.2 two.example.org
        fd00::1 svc.example.org
        ttl 60
    }
}
"""

NO_BALANCE = """
example.org:53 {
    errors
    prometheus 127.0.0.1:0
    cache 30
    hosts {
%s
        10.0.0.1 svc.example.org
    }
}
""" % (BIG,)

WITH_LOG = """
example.org:53 {
    log
    cache 30
    hosts {
        10.0.0.1 svc.example.org
    }
}
"""

CLIENT = ("127.0.0.1", 5353)
KEY = ("", 53)


def request(name, rdtype="A", msg_id=4321, **kw):
    q = dns.message.make_query(name, rdtype, **kw)
    q.id = msg_id
    return q.to_wire()


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Pair(object):
    """A full-path dispatcher and a fast-path one over the same generation."""

    def __init__(self, text, clock):
        self.clock = clock
        self.text = text
        self.generation = build(load(text=text), clock)
        routes = lambda: self.generation.routes.get(KEY)  # noqa: E731
        self.slow = Dispatcher(routes, "dns://:53", KEY, clock=clock.seconds)
        self.fast_dispatcher = Dispatcher(routes, "dns://:53", KEY, clock=clock.seconds)
        self.fast = fastpath.FastPath(self.fast_dispatcher)

    def reload(self):
        self.generation = build(load(text=self.text), self.clock)

    def cache(self):
        node = list(self.generation.routes[KEY].values())[0].root
        while type(node).__name__ != "CacheResolver":
            node = node.next
        return node

    def both(self, data):
        """(fast reply, full-path reply) for the same request bytes, in that order."""
        return self.fast.handle(data, CLIENT, "udp"), self.slow.handle(data, CLIENT, "udp")

    def warm(self, data):
        """A miss then a cache hit: the fast path memoises on the second."""
        self.fast.handle(data, CLIENT, "udp")
        self.fast.handle(data, CLIENT, "udp")


class EquivalenceTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.pair = Pair(PRODUCTION, self.clock)

    def assertSame(self, data):
        hits = self.pair.fast.hits
        fast, slow = self.pair.both(data)
        self.assertEqual(self.pair.fast.hits, hits + 1, "the fast path did not answer")
        self.assertIsInstance(fast, bytes)
        self.assertEqual(fast, slow)
        return dns.message.from_wire(fast)

    def test_memoisedOnTheSecondCacheHit(self):
        """The miss and the first hit go the full way; the third query is a memo hit."""
        data = request("svc.example.org")
        self.pair.fast.handle(data, CLIENT, "udp")
        self.assertEqual(len(self.pair.fast.memo), 0)
        self.pair.fast.handle(data, CLIENT, "udp")
        self.assertEqual(len(self.pair.fast.memo), 1)
        self.assertEqual(self.pair.fast.hits, 0)
        reply = self.assertSame(data)
        self.assertEqual([rr.to_text() for rrset in reply.answer for rr in rrset], ["10.0.0.1"])

    def test_idAndQuestionCaseEchoed(self):
        """Another ID gets its own ID back; a 0x20 variant is its own entry with its own case."""
        self.pair.warm(request("svc.example.org", msg_id=1))
        reply = self.assertSame(request("svc.example.org", msg_id=2))
        self.assertEqual(reply.id, 2)
        mixed = request("SvC.ExAmPlE.oRg", msg_id=3)
        self.pair.warm(mixed)
        reply = self.assertSame(mixed)
        self.assertEqual(reply.question[0].name.to_text(), "SvC.ExAmPlE.oRg.")

    def test_ttlCountsDown(self):
        """After 7 s the memo writes the cache's remaining TTL, as the full path does."""
        data = request("svc.example.org")
        self.pair.warm(data)
        first = self.assertSame(data)
        self.clock.advance(7)
        later = self.assertSame(data)
        self.assertEqual(later.answer[0].ttl, first.answer[0].ttl - 7)

    def test_expiryFallsBackToTheFullPath(self):
        """Once the cache entry expires the memo steps aside and the answer is the full path's."""
        data = request("svc.example.org")
        self.pair.warm(data)
        self.clock.advance(31)
        hits = self.pair.fast.hits
        fast, slow = self.pair.both(data)
        self.assertEqual(self.pair.fast.hits, hits)
        self.assertEqual(dns.message.from_wire(fast).answer[0].ttl, 30)
        self.assertEqual(fast, slow)

    def test_ednsAndDoVariants(self):
        """No EDNS, EDNS 4096, DO and CD requests each get the full path's exact bytes."""
        variants = [request("svc.example.org", use_edns=False),
                    request("svc.example.org", use_edns=0, payload=4096),
                    request("svc.example.org", use_edns=0, want_dnssec=True),
                    request("svc.example.org", "AAAA", use_edns=0)]
        cd = dns.message.make_query("svc.example.org", "A")
        cd.flags |= dns.flags.CD
        cd.id = 77
        variants.append(cd.to_wire())
        for data in variants:
            self.pair.warm(data)
            self.assertSame(data)
        self.assertEqual(len(self.pair.fast.memo), len(variants))
        self.assertTrue(dns.message.from_wire(self.pair.fast.handle(variants[2], CLIENT, "udp")).ednsflags
                        & dns.flags.DO)

    def test_cachedErrorServedLikeTheFullPath(self):
        """A cached SERVFAIL (denial cache) is memoised and served with the same bytes."""
        data = request("missing.example.org")
        self.pair.warm(data)
        reply = self.assertSame(data)
        self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)

    def test_countsLikeTheFullPath(self):
        """Memo hits add to the cache request/hit counters and DNS request count as full-path hits do."""
        data = request("svc.example.org")
        self.pair.warm(data)
        labels = dict(server="dns://:53", zones="example.org.", view="")
        counters = [("coredns_cache_requests_total", labels),
                    ("coredns_cache_hits_total", dict(labels, type="success")),
                    ("coredns_dns_requests_total", dict(server="dns://:53", zone="example.org.", view="",
                                                        proto="udp", family="1", type="A"))]
        before = [sample(name, **lab) for name, lab in counters]
        for _ in range(5):
            self.pair.fast.handle(data, CLIENT, "udp")
        middle = [sample(name, **lab) for name, lab in counters]
        for _ in range(5):
            self.pair.slow.handle(data, CLIENT, "udp")
        after = [sample(name, **lab) for name, lab in counters]
        self.assertEqual(self.pair.fast.hits, 5)
        self.assertEqual([m - b for m, b in zip(middle, before)], [5.0, 5.0, 5.0])
        self.assertEqual([a - m for a, m in zip(after, middle)], [5.0, 5.0, 5.0])

    def test_invalidationStepsAside(self):
        """After the cache drops the name (a kubernetes change), the next query takes the full path."""
        data = request("svc.example.org")
        self.pair.warm(data)
        self.assertEqual(self.pair.cache().invalidate([b"svc.example.org"]), 1)
        hits = self.pair.fast.hits
        fast, slow = self.pair.both(data)
        self.assertEqual(self.pair.fast.hits, hits)
        self.assertEqual(fast, slow)

    def test_reloadStepsAside(self):
        """A new generation (reload) is never answered from the old one's memo."""
        data = request("svc.example.org")
        self.pair.warm(data)
        self.pair.reload()
        hits = self.pair.fast.hits
        self.pair.fast.handle(data, CLIENT, "udp")
        self.assertEqual(self.pair.fast.hits, hits)
        self.assertEqual(len(self.pair.fast.memo), 0)

    def test_shuffledAnswersAreNotMemoised(self):
        """Two A records under loadbalance stay on the full path, so rotation still happens."""
        data = request("two.example.org")
        orders = set()
        for _ in range(30):
            reply = dns.message.from_wire(self.pair.fast.handle(data, CLIENT, "udp"))
            orders.add(tuple(rr.to_text() for rrset in reply.answer for rr in rrset))
        self.assertEqual(len(self.pair.fast.memo), 0)
        self.assertEqual(self.pair.fast.hits, 0)
        self.assertEqual(len(orders), 2)

    def test_tcpIsNotMemoised(self):
        """TCP requests go through the full path (the memo is for UDP)."""
        data = request("svc.example.org")
        for _ in range(3):
            self.pair.fast.handle(data, CLIENT, "tcp")
        self.assertEqual(len(self.pair.fast.memo), 0)


class TcpTests(unittest.SynchronousTestCase):
    def test_tcpMemoIdenticalAndSeparate(self):
        """A TCP memo answers TCP requests with the full path's TCP bytes and never UDP ones."""
        clock = Clock()
        pair = Pair(NO_BALANCE, clock)
        tcp = fastpath.FastPath(pair.fast_dispatcher, transport="tcp")
        data = request("big.example.org", use_edns=False)
        for _ in range(2):
            tcp.handle(data, CLIENT, "tcp")
        fast, slow = tcp.handle(data, CLIENT, "tcp"), pair.slow.handle(data, CLIENT, "tcp")
        self.assertEqual(tcp.hits, 1)
        self.assertEqual(fast, slow)
        self.assertGreater(len(fast), 512)  # no truncation over TCP
        tcp.handle(data, CLIENT, "udp")
        self.assertEqual(tcp.hits, 1)


class OtherChainTests(unittest.SynchronousTestCase):
    def test_truncatedReplyIdentical(self):
        """A 40-record answer truncated to 512 bytes (no loadbalance) is served with TC, byte-identical."""
        clock = Clock()
        clock.advance(50)
        pair = Pair(NO_BALANCE, clock)
        data = request("big.example.org", use_edns=False)
        pair.warm(data)
        fast, slow = pair.both(data)
        self.assertEqual(pair.fast.hits, 1)
        self.assertEqual(fast, slow)
        self.assertLessEqual(len(fast), 512)
        self.assertTrue(dns.message.from_wire(fast).flags & dns.flags.TC)
        clock.advance(3)
        fast, slow = pair.both(data)
        self.assertEqual(pair.fast.hits, 2)
        self.assertEqual(fast, slow)

    def test_logBlockNeverMemoised(self):
        """A block with log keeps every query on the full path (each one is logged)."""
        pair = Pair(WITH_LOG, Clock())
        data = request("svc.example.org")
        for _ in range(4):
            pair.fast.handle(data, CLIENT, "udp")
        self.assertEqual(len(pair.fast.memo), 0)
        self.assertEqual(pair.fast.hits, 0)

    def test_ttlOffsets(self):
        """The TTL scanner finds every non-OPT TTL and rejects trailing bytes."""
        q = dns.message.make_query("svc.example.org", "A", use_edns=0)
        r = dns.message.make_response(q)
        r.answer.append(dns.rrset.from_text("svc.example.org.", 42, "IN", "A", "10.0.0.1", "10.0.0.2"))
        wire = r.to_wire()
        self.assertEqual([ttl for _off, ttl in fastpath.ttl_offsets(wire)], [42, 42])
        self.assertRaises(ValueError, fastpath.ttl_offsets, wire + b"\x00")


class SocketTests(unittest.TestCase):
    def test_udpListenerUsesTheFastPath(self):
        """Over a real socket, repeated questions are answered by the memo with the right answer."""
        service, port = start_server(self, ".:0 {\n bind 127.0.0.1\n prometheus 127.0.0.1:0\n cache 30\n"
                                           " hosts {\n  10.1.2.3 fast.example.org\n }\n}\n")
        listener = service.listeners[sorted(service.listeners)[0]]
        protocol = listener.ports[0].protocol
        message = dns.message.make_query("fast.example.org", "A")

        def ask(_=None):
            return query(port, message)

        def check(reply):
            self.assertEqual([rr.to_text() for rrset in reply.answer for rr in rrset], ["10.1.2.3"])
            self.assertGreaterEqual(protocol.fast.hits, 2)
        d = ask()
        for _ in range(3):
            d.addCallback(ask)
        d.addCallback(check)
        return d
