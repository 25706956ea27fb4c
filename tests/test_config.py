"""config.check/build: every configuration error with file:line, collected in one pass."""

import re

from twisted.internet.task import Clock
from twisted.trial import unittest

from twisted_kdns import config
from twisted_kdns.errors import ConfigErrors


def errors_of(testcase, text, path="Corefile"):
    """Every error line config.load reports for C{text}."""
    e = testcase.assertRaises(ConfigErrors, config.load, text=text, path=path)
    return [str(err) for err in e.errors]


class CheckTests(unittest.SynchronousTestCase):
    def test_valid(self):
        """A valid Corefile gives a plan whose blocks hold each plugin's config in plugin.cfg order."""
        plan = config.load(text=". {\n whoami\n hosts\n log\n errors\n bind 127.0.0.1\n}\n")
        self.assertEqual(list(plan.blocks[0].configs), ["bind", "errors", "log", "hosts", "whoami"])

    def test_unknownDirective(self):
        """A name CoreDNS does not know is 'Unknown directive' with file:line."""
        lines = errors_of(self, ". {\n whoami\n nosuchplugin foo\n}\n")
        self.assertEqual(lines, ["Corefile:3 - Error during parsing: Unknown directive 'nosuchplugin'"])

    def test_unavailablePlugin(self):
        """A CoreDNS plugin this version lacks (etcd) is 'not available in this version'."""
        lines = errors_of(self, ". {\n whoami\n\n etcd example.org\n}\n")
        self.assertEqual(len(lines), 1)
        self.assertIn("Corefile:4", lines[0])
        self.assertIn("plugin etcd is not available in this version", lines[0])

    def test_wrongArgumentCount(self):
        """Too many arguments name the plugin, file and line, CoreDNS-style."""
        lines = errors_of(self, ". {\n whoami extra\n}\n")
        self.assertEqual(lines, ["plugin/whoami: Corefile:2 - Error during parsing: "
                                 "Wrong argument count or unexpected line ending after 'whoami'"])

    def test_unknownOptionInBlock(self):
        """An unknown sub-directive inside a plugin block names its own line."""
        lines = errors_of(self, ". {\n hosts {\n  ttl 5\n  fallthru\n }\n}\n")
        self.assertEqual(len(lines), 1)
        self.assertIn("plugin/hosts: Corefile:4", lines[0])
        self.assertIn("unknown property 'fallthru'", lines[0])

    def test_oncePerBlock(self):
        """A once-only plugin used twice is an error at its second occurrence."""
        lines = errors_of(self, ". {\n whoami\n log\n whoami\n}\n")
        self.assertEqual(lines, ["plugin/whoami: Corefile:4 - Error during parsing: "
                                 "this plugin can only be used once per Server Block"])

    def test_duplicateZoneAcrossBlocks(self):
        """The same zone and port in two blocks is 'already defined', at the second key."""
        lines = errors_of(self, "example.org {\n whoami\n}\n\nEXAMPLE.org.:53 {\n whoami\n}\n")
        self.assertEqual(len(lines), 1)
        self.assertIn("Corefile:5", lines[0])
        self.assertIn("cannot serve dns://example.org.:53 - it is already defined", lines[0])

    def test_duplicateZoneInOneBlock(self):
        """The same zone twice in one block's keys is also refused."""
        lines = errors_of(self, "example.org example.org {\n whoami\n}\n")
        self.assertIn("already defined", lines[0])

    def test_duplicateViaReverseShorthand(self):
        """A CIDR key that expands onto an existing reverse zone is a duplicate too."""
        lines = errors_of(self, "0.10.in-addr.arpa {\n whoami\n}\n10.0.0.0/15 {\n whoami\n}\n")
        self.assertEqual(len(lines), 1)
        self.assertIn("Corefile:4", lines[0])

    def test_sameZoneOtherPortOrAddress(self):
        """The same zone on another port, or bound to different addresses, is fine."""
        config.load(text="example.org {\n whoami\n}\nexample.org:1053 {\n whoami\n}\n")
        config.load(text="example.org {\n bind 127.0.0.1\n whoami\n}\n"
                         "example.org {\n bind 127.0.0.2\n whoami\n}\n")
        lines = errors_of(self, "example.org {\n bind 127.0.0.1\n whoami\n}\nexample.org {\n whoami\n}\n")
        self.assertIn("already defined", lines[0])

    def test_allErrorsCollected(self):
        """check reports every problem of every block, not only the first."""
        lines = errors_of(self, "a.example {\n foo\n whoami 1\n}\nb.example {\n etcd\n log {\n  bogus\n }\n}\n"
                                "a.example {\n whoami\n}\n")
        self.assertEqual(len(lines), 5, lines)
        self.assertEqual([re.search(r"Corefile:(\d+)", l).group(1) for l in lines], ["2", "3", "6", "8", "11"])

    def test_noBlocks(self):
        """An empty Corefile is an error."""
        self.assertIn("no server blocks", errors_of(self, "# nothing\n")[0])


class BuildTests(unittest.SynchronousTestCase):
    def test_orderIndependentOfCorefile(self):
        """log/errors/hosts/whoami listed in reverse still chain as plugin.cfg: errors, log, then
        the terminals hosts before whoami."""
        plan = config.load(text=". {\n whoami\n hosts {\n  10.0.0.1 a.example\n }\n log\n errors\n}\n")
        generation = config.build(plan, Clock())
        root = generation.blocks[0].root
        self.assertEqual(root.name, "errors")
        self.assertEqual(root.next.name, "log")
        self.assertEqual([r.name for r in root.next.next.resolvers], ["hosts", "whoami"])

    def test_routesPerListener(self):
        """Routes are grouped by (bind address, port), then zone."""
        plan = config.load(text="a.example:1053 b.example:1053 {\n whoami\n}\n"
                                "c.example:1054 {\n bind 127.0.0.1 127.0.0.2\n whoami\n}\n")
        generation = config.build(plan, Clock())
        self.assertEqual(generation.listeners, [("", 1053), ("127.0.0.1", 1054), ("127.0.0.2", 1054)])
        self.assertEqual(sorted(generation.routes[("", 1053)]), [b"a.example", b"b.example"])

    def test_serverOnlyBlockHasNoRoot(self):
        """A block with only process-wide plugins has no resolver (the server answers REFUSED)."""
        generation = config.build(config.load(text=". {\n bind 127.0.0.1\n}\n"), Clock())
        self.assertIsNone(generation.blocks[0].root)
