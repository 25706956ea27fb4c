"""errors: CoreDNS-shaped error lines and consolidate, driven by a Clock."""

import re

import dns.rcode
from twisted.internet.task import Clock
from twisted.names import dns as tdns
from twisted.trial import unittest

from tests.helpers import query, start_server
from tests.plugins.logcapture import capture
from twisted_kdns.chain import FallthroughChain
from twisted_kdns.corefile import parse_text
from twisted_kdns.errors import ConfigError, NXDomain
from twisted_kdns.plugins import errors
from twisted_kdns.query import KdnsQuery
from twisted.internet import defer


def parse(text):
    return errors.parse(parse_text(". {\n%s\n}\n" % text, "Corefile").blocks[0].by_name()["errors"])


class ParseTests(unittest.SynchronousTestCase):
    def test_options(self):
        """stdout, stacktrace and consolidate (with LEVEL and show_first) parse."""
        cfg = parse("errors stdout {\n stacktrace\n consolidate 5m \".* i/o timeout$\" warning show_first\n"
                    " consolidate 30s ^x\n}")
        self.assertTrue(cfg.stdout and cfg.stacktrace)
        first, second = cfg.consolidate
        self.assertEqual((first.period, first.pattern.pattern, first.level.name, first.show_first),
                         (300.0, ".* i/o timeout$", "warn", True))
        self.assertEqual((second.period, second.level.name, second.show_first), (30.0, "error", False))

    def test_errors(self):
        """Bad arguments and unknown fields name the file and line."""
        for text, why in (("errors stderr", "unknown argument"), ("errors a b", "Wrong argument count"),
                          ("errors {\n consolidate 5m\n}", "Wrong argument count"),
                          ("errors {\n consolidate soon x\n}", "invalid"),
                          ("errors {\n consolidate 5m (\n}", "invalid regex"),
                          ("errors {\n consolidate 5m x loud\n}", "unknown log level"),
                          ("errors {\n consolidate 5m x show_first warning\n}", "unknown log level"),
                          ("errors {\n verbose\n}", "Unknown field 'verbose'")):
            e = self.assertRaises(ConfigError, parse, text)
            self.assertIn(why, str(e))
            self.assertRegex(str(e), r"plugin/errors: Corefile:[23] - ")


class Failing(object):
    """A terminal that fails every query with a fixed exception."""

    def __init__(self, exc):
        self.exc = exc

    def query(self, query, timeout=None):
        return defer.fail(self.exc)


class ConsolidateTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.lines = capture(self, "kdns.plugins.errors")
        self.clock = Clock()

    def resolver(self, text, terminal=None):
        return errors.ErrorsResolver(parse(text), terminal or FallthroughChain([]), self.clock)

    def ask(self, resolver, name=b"Www.Example.org"):
        self.failureResultOf(resolver.query(KdnsQuery(name, tdns.AAAA)))

    def test_errorLine(self):
        """A failure with a reason is logged as '[ERROR] plugin/errors: RCODE NAME TYPE: REASON'."""
        self.ask(self.resolver("errors"))
        self.assertEqual(self.lines, [("error", "[ERROR] plugin/errors: 2 www.example.org. AAAA: no next plugin found")])

    def test_unexpectedException(self):
        """A bug in a plugin is logged as SERVFAIL with the exception text."""
        self.ask(self.resolver("errors", Failing(RuntimeError("boom"))))
        self.assertEqual(self.lines[0][1], "[ERROR] plugin/errors: 2 www.example.org. AAAA: RuntimeError: boom")

    def test_answersNotLogged(self):
        """NXDOMAIN is an answer, not an error: nothing is logged."""
        self.ask(self.resolver("errors", Failing(NXDomain())))
        self.assertEqual(self.lines, [])

    def test_consolidate(self):
        """Matching errors are counted and summarised once per period; others are logged at once."""
        resolver = self.resolver("errors {\n consolidate 5m \"no next\"\n}")
        for _ in range(3):
            self.ask(resolver)
        self.assertEqual(self.lines, [])
        self.clock.advance(299)
        self.assertEqual(self.lines, [])
        self.clock.advance(1)
        self.assertEqual(self.lines, [("error", "[ERROR] plugin/errors: 3 errors like 'no next' occurred in last 5m0s")])
        self.ask(resolver)
        self.clock.advance(300)
        self.assertEqual(self.lines[-1][1], "[ERROR] plugin/errors: 1 errors like 'no next' occurred in last 5m0s")
        self.clock.advance(600)
        self.assertEqual(len(self.lines), 2)

    def test_consolidateShowFirst(self):
        """show_first logs the first at LEVEL; the summary counts it and only appears when more followed."""
        resolver = self.resolver("errors {\n consolidate 10s next warning show_first\n}")
        self.ask(resolver)
        self.assertEqual(self.lines, [("warn", "[WARNING] plugin/errors: 2 www.example.org. AAAA: no next plugin found")])
        self.clock.advance(10)
        self.assertEqual(len(self.lines), 1)
        self.ask(resolver)
        self.ask(resolver)
        self.clock.advance(10)
        self.assertEqual(self.lines[-1], ("warn", "[WARNING] plugin/errors: 2 errors like 'next' occurred in last 10s"))

    def test_firstPatternWins(self):
        """Only the first matching pattern counts an error; unmatched errors are logged."""
        resolver = self.resolver("errors {\n consolidate 1m no\n consolidate 1m next\n}")
        self.ask(resolver)
        self.ask(errors.ErrorsResolver(resolver.config, Failing(RuntimeError("other")), self.clock))
        self.assertEqual(len(self.lines), 1)
        self.assertIn("RuntimeError: other", self.lines[0][1])
        self.assertEqual(resolver.counts, [1, 0])
        self.clock.advance(60)

    def test_flushOnStop(self):
        """Pending counts are logged when the generation stops."""
        resolver = self.resolver("errors {\n consolidate 1h next\n}")
        self.ask(resolver)
        resolver.stop()
        self.assertEqual(self.lines, [("error", "[ERROR] plugin/errors: 1 errors like 'next' occurred in last 1h0m0s")])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ServerTests(unittest.TestCase):
    def test_endToEnd(self):
        """Over a real socket the client gets SERVFAIL and the error is logged with the lower-cased name."""
        lines = capture(self, "kdns.plugins.errors")
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n errors\n hosts {\n  fallthrough\n }\n}\n")

        def check(reply):
            self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)
            self.assertEqual([l for _, l in lines], ["[ERROR] plugin/errors: 2 miss.example.org. A: no next plugin found"])
        return query(port, "Miss.Example.ORG.").addCallback(check)

    def test_hostsServfailNotLogged(self):
        """hosts' SERVFAIL for a missing name carries no error: nothing logged (as CoreDNS)."""
        lines = capture(self, "kdns.plugins.errors")
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n errors\n hosts {\n  10.0.0.1 a.example\n }\n}\n")

        def check(reply):
            self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)
            self.assertEqual(lines, [])
        return query(port, "miss.example.").addCallback(check)
