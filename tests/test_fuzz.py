"""
Fuzzing the running server with random and mutated packets over UDP and TCP.

The server must never crash, never log an internal error (trial fails a test
that logs one) and must still answer correctly afterwards.
"""

import random
import socket
import struct
import time

import dns.message
import dns.rdatatype
from twisted.internet import threads
from twisted.trial import unittest

from tests.helpers import query, rrset_values, start_server

COREFILE = """\
example.org:0 in-addr.arpa:0 {
    bind 127.0.0.1
    errors
    hosts {
        10.0.0.1 www.example.org
        fd00::1 www.example.org
        10.0.0.2 mail.example.org
    }
    whoami
}
"""

UDP_PACKETS = 20000
TCP_PACKETS = 2000
RAW_TCP_STREAMS = 20
SEED = 20261130


def seeds():
    """Valid queries to mutate: several names, types, EDNS and flags."""
    out = []
    for name in ("www.example.org.", "mail.example.org.", "nope.example.org.", "x.example.net.",
                 "1.0.0.10.in-addr.arpa.", "."):
        for rdtype in ("A", "AAAA", "PTR", "MX", "ANY", "SRV"):
            for edns in (-1, 0):
                m = dns.message.make_query(name, rdtype, use_edns=edns, want_dnssec=edns == 0)
                out.append(m.to_wire())
    return out


def mutate(rng, base):
    """One random mutation of a valid packet (or pure noise)."""
    kind = rng.randrange(8)
    data = bytearray(base)
    if kind == 0:  # pure noise of any length
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 300)))
    if kind == 1:  # flip a few bytes
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.getrandbits(8)
    elif kind == 2:  # truncate
        del data[rng.randrange(len(data)):]
    elif kind == 3:  # append garbage
        data += bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64)))
    elif kind == 4:  # random section counts
        data[4:12] = struct.pack("!HHHH", *(rng.choice((0, 1, 2, 3, 0xFFFF)) for _ in range(4)))
    elif kind == 5:  # compression pointer (often a loop) in the question name
        pos = rng.randrange(12, len(data))
        data[pos:pos + 2] = struct.pack("!H", 0xC000 | rng.randrange(0, len(data) + 4))
    elif kind == 6:  # random header flags and opcode, keep QR=0 mostly
        data[2] = rng.getrandbits(8) & (0x7F if rng.random() < 0.9 else 0xFF)
        data[3] = rng.getrandbits(8)
    else:  # random body after a plausible header
        data = data[:12] + bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 200)))
    return bytes(data)


def blast(port, seed):
    """Send the packets from a thread in bursts, draining replies; bounded in time."""
    rng = random.Random(seed)
    bases = seeds()
    deadline = time.monotonic() + 60
    stats = {"udp_sent": 0, "udp_replies": 0, "tcp_sent": 0, "tcp_replies": 0, "raw_streams": 0}
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    u.settimeout(0.02)
    try:
        while stats["udp_sent"] < UDP_PACKETS and time.monotonic() < deadline:
            for _ in range(100):
                u.sendto(mutate(rng, rng.choice(bases)), ("127.0.0.1", port))
                stats["udp_sent"] += 1
            while True:
                try:
                    u.recv(65535)
                    stats["udp_replies"] += 1
                except socket.timeout:
                    break
    finally:
        u.close()
    while stats["tcp_sent"] < TCP_PACKETS and time.monotonic() < deadline:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        try:
            chunk = b""
            for _ in range(100):
                packet = mutate(rng, rng.choice(bases))
                chunk += struct.pack("!H", len(packet)) + packet
                stats["tcp_sent"] += 1
            s.sendall(chunk)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(0.5)
            buf = b""
            try:
                while True:
                    data = s.recv(65535)
                    if not data:
                        break
                    buf += data
            except (socket.timeout, ConnectionResetError):
                pass
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                buf = buf[2 + struct.unpack("!H", buf[:2])[0]:]
                stats["tcp_replies"] += 1
        finally:
            s.close()
    for _ in range(RAW_TCP_STREAMS):  # unframed garbage: random lengths, partial frames, EOF
        if time.monotonic() >= deadline:
            break
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        try:
            s.sendall(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 2000))))
            s.shutdown(socket.SHUT_WR)
            s.settimeout(0.5)
            try:
                while s.recv(65535):
                    pass
            except (socket.timeout, ConnectionResetError):
                pass
            stats["raw_streams"] += 1
        finally:
            s.close()
    return stats


class FuzzTests(unittest.TestCase):
    timeout = 120

    def test_fuzz(self):
        """20,000 random and mutated UDP packets, 2,000 TCP frames and 20 unframed TCP streams:
        no crash, no internal error, and correct answers afterwards over UDP and TCP."""
        _, port = start_server(self, COREFILE)

        def after(stats):
            self.assertEqual(stats["udp_sent"], UDP_PACKETS, stats)
            self.assertEqual(stats["tcp_sent"], TCP_PACKETS, stats)
            # many mutations are still valid or FORMERR-able: the server really processed them
            self.assertGreater(stats["udp_replies"], UDP_PACKETS // 10, stats)
            self.assertGreater(stats["tcp_replies"], 0, stats)
            self.assertEqual(stats["raw_streams"], RAW_TCP_STREAMS, stats)
            return query(port, "www.example.org.", "A")

        def check_udp(reply):
            self.assertEqual(rrset_values(reply), ["10.0.0.1"])
            return query(port, "www.example.org.", "AAAA", tcp=True)

        def check_tcp(reply):
            self.assertEqual(rrset_values(reply), ["fd00::1"])
            return query(port, "1.0.0.10.in-addr.arpa.", "PTR")

        d = threads.deferToThread(blast, port, SEED)
        d.addCallback(after)
        d.addCallback(check_udp)
        d.addCallback(check_tcp)
        d.addCallback(lambda reply: self.assertEqual(rrset_values(reply), ["www.example.org."]))
        return d
