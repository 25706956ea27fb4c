"""The fast reply decoder gives the same records as Twisted's decoder, and rejects garbage."""

import dns.message
import dns.rrset
from twisted.names import dns as tdns
from twisted.trial import unittest

from twisted_kdns.plugins.forward import wire


def reply_bytes():
    """A reply using compression everywhere, built by dnspython (an independent encoder)."""
    q = dns.message.make_query("www.Example.org.", "A", use_edns=0, payload=1232, want_dnssec=True)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("www.Example.org.", 30, "IN", "CNAME", "web.example.org."))
    r.answer.append(dns.rrset.from_text("web.example.org.", 30, "IN", "A", "192.0.2.1", "192.0.2.2"))
    r.answer.append(dns.rrset.from_text("web.example.org.", 30, "IN", "AAAA", "2001:db8::1"))
    r.answer.append(dns.rrset.from_text("web.example.org.", 30, "IN", "TXT", '"hello world" "x"'))
    r.answer.append(dns.rrset.from_text("example.org.", 30, "IN", "MX", "10 mail.example.org."))
    r.answer.append(dns.rrset.from_text("_sip._tcp.example.org.", 30, "IN", "SRV", "1 2 5060 sip.example.org."))
    r.answer.append(dns.rrset.from_text("1.2.0.192.in-addr.arpa.", 30, "IN", "PTR", "web.example.org."))
    r.answer.append(dns.rrset.from_text("example.org.", 30, "IN", "RP", "admin.example.org. info.example.org."))
    r.answer.append(dns.rrset.from_text("example.org.", 30, "IN", "CAA", '0 issue "letsencrypt.org"'))
    r.authority.append(dns.rrset.from_text("example.org.", 300, "IN", "SOA",
                                           "ns1.example.org. hostmaster.example.org. 7 3600 600 86400 60"))
    r.authority.append(dns.rrset.from_text("example.org.", 300, "IN", "NS", "ns1.example.org."))
    return r.to_wire()


class Decode(unittest.SynchronousTestCase):

    def test_sameAsTwisted(self):
        """Every section decodes to records that re-encode exactly like Twisted's own decode."""
        data = reply_bytes()
        ours = wire.decode_reply(data)
        theirs = tdns.Message()
        theirs.fromStr(data)
        self.assertEqual(ours.toStr(), theirs.toStr())
        self.assertEqual([rr.type for rr in ours.answers], [rr.type for rr in theirs.answers])
        self.assertEqual(sorted(rr.payload.dottedQuad() for rr in ours.answers if rr.type == tdns.A),
                         ["192.0.2.1", "192.0.2.2"])
        self.assertEqual(ours.authority[0].payload.minimum, 60)
        self.assertEqual(str(ours.answers[0].payload.name).lower(), "web.example.org")
        self.assertEqual([rr.type for rr in ours.additional], [tdns.OPT])

    def test_question(self):
        """The question is read with compression and case kept (0x20)."""
        msg_id, name, qtype, qcls, _ = wire.question(reply_bytes())
        self.assertEqual((name, qtype, qcls), (b"www.Example.org", tdns.A, tdns.IN))

    def test_garbageRejected(self):
        """Cut or looping messages raise BadMessage instead of returning half a reply."""
        data = reply_bytes()
        self.assertRaises(wire.BadMessage, wire.decode_reply, data[:len(data) - 7])
        loop = bytes.fromhex("1234 8180 0001 0000 0000 0000".replace(" ", "")) + b"\xc0\x0c\x00\x01\x00\x01"
        self.assertRaises(wire.BadMessage, wire.decode_reply, loop)
        self.assertRaises(wire.BadMessage, wire.question, b"\x00" * 5)

    def test_queryIsNotAReply(self):
        """A message with QR=0 (a query reflected or forged with our ID and question) is not a reply: the fast read ignores it and the full decode rejects it, while the same bytes with QR=1 are read."""
        data = bytearray(reply_bytes())
        key = (b"www.example.org", tdns.A, tdns.IN)
        self.assertIsNotNone(wire.read_reply(bytes(data), key))
        self.assertTrue(wire.decode_reply(bytes(data)).answer)
        data[2] &= 0x7F
        self.assertIsNone(wire.read_reply(bytes(data), key))
        self.assertIsNone(wire.read_reply(bytes(data), key, bytes(data[12:12 + 21])))
        self.assertRaises(wire.BadMessage, wire.decode_reply, bytes(data))

    def test_truncatedKeepsHeader(self):
        """A TC reply cut mid-record still yields its header and question (TCP comes next)."""
        data = bytearray(reply_bytes())
        data[2] |= 0x02
        m = wire.decode_reply(bytes(data[:len(data) - 7]))
        self.assertTrue(m.trunc)
        self.assertEqual(m.answers, [])

    def test_requestEncoding(self):
        """Requests carry the question, RD/CD and an OPT with our size and DO when asked."""
        q = dns.message.from_wire(wire.build_request(b"A.example", tdns.AAAA, tdns.IN, rd=True, cd=True,
                                                     payload=1232, do=True, msg_id=77))
        self.assertEqual(q.id, 77)
        self.assertEqual(str(q.question[0].name), "A.example.")
        self.assertTrue(q.flags & 0x0100 and q.flags & 0x0010)
        self.assertEqual((q.edns, q.payload, bool(q.ednsflags & 0x8000)), (0, 1232, True))
        plain = dns.message.from_wire(wire.build_request(b"", tdns.NS, tdns.IN, rd=False))
        self.assertEqual((str(plain.question[0].name), plain.edns, plain.flags & 0x0100), (".", -1, 0))
