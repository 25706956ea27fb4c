# -*- test-case-name: tests.plugins.test_forward_wire -*-
"""
Fast encoding of upstream requests and decoding of upstream replies.

Every forwarded query costs one request encode and one reply decode on top
of the server's own work.  C{twisted.names.dns.Message.decode} reads names
one byte at a time through C{BytesIO} (about 60 us for a small reply, more
than the rest of the forward path together), so this module slices the
bytes directly.  The result is the same Twisted objects (C{RRHeader} with
C{Record_*} payloads) the rest of kdns handles; record types outside the
fast path are decoded by Twisted's own record classes, at their offset in
the whole message so compression pointers still resolve.
"""

import struct
from io import BytesIO

from twisted.names import dns

_HEADER = struct.Struct("!HBBHHHH")
_RR = struct.Struct("!HHIH")
_QTAIL = struct.Struct("!HH")
_H = struct.Struct("!H")
_SOA_TAIL = struct.Struct("!IIIII")
_SRV = struct.Struct("!HHH")
DO_BIT = 0x8000
MAX_POINTERS = 64


class BadMessage(ValueError):
    """The bytes are not a DNS message we can read."""


def encode_name(name):
    """Wire form of a name given as dotted C{bytes} (no compression)."""
    out = bytearray()
    if name and name != b".":
        for label in name.rstrip(b".").split(b"."):
            if not label or len(label) > 63:
                raise BadMessage("bad label in %r" % (name,))
            out.append(len(label))
            out += label
    out.append(0)
    return bytes(out)


def build_request(name, qtype, qcls, rd=True, cd=False, payload=None, do=False, msg_id=0):
    """
    Request bytes: one question, RD/CD as given, and an OPT record offering
    C{payload} bytes (with DO) when C{payload} is not C{None}.
    """
    flags2 = 0x10 if cd else 0
    arcount = 1 if payload is not None else 0
    out = _HEADER.pack(msg_id, 1 if rd else 0, flags2, 1, 0, 0, arcount) + encode_name(name) + \
        _QTAIL.pack(qtype, qcls)
    if payload is not None:
        out += b"\x00" + struct.pack("!HHIH", dns.OPT, payload, DO_BIT if do else 0, 0)
    return out


def read_name(data, off):
    """C{(name, next_offset)}: a possibly compressed name starting at C{off}."""
    labels = []
    end = None
    hops = 0
    n = len(data)
    while True:
        if off >= n:
            raise BadMessage("name runs past the end")
        length = data[off]
        if length == 0:
            off += 1
            break
        if length >= 0xC0:
            if off + 1 >= n:
                raise BadMessage("cut compression pointer")
            if end is None:
                end = off + 2
            hops += 1
            if hops > MAX_POINTERS:
                raise BadMessage("compression loop")
            off = ((length & 0x3F) << 8) | data[off + 1]
            continue
        if length > 63:
            raise BadMessage("unsupported label type")
        off += 1
        if off + length > n:
            raise BadMessage("label runs past the end")
        labels.append(data[off:off + length])
        off += length
    return b".".join(labels), (off if end is None else end)


def _record(data, off, rtype, rdlen, ttl):
    """The payload of one record whose rdata starts at C{off}."""
    end = off + rdlen
    if rtype == dns.A and rdlen == 4:
        rec = dns.Record_A.__new__(dns.Record_A)
        rec.address = data[off:end]
        rec.ttl = ttl
        return rec
    if rtype == dns.AAAA and rdlen == 16:
        rec = dns.Record_AAAA.__new__(dns.Record_AAAA)
        rec.address = data[off:end]
        rec.ttl = ttl
        return rec
    if rtype in _NAME_TYPES:
        name, _ = read_name(data, off)
        return _NAME_TYPES[rtype](name, ttl)
    if rtype == dns.MX:
        name, _ = read_name(data, off + 2)
        return dns.Record_MX(_H.unpack_from(data, off)[0], name, ttl)
    if rtype == dns.SRV:
        prio, weight, port = _SRV.unpack_from(data, off)
        name, _ = read_name(data, off + 6)
        return dns.Record_SRV(prio, weight, port, name, ttl)
    if rtype == dns.SOA:
        mname, o = read_name(data, off)
        rname, o = read_name(data, o)
        serial, refresh, retry, expire, minimum = _SOA_TAIL.unpack_from(data, o)
        return dns.Record_SOA(mname, rname, serial, refresh, retry, expire, minimum, ttl)
    cls = _TWISTED_TYPES.get(rtype)
    if cls is None:
        return dns.UnknownRecord(data[off:end], ttl)
    # Anything else: Twisted's decoder, reading inside the whole message
    # so that compressed names in the rdata resolve.
    strio = BytesIO(data)
    strio.seek(off)
    rec = cls(ttl=ttl)
    rec.decode(strio, rdlen)
    return rec


_NAME_TYPES = {dns.CNAME: dns.Record_CNAME, dns.NS: dns.Record_NS, dns.PTR: dns.Record_PTR,
               dns.DNAME: dns.Record_DNAME}
_TWISTED_TYPES = dict(dns.Message._recordTypes)
_TWISTED_TYPES.pop(dns.OPT, None)


def question(data):
    """C{(id, name, type, class, offset_after_question)} of a message with one question."""
    if len(data) < 12:
        raise BadMessage("short header")
    msg_id, _f1, _f2, qd, _an, _ns, _ar = _HEADER.unpack_from(data)
    if qd != 1:
        raise BadMessage("%d questions" % (qd,))
    name, off = read_name(data, 12)
    if off + 4 > len(data):
        raise BadMessage("cut question")
    qtype, qcls = _QTAIL.unpack_from(data, off)
    return msg_id, name, qtype, qcls, off + 4


def decode_reply(data):
    """
    A C{dns.Message} from reply bytes, sections decoded into Twisted
    records.  A reply with TC set that is cut mid-record keeps what was
    readable (TCP will be asked anyway).

    @raise BadMessage: unreadable, or not a response (QR=0): a query
        echoed back or forged is never taken as an answer.
    """
    msg_id, name, qtype, qcls, off = question(data)
    _, f1, f2, _qd, an, ns, ar = _HEADER.unpack_from(data)
    if not f1 & 0x80:
        raise BadMessage("not a response (QR=0)")
    m = dns.Message(id=msg_id, answer=(f1 >> 7) & 1, opCode=(f1 >> 3) & 0xF, auth=(f1 >> 2) & 1,
                    trunc=(f1 >> 1) & 1, recDes=f1 & 1, recAv=(f2 >> 7) & 1,
                    authenticData=(f2 >> 5) & 1, checkingDisabled=(f2 >> 4) & 1, rCode=f2 & 0xF)
    m.queries = [dns.Query(name, qtype, qcls)]
    n = len(data)
    try:
        for section, count in ((m.answers, an), (m.authority, ns), (m.additional, ar)):
            for _ in range(count):
                owner, off = read_name(data, off)
                if off + 10 > n:
                    raise BadMessage("cut record header")
                rtype, rcls, ttl, rdlen = _RR.unpack_from(data, off)
                off += 10
                if off + rdlen > n:
                    raise BadMessage("cut rdata")
                if ttl >= 0x80000000 and rtype != dns.OPT:
                    ttl = 0  # RFC 2181 8: a TTL with the top bit set is zero
                payload = _record(data, off, rtype, rdlen, ttl)
                off += rdlen
                rr = dns.RRHeader.__new__(dns.RRHeader)
                rr.name = dns.Name(owner)
                rr.type = rtype
                rr.cls = rcls
                rr.ttl = ttl
                rr.payload = payload
                rr.auth = False
                rr.rdlength = rdlen
                section.append(rr)
    except (BadMessage, struct.error, ValueError, EOFError):
        if not m.trunc:
            raise BadMessage("unreadable records")
        m.answers, m.authority, m.additional = [], [], []
    return m


# -- the fast read of an upstream reply (issue 8) ------------------------------
#
# Most forwarded replies go back to the client without any plugin looking at
# the records.  L{read_reply} therefore reads only what forward itself needs
# (header bits, the extended rcode of the OPT record) plus, per record, what
# the client reply needs to be encoded again exactly as Twisted would encode
# it (plugins/forward/reply.py); Twisted record objects are built only when
# somebody asks for them, by the same L{_record} as L{decode_reply}.  Every
# check L{decode_reply} makes is made here too, in the same order, so a reply
# is rejected (ignored) by both or by neither.

# How a record's rdata is written again (reply.encode_records):
RAW, NAME, MX, SOA, SRV = range(5)
_NAME_KINDS = frozenset(_NAME_TYPES)
_SIGNED_MAX = 0x7FFFFFFF


def _txt_tiles(data, off, rdlen):
    """True when the rdata is a whole number of character-strings (Twisted re-encodes it as is)."""
    end = off + rdlen
    while off < end:
        off += 1 + data[off]
    return off == end


def _rdata(data, off, rtype, rdlen):
    """
    C{(kind, value)} telling reply.py how to write this rdata as Twisted
    would after L{_record}, or C{None} when only Twisted's objects can tell
    (the record then goes the full way).  Raises what L{_record} raises.
    """
    if rtype == 1:
        return (RAW, data[off:off + 4]) if rdlen == 4 else None
    if rtype == 28:
        return (RAW, data[off:off + 16]) if rdlen == 16 else None
    if rtype in _NAME_KINDS:
        return NAME, read_name(data, off)[0]
    if rtype == 15:
        pref = _H.unpack_from(data, off)[0]
        return MX, (pref, read_name(data, off + 2)[0])
    if rtype == 33:
        prio, weight, port = _SRV.unpack_from(data, off)
        return SRV, (data[off:off + 6], read_name(data, off + 6)[0])
    if rtype == 6:
        mname, o = read_name(data, off)
        rname, o = read_name(data, o)
        serial, refresh, retry, expire, minimum = _SOA_TAIL.unpack_from(data, o)
        if refresh > _SIGNED_MAX or retry > _SIGNED_MAX or expire > _SIGNED_MAX:
            return None  # Twisted packs these signed: let its encoder decide
        return SOA, (mname, rname, data[o:o + 20])
    if rtype == 16:
        return (RAW, data[off:off + rdlen]) if _txt_tiles(data, off, rdlen) else None
    if rtype not in _TWISTED_TYPES:
        return RAW, data[off:off + rdlen]  # UnknownRecord: written back as is
    return None


class Reply(object):
    """
    An upstream reply read by L{read_reply}.

    @ivar records: C{(answers, authority, additional)}, each a list of
        C{(owner, type, class, ttl, rdata_offset, rdlength, how)} where
        C{how} is L{_rdata}'s result; OPT records are left out of the
        additional section (their extended rcode is in C{rcode}).
    @ivar fast: every record can be written back without Twisted objects.
    """

    __slots__ = ("data", "id", "trunc", "rcode", "aa", "ra", "ad", "records", "fast")

    def message(self):
        """The same C{dns.Message} L{decode_reply} gives (for code that wants one)."""
        return decode_reply(self.data)

    def rrheaders(self, section):
        """Twisted C{RRHeader}s of one section, as L{decode_reply} builds them."""
        data = self.data
        out = []
        for owner, rtype, rcls, ttl, off, rdlen, _how in self.records[section]:
            rr = dns.RRHeader.__new__(dns.RRHeader)
            rr.name = dns.Name(owner)
            rr.type = rtype
            rr.cls = rcls
            rr.ttl = ttl
            rr.payload = _record(data, off, rtype, rdlen, ttl)
            rr.auth = False
            rr.rdlength = rdlen
            out.append(rr)
        return out


def read_reply(data, key, qwire=None):
    """
    A L{Reply} for C{data} when it answers question C{key}
    (C{question_key} form), else C{None}; C{qwire} is the question as we
    sent it, compared as bytes first (the usual case: the upstream echoes
    it), then by name without case.  A message without QR (a query, e.g.
    our own reflected back) is not a reply: C{None}.

    @raise BadMessage: unreadable, where L{decode_reply} would raise.
    """
    n = len(data)
    if n < 12:
        raise BadMessage("short header")
    msg_id, f1, f2, qd, an, ns, ar = _HEADER.unpack_from(data)
    if not f1 & 0x80:
        return None
    if qd != 1:
        raise BadMessage("%d questions" % (qd,))
    if qwire is not None and data[12:12 + len(qwire)] == qwire:
        off = 12 + len(qwire)
    else:
        _id, name, qtype, qcls, off = question(data)
        if (name.lower(), qtype, qcls) != key:
            return None
    r = Reply()
    r.data = data
    r.id = msg_id
    r.trunc = (f1 >> 1) & 1
    r.aa = (f1 >> 2) & 1
    r.ra = (f2 >> 7) & 1
    r.ad = (f2 >> 5) & 1
    ext = 0
    fast = True
    sections = ([], [], [])
    try:
        for index, count in ((0, an), (1, ns), (2, ar)):
            section = sections[index]
            for _ in range(count):
                owner, off = read_name(data, off)
                if off + 10 > n:
                    raise BadMessage("cut record header")
                rtype, rcls, ttl, rdlen = _RR.unpack_from(data, off)
                off += 10
                if off + rdlen > n:
                    raise BadMessage("cut rdata")
                if rtype == 41:
                    if index == 2:
                        ext = (ttl >> 24) & 0xFF  # as to_response: the last OPT wins
                        off += rdlen
                        continue
                    how = None
                else:
                    if ttl >= 0x80000000:
                        ttl = 0  # RFC 2181 8: a TTL with the top bit set is zero
                    how = _rdata(data, off, rtype, rdlen)
                if how is None:
                    fast = False
                    _record(data, off, rtype, rdlen, ttl)  # fails where decode_reply fails
                section.append((owner, rtype, rcls, ttl, off, rdlen, how))
                off += rdlen
    except (BadMessage, struct.error, ValueError, EOFError):
        if not r.trunc:
            raise BadMessage("unreadable records")
        sections = ([], [], [])
        ext = 0
        fast = True
    r.rcode = (ext << 4) | (f2 & 0xF)
    r.records = sections
    r.fast = fast
    return r


__all__ = ["build_request", "decode_reply", "question", "read_name", "encode_name", "BadMessage",
           "read_reply", "Reply"]
