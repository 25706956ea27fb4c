"""rewrite: every rule form over real sockets (hosts behind it), plus EDNS0 edits seen by the next plugin."""

import struct

from twisted.internet import defer
from twisted.names import dns
from twisted.trial import unittest

from tests.helpers import query, start_server
from tests.plugins.middleware_support import Upstream, a, build, cname, kquery, mx
from twisted_kdns import config
from twisted_kdns.errors import ConfigErrors, NXDomain
from twisted_kdns.plugins.rewrite import parse_options
from twisted_kdns.response import Response

HOSTS = """ hosts {
  10.96.0.10 myapp.default.svc.cluster.local
  10.0.0.1 a.example.org
  10.0.0.2 b.example.org
  10.0.0.3 c.example.org
  10.0.0.4 www.example.com
  10.0.0.5 ftp.service.us-west-1.consul
  10.0.0.6 api.internal.example.net
  ttl 3600
 }
"""


def corefile(rules):
    return ".:0 {\n bind 127.0.0.1\n%s\n%s}\n" % (rules, HOSTS)


def answers(reply):
    """(owner, ttl, value) of every answer record."""
    return sorted((rrset.name.to_text(), rrset.ttl, rd.to_text()) for rrset in reply.answer for rd in rrset)


class RewriteNameTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_seedExactRule(self):
        """The seed's C{rewrite name exact myapp.local myapp.default.svc.cluster.local} answers myapp.local with the service IP, owner restored."""
        _, port = start_server(self, corefile(" rewrite name exact myapp.local myapp.default.svc.cluster.local"))
        for tcp in (False, True):
            reply = yield query(port, "myapp.local", "A", tcp=tcp)
            self.assertEqual(answers(reply), [("myapp.local.", 3600, "10.96.0.10")])
            self.assertEqual(reply.question[0].name.to_text(), "myapp.local.")

    @defer.inlineCallbacks
    def test_prefixSuffixSubstringAuto(self):
        """prefix, suffix and substring rewrite the question; C{answer auto} maps the owner names back."""
        _, port = start_server(self, corefile(
            " rewrite name prefix old-www www answer auto\n"
            " rewrite name suffix .example.test .example.net answer auto\n"
            " rewrite name substring service.us-west-1.example.org service.us-west-1.consul answer auto"))
        reply = yield query(port, "old-www.example.com", "A")
        self.assertEqual(answers(reply), [("old-www.example.com.", 3600, "10.0.0.4")])
        reply = yield query(port, "api.internal.example.test", "A")
        self.assertEqual(answers(reply), [("api.internal.example.test.", 3600, "10.0.0.6")])
        reply = yield query(port, "ftp.service.us-west-1.example.org", "A")
        self.assertEqual(answers(reply), [("ftp.service.us-west-1.example.org.", 3600, "10.0.0.5")])

    @defer.inlineCallbacks
    def test_prefixMatchesWholeLabels(self):
        """FROM gets a trailing dot: C{prefix foo bar} does not touch foobar.example.org."""
        _, port = start_server(self, corefile(" rewrite name prefix old-www www answer auto"))
        reply = yield query(port, "old-wwwx.example.com", "A")
        self.assertEqual(reply.rcode(), 2)  # hosts: not found, no fallthrough

    @defer.inlineCallbacks
    def test_regexWithAnswerName(self):
        """The README's regex rule with C{answer name} makes the answer match the question."""
        _, port = start_server(self, corefile(
            " rewrite stop {\n  name regex (.*)-(us-west-1)\\.example\\.org {1}.service.{2}.consul\n"
            "  answer name (.*)\\.service\\.(us-west-1)\\.consul {1}-{2}.example.org\n }"))
        reply = yield query(port, "ftp-us-west-1.example.org", "A")
        self.assertEqual(answers(reply), [("ftp-us-west-1.example.org.", 3600, "10.0.0.5")])

    @defer.inlineCallbacks
    def test_stopAndContinue(self):
        """C{stop} ends evaluation at the first applied rule; C{continue} lets the next rule see the new name."""
        _, port = start_server(self, corefile(" rewrite name exact a.example.org b.example.org\n"
                                              " rewrite name exact b.example.org c.example.org"))
        reply = yield query(port, "a.example.org", "A")
        self.assertEqual(answers(reply), [("a.example.org.", 3600, "10.0.0.2")])
        _, port = start_server(self, corefile(" rewrite continue name exact a.example.org b.example.org\n"
                                              " rewrite name exact b.example.org c.example.org"))
        reply = yield query(port, "a.example.org", "A")
        self.assertEqual(answers(reply), [("a.example.org.", 3600, "10.0.0.3")])

    @defer.inlineCallbacks
    def test_invalidNewNameIsServfail(self):
        """A rewrite producing an invalid name answers SERVFAIL."""
        _, port = start_server(self, corefile(" rewrite name regex ^(.*)\\.bad\\.org\\.$ {1}..broken"))
        reply = yield query(port, "x.bad.org", "A")
        self.assertEqual(reply.rcode(), 2)


class RewriteOtherRuleTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_typeRule(self):
        """C{type AAAA A}: the next plugin is asked A; the client's question (AAAA) is kept."""
        _, port = start_server(self, corefile(" rewrite type AAAA A"))
        reply = yield query(port, "a.example.org", "AAAA")
        self.assertEqual(answers(reply), [("a.example.org.", 3600, "10.0.0.1")])
        self.assertEqual(reply.question[0].rdtype, 28)

    @defer.inlineCallbacks
    def test_ttlRule(self):
        """C{ttl NAME MIN-MAX} clamps every TTL; a single value sets it."""
        _, port = start_server(self, corefile(" rewrite continue ttl suffix example.org 30-60\n"
                                              " rewrite ttl exact www.example.com 7"))
        reply = yield query(port, "a.example.org", "A")
        self.assertEqual(answers(reply), [("a.example.org.", 60, "10.0.0.1")])
        reply = yield query(port, "www.example.com", "A")
        self.assertEqual(answers(reply), [("www.example.com.", 7, "10.0.0.4")])

    @defer.inlineCallbacks
    def test_rcodeRule(self):
        """C{rcode NAME FROM TO} swaps the reply's rcode (hosts' SERVFAIL for a miss becomes NXDOMAIN)."""
        _, port = start_server(self, corefile(" rewrite rcode suffix missing.example.org SERVFAIL NXDOMAIN"))
        reply = yield query(port, "x.missing.example.org", "A")
        self.assertEqual(reply.rcode(), 3)
        reply = yield query(port, "x.other.example.org", "A")
        self.assertEqual(reply.rcode(), 2)


EXTERNAL = """apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec:
  type: ExternalName
  externalName: old.example.net
"""


class RewriteCnameSocketTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_externalNameRetargeted(self):
        """An ExternalName Service's CNAME is retargeted by C{rewrite cname} and the new target resolved by hosts."""
        import os
        import shutil
        import tempfile
        directory = tempfile.mkdtemp(prefix="kdns-rewrite-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "ext.yaml")
        with open(path, "w") as f:
            f.write(EXTERNAL)
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n rewrite cname exact old.example.net new.example.net\n"
                                     " hosts {\n  10.7.0.1 new.example.net\n  fallthrough\n }\n"
                                     " kubernetes cluster.local {\n  manifests %s\n }\n}\n" % (path,))
        reply = yield query(port, "ext.default.svc.cluster.local", "A")
        self.assertEqual(reply.rcode(), 0)
        self.assertEqual(sorted((rrset.name.to_text(), rd.to_text()) for rrset in reply.answer for rd in rrset),
                         [("ext.default.svc.cluster.local.", "new.example.net."), ("new.example.net.", "10.7.0.1")])


class RewriteUnitTests(unittest.SynchronousTestCase):
    def test_classRule(self):
        """C{class CH IN}: the next plugin is asked class IN."""
        upstream = Upstream(Response([]))
        rw = build(self, "rewrite", "rewrite class CH IN", upstream)
        self.successResultOf(rw.query(kquery("x.example.org", cls=dns.CH)))
        self.assertEqual(upstream.asked[0].cls, dns.IN)

    def test_answerValue(self):
        """C{answer value RE REPL} rewrites CNAME and MX targets in every section; the next plugin's reply is not modified."""
        records = [cname(b"w.svc.cluster.local", b"x.svc.cluster.local"), mx(b"w.svc.cluster.local", 5, b"m.svc.cluster.local")]
        original = Response(records, [], [a(b"x.svc.cluster.local", "10.0.0.1")])
        rw = build(self, "rewrite", "rewrite name regex (.*)\\.corp\\.example\\. {1}.svc.cluster.local "
                   "answer name (.*)\\.svc\\.cluster\\.local\\. {1}.corp.example answer value (.*)\\.svc\\.cluster\\.local\\. {1}.corp.example",
                   Upstream(original))
        reply = self.successResultOf(rw.query(kquery("w.corp.example")))
        self.assertEqual([rr.name.name for rr in reply.answers], [b"w.corp.example", b"w.corp.example"])
        self.assertEqual([rr.payload.name.name for rr in reply.answers], [b"x.corp.example", b"m.corp.example"])
        self.assertEqual(reply.additional[0].name.name, b"x.corp.example")
        self.assertEqual(records[0].name.name, b"w.svc.cluster.local")

    def test_nxdomainKeepsFailureShape(self):
        """An NXDOMAIN from the next plugin stays an NXDOMAIN failure, with the SOA owner reverted."""
        from tests.plugins.middleware_support import soa
        rw = build(self, "rewrite", "rewrite name suffix corp cluster.local answer auto",
                   Upstream(NXDomain(authority=[soa(b"cluster.local")])))
        f = self.failureResultOf(rw.query(kquery("nope.corp")), NXDomain)
        self.assertEqual(f.value.response.authority[0].name.name, b"corp")

    def test_edns0Local(self):
        """C{edns0 local set CODE DATA} adds the option (text, hex or a variable) for the next plugin."""
        upstream = Upstream(Response([]))
        rw = build(self, "rewrite", "rewrite continue edns0 local set 0xffee abcd\n"
                   "rewrite continue edns0 local append 0xffef {client_ip}\n"
                   "rewrite edns0 local replace 0xffee 0x6566", upstream)
        self.successResultOf(rw.query(kquery("x.example.org", client=("192.0.2.77", 4000))))
        self.assertEqual(parse_options(upstream.asked[0].edns.options),
                         [(0xffee, b"ef"), (0xffef, b"192.0.2.77")])

    def test_edns0SubnetAndNsid(self):
        """C{edns0 subnet set 24 56} sends the client's /24; C{nsid} adds an empty NSID; the request's DO bit stays."""
        upstream = Upstream(Response([]))
        rw = build(self, "rewrite", "rewrite continue edns0 subnet set 24 56\nrewrite edns0 nsid append", upstream)
        kq = kquery("x.example.org", client=("192.0.2.77", 4000), do=True)
        self.successResultOf(rw.query(kq))
        seen = upstream.asked[0]
        self.assertEqual(parse_options(seen.edns.options), [(8, struct.pack("!HBB", 1, 24, 0) + bytes([192, 0, 2])), (3, b"")])
        self.assertTrue(seen.edns.do)
        self.assertEqual(kq.edns.options, b"")

    def test_cnameTargetRewrittenAndResolved(self):
        """C{cname FROM TO}: the CNAME gets the new target, whose records replace the old target's."""
        table = {(b"x.example.org", dns.A): [cname(b"x.example.org", b"old.example.net"), a(b"old.example.net", "192.0.2.1")],
                 (b"new.example.net", dns.A): [a(b"new.example.net", "192.0.2.2")]}
        from tests.plugins.middleware_support import by_name
        upstream = Upstream(by_name(table))
        rw = build(self, "rewrite", "rewrite cname suffix .example.net .example.net.cdn.test", upstream)
        table[(b"old.example.net.cdn.test", dns.A)] = [a(b"old.example.net.cdn.test", "192.0.2.3")]
        reply = self.successResultOf(rw.query(kquery("x.example.org")))
        self.assertEqual([(rr.type, rr.name.name) for rr in reply.answers],
                         [(dns.CNAME, b"x.example.org"), (dns.A, b"old.example.net.cdn.test")])
        self.assertEqual(reply.answers[0].payload.name.name, b"old.example.net.cdn.test")
        self.assertEqual([kq.qname for kq in upstream.asked], [b"x.example.org", b"old.example.net.cdn.test"])
        self.assertEqual(table[(b"x.example.org", dns.A)][0].payload.name.name, b"old.example.net")

    def test_parseErrors(self):
        """Malformed rules are refused with file:line."""
        for body, text in [("rewrite name", "too few arguments"),
                           ("rewrite name wild a b", "only exact, prefix"),
                           ("rewrite name regex ( b", "invalid regex"),
                           ("rewrite name regex a {1}", "more subexpressions"),
                           ("rewrite type AAAA NOPE", "invalid type"),
                           ("rewrite class IN XX", "class rule"),
                           ("rewrite ttl a.example.org 60-30", "invalid TTL range"),
                           ("rewrite rcode a.example.org BOGUS NXDOMAIN", "invalid rcode"),
                           ("rewrite edns0 local set zz abc", "invalid EDNS0 local code"),
                           ("rewrite edns0 local set 0xffee {nope}", "unsupported variable"),
                           ("rewrite cname wild a b", "unknown cname rewrite type"),
                           ("rewrite bogus a b", "invalid rule type")]:
            e = self.assertRaises(ConfigErrors, config.load, text=".:53 {\n %s\n whoami\n}\n" % body)
            self.assertIn("plugin/rewrite: Corefile:2", str(e))
            self.assertIn(text, str(e))
