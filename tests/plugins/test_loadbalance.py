"""loadbalance: round_robin shuffling over real sockets, section ordering, prefer, copies."""

import random

from twisted.internet import defer
from twisted.names import dns
from twisted.trial import unittest

from tests.helpers import query, start_server
from tests.plugins.middleware_support import Upstream, a, aaaa, build, cname, kquery, mx
from twisted_kdns import config
from twisted_kdns.errors import ConfigErrors
from twisted_kdns.plugins.loadbalance import LoadbalanceResolver
from twisted_kdns.response import Response

IPS = ["10.0.0.%d" % i for i in range(1, 9)]
HOSTS = "\n".join("  %s lb.example.org" % ip for ip in IPS)


def answer_ips(reply):
    return [rd.to_text() for rrset in reply.answer for rd in rrset]


class LoadbalanceSocketTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_roundRobinShufflesAddresses(self):
        """Repeated A queries get the same set of addresses in varying order."""
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n loadbalance round_robin\n hosts {\n%s\n }\n}\n" % HOSTS)
        orders = set()
        for _ in range(12):
            reply = yield query(port, "lb.example.org", "A")
            ips = answer_ips(reply)
            self.assertEqual(sorted(ips), sorted(IPS))
            orders.add(tuple(ips))
        self.assertGreater(len(orders), 1)

    @defer.inlineCallbacks
    def test_preferMovesSubnetFirst(self):
        """C{prefer CIDR} puts the addresses inside the network first, after shuffling."""
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n loadbalance {\n  prefer 10.0.0.7/32 10.0.0.8/32\n }\n"
                                     " hosts {\n%s\n }\n}\n" % HOSTS)
        for _ in range(6):
            reply = yield query(port, "lb.example.org", "A", tcp=True)
            ips = answer_ips(reply)
            self.assertEqual(sorted(ips[:2]), ["10.0.0.7", "10.0.0.8"])
            self.assertEqual(sorted(ips), sorted(IPS))

    @defer.inlineCallbacks
    def test_cachedResponseNotMutated(self):
        """Behind loadbalance, the cache's stored records keep their order while clients see shuffles."""
        service, port = start_server(self, ".:0 {\n bind 127.0.0.1\n loadbalance\n cache 60\n hosts {\n%s\n }\n}\n" % HOSTS)
        orders = set()
        for _ in range(10):
            reply = yield query(port, "lb.example.org", "A")
            orders.add(tuple(answer_ips(reply)))
        cache = service.generation.blocks[0].plugins["cache"]
        stored = list(cache.success.items.values())[0].response.answers
        self.assertEqual([rr.payload.dottedQuad() for rr in stored], IPS)
        self.assertGreater(len(orders), 1)


class LoadbalanceOrderTests(unittest.SynchronousTestCase):
    def test_cnamesFirstThenAddressesThenMx(self):
        """Per section: CNAME chain kept in order first, other types, shuffled A/AAAA, then shuffled MX."""
        records = [a(b"t.example.org", "192.0.2.1"), mx(b"x.example.org", 10, b"m1.example.org"),
                   cname(b"w.example.org", b"v.example.org"), aaaa(b"t.example.org", "2001:db8::1"),
                   dns.RRHeader(b"t.example.org", dns.TXT, payload=dns.Record_TXT(b"hi")),
                   cname(b"v.example.org", b"t.example.org"), mx(b"x.example.org", 20, b"m2.example.org"),
                   a(b"t.example.org", "192.0.2.2")]
        upstream = Upstream(Response(records, [], list(reversed(records))))
        lb = LoadbalanceResolver(config.load(text=".:53 {\n loadbalance\n whoami\n}\n").blocks[0].configs["loadbalance"],
                                 upstream, random.Random(7))
        reply = self.successResultOf(lb.query(kquery("w.example.org")))
        for section in (reply.answers, reply.additional):
            types = [rr.type for rr in section]
            self.assertEqual(types[:3], [dns.CNAME, dns.CNAME, dns.TXT])
            self.assertEqual(sorted(types[3:6]), sorted([dns.A, dns.A, dns.AAAA]))
            self.assertEqual(types[6:], [dns.MX, dns.MX])
        self.assertEqual([rr.payload.name.name for rr in reply.answers[:2]], [b"v.example.org", b"t.example.org"])
        self.assertEqual([rr.payload.name.name for rr in reply.additional[:2]], [b"t.example.org", b"v.example.org"])
        self.assertEqual([rr.type for rr in records][:3], [dns.A, dns.MX, dns.CNAME])  # input untouched

    def test_errorsPassUnchanged(self):
        """Non-NOERROR outcomes are not touched."""
        from twisted_kdns.errors import NXDomain
        lb = build(self, "loadbalance", "loadbalance", Upstream(NXDomain()))
        self.failureResultOf(lb.query(kquery("nope.example.org")), NXDomain)

    def test_parseErrors(self):
        """weighted is reported unsupported; bad CIDRs and unknown policies are errors with file:line."""
        for body, text in [("loadbalance weighted /etc/w", "weighted policy is not supported"),
                           ("loadbalance sideways", "unknown policy: sideways"),
                           ("loadbalance {\n  prefer 10.0.0/33\n }", "invalid CIDR")]:
            e = self.assertRaises(ConfigErrors, config.load, text=".:53 {\n %s\n whoami\n}\n" % body)
            self.assertIn("plugin/loadbalance: Corefile:", str(e))
            self.assertIn(text, str(e))
