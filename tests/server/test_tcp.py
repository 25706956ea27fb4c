"""The TCP listener: framing, pipelining on one connection, idle timeout, connection cap."""

import socket
import struct
import time

import dns.message
import dns.rcode
from twisted.internet import threads
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from tests.helpers import start_server
from twisted_kdns.server.tcp import DNSStreamFactory

COREFILE = """\
example.org:0 {
    bind 127.0.0.1
    hosts {
        10.0.0.1 a.example.org
        10.0.0.2 b.example.org
    }
}
"""


def frame(data):
    return struct.pack("!H", len(data)) + data


def wire_query(name, qid):
    m = dns.message.make_query(name, "A")
    m.id = qid
    return m.to_wire()


def tcp_exchange(port, chunks, replies, timeout=2.0, delay=0.0):
    """
    Send C{chunks} (each with its own send call) on one TCP connection, then
    read C{replies} framed replies; runs in a thread.  Returns the reply
    payloads, or fewer when the server closed the connection.
    """
    def run():
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            for chunk in chunks:
                s.sendall(chunk)
                if delay:
                    time.sleep(delay)
            out = []
            buf = b""
            while len(out) < replies:
                while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                    n = struct.unpack("!H", buf[:2])[0]
                    out.append(buf[2:2 + n])
                    buf = buf[2 + n:]
                if len(out) >= replies:
                    break
                data = s.recv(65535)
                if not data:
                    break
                buf += data
            return out
        finally:
            s.close()
    return threads.deferToThread(run)


class TcpServerTests(unittest.TestCase):
    def setUp(self):
        self.service, self.port = start_server(self, COREFILE)

    def test_pipelined(self):
        """Two queries sent back to back before reading are both answered on one connection."""
        both = frame(wire_query("a.example.org.", 1)) + frame(wire_query("b.example.org.", 2))

        def check(replies):
            self.assertEqual(len(replies), 2)
            answers = {}
            for data in replies:
                reply = dns.message.from_wire(data)
                answers[reply.id] = [rd.to_text() for rrset in reply.answer for rd in rrset]
            self.assertEqual(answers, {1: ["10.0.0.1"], 2: ["10.0.0.2"]})
        return tcp_exchange(self.port, [both], 2).addCallback(check)

    def test_splitSegments(self):
        """A frame arriving one byte at a time (length prefix included) is reassembled."""
        data = frame(wire_query("a.example.org.", 9))
        chunks = [data[i:i + 1] for i in range(len(data))]

        def check(replies):
            self.assertEqual(len(replies), 1)
            self.assertEqual(dns.message.from_wire(replies[0]).id, 9)
        return tcp_exchange(self.port, chunks, 1, delay=0.001).addCallback(check)

    def test_formerrAndDropKeepConnection(self):
        """A bad body gets FORMERR and a QR=1 frame is ignored; the connection keeps serving."""
        bad = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"\x09x"
        response = bytearray(wire_query("a.example.org.", 5))
        response[2] |= 0x80
        good = wire_query("b.example.org.", 6)

        def check(replies):
            self.assertEqual(len(replies), 2)
            self.assertEqual(struct.unpack("!HH", replies[0][:4]), (0x4242, 0x8100 | dns.rcode.FORMERR))
            self.assertEqual(dns.message.from_wire(replies[1]).id, 6)
        return tcp_exchange(self.port, [frame(bad) + frame(bytes(response)) + frame(good)], 2).addCallback(check)


    def test_halfClose(self):
        """A client that shuts down its write side after sending still gets its answers, then EOF."""
        def run():
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            try:
                s.sendall(frame(wire_query("a.example.org.", 11)) + frame(wire_query("b.example.org.", 12)))
                s.shutdown(socket.SHUT_WR)
                buf = b""
                while True:
                    data = s.recv(65535)
                    if not data:
                        return buf
                    buf += data
            finally:
                s.close()

        def check(buf):
            ids = []
            while buf:
                n = struct.unpack("!H", buf[:2])[0]
                ids.append(dns.message.from_wire(buf[2:2 + n]).id)
                buf = buf[2 + n:]
            self.assertEqual(sorted(ids), [11, 12])
        return threads.deferToThread(run).addCallback(check)


class TcpProtocolTests(unittest.SynchronousTestCase):
    """The protocol and factory driven directly, with a Clock for the idle timeout."""

    class Dispatcher(object):
        def __init__(self):
            self.seen = []

        def handle(self, data, client, transport):
            self.seen.append((data, client, transport))
            return b"reply:" + data

    def connect(self, factory, clock):
        proto = factory.buildProtocol(("127.0.0.1", 1))
        proto.callLater = clock.callLater
        transport = StringTransport(peerAddress=type("A", (), {"host": "127.0.0.1", "port": 4000})())
        proto.makeConnection(transport)
        return proto, transport

    def test_idleTimeout(self):
        """A connection idle for the timeout is closed; traffic resets the timer."""
        clock = Clock()
        dispatcher = self.Dispatcher()
        factory = DNSStreamFactory(dispatcher, idle_timeout=10)
        proto, transport = self.connect(factory, clock)
        clock.advance(9)
        proto.dataReceived(frame(b"q1"))
        self.assertEqual(transport.value(), frame(b"reply:q1"))
        self.assertEqual(dispatcher.seen[0][1:], (("127.0.0.1", 4000), "tcp"))
        clock.advance(9)
        self.assertFalse(transport.disconnecting)
        clock.advance(1.5)
        self.assertTrue(transport.disconnecting)
        proto.connectionLost(None)
        self.assertEqual(factory.connections, set())

    def test_connectionCap(self):
        """At max_connections a new connection evicts the longest-idle one with nothing in flight; when every connection has a query in flight it is refused (buildProtocol returns None)."""
        from twisted.internet import defer

        class Slow(object):
            def handle(self, data, client, transport):
                return defer.Deferred()
        factory = DNSStreamFactory(Slow(), max_connections=2)
        clock = Clock()
        first, first_transport = self.connect(factory, clock)
        second, second_transport = self.connect(factory, clock)
        first.active_at, second.active_at = 2.0, 1.0  # the second has been idle longer
        third = factory.buildProtocol(("127.0.0.1", 3))
        self.assertIsNotNone(third)
        self.assertTrue(second_transport.disconnecting)
        self.assertFalse(first_transport.disconnecting)
        self.assertEqual(factory.connections, {first, third})
        third.callLater = clock.callLater
        third.makeConnection(StringTransport(peerAddress=type("A", (), {"host": "127.0.0.1", "port": 4001})()))
        first.dataReceived(frame(b"q1"))  # both now busy
        third.dataReceived(frame(b"q2"))
        self.assertIsNone(factory.buildProtocol(("127.0.0.1", 3)))
        first.connectionLost(None)
        self.assertIsNotNone(factory.buildProtocol(("127.0.0.1", 3)))
        for p in list(factory.connections):
            p.setTimeout(None)

    def test_dribbled_bytes_do_not_postpone_the_idle_timeout(self):
        """A slowloris client sending a partial frame byte by byte is still closed at the idle timeout."""
        clock = Clock()
        factory = DNSStreamFactory(self.Dispatcher(), idle_timeout=10)
        proto, transport = self.connect(factory, clock)
        for _ in range(9):
            clock.advance(1)
            proto.dataReceived(b"\x01")  # a 257-byte frame that never completes
        self.assertFalse(transport.disconnecting)
        clock.advance(1)
        self.assertTrue(transport.disconnecting)

    def test_inFlightCap(self):
        """Pending queries beyond max_in_flight pause reading; replies go out as they complete."""
        from twisted.internet import defer
        pending = []

        class Slow(object):
            def handle(self, data, client, transport):
                d = defer.Deferred()
                pending.append((d, data))
                return d
        factory = DNSStreamFactory(Slow(), max_in_flight=2)
        proto, transport = self.connect(factory, Clock())
        proto.dataReceived(frame(b"one") + frame(b"two"))
        self.assertEqual(transport.producerState, "paused")
        second, first = pending[1], pending[0]
        second[0].callback(b"r2")
        self.assertEqual(transport.producerState, "producing")
        first[0].callback(b"r1")
        self.assertEqual(transport.value(), frame(b"r2") + frame(b"r1"))
        proto.setTimeout(None)
