"""FallthroughChain: the same query object is passed on, only PassToNext falls through."""

from twisted.internet import defer
from twisted.names import dns
from twisted.trial import unittest

from twisted_kdns.chain import FallthroughChain, link
from twisted_kdns.errors import NXDomain, PassToNext, Refused, ServFail
from twisted_kdns.plugin import Wrapper
from twisted_kdns.query import KdnsQuery
from twisted_kdns.response import Response


class Recorder(object):
    """A terminal that records what it saw and answers with a fixed outcome."""

    def __init__(self, name, outcome, sync=True):
        self.name = name
        self.outcome = outcome
        self.sync = sync
        self.seen = []
        self.pending = []

    def query(self, query, timeout=None):
        self.seen.append(query)
        if isinstance(self.outcome, Exception):
            if isinstance(self.outcome, PassToNext) and self.sync == "raise":
                raise self.outcome
            result = defer.fail(self.outcome)
        else:
            result = defer.succeed(self.outcome)
        if self.sync is False:
            d = defer.Deferred()
            self.pending.append((d, result))
            return d
        return result

    def release(self):
        for d, result in self.pending:
            result.chainDeferred(d)


class ChainTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.query = KdnsQuery(b"Www.Example.org", dns.A, client=("192.0.2.1", 5353), transport="tcp")

    def test_firstAnswerWins(self):
        """The first terminal that answers decides; later ones are not asked."""
        answer = Response([], aa=True, plugin="a")
        a, b = Recorder("a", answer), Recorder("b", Response())
        self.assertIs(self.successResultOf(FallthroughChain([a, b]).query(self.query)), answer)
        self.assertEqual(b.seen, [])

    def test_passToNextKeepsContext(self):
        """PassToNext (raised or failed, sync or async) moves on with the very same query object."""
        answer = Response(plugin="c")
        a = Recorder("a", PassToNext("x"), sync="raise")
        b = Recorder("b", PassToNext("x"), sync=False)
        c = Recorder("c", answer)
        d = FallthroughChain([a, b, c]).query(self.query)
        self.assertNoResult(d)
        b.release()
        self.assertIs(self.successResultOf(d), answer)
        self.assertIs(a.seen[0], self.query)
        self.assertIs(c.seen[0], self.query)
        self.assertEqual(c.seen[0].client, ("192.0.2.1", 5353))

    def test_finalErrorsStop(self):
        """NXDOMAIN, SERVFAIL and REFUSED are final: never turned into a fallthrough."""
        for error in (NXDomain(), ServFail("upstream"), Refused()):
            b = Recorder("b", Response())
            f = self.failureResultOf(FallthroughChain([Recorder("a", error), b]).query(self.query))
            self.assertIs(f.value, error)
            self.assertEqual(b.seen, [])

    def test_unexpectedExceptionIsFinal(self):
        """A bug in a terminal fails the query instead of falling through."""
        class Broken(object):
            def query(self, query, timeout=None):
                raise RuntimeError("bug")
        b = Recorder("b", Response())
        f = self.failureResultOf(FallthroughChain([Broken(), b]).query(self.query))
        f.trap(RuntimeError)
        self.assertEqual(b.seen, [])

    def test_noNextPlugin(self):
        """Falling off the end is SERVFAIL 'no next plugin found', as in CoreDNS."""
        f = self.failureResultOf(FallthroughChain([Recorder("a", PassToNext("x"))]).query(self.query))
        self.assertIsInstance(f.value, ServFail)
        self.assertEqual(f.value.code, dns.ESERVER)
        self.assertIn("no next plugin", f.value.reason)
        self.assertIsInstance(self.failureResultOf(FallthroughChain([]).query(self.query)).value, ServFail)

    def test_link(self):
        """link: a terminal joins the chain in front of the rest; a wrapper stays on top."""
        a, b = Recorder("a", Response()), Recorder("b", Response())
        rest = link("terminal", b, None)
        self.assertEqual(rest.resolvers, [b])
        rest = link("terminal", a, rest)
        self.assertEqual(rest.resolvers, [a, b])
        wrapper = Wrapper(rest)
        self.assertIs(link("wrapper", wrapper, rest), wrapper)
        # a terminal in front of a wrapper (loop before forward) keeps the wrapper as one member
        c = Recorder("c", Response())
        self.assertEqual(link("terminal", c, wrapper).resolvers, [c, wrapper])
