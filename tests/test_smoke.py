"""End-to-end smoke test: a hosts answer over UDP and TCP through real sockets."""

from twisted.trial import unittest

from tests.helpers import query, rrset_values, start_server


class SmokeTests(unittest.TestCase):
    def test_hostsOverUdpAndTcp(self):
        """An inline hosts entry answers A over UDP and TCP with AA set."""
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n hosts {\n  10.1.2.3 smoke.example.org\n }\n}\n")

        def check(reply):
            self.assertEqual(rrset_values(reply), ["10.1.2.3"])
            self.assertTrue(reply.flags & 0x0400)  # AA
        d = query(port, "Smoke.Example.Org.", "A")
        d.addCallback(check)
        d.addCallback(lambda _: query(port, "smoke.example.org.", "A", tcp=True))
        d.addCallback(check)
        return d
