"""
The UDP listener's send path (server/udp.py): replies go to the socket's
own C{sendto}, and fall back to C{transport.write} when there is no socket or
the direct send fails.
"""

import socket

from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.trial import unittest

from twisted_kdns.server.udp import DNSDatagramProtocol


class Echo(object):
    """A dispatcher double: answers every datagram with b"re:" + the datagram."""

    def handle(self, data, client, transport):
        return b"re:" + data


class RecordingTransport(object):
    """A transport double with C{write} only, or a socket too."""

    def __init__(self, sock=None):
        if sock is not None:
            self.socket = sock
        self.written = []

    def write(self, data, addr):
        self.written.append((data, addr))


class Client(DatagramProtocol):
    """Fires C{d} with the first datagram received."""

    def __init__(self, d):
        self.d = d

    def datagramReceived(self, data, addr):
        if not self.d.called:
            self.d.callback(data)


class DirectSendTests(unittest.TestCase):
    def test_realPortRepliesWithoutPortWrite(self):
        """On a real Twisted UDP port the reply is sent by the socket's sendto, not Port.write."""
        proto = DNSDatagramProtocol(Echo())
        port = reactor.listenUDP(0, proto, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        port_writes = []
        real_write = port.write

        def write(data, addr=None):
            port_writes.append((data, addr))
            return real_write(data, addr)
        port.write = write
        d = defer.Deferred()
        client = reactor.listenUDP(0, Client(d), interface="127.0.0.1")
        self.addCleanup(client.stopListening)
        client.write(b"ping", ("127.0.0.1", port.getHost().port))

        def check(reply):
            self.assertEqual(reply, b"re:ping")
            self.assertEqual(port_writes, [])
        return d.addCallback(check)

    def test_noSocketUsesTransportWrite(self):
        """A transport without a socket attribute gets the reply through write()."""
        proto = DNSDatagramProtocol(Echo())
        transport = RecordingTransport()
        proto.makeConnection(transport)
        proto.datagramReceived(b"q", ("127.0.0.1", 5353))
        self.assertEqual(transport.written, [(b"re:q", ("127.0.0.1", 5353))])

    def test_failedSendtoFallsBackToWrite(self):
        """When the direct sendto raises (here a closed socket), the reply goes through write()."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.close()
        proto = DNSDatagramProtocol(Echo())
        transport = RecordingTransport(sock)
        proto.makeConnection(transport)
        proto.datagramReceived(b"q", ("127.0.0.1", 5353))
        self.assertEqual(transport.written, [(b"re:q", ("127.0.0.1", 5353))])

    def test_stoppedProtocolSendsNothing(self):
        """After the port stops, a late (asynchronous) reply is dropped, not sent on the closed socket."""
        proto = DNSDatagramProtocol(Echo())
        port = reactor.listenUDP(0, proto, interface="127.0.0.1")
        d = port.stopListening()

        def stopped(_):
            self.assertIsNone(proto._sendto)
            proto._send(b"late", ("127.0.0.1", 5353))  # must not raise
        return defer.maybeDeferred(lambda: d).addCallback(stopped)
