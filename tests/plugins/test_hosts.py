"""hosts: parsing, answers over real sockets, fallthrough, PTR, and Clock-driven file reload."""

import os
import shutil
import tempfile

import dns.flags
import dns.rcode
from prometheus_client import REGISTRY
from twisted.internet.task import Clock
from twisted.names import dns as tdns
from twisted.trial import unittest

from tests.helpers import query, rrset_values, start_server, write_corefile
from twisted_kdns import config
from twisted_kdns.corefile import parse_text
from twisted_kdns.errors import ConfigError, PassToNext, ServFail
from twisted_kdns.plugins import hosts
from twisted_kdns.query import KdnsQuery


def parse(text):
    return hosts.parse(parse_text(". {\n%s\n}\n" % text, "Corefile").blocks[0].by_name()["hosts"])


class ParseTests(unittest.SynchronousTestCase):
    def test_defaults(self):
        """Bare hosts: /etc/hosts, block zones, TTL 3600, reload 5s, no fallthrough."""
        cfg = parse("hosts")
        self.assertEqual((cfg.path, cfg.zones, cfg.ttl, cfg.reload, cfg.no_reverse),
                         ("/etc/hosts", None, 3600, 5.0, False))
        self.assertFalse(cfg.fallthrough.through(b"x"))

    def test_options(self):
        """FILE, ZONES, inline entries and every option parse."""
        cfg = parse("hosts /etc/myhosts example.org 10.0.0.0/24 {\n 10.0.0.1 a.example.org b.example.org\n"
                    " fd00::1 a.example.org\n ttl 60\n no_reverse\n reload 1m30s\n fallthrough example.org\n}")
        self.assertEqual(cfg.path, "/etc/myhosts")
        self.assertEqual(cfg.zones, [b"example.org", b"0.0.10.in-addr.arpa"])
        self.assertEqual(cfg.inline, [("10.0.0.1", ["a.example.org", "b.example.org"]),
                                      ("fd00::1", ["a.example.org"])])
        self.assertEqual((cfg.ttl, cfg.no_reverse, cfg.reload), (60, True, 90.0))
        self.assertTrue(cfg.fallthrough.through(b"x.example.org"))
        self.assertFalse(cfg.fallthrough.through(b"x.example.net"))

    def test_relativeFile(self):
        """A relative FILE is read from the Corefile's directory."""
        block = parse_text(". {\n hosts extra/hosts\n}\n", "/srv/dns/Corefile").blocks[0]
        self.assertEqual(hosts.parse(block.by_name()["hosts"]).path, "/srv/dns/extra/hosts")

    def test_errors(self):
        """Bad values, unknown words and words after fallthrough are errors with file:line."""
        for text, why in (("hosts {\n ttl 0\n}", "out of range"), ("hosts {\n ttl 70000\n}", "out of range"),
                          ("hosts {\n ttl\n}", "Wrong argument count"), ("hosts {\n reload soon\n}", "invalid"),
                          ("hosts {\n bogus option\n}", "unknown property 'bogus'"),
                          ("hosts {\n fallthrough\n 10.0.0.1 late.example\n}", "unknown property '10.0.0.1'"),
                          ("hosts f bad..zone", "not a valid domain"),
                          ("hosts {\n fallthrough_unsupported\n}", "requires fallthrough")):
            e = self.assertRaises(ConfigError, parse, text)
            self.assertIn(why, str(e))
            self.assertIn("Corefile:", str(e))
            self.assertEqual(e.plugin, "hosts")

    def test_parseLine(self):
        """hosts(5) lines: comments, short lines and bad addresses are skipped; zone ids allowed."""
        self.assertEqual(hosts.parse_line("10.0.0.1 a b # c"), ("10.0.0.1", ["a", "b"]))
        self.assertEqual(hosts.parse_line("fe80::1%eth0 ll"), ("fe80::1", ["ll"]))
        self.assertIsNone(hosts.parse_line("10.0.0.1"))
        self.assertIsNone(hosts.parse_line("# 10.0.0.1 a"))
        self.assertIsNone(hosts.parse_line("999.0.0.1 a"))


SERVER = """\
example.org:0 10.0.0.0/24:0 {
    bind 127.0.0.1
    hosts %(file)s {
        10.0.0.1 www.example.org
        fd00::1 www.example.org
        10.0.0.2 two.example.org second.example.org
        10.0.0.3 *.wild.example.org
        10.9.9.9 outside.example.net
        ttl 300
    }
}
"""


class ServerTests(unittest.TestCase):
    def setUp(self):
        directory = tempfile.mkdtemp(prefix="kdns-hosts-")
        self.addCleanup(shutil.rmtree, directory, True)
        with open(os.path.join(directory, "hosts"), "w") as f:
            f.write("# file entries come first\n10.0.0.50 www.example.org filed.example.org\nbad line\n")
        path = write_corefile(self, SERVER % {"file": "hosts"}, directory=directory)
        self.service, self.port = start_server(self, None, path=path)

    def test_a(self):
        """A: file and inline addresses merged (file first), TTL from ttl, AA set, owner as asked."""
        def check(reply):
            self.assertEqual(rrset_values(reply), ["10.0.0.1", "10.0.0.50"])
            self.assertEqual([rd.address for rd in reply.answer[0]], ["10.0.0.50", "10.0.0.1"])
            self.assertEqual(reply.answer[0].ttl, 300)
            self.assertTrue(reply.flags & dns.flags.AA)
        return query(self.port, "www.example.org.", "A").addCallback(check)

    def test_aaaa(self):
        """AAAA comes from IPv6 entries."""
        return query(self.port, "WWW.example.org.", "AAAA").addCallback(
            lambda r: self.assertEqual(rrset_values(r), ["fd00::1"]))

    def test_ptr(self):
        """PTR is generated for every name of an address, in the reverse CIDR zone."""
        def check(reply):
            self.assertEqual(rrset_values(reply), ["second.example.org.", "two.example.org."])
            self.assertTrue(reply.flags & dns.flags.AA)
        return query(self.port, "2.0.0.10.in-addr.arpa.", "PTR").addCallback(check)

    def test_nodata(self):
        """A known name without a record of the asked type is NOERROR with no answer and no SOA."""
        def check(reply):
            self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
            self.assertEqual((reply.answer, reply.authority), ([], []))
            self.assertTrue(reply.flags & dns.flags.AA)
        d = query(self.port, "two.example.org.", "AAAA").addCallback(check)
        d.addCallback(lambda _: query(self.port, "www.example.org.", "MX")).addCallback(check)
        return d

    def test_servfailWithoutFallthrough(self):
        """An unknown name in the zone is SERVFAIL (no SOA for NXDOMAIN) without fallthrough."""
        def check(reply):
            self.assertEqual(reply.rcode(), dns.rcode.SERVFAIL)
            self.assertFalse(reply.flags & dns.flags.AA)
        return query(self.port, "missing.example.org.", "A").addCallback(check)

    def test_ptrMissIsServfail(self):
        """A PTR with no entry passes on; with nothing next the client gets SERVFAIL."""
        return query(self.port, "99.0.0.10.in-addr.arpa.", "PTR").addCallback(
            lambda r: self.assertEqual(r.rcode(), dns.rcode.SERVFAIL))

    def test_wildcard(self):
        """*.zone matches exactly one more label, not the apex nor deeper names."""
        d = query(self.port, "host.wild.example.org.", "A")
        d.addCallback(lambda r: self.assertEqual(rrset_values(r), ["10.0.0.3"]))
        d.addCallback(lambda _: query(self.port, "a.b.wild.example.org.", "A"))
        d.addCallback(lambda r: self.assertEqual(r.rcode(), dns.rcode.SERVFAIL))
        return d

    def test_namesOutsideZonesDropped(self):
        """Entries outside the plugin's zones are not served (and are not routed here anyway)."""
        d = query(self.port, "outside.example.net.", "A")
        d.addCallback(lambda r: self.assertEqual(r.rcode(), dns.rcode.REFUSED))
        return d

    def test_entriesMetric(self):
        """coredns_hosts_entries counts the addresses loaded, labelled with the file."""
        resolver = self.service.generation.blocks[0].plugins["hosts"]
        value = REGISTRY.get_sample_value("coredns_hosts_entries", {"hostsfile": resolver.config.path})
        self.assertEqual(value, 7.0)


class FallthroughTests(unittest.TestCase):
    def test_fallthroughToNext(self):
        """With fallthrough a miss goes to the next plugin (whoami); a hit does not."""
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n whoami\n hosts {\n  10.0.0.1 a.example.org\n"
                                     "  fallthrough\n }\n}\n")
        d = query(port, "a.example.org.", "A")
        d.addCallback(lambda r: self.assertEqual(rrset_values(r), ["10.0.0.1"]))
        d.addCallback(lambda _: query(port, "b.example.org.", "A"))

        def check_miss(reply):
            self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
            self.assertEqual(reply.answer, [])
            self.assertIn("127.0.0.1", rrset_values(reply, "additional"))
        return d.addCallback(check_miss)

    def test_fallthroughZones(self):
        """fallthrough ZONES only lets names under those zones through."""
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n whoami\n hosts {\n  10.0.0.1 a.example.org\n"
                                     "  fallthrough sub.example.org\n }\n}\n")
        d = query(port, "x.sub.example.org.", "A")
        d.addCallback(lambda r: self.assertEqual(len(r.additional), 2))
        d.addCallback(lambda _: query(port, "x.example.org.", "A"))
        d.addCallback(lambda r: self.assertEqual(r.rcode(), dns.rcode.SERVFAIL))
        return d

    def test_fallthroughUnsupported(self):
        """fallthrough_unsupported sends other types of a known name on; A still answers."""
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n whoami\n hosts {\n  10.0.0.1 a.example.org\n"
                                     "  fallthrough\n  fallthrough_unsupported\n }\n}\n")
        d = query(port, "a.example.org.", "MX")
        d.addCallback(lambda r: self.assertEqual(len(r.additional), 2))  # whoami answered
        d.addCallback(lambda _: query(port, "a.example.org.", "A"))
        d.addCallback(lambda r: self.assertEqual(rrset_values(r), ["10.0.0.1"]))
        return d

    def test_fallthroughEndOfChain(self):
        """Falling through with nothing after hosts is SERVFAIL (no next plugin)."""
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n hosts {\n  fallthrough\n }\n}\n")
        return query(port, "x.example.org.").addCallback(lambda r: self.assertEqual(r.rcode(), dns.rcode.SERVFAIL))


class ReloadTests(unittest.SynchronousTestCase):
    """The file reload, driven by a Clock: re-read only when mtime or size changed."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kdns-hosts-reload-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "hosts")
        self.write("10.0.0.1 a.example.org\n")
        self.clock = Clock()

    def write(self, text, mtime=None):
        with open(self.path, "w") as f:
            f.write(text)
        if mtime is not None:
            os.utime(self.path, (mtime, mtime))

    def build(self, options="reload 5s"):
        plan = config.load(text="example.org {\n hosts %s {\n  %s\n }\n}\n" % (self.path, options),
                           path=os.path.join(self.dir, "Corefile"))
        generation = config.build(plan, self.clock)
        for svc in generation.options.services:
            svc.startService()
            self.addCleanup(svc.stopService)
        return generation.blocks[0].plugins["hosts"], generation

    def lookup(self, resolver, name, qtype=tdns.A):
        try:
            d = resolver.query(KdnsQuery(name, qtype))
        except PassToNext:
            return "pass"
        result = []
        d.addBoth(result.append)
        if hasattr(result[0], "value"):
            return type(result[0].value).__name__
        return sorted(rr.payload.dottedQuad() for rr in result[0].answers)

    def test_reloadOnChange(self):
        """A changed file is picked up at the next tick, not before."""
        resolver, _ = self.build()
        self.assertEqual(self.lookup(resolver, b"a.example.org"), ["10.0.0.1"])
        self.write("10.0.0.2 a.example.org\n10.0.0.3 b.example.org\n", mtime=1000)
        self.assertEqual(self.lookup(resolver, b"a.example.org"), ["10.0.0.1"])
        self.clock.advance(5)
        self.assertEqual(self.lookup(resolver, b"a.example.org"), ["10.0.0.2"])
        self.assertEqual(self.lookup(resolver, b"b.example.org"), ["10.0.0.3"])

    def test_mtimeOnly(self):
        """Same size, new mtime: re-read."""
        self.write("10.0.0.1 a.example.org\n", mtime=1000)
        resolver, _ = self.build()
        self.write("10.0.0.9 a.example.org\n", mtime=2000)
        self.clock.advance(5)
        self.assertEqual(self.lookup(resolver, b"a.example.org"), ["10.0.0.9"])

    def test_unchangedNotReread(self):
        """Same mtime and size: the file is not read again (even if its bytes differ)."""
        self.write("10.0.0.1 a.example.org\n", mtime=1000)
        resolver, _ = self.build()
        self.write("10.0.0.9 a.example.org\n", mtime=1000)
        self.clock.advance(5)
        self.assertEqual(self.lookup(resolver, b"a.example.org"), ["10.0.0.1"])

    def test_fileRemovedKeepsData(self):
        """A file that disappears keeps the last data."""
        resolver, _ = self.build()
        os.unlink(self.path)
        self.clock.advance(5)
        self.assertEqual(self.lookup(resolver, b"a.example.org"), ["10.0.0.1"])

    def test_reloadDisabled(self):
        """reload 0 disables the timer: no background service at all."""
        resolver, generation = self.build("reload 0")
        self.assertEqual(generation.options.services, [])
        self.write("10.0.0.2 a.example.org\n", mtime=5000)
        self.clock.advance(60)
        self.assertEqual(self.lookup(resolver, b"a.example.org"), ["10.0.0.1"])

    def test_missFallsOrFails(self):
        """Outside the zones: pass; unknown name without fallthrough: ServFail."""
        resolver, _ = self.build()
        self.assertEqual(self.lookup(resolver, b"a.example.net"), "pass")
        self.assertEqual(self.lookup(resolver, b"nope.example.org"), ServFail.__name__)

    def test_noReverse(self):
        """no_reverse suppresses PTR generation."""
        resolver, _ = self.build("no_reverse")
        self.assertEqual(self.lookup(resolver, b"1.0.0.10.in-addr.arpa", tdns.PTR), "pass")
