# -*- test-case-name: tests.server.test_wire -*-
"""
Decoding requests and encoding replies, with EDNS and truncation.

C{twisted.names.dns.Message} is used only as a codec.  What the stock server
lacks is here: a strict decode (section counts must match what was parsed),
OPT parsing with BADVERS and the two-OPT FORMERR, and UDP truncation at
record boundaries to C{max(512, min(client payload, 1232))} with TC set.
"""

import struct
from io import BytesIO

from twisted.names import dns

from twisted_kdns.query import Edns
from twisted_kdns.server import quickdecode

HEADER = struct.Struct("!HBBHHHH")
OUR_PAYLOAD = 1232
TCP_MAX = 65535
BADVERS = 16
MAX_NAME = 253  # dotted form of a 255-octet wire name
DO_BIT = 0x8000


class Malformed(Exception):
    """The header was readable but the body was not: answer FORMERR."""

    def __init__(self, msg_id, opcode, rd, reason):
        Exception.__init__(self, reason)
        self.id = msg_id
        self.opcode = opcode
        self.rd = rd


def read_header(data):
    """
    C{(id, flags1, flags2, qdcount)} or C{None} when there is no header:
    such packets are dropped without a reply.
    """
    if len(data) < HEADER.size:
        return None
    return HEADER.unpack_from(data)


def decode(data, header):
    """
    Decode a request whose header is readable.

    @raise Malformed: the body does not parse or its counts do not match.
    """
    msg_id, b3, b4, qd, an, ns, ar = header
    # The usual one-question request, sliced directly (same objects; quickdecode.py).
    message = quickdecode.decode(data)
    if message is None:
        message = dns.Message()
        try:
            message.decode(BytesIO(data))
        except Exception as e:
            raise Malformed(msg_id, (b3 >> 3) & 0xF, b3 & 1, "undecodable: %s" % (e,))
    if (len(message.queries), len(message.answers), len(message.authority),
            len(message.additional)) != (qd, an, ns, ar):
        raise Malformed(msg_id, (b3 >> 3) & 0xF, b3 & 1, "truncated message")
    for section in (message.queries, message.answers, message.authority, message.additional):
        for item in section:
            name = item.name.name
            # Twisted reads label types 0x40/0x80 as plain labels of 64..191
            # octets and does not bound the name: RFC 1035 2.3.4 does (miekg
            # answers FORMERR).  Any name over 63 octets is checked in full.
            if len(name) > 63 and (len(name) > MAX_NAME or
                                   max(len(label) for label in name.split(b".")) > 63):
                raise Malformed(msg_id, (b3 >> 3) & 0xF, b3 & 1, "name or label too long")
    return message


def find_edns(message):
    """
    The request's L{Edns}, or C{None}.

    @raise ValueError: more than one OPT record, or OPT not owned by the root.
    """
    opts = [rr for rr in message.additional if rr.type == dns.OPT]
    if not opts:
        return None
    if len(opts) > 1:
        raise ValueError("more than one OPT record")
    opt = opts[0]
    if opt.name.name not in (b"", b"."):
        raise ValueError("OPT record not owned by the root")
    ttl = opt.ttl
    payload = opt.payload.data if isinstance(opt.payload, dns.UnknownRecord) else b""
    return Edns(payload=opt.cls, do=bool(ttl & DO_BIT), version=(ttl >> 16) & 0xFF,
                options=payload, raw_flags=ttl)


def udp_limit(edns):
    """The largest UDP reply this client accepts: C{max(512, min(payload, 1232))}."""
    if edns is None:
        return 512
    return max(512, min(edns.payload, OUR_PAYLOAD))


def opt_record(do=False, ext_rcode=0, version=0):
    """The OPT record we put in replies to EDNS clients."""
    ttl = (ext_rcode << 24) | (version << 16) | (DO_BIT if do else 0)
    return dns.RRHeader(name=b"", type=dns.OPT, cls=OUR_PAYLOAD, ttl=ttl,
                        payload=dns.UnknownRecord(b""))


def reply_message(request_id, opcode=0, rd=0, cd=0, rcode=0, queries=(), answers=(),
                  authority=(), additional=(), aa=False, ra=False, ad=False, edns=None,
                  ext_rcode=0):
    """Build a reply C{dns.Message}; C{edns} (the request's) adds our OPT."""
    m = dns.Message(id=request_id, answer=1, opCode=opcode, recDes=rd, recAv=int(bool(ra)),
                    auth=int(bool(aa)), rCode=rcode & 0xF, authenticData=int(bool(ad)),
                    checkingDisabled=cd)
    m.queries = list(queries)
    m.answers = list(answers)
    m.authority = list(authority)
    m.additional = [rr for rr in additional if rr.type != dns.OPT]
    if edns is not None:
        m.additional.append(opt_record(edns.do, ext_rcode))
    return m


def encode(message, limit=TCP_MAX):
    """
    Encode C{message}, dropping whole records until it fits C{limit}:
    additional records first, then authority, then answers; TC is set when
    an answer or authority record had to go (as miekg/dns does).  The OPT
    record is kept so the client still learns our payload size.

    @return: C{bytes} of at most C{limit} bytes.
    """
    message.maxSize = 0
    wire = message.toStr()
    if len(wire) <= limit:
        return wire
    opt = [rr for rr in message.additional if rr.type == dns.OPT]
    additional = [rr for rr in message.additional if rr.type != dns.OPT]
    answers, authority = list(message.answers), list(message.authority)
    sections = answers + authority + additional
    total = len(sections)

    def build(keep):
        m = dns.Message(id=message.id, answer=1, opCode=message.opCode, recDes=message.recDes,
                        recAv=message.recAv, auth=message.auth, rCode=message.rCode,
                        authenticData=message.authenticData,
                        checkingDisabled=message.checkingDisabled)
        m.maxSize = 0
        m.queries = message.queries
        kept = sections[:keep]
        m.answers = kept[:len(answers)]
        m.authority = kept[len(answers):len(answers) + len(authority)]
        m.additional = kept[len(answers) + len(authority):] + opt
        m.trunc = 1 if keep < len(answers) + len(authority) else 0
        return m.toStr()

    lo, hi = 0, total - 1  # largest keep in [lo, hi] that fits
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        w = build(mid)
        if len(w) <= limit:
            best = w
            lo = mid + 1
        else:
            hi = mid - 1
    if best is None:
        message.answers, message.authority, message.additional = [], [], opt
        message.trunc = 1
        best = message.toStr()
        if len(best) > limit:  # a huge question: header-only reply
            message.queries = []
            best = message.toStr()
    return best


def formerr(header_or_exc):
    """A FORMERR reply for a request whose body could not be read."""
    m = dns.Message(id=header_or_exc.id, answer=1, opCode=header_or_exc.opcode,
                    recDes=header_or_exc.rd, rCode=dns.EFORMAT)
    return m.toStr()
