"""
The server core over real UDP sockets on 127.0.0.1: routing, header checks,
EDNS, flags, 0x20 case and UDP truncation, checked with dnspython.
"""

import struct

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from twisted.trial import unittest

from tests.helpers import query, raw_udp, rrset_values, start_server

BIG = 40
COREFILE = """\
example.org:0 {
    bind 127.0.0.1
    hosts {
        10.0.0.1 www.example.org
        fd00::1 www.example.org
%s
    }
}
""" % "\n".join("        10.0.1.%d big.example.org" % i for i in range(1, BIG + 1))

OPT = b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00"  # root, OPT, 4096, ttl 0, rdlen 0


def wire_query(name="www.example.org.", rdtype="A", qid=0x1234, **kw):
    m = dns.message.make_query(name, rdtype, **kw)
    m.id = qid
    return m.to_wire()


def header(data):
    """(id, flags, qd, an, ns, ar) of raw reply bytes."""
    return struct.unpack("!HHHHHH", data[:12])


class ServerTestCase(unittest.TestCase):
    def setUp(self):
        self.service, self.port = start_server(self, COREFILE)


class RoutingTests(ServerTestCase):
    def test_answer(self):
        """A name in a served zone is answered by the block's plugins, AA set, RA not set."""
        def check(reply):
            self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
            self.assertEqual(rrset_values(reply), ["10.0.0.1"])
            self.assertTrue(reply.flags & dns.flags.AA)
            self.assertTrue(reply.flags & dns.flags.QR)
            self.assertFalse(reply.flags & dns.flags.RA)
            self.assertTrue(reply.flags & dns.flags.RD)
        return query(self.port, "www.example.org.", "A").addCallback(check)

    def test_refusedOutsideZones(self):
        """A name outside every zone of the listener is REFUSED, question echoed, no AA."""
        def check(reply):
            self.assertEqual(reply.rcode(), dns.rcode.REFUSED)
            self.assertEqual(reply.question[0].name.to_text(), "www.example.net.")
            self.assertFalse(reply.flags & dns.flags.AA)
            self.assertEqual(reply.answer, [])
        return query(self.port, "www.example.net.", "A").addCallback(check)

    def test_refusedOtherClass(self):
        """Class CH is REFUSED when no plugin of the block handles other classes."""
        m = dns.message.make_query("www.example.org.", "A", rdclass=dns.rdataclass.CH)
        return query(self.port, m).addCallback(
            lambda reply: self.assertEqual(reply.rcode(), dns.rcode.REFUSED))

    def test_caseEcho(self):
        """The question comes back in the client's case (0x20), the answer still matches."""
        def check(reply):
            self.assertEqual(reply.question[0].name.to_text(), "wWw.ExAmPlE.oRg.")
            self.assertEqual(rrset_values(reply), ["10.0.0.1"])
        return query(self.port, "wWw.ExAmPlE.oRg.", "A").addCallback(check)

    def test_flagsEchoed(self):
        """RD and CD are copied from the request; RD clear stays clear."""
        m = dns.message.make_query("www.example.org.", "A")
        m.flags = dns.flags.CD  # RD off, CD on

        def check(reply):
            self.assertFalse(reply.flags & dns.flags.RD)
            self.assertTrue(reply.flags & dns.flags.CD)
            self.assertTrue(reply.flags & dns.flags.AA)
            self.assertEqual(reply.id, m.id)
        return query(self.port, m).addCallback(check)


class EdnsTests(ServerTestCase):
    def test_noEdns(self):
        """A query without OPT gets a reply without OPT."""
        return query(self.port, "www.example.org.").addCallback(lambda r: self.assertEqual(r.edns, -1))

    def test_ednsEcho(self):
        """OPT is echoed with our payload size 1232 and the DO bit when the client set it."""
        def check(reply):
            self.assertEqual(reply.edns, 0)
            self.assertEqual(reply.payload, 1232)
            self.assertTrue(reply.ednsflags & dns.flags.DO)
            self.assertEqual(rrset_values(reply), ["10.0.0.1"])
        d = query(self.port, "www.example.org.", use_edns=0, payload=4096, want_dnssec=True)
        d.addCallback(check)
        d.addCallback(lambda _: query(self.port, "www.example.org.", use_edns=0, payload=1400))
        d.addCallback(lambda r: self.assertFalse(r.ednsflags & dns.flags.DO))
        return d

    def test_badvers(self):
        """EDNS version 1 is answered BADVERS (extended rcode 16) with our OPT at version 0."""
        data = bytearray(wire_query(use_edns=0))
        data[-5] = 1  # the OPT's version byte (ttl = ext-rcode, version, flags; then rdlen)

        def check(raw):
            reply = dns.message.from_wire(raw)
            self.assertEqual(reply.rcode(), dns.rcode.BADVERS)
            self.assertEqual(reply.edns, 0)
            self.assertEqual(reply.answer, [])
            self.assertEqual(reply.question[0].name.to_text(), "www.example.org.")
        return raw_udp(self.port, bytes(data)).addCallback(check)

    def test_twoOpts(self):
        """Two OPT records are FORMERR."""
        data = bytearray(wire_query(use_edns=0))
        data[10:12] = struct.pack("!H", 2)
        data += OPT

        def check(reply):
            self.assertIsNotNone(reply)
            msg_id, flags, qd, an, ns, ar = header(reply)
            self.assertEqual((msg_id, flags & 0xF), (0x1234, dns.rcode.FORMERR))
            self.assertTrue(flags & 0x8000)
        return raw_udp(self.port, bytes(data)).addCallback(check)


class MalformedTests(ServerTestCase):
    def test_badBody(self):
        """A readable header with an unreadable body gets FORMERR with the request's ID."""
        data = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\x05ab"

        def check(reply):
            msg_id, flags, qd, an, ns, ar = header(reply)
            self.assertEqual(msg_id, 0xBEEF)
            self.assertEqual(flags & 0xF, dns.rcode.FORMERR)
            self.assertTrue(flags & 0x8000)
            self.assertTrue(flags & 0x0100)  # RD copied
        return raw_udp(self.port, data).addCallback(check)

    def test_countsLie(self):
        """A header announcing more records than the body holds is FORMERR."""
        data = bytearray(wire_query())
        data[6:8] = struct.pack("!H", 3)  # ancount 3, none present
        return raw_udp(self.port, bytes(data)).addCallback(
            lambda reply: self.assertEqual(header(reply)[1] & 0xF, dns.rcode.FORMERR))

    def test_questionCount(self):
        """qdcount 0 and qdcount 2 are FORMERR."""
        empty = struct.pack("!HHHHHH", 7, 0x0100, 0, 0, 0, 0)
        one = wire_query(qid=8)
        q = one[12:]
        two = struct.pack("!HHHHHH", 8, 0x0100, 2, 0, 0, 0) + q + q
        d = raw_udp(self.port, empty)
        d.addCallback(lambda reply: self.assertEqual((header(reply)[0], header(reply)[1] & 0xF),
                                                     (7, dns.rcode.FORMERR)))
        d.addCallback(lambda _: raw_udp(self.port, two))
        d.addCallback(lambda reply: self.assertEqual((header(reply)[0], header(reply)[1] & 0xF),
                                                     (8, dns.rcode.FORMERR)))
        return d

    def test_notimp(self):
        """Opcodes other than QUERY (STATUS, NOTIFY, UPDATE) are NOTIMP."""
        results = []
        d = None
        for opcode in (2, 4, 5):
            data = bytearray(wire_query(qid=100 + opcode))
            data[2] = (data[2] & 0x87) | (opcode << 3)
            step = raw_udp(self.port, bytes(data)).addCallback(results.append)
            d = step if d is None else d.addCallback(lambda _, s=step: s)

        def check(_):
            self.assertEqual(len(results), 3)
            for reply in results:
                msg_id, flags, qd, an, ns, ar = header(reply)
                self.assertEqual(flags & 0xF, dns.rcode.NOTIMP)
                self.assertEqual((flags >> 11) & 0xF, msg_id - 100)
        return d.addCallback(check)

    def test_dropped(self):
        """A response (QR=1) and anything shorter than a header get no reply; the server lives on."""
        reply_like = bytearray(wire_query())
        reply_like[2] |= 0x80
        d = raw_udp(self.port, bytes(reply_like), timeout=0.3)
        d.addCallback(self.assertIsNone)
        d.addCallback(lambda _: raw_udp(self.port, b"\x12\x34\x01\x00\x00", timeout=0.3))
        d.addCallback(self.assertIsNone)
        d.addCallback(lambda _: raw_udp(self.port, b"", timeout=0.3))
        d.addCallback(self.assertIsNone)
        d.addCallback(lambda _: query(self.port, "www.example.org."))
        d.addCallback(lambda reply: self.assertEqual(rrset_values(reply), ["10.0.0.1"]))
        return d


class TruncationTests(ServerTestCase):
    def assertWholeRecords(self, reply, full):
        """Every answer kept is a complete, valid A record of the full set."""
        values = rrset_values(reply)
        self.assertTrue(0 < len(values) < full, len(values))
        expected = {"10.0.1.%d" % i for i in range(1, BIG + 1)}
        self.assertTrue(set(values) <= expected)

    def test_udp512(self):
        """40 addresses do not fit 512 bytes: TC=1, only whole RRs, and dnspython parses it."""
        m = dns.message.make_query("big.example.org.", "A", use_edns=0, payload=512)

        def check(data):
            self.assertLessEqual(len(data), 512)
            reply = dns.message.from_wire(data)  # strict: a cut record would not parse
            self.assertTrue(reply.flags & dns.flags.TC)
            self.assertWholeRecords(reply, BIG)
            self.assertEqual(reply.edns, 0)  # OPT kept when truncating
            self.assertEqual(header(data)[3], len(rrset_values(reply)))
        return raw_udp(self.port, m.to_wire()).addCallback(check)

    def test_udpNoEdns(self):
        """Without EDNS the limit is 512 too."""
        def check(data):
            self.assertLessEqual(len(data), 512)
            reply = dns.message.from_wire(data)
            self.assertTrue(reply.flags & dns.flags.TC)
            self.assertWholeRecords(reply, BIG)
        return raw_udp(self.port, wire_query("big.example.org.")).addCallback(check)

    def test_udpLargeBuffer(self):
        """A client buffer of 4096 is clamped to 1232; 40 A records fit in that: no TC."""
        def check(reply):
            self.assertFalse(reply.flags & dns.flags.TC)
            self.assertEqual(len(rrset_values(reply)), BIG)
        return query(self.port, "big.example.org.", use_edns=0, payload=4096).addCallback(check)

    def test_tcpComplete(self):
        """Over TCP the same answer is complete, TC clear."""
        def check(reply):
            self.assertFalse(reply.flags & dns.flags.TC)
            self.assertEqual(rrset_values(reply), sorted("10.0.1.%d" % i for i in range(1, BIG + 1)))
        return query(self.port, "big.example.org.", tcp=True, use_edns=0, payload=512).addCallback(check)


class Block(object):
    """A server block stand-in: just a root resolver (the dispatcher reads root and any_class)."""

    any_class = False

    def __init__(self, root):
        self.root = root


class Resolver(object):
    def __init__(self, outcome):
        self.outcome = outcome

    def query(self, query, timeout=None):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class DispatcherUnitTests(unittest.SynchronousTestCase):
    """Dispatcher.handle driven directly, for outcomes no Corefile plugin produces on demand."""

    def dispatcher(self, outcome):
        from twisted_kdns.server.dispatch import Dispatcher
        routes = {b"example.org": Block(Resolver(outcome))}
        return Dispatcher(lambda: routes, "dns://:53", ("127.0.0.1", 53))

    def test_pluginBug(self):
        """A plugin raising an unexpected exception gives SERVFAIL (no AA) and one logged failure."""
        data = self.dispatcher(RuntimeError("bug")).handle(wire_query(qid=77), ("127.0.0.1", 5), "udp")
        reply = dns.message.from_wire(data)
        self.assertEqual((reply.id, reply.rcode()), (77, dns.rcode.SERVFAIL))
        self.assertFalse(reply.flags & dns.flags.AA)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_drop(self):
        """Drop sends nothing at all."""
        from twisted_kdns.errors import Drop
        self.assertIsNone(self.dispatcher(Drop()).handle(wire_query(), ("127.0.0.1", 5), "udp"))

    def test_asyncAnswer(self):
        """A Deferred that fires later gives a Deferred of the reply bytes."""
        from twisted.internet import defer
        from twisted_kdns.response import Response
        pending = defer.Deferred()
        d = self.dispatcher(pending).handle(wire_query(qid=5), ("127.0.0.1", 5), "tcp")
        self.assertNoResult(d)
        pending.callback(Response(rcode=dns.rcode.NXDOMAIN, aa=True))
        reply = dns.message.from_wire(self.successResultOf(d))
        self.assertEqual((reply.id, reply.rcode()), (5, dns.rcode.NXDOMAIN))
        self.assertTrue(reply.flags & dns.flags.AA)

    def test_twistedTuple(self):
        """A Twisted (answers, authority, additional) tuple is NOERROR, AA from the records' auth."""
        from twisted.internet import defer
        from twisted.names import dns as tdns
        rr = tdns.RRHeader(b"www.example.org", tdns.A, payload=tdns.Record_A("10.0.0.5"), auth=False)
        data = self.dispatcher(defer.succeed(([rr], [], []))).handle(wire_query(), ("127.0.0.1", 5), "udp")
        reply = dns.message.from_wire(data)
        self.assertEqual(rrset_values(reply), ["10.0.0.5"])
        self.assertFalse(reply.flags & dns.flags.AA)


class DsRoutingTests(unittest.TestCase):
    def test_dsGoesToParentBlock(self):
        """A DS query for a zone's apex goes to the block serving the parent (CoreDNS routing);
        other types go to the longest zone."""
        # one listener (same address and port), two blocks: parent served by hosts, child by whoami
        _, port = start_server(self, "sub.example.org:0 {\n bind 127.0.0.3\n whoami\n}\n"
                                     "example.org:0 {\n bind 127.0.0.3\n hosts {\n  10.0.0.1 sub.example.org\n }\n}\n")

        def check_ds(reply):
            self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
            self.assertEqual(reply.additional, [])  # hosts' NODATA, not whoami
        d = query(port, "sub.example.org.", "DS", host="127.0.0.3")
        d.addCallback(check_ds)
        d.addCallback(lambda _: query(port, "sub.example.org.", "A", host="127.0.0.3"))
        d.addCallback(lambda reply: self.assertEqual(len(reply.additional), 2))  # whoami
        return d
