"""loadbalance: round_robin shuffling over real sockets, section ordering, prefer, copies."""

import os
import random
import shutil
import tempfile

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
        """Bad CIDRs, unknown policies, a missing weight file argument and misplaced reload are errors with file:line."""
        for body, text in [("loadbalance weighted", "missing weight file argument"),
                           ("loadbalance sideways", "unknown policy: sideways"),
                           ("loadbalance round_robin {\n  reload 10s\n }", "only to the weighted policy"),
                           ("loadbalance {\n  prefer 10.0.0/33\n }", "invalid CIDR")]:
            e = self.assertRaises(ConfigErrors, config.load, text=".:53 {\n %s\n whoami\n}\n" % body)
            self.assertIn("plugin/loadbalance: Corefile:", str(e))
            self.assertIn(text, str(e))


class WeightedTests(unittest.TestCase):
    def weight_file(self, text):
        directory = tempfile.mkdtemp(prefix="kdns-lb-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "weights")
        with open(path, "w") as f:
            f.write(text)
        return path

    @defer.inlineCallbacks
    def test_weightedFirstAddress(self):
        """C{weighted}: the heavy address comes first in almost every answer; the others keep their order."""
        path = self.weight_file("# weights\nlb.example.org\n10.0.0.1 1\n10.0.0.5 255\n")
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n loadbalance weighted %s\n hosts {\n%s\n }\n}\n" % (path, HOSTS))
        firsts = []
        for _ in range(30):
            reply = yield query(port, "lb.example.org", "A")
            ips = answer_ips(reply)
            self.assertEqual(sorted(ips), sorted(IPS))
            firsts.append(ips[0])
        self.assertGreaterEqual(firsts.count("10.0.0.5"), 25)

    def test_weightRatioConverges(self):
        """Weights 3:1:2 give first-place shares near 1/2, 1/6, 1/3; unknown addresses weigh 1."""
        from twisted_kdns.plugins.loadbalance import Weights
        path = self.weight_file("www.example.org\n100.64.1.1 3\n100.64.1.2 1\n100.64.1.3 2\n")
        weights = Weights(path)
        weights.load()
        lb = LoadbalanceResolver(config.load(text=".:53 {\n loadbalance\n whoami\n}\n").blocks[0].configs["loadbalance"],
                                 None, random.Random(1), weights=weights)
        records = [a(b"www.example.org", "100.64.1.%d" % i) for i in (1, 2, 3)]
        counts = {}
        for _ in range(6000):
            first = lb.weighted(records)[0].payload.dottedQuad()
            counts[first] = counts.get(first, 0) + 1
        self.assertLess(abs(counts["100.64.1.1"] / 6000.0 - 0.5), 0.03)
        self.assertLess(abs(counts["100.64.1.2"] / 6000.0 - 1 / 6.0), 0.03)
        self.assertLess(abs(counts["100.64.1.3"] / 6000.0 - 1 / 3.0), 0.03)
        self.assertEqual(weights.weight(a(b"other.example.org", "100.64.1.1")), 1)

    def test_reloadPicksUpChanges(self):
        """The weight file is re-read every C{reload} interval (Clock-driven) when its content changed."""
        from twisted.internet.task import Clock
        path = self.weight_file("www.example.org\n100.64.1.1 3\n")
        clock = Clock()
        generation = config.build(config.load(text=".:53 {\n loadbalance weighted %s {\n  reload 10s\n }\n whoami\n}\n" % path), clock)
        for service in generation.options.services:
            service.startService()
            self.addCleanup(service.stopService)
        weights = generation.blocks[0].plugins["loadbalance"].weights
        self.assertEqual(weights.weight(a(b"www.example.org", "100.64.1.1")), 3)
        with open(path, "w") as f:
            f.write("www.example.org\n100.64.1.1 200\n")
        clock.advance(10)
        self.assertEqual(weights.weight(a(b"www.example.org", "100.64.1.1")), 200)

    def test_badWeightFile(self):
        """A malformed weight file is a setup error naming the weight file's line."""
        from twisted.internet.task import Clock
        path = self.weight_file("www.example.org\n100.64.1.1 0\n")
        e = self.assertRaises(Exception, config.build,
                              config.load(text=".:53 {\n loadbalance weighted %s\n whoami\n}\n" % path), Clock())
        self.assertIn("%s:2 - wrong weight value" % (path,), str(e))
        self.assertIn("plugin/loadbalance: Corefile:2", str(e))
