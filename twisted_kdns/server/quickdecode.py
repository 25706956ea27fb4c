# -*- test-case-name: tests.server.test_quickdecode -*-
"""
The usual request - one question with an uncompressed name, no answer or
authority records, at most one OPT record - decoded without
C{twisted.names}' stream decoder.

Why: in the profile of forwarding (issue 8, scenario C) C{Message.decode}
was the largest single cost, a quarter of the server's CPU per query; on
Twisted 26 it also enters a context manager per message.  Slicing the bytes
directly is four to five times faster.

What it builds is exactly what C{dns.Message().decode(...)} builds: the
same classes with the same attributes (filled in one step, without the
constructors).  That is checked at import, on
sample requests, against the installed Twisted's own decoder; if anything
differs (another Twisted version builds other attributes) this module
switches itself off and every request takes Twisted's decoder.  Any request
of another shape (several questions, records in the answer or authority
section, a compressed or long label, a non-OPT additional record) returns
C{None}: Twisted's decoder, and server.wire's checks, handle it as before.
"""

import struct
from io import BytesIO

from twisted.names import dns

_HEADER = struct.Struct("!HBBHHHH")
_QTAIL = struct.Struct("!HH")
_RR = struct.Struct("!HHIH")
OPT = 41
_Message, _Query, _Name, _RRHeader, _Unknown = dns.Message, dns.Query, dns.Name, dns.RRHeader, dns.UnknownRecord


def _decode(data):
    """A C{dns.Message} equal to Twisted's decode of C{data}, or C{None} for other shapes."""
    n = len(data)
    if n < 17:
        return None
    msg_id, byte3, byte4, qd, an, ns, ar = _HEADER.unpack_from(data)
    if qd != 1 or an or ns or ar > 1:
        return None
    labels = []
    off = 12
    while True:
        if off >= n:
            return None
        length = data[off]
        if length == 0:
            off += 1
            break
        if length > 63:
            return None  # compression pointer or 0x40/0x80 label type: Twisted's decoder decides
        end = off + 1 + length
        if end > n:
            return None
        labels.append(data[off + 1:end])
        off = end
    if off + 4 > n:
        return None
    qtype, qcls = _QTAIL.unpack_from(data, off)
    off += 4
    # The attributes Message.__init__ + Message.decode leave (checked at import).
    name = _Name.__new__(_Name)
    name.name = b".".join(labels)
    q = _Query.__new__(_Query)
    q.__dict__ = {"name": name, "type": qtype, "cls": qcls}
    auth = (byte3 >> 2) & 1
    additional = []
    if ar:
        # Only a root-owned OPT: UnknownRecord payload, as Twisted's lookupRecordType gives.
        if off + 11 > n or data[off] != 0:
            return None
        rtype, rcls, ttl, rdlen = _RR.unpack_from(data, off + 1)
        off += 11
        if rtype != OPT or off + rdlen > n:
            return None
        owner = _Name.__new__(_Name)
        owner.name = b""
        payload = _Unknown.__new__(_Unknown)
        payload.__dict__ = {"data": data[off:off + rdlen], "ttl": ttl}
        rr = _RRHeader.__new__(_RRHeader)
        rr.__dict__ = {"name": owner, "type": rtype, "cls": rcls, "ttl": ttl, "payload": payload,
                       "auth": auth, "rdlength": rdlen}
        additional.append(rr)
    m = _Message.__new__(_Message)
    m.__dict__ = {"maxSize": _MAX_SIZE, "id": msg_id, "answer": (byte3 >> 7) & 1, "opCode": (byte3 >> 3) & 0xF,
                  "auth": auth, "trunc": (byte3 >> 1) & 1, "recDes": byte3 & 1, "recAv": (byte4 >> 7) & 1,
                  "rCode": byte4 & 0xF, "authenticData": (byte4 >> 5) & 1,
                  "checkingDisabled": (byte4 >> 4) & 1, "queries": [q], "answers": [], "authority": [],
                  "additional": additional}
    return m


def _twisted(data):
    m = dns.Message()
    m.decode(BytesIO(data))
    return m


def _state(obj, depth=0):
    """Every attribute, recursively, for comparing two decodes exactly."""
    if depth > 4:
        return repr(obj)
    if isinstance(obj, (list, tuple)):
        return [type(obj).__name__] + [_state(x, depth + 1) for x in obj]
    if hasattr(obj, "__dict__"):
        return (type(obj).__name__, sorted((k, _state(v, depth + 1)) for k, v in vars(obj).items()))
    return (type(obj).__name__, obj)


def _samples():
    opt = b"\x00" + _RR.pack(OPT, 1232, 0x8000, 0)
    cookie = b"\x00" + _RR.pack(OPT, 4096, 0, 12) + b"\x00\x0a\x00\x08" + b"abcdefgh"
    q = b"\x03www\x07Example\x03org\x00" + _QTAIL.pack(1, 1)
    return [
        _HEADER.pack(0x1234, 0x01, 0x00, 1, 0, 0, 0) + q,
        _HEADER.pack(0xBEEF, 0x05, 0x30, 1, 0, 0, 1) + q + opt,
        _HEADER.pack(7, 0x00, 0x10, 1, 0, 0, 1) + b"\x00" + _QTAIL.pack(2, 1) + cookie,
        _HEADER.pack(9, 0x81, 0x8F, 1, 0, 0, 0) + q + b"trailing",
    ]


def _self_check():
    """The fast decode gives exactly Twisted's objects on every sample (else: stay off)."""
    try:
        for sample in _samples():
            if _state(_decode(sample)) != _state(_twisted(sample)):
                return False
        return True
    except Exception:
        return False


_MAX_SIZE = _twisted(_samples()[0]).maxSize  # 0 on Twisted 26 (decode resets it), 512 on 22.4
ENABLED = _self_check()


def decode(data):
    """C{_decode(data)} when this module passed its self-check, else C{None}."""
    if not ENABLED:
        return None
    return _decode(data)


__all__ = ["decode", "ENABLED"]
