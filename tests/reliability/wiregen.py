"""
A seeded generator of hostile DNS requests, shared by the short fuzz tests
(tests/reliability/test_wire_fuzz.py) and the long run (bench/fuzz_long.py).

Each case is C{(category, bytes)}; the category says what the packet is
built to break (compression loops, out-of-range pointers, labels over 63,
names over 255, question counts, truncated records, bad OPT records,
unknown types/classes/opcodes, responses that must not be reflected) and
lets the caller check the rcode the server owes it.  Pure Python, no
dependency: the same seed gives the same packets on every machine.
"""

import random
import struct

HEADER = struct.Struct("!HHHHHH")

#: category -> the rcodes a reply may carry (None: no reply at all is owed)
EXPECT = {
    "valid": None,             # anything well-formed
    "qr": "noreply",           # a response: never answered (no reflection)
    "short": "noreply",        # under 12 bytes: no header to answer
    "loop": {1},               # compression loop -> FORMERR
    "pointer_out": {1},
    "pointer_forward": None,   # miekg follows forward pointers too: answered or FORMERR
    "label_over_63": {1},
    "name_over_255": {1},
    "qdcount": {1},            # zero or several questions -> FORMERR
    "truncated_rr": {1},
    "two_opt": {1},
    "opt_non_root": {1},
    "opt_not_additional": None,  # OPT in answer/authority: FORMERR or answered without EDNS
    "opt_payload": None,         # payload 0..65535: answered, size capped
    "opt_version": {0},          # BADVERS is rcode 16 = ext 1 << 4 | 0 in the header
    "opcode": {4},               # NOTIMP (or FORMERR when also malformed: not generated)
    "unknown_type": None,
    "unknown_class": None,
    "mutated": None,             # any of the above with random bytes flipped: just no crash
}

NAMES = [b"www.example.org", b"mail.example.org", b"nope.example.org", b"x.example.net",
         b"1.0.0.10.in-addr.arpa", b"", b"a.b.c.d.e.f.example.org"]


def encode_name(name):
    out = b""
    for label in name.split(b".") if name else []:
        out += bytes([len(label)]) + label
    return out + b"\x00"


def header(msg_id, flags, qd=1, an=0, ns=0, ar=0):
    return HEADER.pack(msg_id, flags, qd, an, ns, ar)


def question(name=b"www.example.org", qtype=1, qclass=1):
    return encode_name(name) + struct.pack("!HH", qtype, qclass)


def opt(payload=1232, ext=0, version=0, do=False, rdata=b"", owner=b"\x00"):
    ttl = (ext << 24) | (version << 16) | (0x8000 if do else 0)
    return owner + struct.pack("!HHIH", 41, payload, ttl, len(rdata)) + rdata


def a_record(name=b"www.example.org"):
    return encode_name(name) + struct.pack("!HHIH", 1, 1, 60, 4) + b"\x0a\x00\x00\x01"


class WireFuzzer(object):
    """C{next()} returns one C{(category, packet)}; C{cases(n)} yields n of them."""

    def __init__(self, seed):
        self.rng = random.Random(seed)

    def flags(self, qr=0, opcode=0):
        r = self.rng
        return (qr << 15) | (opcode << 11) | (r.getrandbits(1) << 8) | (r.getrandbits(1) << 4) \
            | (r.getrandbits(1) << 5)

    def msg_id(self):
        return self.rng.getrandbits(16)

    def valid(self):
        r = self.rng
        name = r.choice(NAMES)
        qtype = r.choice((1, 28, 12, 15, 33, 16, 2, 6, 255, 5, 43))
        body = header(self.msg_id(), self.flags(), ar=1 if r.random() < 0.5 else 0) + question(name, qtype)
        if body[11] == 1:
            body += opt(payload=r.choice((512, 1232, 4096)), do=r.random() < 0.5)
        return body

    def gen_qr(self):
        base = bytearray(self.valid())
        base[2] |= 0x80
        if self.rng.random() < 0.5:  # a full-looking answer with records
            base[6:8] = b"\x00\x01"
            base = bytes(base[:12]) + question() + a_record() if base[11] == 0 else bytes(base)
        return bytes(base)

    def gen_short(self):
        return bytes(self.rng.getrandbits(8) for _ in range(self.rng.randrange(0, 12)))

    def gen_loop(self):
        r = self.rng
        kind = r.randrange(3)
        if kind == 0:  # the name points at itself
            q = b"\xc0\x0c" + struct.pack("!HH", 1, 1)
        elif kind == 1:  # a label, then a pointer back to the label's start
            q = b"\x03www\xc0\x0c" + struct.pack("!HH", 1, 1)
        else:  # two pointers pointing at each other
            q = b"\xc0\x0e\xc0\x0c" + struct.pack("!HH", 1, 1)
        return header(self.msg_id(), self.flags()) + q

    def gen_pointer_out(self):
        target = self.rng.randrange(40, 0x3FFF)
        return header(self.msg_id(), self.flags()) + b"\x03www" + struct.pack("!H", 0xC000 | target) \
            + struct.pack("!HH", 1, 1)

    def gen_pointer_forward(self):
        # A pointer to a later offset (RFC 1035 says prior occurrences only).
        return header(self.msg_id(), self.flags()) + b"\xc0\x12" + struct.pack("!HH", 1, 1) \
            + b"\x03www\x00"

    def gen_label_over_63(self):
        r = self.rng
        first = r.randrange(64, 192)  # 0x40 and 0x80 label types are not normal labels
        label = bytes([first]) + b"a" * (first if first < 64 else r.randrange(0, 80))
        return header(self.msg_id(), self.flags()) + b"\x03www" + label + b"\x00" + struct.pack("!HH", 1, 1)

    def gen_name_over_255(self):
        r = self.rng
        labels = [b"a" * r.randrange(40, 64) for _ in range(r.randrange(5, 12))]
        name = b".".join(labels)
        if len(name) < 256:
            name += b"." + b"b" * 63 + b"." + b"c" * 63
        return header(self.msg_id(), self.flags()) + question(name)

    def gen_qdcount(self):
        r = self.rng
        count = r.choice((0, 2, 3))
        body = b"".join(question(r.choice(NAMES)) for _ in range(count))
        return header(self.msg_id(), self.flags(), qd=count) + body

    def gen_truncated_rr(self):
        r = self.rng
        rr = r.choice((a_record(), opt()))
        cut = r.randrange(1, len(rr))
        return header(self.msg_id(), self.flags(), ar=1) + question() + rr[:cut]

    def gen_two_opt(self):
        return header(self.msg_id(), self.flags(), ar=2) + question() + opt() + opt(payload=4096)

    def gen_opt_non_root(self):
        return header(self.msg_id(), self.flags(), ar=1) + question() + opt(owner=encode_name(b"x.example.org"))

    def gen_opt_not_additional(self):
        if self.rng.random() < 0.5:
            return header(self.msg_id(), self.flags(), an=1) + question() + opt()
        return header(self.msg_id(), self.flags(), ns=1) + question() + opt()

    def gen_opt_payload(self):
        payload = self.rng.choice((0, 1, 511, 512, 513, 1232, 4096, 65535))
        name = self.rng.choice(NAMES)
        return header(self.msg_id(), self.flags(), ar=1) + question(name, self.rng.choice((1, 255, 16))) \
            + opt(payload=payload)

    def gen_opt_version(self):
        return header(self.msg_id(), self.flags(), ar=1) + question() + opt(version=self.rng.randrange(1, 256))

    def gen_opcode(self):
        return header(self.msg_id(), self.flags(opcode=self.rng.randrange(1, 16))) + question()

    def gen_unknown_type(self):
        qtype = self.rng.choice((0, 53, 99, 65280, 65534, 65535, self.rng.randrange(256, 65535)))
        return header(self.msg_id(), self.flags()) + question(self.rng.choice(NAMES), qtype)

    def gen_unknown_class(self):
        qclass = self.rng.choice((0, 2, 3, 4, 254, 255, self.rng.randrange(5, 65535)))
        return header(self.msg_id(), self.flags()) + question(self.rng.choice(NAMES), 1, qclass)

    def gen_mutated(self):
        r = self.rng
        cat = r.choice([c for c in EXPECT if c not in ("mutated", "qr", "short")])
        data = bytearray(self.build(cat))
        for _ in range(r.randrange(1, 4)):
            pos = r.randrange(2, len(data))  # keep the ID
            data[pos] = r.getrandbits(8)
        if len(data) > 12 and r.random() < 0.3:
            del data[r.randrange(12, len(data)):]
        data[2] &= 0x7F  # stay a query (QR=0) so the dispatcher has to decode it
        return bytes(data)

    def build(self, category):
        if category == "valid":
            return self.valid()
        return getattr(self, "gen_" + category)()

    def next(self):
        category = self.rng.choice(list(EXPECT))
        return category, self.build(category)

    def cases(self, count):
        for _ in range(count):
            yield self.next()
