"""forward's Corefile syntax: defaults, every option, upstream forms and errors with file:line."""

from twisted.names import dns
from twisted.trial import unittest

from tests.helpers import write_corefile
from twisted_kdns.config import load
from twisted_kdns.errors import ConfigErrors, NXDomain, Refused, ServFail
from twisted_kdns.plugins.forward.options import read_resolv_conf
from twisted_kdns.plugins.forward.resolver import outcome, to_response


def configs(testcase, body, extra_files=()):
    path = write_corefile(testcase, ".:53 {\n%s\n}\n" % body)
    plan = load(path=path)
    return plan.blocks[0].configs["forward"]


def error(testcase, body):
    path = write_corefile(testcase, ".:53 {\n%s\n}\n" % body)
    err = testcase.assertRaises(ConfigErrors, load, path=path)
    return str(err), path


class Parse(unittest.SynchronousTestCase):

    def test_defaults(self):
        """Without options: CoreDNS's defaults (random, 2 fails, 0.5 s checks, 10 s expire, 2 s reads)."""
        cfg, = configs(self, " forward . 10.0.0.1")
        self.assertEqual(cfg.from_zone, b"")
        self.assertEqual([repr(s) for s in cfg.to], ["10.0.0.1:53"])
        self.assertEqual((cfg.policy, cfg.max_fails, cfg.health_check, cfg.expire, cfg.read_timeout),
                         ("random", 2, 0.5, 10.0, 2.0))
        self.assertEqual((cfg.force_tcp, cfg.prefer_udp, cfg.max_concurrent, cfg.failfast),
                         (False, False, 0, False))
        self.assertTrue(cfg.hc_recursion)

    def test_upstreamForms(self):
        """IP, IP:port, [v6]:port, dns:// and tls:// (853, %servername) upstreams; duplicates dropped."""
        cfg, = configs(self, " forward example.org 10.0.0.1 10.0.0.2:5353 [::1]:54 dns://10.0.0.3 "
                             "tls://10.0.0.4 tls://10.0.0.5%dns.example 10.0.0.1:53")
        self.assertEqual(cfg.from_zone, b"example.org")
        self.assertEqual([repr(s) for s in cfg.to],
                         ["10.0.0.1:53", "10.0.0.2:5353", "[::1]:54", "10.0.0.3:53",
                          "tls://10.0.0.4:853", "tls://10.0.0.5:853"])
        self.assertEqual(cfg.to[-1].servername, "dns.example")

    def test_allOptions(self):
        """Every option is read into the config."""
        cfg, = configs(self, " forward . 10.0.0.1 {\n except a.example b.example\n force_tcp\n"
                             " expire 30s\n max_fails 5\n health_check 2s no_rec domain example.net\n"
                             " policy round_robin\n max_concurrent 1000\n next NXDOMAIN SERVFAIL\n"
                             " failover REFUSED\n failfast_all_unhealthy_upstreams\n read_timeout 500ms\n"
                             " tls_servername dns.example\n }")
        self.assertEqual(cfg.ignored, [b"a.example", b"b.example"])
        self.assertTrue(cfg.force_tcp and cfg.failfast)
        self.assertEqual((cfg.expire, cfg.max_fails, cfg.health_check, cfg.read_timeout), (30.0, 5, 2.0, 0.5))
        self.assertFalse(cfg.hc_recursion)
        self.assertEqual(cfg.hc_domain, b"example.net")
        self.assertEqual((cfg.policy, cfg.max_concurrent), ("round_robin", 1000))
        self.assertEqual(cfg.next_rcodes, {dns.ENAME, dns.ESERVER})
        self.assertEqual(cfg.failover_rcodes, {dns.EREFUSED})
        self.assertEqual(cfg.tls_servername, "dns.example")

    def test_severalForwardsInOneBlock(self):
        """The seed's three forwards in one block parse, in Corefile order."""
        resolv = write_corefile(self, "nameserver 10.1.1.1\nnameserver fe80::1%eth0\n", name="resolv.conf")
        cfgs = configs(self, " forward consul.local 10.0.0.53\n forward internal.company.com 192.168.1.10\n"
                             " forward . %s" % resolv)
        self.assertEqual([c.from_zone for c in cfgs], [b"consul.local", b"internal.company.com", b""])
        self.assertEqual([repr(s) for s in cfgs[2].to], ["10.1.1.1:53", "[fe80::1]:53"])
        self.assertEqual(cfgs[2].files, [resolv])
        self.assertEqual(cfgs[2].to[0].source, resolv)

    def test_resolvConfParsing(self):
        """Only nameserver lines count; comments, options and bad addresses are skipped."""
        path = write_corefile(self, "# c\nsearch x\nnameserver 1.2.3.4 # home\noptions ndots:5\n"
                                    "nameserver not-an-ip\n; x\nnameserver ::1\n", name="resolv.conf")
        self.assertEqual([repr(s) for s in read_resolv_conf(path)], ["1.2.3.4:53", "[::1]:53"])

    def test_errors(self):
        """Bad input names the file and line, in CoreDNS's shape."""
        cases = [
            (" forward .", "Wrong argument count"),
            (" forward . nonsense-host", "not an IP address or file: 'nonsense-host'"),
            (" forward . " + " ".join("10.0.0.%d" % i for i in range(16)), "more than 15 TOs configured"),
            (" forward . 10.0.0.1 {\n policy fastest\n }", "unknown policy 'fastest'"),
            (" forward . 10.0.0.1 {\n max_fails -1\n }", "max_fails -1 out of range"),
            (" forward . 10.0.0.1 {\n expire soon\n }", "invalid expire 'soon'"),
            (" forward . 10.0.0.1 {\n next NOPE\n }", "NOPE is not a valid rcode"),
            (" forward . 10.0.0.1 {\n failover NOERROR\n }", "NoError cannot be used in failover"),
            (" forward . 10.0.0.1 {\n bogus\n }", "unknown property 'bogus'"),
            (" forward . https://10.0.0.1", "not supported"),
            (" forward . 10.0.0.1 {\n tls /nonexistent/ca.pem\n }", "file not found"),
        ]
        for body, expected in cases:
            text, path = error(self, body)
            self.assertIn("plugin/forward: %s:" % path, text)
            self.assertIn("Error during parsing", text)
            self.assertIn(expected, text)

    def test_emptyResolvConf(self):
        """A file with no nameservers and nothing else: no valid upstream addresses."""
        resolv = write_corefile(self, "search example\n", name="resolv.conf")
        text, _ = error(self, " forward . %s" % resolv)
        self.assertIn("no valid upstream addresses found", text)


class Replies(unittest.SynchronousTestCase):

    def message(self, rcode, auth=1):
        m = dns.Message(id=1, answer=1, auth=auth, recAv=1, rCode=rcode)
        m.queries = [dns.Query(b"x.example", dns.A)]
        soa = dns.Record_SOA(b"ns.example", b"h.example", serial=1, minimum=30, ttl=30)
        m.authority = [dns.RRHeader(b"example", dns.SOA, dns.IN, 30, soa)]
        m.additional = [dns.RRHeader(b"", dns.OPT, 1232, 0, payload=dns.UnknownRecord(b""))]
        return m

    def test_nxdomainKeepsSoa(self):
        """An upstream NXDOMAIN becomes NXDomain carrying the SOA, AA and RA; OPT is dropped."""
        failure = self.failureResultOf(outcome(to_response(self.message(dns.ENAME))), NXDomain)
        response = failure.value.response
        self.assertEqual(response.rcode, dns.ENAME)
        self.assertEqual([rr.type for rr in response.authority], [dns.SOA])
        self.assertEqual(response.additional, [])
        self.assertTrue(response.aa and response.ra)

    def test_otherRcodes(self):
        """SERVFAIL and REFUSED keep their rcode and are not logged as our errors; NOERROR succeeds."""
        f = self.failureResultOf(outcome(to_response(self.message(dns.ESERVER, auth=0))), ServFail)
        self.assertEqual((f.value.code, f.value.reason, f.value.response.aa), (dns.ESERVER, "", False))
        f = self.failureResultOf(outcome(to_response(self.message(dns.EREFUSED))), Refused)
        self.assertEqual(f.value.code, dns.EREFUSED)
        response = self.successResultOf(outcome(to_response(self.message(dns.OK))))
        self.assertEqual(response.rcode, 0)
        self.assertEqual(response.plugin, "forward")
