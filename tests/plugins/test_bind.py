"""bind: addresses and interface names to listen on, with except."""

import socket

import dns.rcode
from twisted.trial import unittest

from tests.helpers import query, raw_udp, rrset_values, start_server
from twisted_kdns.corefile import parse_text
from twisted_kdns.errors import ConfigError
from twisted_kdns.plugins import bind


def parse(text):
    return bind.parse(parse_text(". {\n%s\n}\n" % text, "Corefile").blocks[0].by_name()["bind"])


def has_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


class ParseTests(unittest.SynchronousTestCase):
    def test_addresses(self):
        """Several addresses, repeated directives consolidated, duplicates removed."""
        cfg = parse("bind 127.0.0.1 ::1\nbind 127.0.0.2 127.0.0.1")
        self.assertEqual(cfg.addresses, ["127.0.0.1", "::1", "127.0.0.2"])

    def test_interface(self):
        """An interface name expands to its addresses (lo: 127.0.0.1, and ::1 when present)."""
        cfg = parse("bind lo")
        self.assertIn("127.0.0.1", cfg.addresses)
        if has_ipv6_loopback():
            self.assertIn("::1", cfg.addresses)

    def test_except(self):
        """except removes addresses (or an interface's) from that bind line."""
        cfg = parse("bind lo 127.0.0.2 {\n except ::1 127.0.0.2\n}")
        self.assertEqual(cfg.addresses, ["127.0.0.1"])

    def test_errors(self):
        """No argument, a bad name and an unknown sub-directive are errors with file:line."""
        for text, why in (("bind", "Wrong argument count"),
                          ("bind nosuchif0", "not a valid IP address or interface name: nosuchif0"),
                          ("bind 127.0.0.1 {\n only 127.0.0.1\n}", "unknown property 'only'")):
            e = self.assertRaises(ConfigError, parse, text)
            self.assertIn("plugin/bind: Corefile:", str(e))
            self.assertIn(why, str(e))


class ServerTests(unittest.TestCase):
    def test_address(self):
        """bind 127.0.0.1 answers there and nowhere else (127.0.0.2 gets nothing)."""
        service, port = start_server(self, ".:0 {\n bind 127.0.0.1\n hosts {\n  10.0.0.1 a.example\n }\n}\n")
        self.assertEqual(sorted(service.listeners), [("127.0.0.1", 0)])
        d = query(port, "a.example.")
        d.addCallback(lambda r: self.assertEqual(rrset_values(r), ["10.0.0.1"]))
        d.addCallback(lambda _: raw_udp(port, b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                                              b"\x01a\x07example\x00\x00\x01\x00\x01", timeout=0.3,
                                        host="127.0.0.2"))
        d.addCallback(self.assertIsNone)
        return d

    def test_interfaceName(self):
        """bind lo listens on the loopback addresses; queries over 127.0.0.1 (and ::1) work."""
        service, port = start_server(self, ".:0 {\n bind lo\n hosts {\n  10.0.0.1 a.example\n }\n}\n")
        keys = sorted(service.listeners)
        self.assertIn(("127.0.0.1", 0), keys)
        d = query(service.port_of(("127.0.0.1", 0)), "a.example.", tcp=True)
        d.addCallback(lambda r: self.assertEqual(rrset_values(r), ["10.0.0.1"]))
        if ("::1", 0) in keys:
            d.addCallback(lambda _: query(service.port_of(("::1", 0)), "a.example.", host="::1"))
            d.addCallback(lambda r: self.assertEqual(rrset_values(r), ["10.0.0.1"]))
        return d
