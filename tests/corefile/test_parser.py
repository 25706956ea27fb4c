"""Corefile structure: keys, zones and ports, blocks, snippets, imports and syntax errors."""

import os
import shutil
import tempfile

from twisted.trial import unittest

from twisted_kdns.corefile import parse_file, parse_text
from twisted_kdns.errors import ConfigError


def keys(corefile, index=0):
    return [repr(k) for k in corefile.blocks[index].keys]


def directives(block):
    return [(d.name, d.values) for d in block.directives]


class KeyTests(unittest.SynchronousTestCase):
    def test_severalKeysOneLine(self):
        """Several keys before { form one block sharing its directives."""
        cf = parse_text("example.org example.net:1053 {\n whoami\n}\n")
        self.assertEqual(keys(cf), ["dns://example.org.:53", "dns://example.net.:1053"])
        self.assertEqual(directives(cf.blocks[0]), [("whoami", [])])

    def test_commaContinuesKeys(self):
        """A key ending in a comma continues on the next line; the comma is stripped."""
        cf = parse_text("a.example,\nb.example, c.example {\n whoami\n}\n")
        self.assertEqual(keys(cf), ["dns://a.example.:53", "dns://b.example.:53", "dns://c.example.:53"])

    def test_danglingComma(self):
        """A comma right before { is an error naming the line."""
        e = self.assertRaises(ConfigError, parse_text, "a.example,\n{\n}\n", "Corefile")
        self.assertIn("Corefile:2", str(e))
        self.assertIn("extra comma", str(e))

    def test_dnsScheme(self):
        """dns:// is accepted, case-insensitive, and the zone is lower-cased and made absolute."""
        cf = parse_text("DNS://Example.ORG:5353 {\n whoami\n}\n")
        key = cf.blocks[0].keys[0]
        self.assertEqual((key.scheme, key.zone, key.port), ("dns", b"example.org", 5353))

    def test_otherSchemesNotSupported(self):
        """tls://, https://, grpc://, quic:// are known to CoreDNS but clearly not supported here."""
        for scheme in ("tls", "https", "grpc", "quic", "https3"):
            e = self.assertRaises(ConfigError, parse_text, "\n%s://example.org {\n whoami\n}\n" % scheme)
            self.assertIn("Corefile:2", str(e))
            self.assertIn("'%s://' is not supported" % scheme, str(e))

    def test_unknownScheme(self):
        """A scheme CoreDNS does not know is an error."""
        e = self.assertRaises(ConfigError, parse_text, "foo://example.org {\n}\n")
        self.assertIn("unknown transport scheme 'foo'", str(e))

    def test_defaultPort(self):
        """Keys without a port get the default (53, or the --dns-port override); an explicit one wins."""
        cf = parse_text("a.example b.example:99 {\n whoami\n}\n", default_port=1053)
        self.assertEqual([k.port for k in cf.blocks[0].keys], [1053, 99])
        self.assertEqual(parse_text(". {\n}\n").blocks[0].keys[0].port, 53)

    def test_root(self):
        """The root zone is b'' internally, written '.'."""
        cf = parse_text(".:1053 {\n whoami\n}\n")
        self.assertEqual(cf.blocks[0].zones, [b""])
        self.assertEqual(keys(cf), ["dns://.:1053"])

    def test_badPort(self):
        """A non-numeric, out-of-range or empty port is an error with file:line."""
        for key, why in (("example.org:abc", "invalid port 'abc'"), ("example.org:70000", "invalid port '70000'"),
                         ("example.org:", "expecting data after last colon")):
            e = self.assertRaises(ConfigError, parse_text, "# c\n\n%s {\n}\n" % key, "Corefile")
            self.assertIn("Corefile:3", str(e))
            self.assertIn(why, str(e))

    def test_badZone(self):
        """A zone that is not a domain name is an error naming it."""
        for zone in ("exa mple", "a..b", "x" * 64 + ".org", "bad/zone"):
            text = '"%s" {\n}\n' % zone
            e = self.assertRaises(ConfigError, parse_text, text, "Corefile")
            self.assertIn("Corefile:1", str(e))

    def test_bareIPIsAName(self):
        """A bare address without /LEN is an ordinary domain name, not reverse shorthand."""
        cf = parse_text("10.0.0.1 {\n}\n")
        self.assertEqual(cf.blocks[0].zones, [b"10.0.0.1"])

    def test_reverseOnBoundary(self):
        """A CIDR on an octet/nibble boundary becomes one reverse zone."""
        cf = parse_text("10.0.0.0/24 172.16.0.0/12:1053 2001:db8::/32 {\n}\n")
        self.assertEqual(cf.blocks[0].zones[0], b"0.0.10.in-addr.arpa")
        self.assertEqual(cf.blocks[0].zones[-1], b"8.b.d.0.1.0.0.2.ip6.arpa")

    def test_reverseSplit(self):
        """Off a boundary the CIDR splits into the next-larger boundary's zones, all in one block."""
        cf = parse_text("10.0.0.0/15 {\n}\n")
        self.assertEqual(cf.blocks[0].zones, [b"0.10.in-addr.arpa", b"1.10.in-addr.arpa"])
        cf = parse_text("10.0.0.0/27:1053 {\n}\n")
        zones = cf.blocks[0].zones
        self.assertEqual(len(zones), 32)
        self.assertEqual((zones[0], zones[-1]), (b"0.0.0.10.in-addr.arpa", b"31.0.0.10.in-addr.arpa"))
        self.assertEqual({k.port for k in cf.blocks[0].keys}, {1053})
        cf = parse_text("172.16.0.0/12 {\n}\n")
        self.assertEqual(cf.blocks[0].zones[0], b"16.172.in-addr.arpa")
        self.assertEqual(len(cf.blocks[0].zones), 16)
        cf = parse_text("2001:db8::/33 {\n}\n")
        self.assertEqual(len(cf.blocks[0].zones), 8)
        self.assertEqual(cf.blocks[0].zones[1], b"1.8.b.d.0.1.0.0.2.ip6.arpa")


class StructureTests(unittest.SynchronousTestCase):
    def test_directivesAndBlocks(self):
        """Directives end at the line end; a trailing { opens a nested block, which may nest."""
        cf = parse_text("example.org {\n  hosts f example.org {\n    ttl 5\n    a {\n      b c\n    }\n  }\n"
                        "  log\n}\n")
        block = cf.blocks[0]
        self.assertEqual(directives(block), [("hosts", ["f", "example.org"]), ("log", [])])
        hosts = block.directives[0]
        self.assertEqual([(d.name, d.values) for d in hosts.block], [("ttl", ["5"]), ("a", [])])
        self.assertEqual([(d.name, d.values) for d in hosts.block[1].block], [("b", ["c"])])
        self.assertEqual(hosts.block[0].line, 3)

    def test_oneLineBlock(self):
        """A block may open and close on the directive's line."""
        cf = parse_text(". {\n errors { stacktrace }\n}\n")
        self.assertEqual([d.name for d in cf.blocks[0].directives[0].block], ["stacktrace"])

    def test_bracelessBlock(self):
        """Without { the rest of the file is the only block's directives."""
        cf = parse_text("example.org:1053\nwhoami\nlog\n")
        self.assertEqual(len(cf.blocks), 1)
        self.assertEqual(directives(cf.blocks[0]), [("whoami", []), ("log", [])])

    def test_severalBlocks(self):
        """Blocks follow each other; each keeps its own directives in Corefile order."""
        cf = parse_text("a.example {\n log\n whoami\n}\nb.example {\n whoami\n log x\n}\n")
        self.assertEqual([directives(b) for b in cf.blocks],
                         [[("log", []), ("whoami", [])], [("whoami", []), ("log", ["x"])]])

    def test_byName(self):
        """Repeated directives are grouped by name in Corefile order."""
        cf = parse_text(". {\n log a\n whoami\n log b\n}\n")
        grouped = cf.blocks[0].by_name()
        self.assertEqual([d.values for d in grouped["log"]], [["a"], ["b"]])

    def test_quotedKeyAndArgs(self):
        """Quoted tokens work as keys and arguments."""
        cf = parse_text('"example.org" {\n log "a b"\n}\n')
        self.assertEqual(cf.blocks[0].zones, [b"example.org"])
        self.assertEqual(directives(cf.blocks[0]), [("log", ["a b"])])

    def test_envInKeysAndArgs(self):
        """{$ENV} and {%ENV%} work in keys and arguments."""
        cf = parse_text("{$Z}:{%P%} {\n log {$N}\n}\n", environ={"Z": "example.org", "P": "1053", "N": "x"})
        self.assertEqual(keys(cf), ["dns://example.org.:1053"])
        self.assertEqual(directives(cf.blocks[0]), [("log", ["x"])])

    def test_unclosedBrace(self):
        """EOF inside a block is an error naming the line of the unclosed brace."""
        e = self.assertRaises(ConfigError, parse_text, ". {\n hosts {\n  ttl 5\n}\n", "Corefile")
        self.assertIn("Corefile:1", str(e))
        self.assertIn("Unexpected EOF", str(e))

    def test_extraClosingBrace(self):
        """A } without an opener is an error naming its line."""
        e = self.assertRaises(ConfigError, parse_text, ". {\n whoami\n}\n}\n", "Corefile")
        self.assertIn("Corefile:4", str(e))
        self.assertIn("no matching opening brace", str(e))
        e = self.assertRaises(ConfigError, parse_text, "}\n", "Corefile")
        self.assertIn("Corefile:1", str(e))

    def test_braceOnOwnLine(self):
        """A directive block's { must be on the directive's line."""
        e = self.assertRaises(ConfigError, parse_text, ". {\n hosts\n {\n }\n}\n", "Corefile")
        self.assertIn("Corefile:3", str(e))

    def test_unterminatedQuoteReported(self):
        """An unterminated quote is a ConfigError with file:line."""
        e = self.assertRaises(ConfigError, parse_text, '. {\n log "x\n}\n', "Corefile")
        self.assertIn("Corefile:2", str(e))


class ImportTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kdns-parser-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_snippet(self):
        """A snippet's tokens are spliced where it is imported, at top level or in blocks."""
        cf = parse_text("(common) {\n errors\n log\n}\na.example {\n import common\n whoami\n}\n"
                        "b.example {\n import common\n}\n")
        self.assertEqual([[d.name for d in b.directives] for b in cf.blocks],
                         [["errors", "log", "whoami"], ["errors", "log"]])

    def test_snippetInDirectiveBlock(self):
        """import also works inside a directive's block."""
        cf = parse_text("(entries) {\n 10.0.0.1 a.example\n}\n. {\n hosts {\n  import entries\n  ttl 5\n }\n}\n")
        self.assertEqual([d.name for d in cf.blocks[0].directives[0].block], ["10.0.0.1", "ttl"])

    def test_snippetRedeclared(self):
        """Defining a snippet twice is an error."""
        e = self.assertRaises(ConfigError, parse_text, "(s) {\n}\n(s) {\n}\n", "Corefile")
        self.assertIn("Corefile:3", str(e))
        self.assertIn("redeclaration", str(e))

    def test_snippetRecursion(self):
        """A snippet that imports itself, directly or through another, is rejected."""
        e = self.assertRaises(ConfigError, parse_text, "(s) {\n import s\n}\n. {\n import s\n}\n")
        self.assertIn("itself", str(e))
        e = self.assertRaises(ConfigError, parse_text,
                              "(a) {\n import b\n}\n(b) {\n import a\n}\n. {\n import a\n}\n", "Corefile")
        self.assertIn("itself", str(e))
        # a chain without a cycle is fine
        cf = parse_text("(a) {\n log\n}\n(b) {\n import a\n}\n. {\n import b\n}\n")
        self.assertEqual([d.name for d in cf.blocks[0].directives], ["log"])
        self.assertIn("Corefile", str(e))

    def test_importFileRelativeToCorefile(self):
        """A relative import path is read from the importing Corefile's directory."""
        self.write("conf/extra.conf", "whoami\n")
        path = self.write("conf/Corefile", ". {\n import extra.conf\n log\n}\n")
        cwd = os.getcwd()
        self.addCleanup(os.chdir, cwd)
        os.chdir("/")
        cf = parse_file(path)
        self.assertEqual([d.name for d in cf.blocks[0].directives], ["whoami", "log"])
        self.assertIn(os.path.join(self.dir, "conf", "extra.conf"), cf.files)

    def test_importedTokensCarryTheirFile(self):
        """Errors in imported tokens name the imported file and its line."""
        self.write("extra.conf", "\nhosts {\n")
        path = self.write("Corefile", ". {\n import extra.conf\n}\n")
        e = self.assertRaises(ConfigError, parse_file, path)
        self.assertTrue(str(e).startswith(path + ":1 - ") or "extra.conf:2" in str(e), str(e))

    def test_importGlob(self):
        """A glob imports every matching file in name order; nothing matching is not an error."""
        self.write("zones/b.conf", "b.example {\n whoami\n}\n")
        self.write("zones/a.conf", "a.example {\n whoami\n}\n")
        path = self.write("Corefile", "import zones/*.conf\nimport none/*.conf\n")
        cf = parse_file(path)
        self.assertEqual([b.zones for b in cf.blocks], [[b"a.example"], [b"b.example"]])

    def test_snippetExpansionCap(self):
        """Snippets that multiply each other are stopped by the expansion cap, not expanded forever."""
        text = "(s0) {\n log\n}\n"
        for i in range(1, 8):
            text += "(s%d) {\n%s}\n" % (i, " import s%d\n" % (i - 1) * 10)
        e = self.assertRaises(ConfigError, parse_text, text + ". {\n import s7\n}\n", "Corefile")
        self.assertIn("too many snippet expansions", str(e))

    def test_importGlobTwoWildcards(self):
        """A glob with more than one wildcard is refused."""
        path = self.write("Corefile", "import */*.conf\n")
        e = self.assertRaises(ConfigError, parse_file, path)
        self.assertIn("one wildcard", str(e))

    def test_importMissingFile(self):
        """A plain import path that does not exist is an error with file:line."""
        path = self.write("Corefile", ". {\n whoami\n import missing.conf\n}\n")
        e = self.assertRaises(ConfigError, parse_file, path)
        self.assertIn(path + ":3", str(e))
        self.assertIn("File to import not found: missing.conf", str(e))

    def test_importArguments(self):
        """import takes exactly one argument."""
        e = self.assertRaises(ConfigError, parse_text, ". {\n import a b\n}\n", "Corefile")
        self.assertIn("only one argument", str(e))
        e = self.assertRaises(ConfigError, parse_text, ". {\n import\n whoami\n}\n", "Corefile")
        self.assertIn("Corefile:2", str(e))

    def test_importRecursionGuard(self):
        """Files that import each other (or themselves) are rejected, not expanded forever."""
        self.write("a.conf", "import b.conf\n")
        self.write("b.conf", "import a.conf\n")
        path = self.write("Corefile", "import a.conf\n")
        e = self.assertRaises(ConfigError, parse_file, path)
        self.assertIn("imports itself", str(e))
        path = self.write("Self", ". {\n}\nimport Self\n")
        e = self.assertRaises(ConfigError, parse_file, path)
        self.assertIn("imports itself", str(e))

    def test_unreadableCorefile(self):
        """A missing Corefile is a ConfigError naming it."""
        e = self.assertRaises(ConfigError, parse_file, os.path.join(self.dir, "nope"))
        self.assertIn("nope", str(e))
