# -*- test-case-name: tests.plugins.test_forward_perf -*-
"""
The upstream's answer as a L{Response} whose records are decoded only when
somebody reads them, and which can write the client's reply itself.

Profile of forwarding with the cache off (issue 8, scenario C): decoding
the upstream reply into Twisted records and encoding them again with
C{dns.Message.toStr} cost about 45 us of a 110 us query, although nothing
between forward and the client looks at the records unless cache,
loadbalance, rewrite or autopath is in the chain.  So:

  - L{ForwardResponse} keeps the L{wire.Reply} read by C{wire.read_reply}
    (header, extended rcode, record offsets).  Its C{answers},
    C{authority} and C{additional} are built on first access, by the same
    code as before (C{wire.decode_reply}'s), so a plugin that reads or
    copies them sees exactly what it saw before;
  - the dispatcher asks the response for C{encoded(kq, request, edns,
    limit)} before building a reply message.  While no record was read and
    the query is the one forward answered (no rewrite or autopath derived
    another), L{encode_reply} writes the reply from the upstream bytes with
    Twisted's own algorithm: the same header bits, the client's question,
    each record's owner and rdata names compressed exactly as
    C{dns.Name.encode} does, rdata copied for the types Twisted copies,
    our OPT record.  The bytes are the ones the full path would produce
    (tests/plugins/test_forward_perf.py compares both on every record
    type).  A reply over the client's size limit goes the full way (its
    truncation needs the records);
  - hooks and observers (prometheus, log) get an L{EncodedReply}: a
    C{dns.Message} with the header set and the sections built from the
    records when first read.
"""

import os
import struct

from twisted.names import dns

from twisted_kdns.plugins.forward import wire
from twisted_kdns.response import Response
from twisted_kdns.server import wire as server_wire

_H = struct.Struct("!H")
_HEADER = struct.Struct("!HBBHHHH")
_RR = struct.Struct("!HHIH")
_QTAIL = struct.Struct("!HH")
_OUR_PAYLOAD = server_wire.OUR_PAYLOAD
_DO_BIT = server_wire.DO_BIT
# KDNS_FORWARD_PASSTHROUGH=0: every forwarded reply takes the full path (for comparisons).
ENABLED = os.environ.get("KDNS_FORWARD_PASSTHROUGH", "1") != "0"


def _section(slot, index):
    """A property reading a L{Response} slot, filled from the upstream bytes on first access."""
    def get(self):
        if not self._decoded:
            self._decode()
        return slot.__get__(self)

    def set(self, value):
        if not self._decoded:
            self._decode()
        slot.__set__(self, value)
    return property(get, set, doc="Section %d, decoded on first access." % (index,))


class ForwardResponse(Response):
    """
    A L{Response} made from a fast-read upstream reply; see the module
    docstring.  It behaves as the eager one (C{to_response(decode_reply(...))})
    in every respect, C{replace} included.
    """

    __slots__ = ("_reply", "_kq", "_decoded", "ancount", "_question")

    answers = _section(Response.answers, 0)
    authority = _section(Response.authority, 1)
    additional = _section(Response.additional, 2)

    def __init__(self, reply, kq=None, question=None):
        self._reply = reply
        self._kq = kq
        self._question = question
        self._decoded = False
        self.ancount = len(reply.records[0])
        self.rcode = reply.rcode
        self.aa = bool(reply.aa)
        self.ra = bool(reply.ra)
        self.ad = bool(reply.ad)
        self.plugin = "forward"

    def _decode(self):
        self._decoded = True
        reply = self._reply
        Response.answers.__set__(self, reply.rrheaders(0))
        Response.authority.__set__(self, reply.rrheaders(1))
        Response.additional.__set__(self, reply.rrheaders(2))

    @property
    def untouched(self):
        """No record has been read yet (so none can have been changed)."""
        return not self._decoded

    def encoded(self, kq, message, edns, limit):
        """
        C{(reply_message, bytes)} for the dispatcher, or C{None} when the
        full path must build the reply (records were read, the query was
        derived, the reply does not fit C{limit}, or a record needs Twisted).
        Answers once: a second call gives C{None}.
        """
        if kq is not self._kq or kq is None:
            return None
        # Asked once, by the dispatcher, before it sets kq.response = self: dropping
        # our reference here means the query and its response never form a cycle
        # (which only the garbage collector could free).
        self._kq = None
        if self._decoded or len(message.queries) != 1 or not ENABLED:
            return None
        rcode = self.rcode
        aa = self.aa and rcode in (0, 3)
        ad = self.ad and bool(kq.do or message.authenticData)
        try:
            data = encode_reply(self._reply, message, rcode, aa, self.ra, ad, edns, self._question)
        except (ValueError, struct.error):
            return None  # Twisted's encoder would raise too: let it, on the full path
        if data is None or len(data) > limit:
            return None
        return EncodedReply(self, message, aa, ad, edns), data

    def __repr__(self):
        return "<ForwardResponse rcode=%d an=%d aa=%s ra=%s>" % (self.rcode, self.ancount, self.aa, self.ra)


def _name(out, name, comp):
    """C{dns.Name.encode}, into a bytearray that holds the whole message (header included)."""
    while name:
        if comp is not None:
            off = comp.get(name)
            if off is not None:
                out += _H.pack(0xC000 | off)
                return
            comp[name] = len(out)
        ind = name.find(b".")
        if ind > 0:
            label, name = name[:ind], name[ind + 1:]
        else:
            label = name
            name = None
            ind = len(label)
        out.append(ind)
        out += label
    out.append(0)


def question_template(name, qtype, qcls):
    """
    C{((name, type, class), header placeholder + question bytes, compression
    entries)}: the start of every reply to this question, computed once per
    memoised upstream request.
    """
    out = bytearray(12)
    comp = {}
    _name(out, name, comp)
    out += _QTAIL.pack(qtype, qcls)
    return (name, qtype, qcls), bytes(out), comp


def encode_reply(reply, message, rcode, aa, ra, ad, edns, question=None):
    """
    The client's reply, byte for byte what C{server.wire.encode} makes of
    C{server.wire.reply_message(...)} with the records of C{reply} (no
    truncation): C{None} when a record is not one L{wire.read_reply} could
    describe.  C{question}: L{question_template}'s result, used when it is
    the request's question.
    """
    if not reply.fast:
        return None
    q = message.queries[0]
    if question is not None and question[0] == (q.name.name, q.type, q.cls):
        out = bytearray(question[1])
        comp = question[2].copy()
    else:
        out = bytearray(12)
        comp = {}
        _name(out, q.name.name, comp)
        out += _QTAIL.pack(q.type, q.cls)
    counts = []
    for section in reply.records:
        counts.append(len(section))
        for owner, rtype, rcls, ttl, _off, _rdlen, how in section:
            _name(out, owner, comp)
            out += _RR.pack(rtype, rcls, ttl, 0)
            start = len(out)
            kind, value = how
            if kind == wire.RAW:
                out += value
            elif kind == wire.NAME:
                _name(out, value, comp)
            elif kind == wire.MX:
                out += _H.pack(value[0])
                _name(out, value[1], comp)
            elif kind == wire.SOA:
                _name(out, value[0], comp)
                _name(out, value[1], comp)
                out += value[2]
            else:  # SRV: Twisted never compresses its target
                out += value[0]
                _name(out, value[1], None)
            _H.pack_into(out, start - 2, len(out) - start)
    if edns is not None:
        ttl = ((rcode >> 4) << 24) | (_DO_BIT if edns.do else 0)
        out += b"\x00" + _RR.pack(dns.OPT, _OUR_PAYLOAD, ttl, 0)
        counts[2] += 1
    byte3 = 0x80 | ((message.opCode & 0xF) << 3) | (4 if aa else 0) | (message.recDes & 1)
    byte4 = (0x80 if ra else 0) | (0x20 if ad else 0) | ((message.checkingDisabled & 1) << 4) | (rcode & 0xF)
    _HEADER.pack_into(out, 0, message.id, byte3, byte4, 1, counts[0], counts[1], counts[2])
    return bytes(out)


_SECTIONS = ("queries", "answers", "authority", "additional")


def _lazy_section(name):
    """
    A section of L{EncodedReply}, built on first read.  A property, not
    C{__getattr__}: Twisted 22.4's C{Message} has class-level C{queries =
    answers = None}, which would hide a missing instance attribute.
    """
    key = "_s_" + name

    def get(self):
        d = self.__dict__
        if key not in d:
            self._build()
        return d[key]

    def set(self, value):
        self.__dict__[key] = value
    return property(get, set)


class EncodedReply(dns.Message):
    """
    The reply message handed to hooks and observers when the reply was
    written by L{encode_reply}: the header as C{server.wire.reply_message}
    sets it; the sections are that function's, built on first access.
    """

    queries = _lazy_section("queries")
    answers = _lazy_section("answers")
    authority = _lazy_section("authority")
    additional = _lazy_section("additional")

    # Constant header fields (reply_message's and dns.Message.__init__'s defaults).
    answer = 1
    trunc = 0
    maxSize = 0

    def __init__(self, response, request, aa, ad, edns):
        d = {"id": request.id, "opCode": request.opCode, "recDes": request.recDes,
             "recAv": 1 if response.ra else 0, "auth": 1 if aa else 0, "rCode": response.rcode & 0xF,
             "authenticData": 1 if ad else 0, "checkingDisabled": request.checkingDisabled,
             "_lazy": (response, request, edns)}
        if not response._reply.records[2]:
            # No upstream additional records: ours is known without decoding (prometheus reads it).
            d["_s_additional"] = [server_wire.opt_record(edns.do, response.rcode >> 4)] if edns is not None else []
        self.__dict__ = d

    def _build(self):
        response, request, edns = self._lazy
        full = server_wire.reply_message(
            request.id, request.opCode, request.recDes, request.checkingDisabled, response.rcode,
            request.queries, response.answers, response.authority, response.additional,
            edns=edns, ext_rcode=response.rcode >> 4)
        d = self.__dict__
        for name in _SECTIONS:
            d.setdefault("_s_" + name, getattr(full, name))


__all__ = ["ForwardResponse", "EncodedReply", "encode_reply"]
