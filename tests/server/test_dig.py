"""The same server checks seen through dig, the tool operators use (skipped without dig unless CI=true)."""

import re

from twisted.trial import unittest

from tests.helpers import dig, require_tool, start_server

COREFILE = """\
example.org:0 10.0.0.0/24:0 {
    bind 127.0.0.1
    hosts {
        10.0.0.1 www.example.org
        fd00::1 www.example.org
%s
    }
}
""" % "\n".join("        10.0.1.%d big.example.org" % i for i in range(1, 41))


def flags(output):
    return set(re.search(r";; flags: ([a-z ]*);", output).group(1).split())


def status(output):
    return re.search(r"status: (\w+)", output).group(1)


class DigTests(unittest.TestCase):
    def setUp(self):
        require_tool(self, "dig")
        self.service, self.port = start_server(self, COREFILE)

    def test_aOverUdpAndTcp(self):
        """dig gets the A record over UDP and +tcp, flags qr aa rd."""
        def check(output):
            self.assertEqual(status(output), "NOERROR")
            self.assertEqual(flags(output), {"qr", "aa", "rd"})
            self.assertRegex(output, r"www\.example\.org\.\s+3600\s+IN\s+A\s+10\.0\.0\.1")
        d = dig(self.port, "www.example.org", "A").addCallback(check)
        d.addCallback(lambda _: dig(self.port, "+tcp", "www.example.org", "A")).addCallback(check)
        return d

    def test_reverse(self):
        """dig -x gets the generated PTR."""
        return dig(self.port, "-x", "10.0.0.1").addCallback(
            lambda out: self.assertRegex(out, r"1\.0\.0\.10\.in-addr\.arpa\.\s+3600\s+IN\s+PTR\s+www\.example\.org\."))

    def test_ednsEchoAndDo(self):
        """+dnssec: our OPT comes back with version 0, the do flag and udp 1232."""
        return dig(self.port, "+dnssec", "+bufsize=4096", "www.example.org").addCallback(
            lambda out: self.assertRegex(out, r"EDNS: version: 0, flags: do; udp: 1232"))

    def test_badvers(self):
        """+edns=1 gets BADVERS."""
        return dig(self.port, "+edns=1", "+noednsnegotiation", "www.example.org").addCallback(
            lambda out: self.assertEqual(status(out), "BADVERS"))

    def test_truncation(self):
        """+bufsize=512 +ignore: 40 addresses come back truncated (tc) with whole records only."""
        def check(out):
            self.assertIn("tc", flags(out))
            answers = re.findall(r"big\.example\.org\.\s+3600\s+IN\s+A\s+(10\.0\.1\.\d+)", out)
            self.assertTrue(0 < len(answers) < 40, answers)
            self.assertRegex(out, r"ANSWER: %d," % len(answers))
        return dig(self.port, "+bufsize=512", "+ignore", "big.example.org").addCallback(check)

    def test_tcpComplete(self):
        """+tcp gets all 40 addresses."""
        return dig(self.port, "+tcp", "+bufsize=512", "big.example.org").addCallback(
            lambda out: self.assertRegex(out, r"ANSWER: 40,"))

    def test_norecAndRefused(self):
        """+norec clears rd in the reply; a name outside the zones is REFUSED."""
        d = dig(self.port, "+norec", "www.example.org")
        d.addCallback(lambda out: self.assertEqual(flags(out), {"qr", "aa"}))
        d.addCallback(lambda _: dig(self.port, "www.example.net"))
        d.addCallback(lambda out: self.assertEqual(status(out), "REFUSED"))
        return d

    def test_opcodeNotimp(self):
        """+opcode=status is answered NOTIMP."""
        return dig(self.port, "+opcode=status", "www.example.org").addCallback(
            lambda out: self.assertEqual(status(out), "NOTIMP"))
