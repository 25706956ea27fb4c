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

    @raise BadMessage: unreadable.
    """
    msg_id, name, qtype, qcls, off = question(data)
    _, f1, f2, _qd, an, ns, ar = _HEADER.unpack_from(data)
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


__all__ = ["build_request", "decode_reply", "question", "read_name", "encode_name", "BadMessage"]
