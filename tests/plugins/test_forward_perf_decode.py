"""
server/quickdecode.py (the request decoder forwarding's profile asked for)
against Twisted's decoder: the same objects for every request it takes, the
same FORMERR decisions through server.wire.decode, and C{None} for every
shape it leaves to Twisted.
"""

import random
import struct
from io import BytesIO

from twisted.names import dns
from twisted.trial import unittest

from twisted_kdns.server import quickdecode, wire

HEADER = struct.Struct("!HBBHHHH")


def twisted_decode(data):
    m = dns.Message()
    m.decode(BytesIO(data))
    return m


def requests(rng):
    """Requests of the usual shape with random names, flags, types and OPT records."""
    out = []
    for i in range(400):
        labels = [bytes(rng.choice(b"abcXYZ019-_.\x00\xff") for _ in range(rng.randint(1, 20)))
                  for _ in range(rng.randint(0, 5))]
        name = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
        ar = rng.random() < 0.6
        head = HEADER.pack(rng.randrange(65536), rng.randrange(256), rng.randrange(256), 1, 0, 0, int(ar))
        body = name + struct.pack("!HH", rng.choice((1, 28, 33, 255, 43, 65280)), rng.choice((1, 3, 255)))
        if ar:
            rdata = bytes(rng.randrange(256) for _ in range(rng.choice((0, 0, 4, 12))))
            body += b"\x00" + struct.pack("!HHIH", 41, rng.choice((512, 1232, 4096, 0)),
                                          rng.randrange(2 ** 32), len(rdata)) + rdata
        if rng.random() < 0.1:
            body += b"extra"
        out.append(head + body)
    return out


class QuickDecode(unittest.SynchronousTestCase):

    def test_enabledHere(self):
        """The self-check passes on the installed Twisted (else the fast decoder would be off)."""
        self.assertTrue(quickdecode.ENABLED)

    def test_sameObjects(self):
        """Every usual request decodes to exactly Twisted's objects, attribute for attribute."""
        rng = random.Random(8)
        taken = 0
        for data in requests(rng):
            got = quickdecode.decode(data)
            if got is None:
                continue
            taken += 1
            self.assertEqual(quickdecode._state(got), quickdecode._state(twisted_decode(data)), data.hex())
            self.assertEqual(got, twisted_decode(data))
        self.assertGreater(taken, 300)

    def test_otherShapesLeftToTwisted(self):
        """Two questions, answer records, compressed names, non-OPT or non-root additional: None."""
        q = b"\x01a\x00\x00\x01\x00\x01"
        opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
        cases = [
            HEADER.pack(1, 0, 0, 2, 0, 0, 0) + q + q,
            HEADER.pack(1, 0, 0, 1, 1, 0, 0) + q + b"\x00" + struct.pack("!HHIH", 1, 1, 0, 4) + b"abcd",
            HEADER.pack(1, 0, 0, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",
            HEADER.pack(1, 0, 0, 1, 0, 0, 1) + q + b"\x01a\x00" + opt[1:],
            HEADER.pack(1, 0, 0, 1, 0, 0, 1) + q + b"\x00" + struct.pack("!HHIH", 1, 1, 0, 0),
            HEADER.pack(1, 0, 0, 1, 0, 0, 2) + q + opt + opt,
            HEADER.pack(1, 0, 0, 1, 0, 0, 0) + b"\x41" + b"a" * 65 + b"\x00\x00\x01\x00\x01",
        ]
        for data in cases:
            self.assertIsNone(quickdecode.decode(data), data.hex())

    def test_sameFormerrDecisions(self):
        """Cut and mutated requests: server.wire.decode gives the same message or the same FORMERR."""
        rng = random.Random(9)
        samples = []
        for data in requests(rng)[:60]:
            samples += [data[:n] for n in range(12, len(data) + 1)]
            for _ in range(10):
                b = bytearray(data)
                b[rng.randrange(12, len(b))] = rng.choice((0, 0x3F, 0x40, 0xC0, rng.randrange(256)))
                samples.append(bytes(b))
        for data in samples:
            header = wire.read_header(data)
            with_fast = self.decision(data, header)
            quickdecode.ENABLED = False
            try:
                without = self.decision(data, header)
            finally:
                quickdecode.ENABLED = True
            self.assertEqual(with_fast, without, data.hex())

    def decision(self, data, header):
        try:
            return quickdecode._state(wire.decode(data, header))
        except wire.Malformed as e:
            return ("FORMERR", e.id, e.opcode, e.rd, str(e))
