"""wire: strict decode, OPT parsing, UDP size limit and truncation at record boundaries."""

import dns.message
from twisted.names import dns as tdns
from twisted.trial import unittest

from twisted_kdns.query import Edns
from twisted_kdns.server import wire


def reply_with(n, additional=0, edns=None):
    answers = [tdns.RRHeader(b"big.example.org", tdns.A, tdns.IN, 60, tdns.Record_A("10.0.%d.%d" % (i // 250, i % 250)))
               for i in range(n)]
    extra = [tdns.RRHeader(b"ns%d.example.org" % i, tdns.A, tdns.IN, 60, tdns.Record_A("10.9.0.%d" % i))
             for i in range(additional)]
    return wire.reply_message(7, queries=[tdns.Query(b"Big.Example.org", tdns.A)], answers=answers,
                              additional=extra, aa=True, edns=edns)


class WireTests(unittest.SynchronousTestCase):
    def test_readHeader(self):
        """Fewer than 12 bytes is no header at all."""
        self.assertIsNone(wire.read_header(b"\x00" * 11))
        self.assertEqual(wire.read_header(b"\x12\x34\x01\x00" + b"\x00" * 8)[:2], (0x1234, 1))

    def test_decodeStrict(self):
        """Trailing counts that the body does not fill raise Malformed carrying id and RD."""
        data = bytearray(dns.message.make_query("a.example.", "A").to_wire())
        data[0:2] = b"\x00\x2a"
        data[11] = 1  # arcount 1, nothing there
        e = self.assertRaises(wire.Malformed, wire.decode, bytes(data), wire.read_header(bytes(data)))
        self.assertEqual((e.id, e.rd), (42, 1))

    def test_udpLimit(self):
        """max(512, min(client payload, 1232)); 512 without EDNS."""
        self.assertEqual(wire.udp_limit(None), 512)
        self.assertEqual(wire.udp_limit(Edns(payload=100)), 512)
        self.assertEqual(wire.udp_limit(Edns(payload=1000)), 1000)
        self.assertEqual(wire.udp_limit(Edns(payload=65000)), 1232)

    def test_findEdns(self):
        """OPT fields decode: payload, DO, version; two OPTs are an error."""
        m = dns.message.make_query("a.example.", "A", use_edns=0, payload=1400, want_dnssec=True)
        msg = wire.decode(m.to_wire(), wire.read_header(m.to_wire()))
        edns = wire.find_edns(msg)
        self.assertEqual((edns.payload, edns.do, edns.version), (1400, True, 0))
        msg.additional.append(msg.additional[0])
        self.assertRaises(ValueError, wire.find_edns, msg)

    def test_fits(self):
        """A reply that fits is encoded whole, TC clear."""
        data = wire.encode(reply_with(5), 512)
        parsed = dns.message.from_wire(data)
        self.assertEqual(len(parsed.answer[0]), 5)
        self.assertFalse(parsed.flags & dns.flags.TC)

    def test_truncateAdditionalFirst(self):
        """Additional records go first, without TC, when that is enough."""
        msg = reply_with(20, additional=20)
        data = wire.encode(msg, 512)
        parsed = dns.message.from_wire(data)
        self.assertEqual(len(parsed.answer[0]), 20)
        self.assertFalse(parsed.flags & dns.flags.TC)
        self.assertLessEqual(len(data), 512)

    def test_truncateAnswers(self):
        """Dropped answers set TC; what stays is whole records, as many as fit; OPT is kept."""
        data = wire.encode(reply_with(100, edns=Edns(payload=512)), 512)
        self.assertLessEqual(len(data), 512)
        parsed = dns.message.from_wire(data)
        self.assertTrue(parsed.flags & dns.flags.TC)
        kept = len(parsed.answer[0])
        self.assertGreater(kept, 20)
        self.assertEqual(parsed.edns, 0)
        # one more record would not have fitted
        self.assertGreater(len(wire.encode(reply_with(kept + 1, edns=Edns(payload=512)), 65535)), 512)

    def test_tcpLimit(self):
        """The TCP limit (65535) keeps large answers whole."""
        parsed = dns.message.from_wire(wire.encode(reply_with(1000), wire.TCP_MAX))
        self.assertEqual(len(parsed.answer[0]), 1000)

    def test_badversReply(self):
        """The extended rcode goes into our OPT: BADVERS is 16 split over header and OPT."""
        msg = wire.reply_message(1, edns=Edns(), ext_rcode=wire.BADVERS >> 4)
        parsed = dns.message.from_wire(wire.encode(msg))
        self.assertEqual(parsed.rcode(), 16)
        self.assertEqual(parsed.payload, 1232)
