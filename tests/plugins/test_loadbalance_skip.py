"""
loadbalance: replies with nothing to shuffle or move (at most one address and
one MX record per section, kinds already in order) are passed on as they are,
without reading or copying records, so a forwarded reply keeps its byte
pass-through (issue 8).  The answers and the random sequence are the same as
when every reply was reordered.
"""

import random

import dns.message
import dns.rrset
from twisted.names import dns as tdns
from twisted.trial import unittest

from tests.plugins.middleware_support import Upstream, a, aaaa, cname, kquery, mx
from twisted_kdns.plugins.forward import wire
from twisted_kdns.plugins.forward.reply import ForwardResponse
from twisted_kdns.plugins.forward.transport import question_key
from twisted_kdns.plugins.loadbalance import LoadbalanceConfig, LoadbalanceResolver
from twisted_kdns.response import Response

NAME = b"www.example.org"


def txt(name, text, ttl=300):
    return tdns.RRHeader(name, tdns.TXT, tdns.IN, ttl, tdns.Record_TXT(text, ttl=ttl))


MAKERS = [
    lambda i: a(NAME, "192.0.2.%d" % (i + 1,)),
    lambda i: aaaa(NAME, "2001:db8::%d" % (i + 1,)),
    lambda i: mx(NAME, i + 1, b"mx%d.example.org" % (i,)),
    lambda i: cname(NAME, b"c%d.example.org" % (i,)),
    lambda i: txt(NAME, b"t%d" % (i,)),
]


def section(rng):
    return [rng.choice(MAKERS)(i) for i in range(rng.randrange(4))]


def forwarded(*rdatas):
    """A ForwardResponse read from upstream bytes answering www.example.org A."""
    q = dns.message.make_query("www.example.org.", "A")
    r = dns.message.make_response(q)
    for rdata in rdatas:
        r.answer.append(dns.rrset.from_text("www.example.org.", 60, "IN", "A", rdata))
    data = r.to_wire()
    return ForwardResponse(wire.read_reply(data, question_key(NAME, tdns.A, tdns.IN)))


def balancer(seed, answer):
    return LoadbalanceResolver(LoadbalanceConfig(), Upstream(answer), rng=random.Random(seed))


class SkipTests(unittest.SynchronousTestCase):
    def test_sameRecordsAndRandomSequenceAsReordering(self):
        """On 3,000 random replies, loadbalance's sections and its RNG state equal reorder() applied to every section."""
        gen = random.Random(8)
        skipped = 0
        for n in range(3000):
            sections = (section(gen), section(gen), section(gen))
            response = Response(*sections, aa=False, ra=True)
            lb = balancer(n, response)
            reference = LoadbalanceResolver(LoadbalanceConfig(), None, rng=random.Random(n))
            got = self.successResultOf(lb.query(kquery("www.example.org")))
            expected = [reference.reorder(s) for s in sections]
            self.assertEqual([got.answers, got.authority, got.additional], expected)
            self.assertEqual(lb.rng.getstate(), reference.rng.getstate())
            if got is response:
                skipped += 1
        self.assertTrue(300 < skipped < 2700, skipped)

    def test_forwardedSingleAddressNotDecoded(self):
        """A forwarded reply with one address goes through untouched (no record decoded), as the same object."""
        response = forwarded("192.0.2.1")
        got = self.successResultOf(balancer(1, response).query(kquery("www.example.org")))
        self.assertIs(got, response)
        self.assertTrue(got.untouched)

    def test_forwardedAddressesStillShuffled(self):
        """A forwarded reply with several addresses is still reordered (a copy, with every address)."""
        response = forwarded("192.0.2.1", "192.0.2.2", "192.0.2.3")
        orders = set()
        for seed in range(20):
            got = self.successResultOf(balancer(seed, response).query(kquery("www.example.org")))
            self.assertIsNot(got, response)
            orders.add(tuple(rr.payload.dottedQuad() for rr in got.answers))
        self.assertEqual({tuple(sorted(o)) for o in orders}, {("192.0.2.1", "192.0.2.2", "192.0.2.3")})
        self.assertGreater(len(orders), 1)
