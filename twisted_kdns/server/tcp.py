# -*- test-case-name: tests.server.test_tcp -*-
"""
The TCP listener: 2-byte length framing (RFC 1035 4.2.2), several pipelined
queries per connection answered as they complete (RFC 7766), an idle
timeout, a per-connection cap on queries in flight and a cap on connections.
"""

import time

from twisted.internet import defer
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import Int16StringReceiver
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from twisted_kdns.server import fastpath

log = Logger(namespace="kdns.server.tcp")

IDLE_TIMEOUT = 10.0
MAX_IN_FLIGHT = 64
MAX_CONNECTIONS = 1000


@implementer(IHalfCloseableProtocol)
class DNSStreamProtocol(Int16StringReceiver, TimeoutMixin):
    """
    One client connection.  Half-close aware: a client that sends its
    queries and then shuts down its write side still gets every answer,
    and the connection closes once the last one is written.
    """

    noisy = False
    MAX_LENGTH = 65535
    read_closed = False

    def __init__(self, dispatcher, factory):
        self.dispatcher = dispatcher
        self.factory = factory
        self.in_flight = 0
        self.paused = False
        self.peer = ("", 0)

    active_at = 0.0  # monotonic time of the last complete query or reply (eviction order)

    def connectionMade(self):
        peer = self.transport.getPeer()
        self.peer = (peer.host, peer.port)
        self.setTimeout(self.factory.idle_timeout)

    def resetTimeout(self):
        """Only complete queries and replies count as activity: a client dribbling bytes does not."""
        self.active_at = time.monotonic()
        TimeoutMixin.resetTimeout(self)

    def stringReceived(self, data):
        self.resetTimeout()
        fast = getattr(self.factory, "fast", None)  # repeated cache hits: fastpath.py
        result = (self.dispatcher.handle if fast is None else fast.handle)(data, self.peer, "tcp")
        if result is None:
            return
        if isinstance(result, defer.Deferred):
            self.in_flight += 1
            if self.in_flight >= self.factory.max_in_flight and not self.paused:
                self.paused = True
                self.transport.pauseProducing()
            result.addBoth(self._done)
            return
        self._send(result)

    def _done(self, data):
        self.in_flight -= 1
        if self.paused and self.in_flight < self.factory.max_in_flight:
            self.paused = False
            if self.transport is not None and self.connected:
                self.transport.resumeProducing()
        if isinstance(data, (bytes, bytearray)):
            self._send(data)
        if self.read_closed and self.in_flight == 0 and self.connected:
            self.transport.loseConnection()
        return None

    def readConnectionLost(self):
        """The client sent EOF: finish what is in flight, then close."""
        self.read_closed = True
        if self.in_flight == 0:
            self.transport.loseConnection()

    def writeConnectionLost(self):
        self.transport.loseConnection()

    def _send(self, data):
        if self.connected:
            self.sendString(data)
            self.resetTimeout()

    def lengthLimitExceeded(self, length):
        self.transport.loseConnection()

    def timeoutConnection(self):
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self.connected = 0  # late replies of pipelined queries are dropped
        self.setTimeout(None)
        self.factory.connections.discard(self)


class DNSStreamFactory(Factory):
    """Builds L{DNSStreamProtocol}s, refusing connections beyond the cap."""

    noisy = False

    def __init__(self, dispatcher, max_connections=MAX_CONNECTIONS, idle_timeout=IDLE_TIMEOUT,
                 max_in_flight=MAX_IN_FLIGHT):
        self.dispatcher = dispatcher
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.max_in_flight = max_in_flight
        self.connections = set()
        self.fast = fastpath.attach(dispatcher, "tcp")

    def stopFactory(self):
        if self.fast is not None:
            self.fast.close()

    def buildProtocol(self, addr):
        if len(self.connections) >= self.max_connections and not self._evict():
            return None  # Twisted closes the connection at once
        p = DNSStreamProtocol(self.dispatcher, self)
        p.active_at = time.monotonic()
        self.connections.add(p)
        return p

    def _evict(self):
        """
        At the cap, close the connection idle the longest with no query in
        flight, so that a client holding every slot (slowloris) cannot lock
        out the others (RFC 7766 6.2.3: servers may close idle connections
        under load).  C{False} when every connection is busy.
        """
        idle = [p for p in self.connections if p.in_flight == 0]
        if not idle:
            return False
        victim = min(idle, key=lambda p: p.active_at)
        self.connections.discard(victim)
        victim.setTimeout(None)
        if victim.transport is not None:
            victim.transport.abortConnection()
        return True
