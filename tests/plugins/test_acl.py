"""acl: allow/block/filter/drop by type and client network, over real sockets."""

from prometheus_client import REGISTRY
from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers import make_query, query, raw_udp, start_server
from twisted_kdns import config
from twisted_kdns.errors import ConfigErrors

HOSTS = " hosts {\n  192.0.2.1 www.example.org\n  2001:db8::1 www.example.org\n  192.0.2.2 a.example.net\n  fallthrough\n }\n"


def corefile(acl):
    return ".:0 {\n bind 127.0.0.1\n%s\n%s}\n" % (acl, HOSTS)


def ips(reply):
    return sorted(rd.to_text() for rrset in reply.answer for rd in rrset)


class AclTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_blockTypeFromNetwork(self):
        """C{block type A net 127.0.0.0/8}: A from loopback is REFUSED, AAAA still answered."""
        labels = {"server": "dns://127.0.0.1:0", "zone": ".", "view": ""}
        before = REGISTRY.get_sample_value("coredns_acl_blocked_requests_total", labels) or 0.0
        _, port = start_server(self, corefile(" acl {\n  block type A net 127.0.0.0/8\n }"))
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual((reply.rcode(), reply.answer), (5, []))
        reply = yield query(port, "www.example.org", "AAAA")
        self.assertEqual(ips(reply), ["2001:db8::1"])
        blocked = REGISTRY.get_sample_value("coredns_acl_blocked_requests_total", labels)
        self.assertEqual(blocked - before, 1.0)

    @defer.inlineCallbacks
    def test_otherNetworkNotBlocked(self):
        """A rule for another network does not touch loopback clients."""
        _, port = start_server(self, corefile(" acl {\n  block net 192.168.0.0/16 10.0.0.0/8\n }"))
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(ips(reply), ["192.0.2.1"])

    @defer.inlineCallbacks
    def test_filterGivesEmptyNoerror(self):
        """C{filter} answers NOERROR with an empty answer section."""
        _, port = start_server(self, corefile(" acl {\n  filter type AAAA\n }"))
        reply = yield query(port, "www.example.org", "AAAA", tcp=True)
        self.assertEqual((reply.rcode(), reply.answer), (0, []))
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(ips(reply), ["192.0.2.1"])

    @defer.inlineCallbacks
    def test_dropSendsNothing(self):
        """C{drop} sends no reply at all."""
        _, port = start_server(self, corefile(" acl {\n  drop net *\n }"))
        data = yield raw_udp(port, make_query("www.example.org", "A").to_wire(), timeout=0.5)
        self.assertIdentical(data, None)

    @defer.inlineCallbacks
    def test_allowBeforeBlockAndZones(self):
        """First matching line wins (allow stops evaluation); a rule set applies only inside its zones."""
        _, port = start_server(self, corefile(
            " acl example.net {\n  allow type AAAA\n  block\n }\n acl {\n  allow net 127.0.0.1\n  block\n }"))
        reply = yield query(port, "a.example.net", "A")
        self.assertEqual(reply.rcode(), 5)
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(ips(reply), ["192.0.2.1"])

    @defer.inlineCallbacks
    def test_closedResolver(self):
        """The open-resolver guard: only the allowed network gets answers, everyone else REFUSED."""
        _, port = start_server(self, corefile(" acl {\n  allow net 10.0.0.0/8\n  block\n }"))
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(reply.rcode(), 5)

    def test_parseErrors(self):
        """Bad actions, types and networks are reported with file:line."""
        for body, text in [(" acl {\n  deny\n }", "unexpected token 'deny'"),
                           (" acl {\n  block type BOGUS\n }", "expect legal QTYPE"),
                           (" acl {\n  block net 300.1.1.1\n }", "illegal CIDR notation"),
                           (" acl {\n  block A\n }", "expect 'type' or 'net'")]:
            e = self.assertRaises(ConfigErrors, config.load, text=".:53 {\n%s\n whoami\n}\n" % body)
            self.assertIn("plugin/acl: Corefile:3", str(e))
            self.assertIn(text, str(e))
