"""any: RFC 8482 minimal answers to ANY over real sockets."""

from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers import query, start_server
from twisted_kdns import config
from twisted_kdns.errors import ConfigErrors

COREFILE = ".:0 {\n bind 127.0.0.1\n any\n hosts {\n  192.0.2.1 host.example.org\n }\n}\n"


class AnyTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_anyGetsHinfo(self):
        """An ANY query is answered with HINFO "ANY obsoleted" "See RFC 8482", TTL 8482, not authoritative."""
        _, port = start_server(self, COREFILE)
        for tcp in (False, True):
            reply = yield query(port, "host.example.org", "ANY", tcp=tcp)
            self.assertEqual(len(reply.answer), 1)
            rrset = reply.answer[0]
            self.assertEqual((rrset.rdtype, rrset.ttl, rrset.name.to_text()), (13, 8482, "host.example.org."))
            self.assertEqual(rrset[0].to_text(), '"ANY obsoleted" "See RFC 8482"')
            self.assertFalse(reply.flags & 0x0400)

    @defer.inlineCallbacks
    def test_otherTypesPass(self):
        """Other types reach the next plugin unchanged."""
        _, port = start_server(self, COREFILE)
        reply = yield query(port, "host.example.org", "A")
        self.assertEqual([rd.to_text() for rrset in reply.answer for rd in rrset], ["192.0.2.1"])

    def test_noArguments(self):
        """C{any} takes no arguments."""
        e = self.assertRaises(ConfigErrors, config.load, text=".:53 {\n any foo\n whoami\n}\n")
        self.assertIn("plugin/any: Corefile:2", str(e))
