"""
Hostile requests, by category (tests/reliability/wiregen.py): compression
loops, pointers out of range, labels over 63, names over 255, zero or
several questions, truncated records, bad OPT records, unknown
types/classes/opcodes and responses (QR=1), plus random mutations of all of
them.  Each category has the reply it is owed; none may crash the server,
log an internal error (trial fails a test that logs one), be reflected, or
produce a UDP reply larger than the client allows.

The long run is C{bench/fuzz_long.py} (docs/reliability.md has its counts).
"""

import socket
import struct
import time

import dns.message
from twisted.internet import defer, threads
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from tests.helpers import query, rrset_values, start_server
from tests.reliability.wiregen import EXPECT, WireFuzzer, header, opt, question

COREFILE = """\
example.org:0 in-addr.arpa:0 {
    bind 127.0.0.1
    errors
    any
    cache 30
    hosts {
        10.0.0.1 www.example.org
        10.0.0.2 mail.example.org
        fallthrough
    }
    whoami
}
"""

IN_PROCESS = 20000
OVER_UDP = 3000
SEED = 9


def check_reply(case, category, packet, reply, limit):
    """The checks every reply owes its request; returns the rcode or None."""
    expect = EXPECT[category]
    if reply is None:
        case.assertNotIn(category, ("valid", "opcode", "qdcount", "two_opt"),
                         "%s got no reply: %s" % (category, packet.hex()))
        return None
    case.assertNotEqual(expect, "noreply", "%s was answered: %s" % (category, packet.hex()))
    case.assertGreaterEqual(len(reply), 12)
    case.assertLessEqual(len(reply), limit, "%s: %d bytes over a %d limit" % (category, len(reply), limit))
    case.assertEqual(reply[:2], packet[:2], "reply ID differs")
    case.assertTrue(reply[2] & 0x80, "QR not set")
    case.assertEqual((reply[2] >> 3) & 0xF, (packet[2] >> 3) & 0xF, "opcode not echoed")
    rcode = reply[3] & 0xF
    if isinstance(expect, set):
        case.assertIn(rcode, expect, "%s: rcode %d for %s" % (category, rcode, packet.hex()))
    return rcode


def udp_limit(packet):
    """What the client allows: 512, or its EDNS payload within [512, 1232] when the OPT parses."""
    try:
        m = dns.message.from_wire(packet)
    except Exception:
        return 512
    if m.edns < 0:
        return 512
    return max(512, min(m.payload, 1232))


class InProcessFuzzTests(unittest.TestCase):
    timeout = 60

    def test_twenty_thousand_cases_through_the_dispatcher(self):
        """20,000 generated cases (every category) through the listener's full request path: each gets the reply it is owed, none is reflected or oversized, nothing logs an error."""
        service, port = start_server(self, COREFILE)
        dispatcher = service.listeners[list(service.listeners)[0]].dispatcher
        errors = []

        def observer(event):
            if event.get("log_failure") is not None:
                errors.append(event)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        seen = {}
        pending = []
        for category, packet in WireFuzzer(SEED).cases(IN_PROCESS):
            reply = dispatcher.handle(packet, ("127.0.0.1", 40000), "udp")
            if isinstance(reply, defer.Deferred):
                pending.append(reply.addCallback(lambda r, c=category, p=packet: (c, p, r)))
                continue
            rcode = check_reply(self, category, packet, reply, udp_limit(packet))
            seen.setdefault(category, set()).add(rcode)
        self.assertEqual(errors, [])
        self.assertEqual(set(seen), set(EXPECT), "every category generated")
        # Categories that must be refused before any plugin runs never reached one.
        self.assertEqual(seen["qr"], {None})
        self.assertEqual(seen["name_over_255"], {1})

        def late(results):
            for category, packet, reply in results:
                check_reply(self, category, packet, reply, udp_limit(packet))
        return defer.gatherResults(pending).addCallback(late)

    def test_name_and_label_bounds(self):
        """Regression: a 64-octet label (type 0x40) and a 256-octet name are FORMERR, a 255-octet name is served."""
        service, port = start_server(self, COREFILE)
        dispatcher = service.listeners[list(service.listeners)[0]].dispatcher

        def rcode(qname):
            packet = header(7, 0x0100) + qname + struct.pack("!HH", 1, 1)
            return dispatcher.handle(packet, ("127.0.0.1", 1), "udp")[3] & 0xF
        label64 = b"\x40" + b"a" * 64 + b"\x07example\x03org\x00"
        self.assertEqual(rcode(label64), 1)
        # 3 x 63 + 49 + 'example' + 'org' = 248 label octets + 6 length octets + root = 255
        limit = b"".join(b"\x3f" + b"a" * 63 for _ in range(3)) + b"\x31" + b"b" * 49 \
            + b"\x07example\x03org\x00"
        self.assertEqual(len(limit), 255)
        self.assertEqual(rcode(limit), 0)  # served (whoami, after hosts falls through)
        over = b"\x01c" + limit
        self.assertEqual(rcode(over), 1)


def blast_udp(port, cases):
    """
    Send each case followed by a sentinel query; every reply before the
    sentinel's belongs to the case (the chain here answers synchronously, so
    replies leave in order): silence is known without waiting for a timeout.
    """
    sentinel = header(0xFFFF, 0x0100) + question(b"www.example.org")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2.0)
    out = []
    deadline = time.monotonic() + 40
    try:
        for category, packet in cases:
            if time.monotonic() > deadline:
                break
            s.sendto(packet, ("127.0.0.1", port))
            s.sendto(sentinel, ("127.0.0.1", port))
            replies = []
            while True:
                data = s.recv(65535)
                if data[:2] == b"\xff\xff" and packet[:2] != b"\xff\xff":
                    break
                replies.append(data)
                if packet[:2] == b"\xff\xff" and len(replies) == 2:
                    break
            out.append((category, packet, replies[0] if replies else None, len(replies)))
    finally:
        s.close()
    return out


class OverSocketsFuzzTests(unittest.TestCase):
    timeout = 90

    @defer.inlineCallbacks
    def test_cases_over_udp_then_still_answering(self):
        """3,000 generated cases over real UDP: the owed reply (or silence for QR=1 and short packets), then correct answers over UDP and TCP."""
        _, port = start_server(self, COREFILE)
        cases = [c for c in WireFuzzer(SEED + 1).cases(OVER_UDP) if c[0] not in ("qr", "short")]
        silent = [c for c in WireFuzzer(SEED + 2).cases(OVER_UDP) if c[0] in ("qr", "short")][:100]
        results = yield threads.deferToThread(blast_udp, port, cases + silent)
        self.assertEqual(len(results), len(cases) + len(silent))
        for category, packet, reply, count in results:
            self.assertLessEqual(count, 1, "one reply at most per request")
            check_reply(self, category, packet, reply, udp_limit(packet))
        self.assertEqual([r for c, p, r, n in results[len(cases):] if r is not None], [])
        reply = yield query(port, "www.example.org.", "A")
        self.assertEqual(rrset_values(reply), ["10.0.0.1"])
        reply = yield query(port, "mail.example.org.", "A", tcp=True)
        self.assertEqual(rrset_values(reply), ["10.0.0.2"])

    @defer.inlineCallbacks
    def test_tcp_frames_each_answered_once_responses_never(self):
        """Pipelined TCP frames of every category on one connection: one reply per query frame, none for QR=1 frames, in a bounded time."""
        _, port = start_server(self, COREFILE)
        cases = [c for c in WireFuzzer(SEED + 3).cases(600) if c[0] != "short"]

        def run():
            s = socket.create_connection(("127.0.0.1", port), timeout=3)
            try:
                s.sendall(b"".join(struct.pack("!H", len(p)) + p for _, p in cases))
                s.shutdown(socket.SHUT_WR)
                buf = b""
                while True:
                    data = s.recv(65535)
                    if not data:
                        break
                    buf += data
            finally:
                s.close()
            replies = []
            while len(buf) >= 2:
                n = struct.unpack("!H", buf[:2])[0]
                replies.append(buf[2:2 + n])
                buf = buf[2 + n:]
            return replies
        replies = yield threads.deferToThread(run)
        queries = [(c, p) for c, p in cases if c != "qr" and not p[2] & 0x80]
        self.assertEqual(len(replies), len(queries))
        by_id = {}
        for r in replies:
            self.assertTrue(r[2] & 0x80)
            by_id.setdefault(r[:2], []).append(r)
        for category, packet in queries:
            self.assertIn(packet[:2], by_id, category)

    @defer.inlineCallbacks
    def test_huge_and_tiny_payload_sizes(self):
        """EDNS payload sizes 0..65535 never let a UDP reply exceed max(512, min(payload, 1232)); ANY stays one small HINFO."""
        _, port = start_server(self, COREFILE)
        for payload in (0, 1, 512, 1232, 4096, 65535):
            packet = header(100 + payload % 1000, 0x0100, ar=1) + question(b"www.example.org", 255) \
                + opt(payload=payload)
            reply = yield threads.deferToThread(udp_exchange, port, packet)
            self.assertIsNotNone(reply)
            self.assertLessEqual(len(reply), max(512, min(payload, 1232)))
            m = dns.message.from_wire(reply)
            self.assertEqual([rd.to_text() for rrset in m.answer for rd in rrset],
                             ['"ANY obsoleted" "See RFC 8482"'])
            # amplification: reply / request stays below 2 for ANY
            self.assertLess(len(reply) / len(packet), 2.0)


def udp_exchange(port, packet, timeout=1.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(packet, ("127.0.0.1", port))
        return s.recv(65535)
    except socket.timeout:
        return None
    finally:
        s.close()
