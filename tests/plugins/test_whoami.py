"""whoami: the client's address and port in the additional section, as CoreDNS answers."""

import socket

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from twisted.internet import threads
from twisted.trial import unittest

from tests.helpers import query, start_server
from twisted_kdns.corefile import parse_text
from twisted_kdns.errors import ConfigError
from twisted_kdns.plugins import whoami


def ask(port, name, host="127.0.0.1", family=socket.AF_INET):
    """Query from a socket whose source port we know; returns (source_port, reply)."""
    def run():
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.settimeout(2)
        try:
            s.bind((host, 0))
            s.sendto(dns.message.make_query(name, "A").to_wire(), (host, port))
            return s.getsockname()[1], dns.message.from_wire(s.recv(65535))
        finally:
            s.close()
    return threads.deferToThread(run)


class ParseTests(unittest.SynchronousTestCase):
    def test_noArguments(self):
        """whoami takes no arguments and no block."""
        block = parse_text(". {\n whoami\n}\n").blocks[0]
        self.assertIsInstance(whoami.parse(block.by_name()["whoami"]), whoami.WhoamiConfig)
        for text, why in (("whoami x", "Wrong argument count"), ("whoami {\n a\n}", "takes no block")):
            block = parse_text(". {\n%s\n}\n" % text, "Corefile").blocks[0]
            e = self.assertRaises(ConfigError, whoami.parse, block.by_name()["whoami"])
            self.assertIn("Corefile:2", str(e))
            self.assertIn(why, str(e))


class ServerTests(unittest.TestCase):
    def setUp(self):
        self.service, self.port = start_server(self, ".:0 {\n bind 127.0.0.1\n whoami\n}\n")

    def test_udp(self):
        """Over UDP: empty answer, A with the client address and _udp SRV with its port, target '.'."""
        def check(result):
            source_port, reply = result
            self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
            self.assertEqual(reply.answer, [])
            self.assertTrue(reply.flags & dns.flags.AA)
            extra = {rrset.rdtype: rrset for rrset in reply.additional}
            self.assertEqual(extra[dns.rdatatype.A].name.to_text(), "Who.Example.org.")
            self.assertEqual([rd.address for rd in extra[dns.rdatatype.A]], ["127.0.0.1"])
            srv = extra[dns.rdatatype.SRV]
            self.assertEqual(srv.name.to_text(), "_udp.Who.Example.org.")
            self.assertEqual([(rd.port, rd.target.to_text()) for rd in srv], [(source_port, ".")])
            self.assertEqual(srv.ttl, 0)
        return ask(self.port, "Who.Example.org.").addCallback(check)

    def test_tcp(self):
        """Over TCP the SRV owner is _tcp.<qname>."""
        def check(reply):
            names = sorted(rrset.name.to_text() for rrset in reply.additional)
            self.assertEqual(names, ["_tcp.example.org.", "example.org."])
        return query(self.port, "example.org.", "A", tcp=True).addCallback(check)

    def test_root(self):
        """For the root name the SRV owner is _udp."""
        def check(result):
            names = sorted(rrset.name.to_text() for rrset in result[1].additional)
            self.assertEqual(names, [".", "_udp."])
        return ask(self.port, ".").addCallback(check)


class Ipv6Tests(unittest.TestCase):
    def test_aaaa(self):
        """An IPv6 client gets an AAAA record with its address."""
        try:
            probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            probe.bind(("::1", 0))
            probe.close()
        except OSError:
            raise unittest.SkipTest("no IPv6 loopback here")
        _, port = start_server(self, ".:0 {\n bind ::1\n whoami\n}\n")

        def check(result):
            extra = {rrset.rdtype: rrset for rrset in result[1].additional}
            self.assertEqual([rd.address for rd in extra[dns.rdatatype.AAAA]], ["::1"])
        return ask(port, "example.org.", host="::1", family=socket.AF_INET6).addCallback(check)
