"""log: CoreDNS's common/combined formats, name rules and response classes, over real sockets."""

import re

import dns.message
from twisted.trial import unittest

from tests.helpers import query, start_server
from tests.plugins.logcapture import capture
from twisted_kdns.corefile import parse_text
from twisted_kdns.errors import ConfigError
from twisted_kdns.plugins import log as logplugin


def parse(text):
    return logplugin.parse(parse_text(". {\n%s\n}\n" % text, "Corefile").blocks[0].by_name()["log"])


HOSTS = " hosts {\n  10.0.0.1 www.example.org\n  10.0.0.2 www.example.net\n }\n"
COMMON = re.compile(r'^\[INFO\] 127\.0\.0\.1:(\d+) - (\d+) "(\S+) IN (\S+) (udp|tcp) (\d+) (true|false) (\d+)" '
                    r'(\S+) (\S*) (\d+) (\d+\.\d+)s$')


class ParseTests(unittest.SynchronousTestCase):
    def test_forms(self):
        """log, log NAMES, log NAMES FORMAT with {common}/{combined}, class lines OR-ed."""
        rules = parse("log").rules
        self.assertEqual([(r.name, r.format) for r in rules], [(b"", logplugin.COMMON)])
        rules = parse("log example.org Example.NET.").rules
        self.assertEqual([r.name for r in rules], [b"example.org", b"example.net"])
        rules = parse('log . "{combined} extra"').rules
        self.assertEqual(rules[0].format, logplugin.COMBINED + " extra")
        rules = parse("log {\n class denial\n class error success\n}").rules
        self.assertEqual(rules[0].classes, frozenset({"denial", "error", "success"}))
        rules = parse("log {\n class all\n}").rules
        self.assertEqual(rules[0].classes, frozenset({"denial", "error", "success"}))

    def test_singleArgumentIsAName(self):
        """QUIRK kept: a single argument is always a NAME, even when it looks like a format."""
        rules = parse("log {combined}").rules
        self.assertEqual((rules[0].name, rules[0].format), (b"{combined}", logplugin.COMMON))

    def test_errors(self):
        """Unknown sub-directives and classes are errors with file:line."""
        for text, why in (("log {\n colour red\n}", "unknown property 'colour'"),
                          ("log {\n class nice\n}", "unknown class 'nice'"),
                          ("log {\n class\n}", "Wrong argument count")):
            e = self.assertRaises(ConfigError, parse, text)
            self.assertIn("plugin/log: Corefile:3", str(e))
            self.assertIn(why, str(e))


class ServerTests(unittest.TestCase):
    def start(self, log_lines):
        self.lines = capture(self, "kdns.plugins.log")
        _, self.port = start_server(self, ".:0 {\n bind 127.0.0.1\n%s%s}\n" % (log_lines, HOSTS))
        return self.port

    def texts(self):
        return [text for _, text in self.lines]

    def test_commonUdp(self):
        """UDP, no EDNS: remote:port - id "type class name proto size do bufsize" rcode flags rsize duration."""
        port = self.start(" log\n")
        m = dns.message.make_query("WWW.example.org.", "A")
        m.id = 4660

        def check(reply):
            self.assertEqual(len(self.lines), 1)
            match = COMMON.match(self.texts()[0])
            self.assertIsNotNone(match, self.texts())
            (_, qid, qtype, name, proto, size, do, bufsize, rcode, flags, rsize, _) = match.groups()
            self.assertEqual((qid, qtype, name, proto, size, do, bufsize, rcode, flags, rsize),
                             ("4660", "A", "www.example.org.", "udp", str(len(m.to_wire())), "false", "512",
                              "NOERROR", "qr,aa,rd", str(len(reply.to_wire()))))
        return query(port, m).addCallback(check)

    def test_commonTcpEdns(self):
        """TCP with EDNS and DO: proto tcp, do true, bufsize 65535."""
        port = self.start(" log\n")

        def check(reply):
            match = COMMON.match(self.texts()[0])
            self.assertEqual(match.group(5, 7, 8), ("tcp", "true", "65535"))
        return query(port, "www.example.org.", tcp=True, use_edns=0, payload=4096, want_dnssec=True).addCallback(check)

    def test_bufsizeUdpEdns(self):
        """UDP bufsize is the client's EDNS size (512 floor)."""
        port = self.start(" log\n")
        d = query(port, "www.example.org.", use_edns=0, payload=4096)
        d.addCallback(lambda _: self.assertEqual(COMMON.match(self.texts()[0]).group(8), "4096"))
        return d

    def test_firstMatchingRuleOnly(self):
        """Rules are tried in order and only the first whose name contains the query logs."""
        port = self.start(' log example.org "A {name}"\n log . "B {name}"\n')
        d = query(port, "www.example.org.")
        d.addCallback(lambda _: query(port, "www.example.net."))
        d.addCallback(lambda _: self.assertEqual(self.texts(), ["[INFO] A www.example.org.",
                                                                "[INFO] B www.example.net."]))
        return d

    def test_classes(self):
        """class error logs only failures (SERVFAIL here), not successful answers."""
        port = self.start(' log . "{rcode} {name}" {\n  class error\n }\n')
        d = query(port, "www.example.org.")
        d.addCallback(lambda _: query(port, "missing.example.org."))
        d.addCallback(lambda _: self.assertEqual(self.texts(), ["[INFO] SERVFAIL missing.example.org."]))
        return d

    def test_customPlaceholders(self):
        """Custom formats: {type} {class} {proto} {>id} {>opcode} {local}; unknown placeholders give '-'."""
        port = self.start(' log . "{type} {class} {proto} {>id} {>opcode} {local} {nonsense}"\n')
        m = dns.message.make_query("www.example.org.", "AAAA")
        m.id = 7
        d = query(port, m)
        d.addCallback(lambda _: self.assertEqual(self.texts(), ["[INFO] AAAA IN udp 7 0 127.0.0.1 -"]))
        return d


class ClassifyTests(unittest.SynchronousTestCase):
    def test_responseClass(self):
        """Classes as CoreDNS's Typify/Classify: NXDOMAIN without SOA is an error, with SOA a denial."""
        from twisted.names import dns as tdns
        soa = tdns.RRHeader(b"example.org", tdns.SOA, payload=tdns.Record_SOA())
        a = tdns.RRHeader(b"example.org", tdns.A, payload=tdns.Record_A("10.0.0.1"))

        def msg(rcode, answers=(), authority=()):
            m = tdns.Message(rCode=rcode)
            m.answers, m.authority = list(answers), list(authority)
            return m
        self.assertEqual(logplugin.response_class(msg(0, [a])), "success")
        self.assertEqual(logplugin.response_class(msg(0)), "success")
        self.assertEqual(logplugin.response_class(msg(0, authority=[soa])), "denial")
        self.assertEqual(logplugin.response_class(msg(3, authority=[soa])), "denial")
        self.assertEqual(logplugin.response_class(msg(3)), "error")
        self.assertEqual(logplugin.response_class(msg(2)), "error")
        self.assertEqual(logplugin.response_class(msg(5)), "error")

    def test_flags(self):
        """{>rflags} lists set flags in CoreDNS's order."""
        from twisted.names import dns as tdns
        m = tdns.Message(answer=1, auth=1, trunc=1, recDes=1, recAv=1, authenticData=1, checkingDisabled=1)
        self.assertEqual(logplugin.flags(m), "qr,aa,tc,rd,ra,ad,cd")
