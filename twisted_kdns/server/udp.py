# -*- test-case-name: tests.server.test_udp -*-
"""The UDP listener: one datagram in, at most one datagram out."""

from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from twisted_kdns.server import fastpath

log = Logger(namespace="kdns.server.udp")


class DNSDatagramProtocol(DatagramProtocol):
    """Hands each datagram to a L{Dispatcher}; never raises."""

    noisy = False
    _sendto = None

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        # Repeated cache hits are answered from encoded replies (fastpath.py).
        self.fast = fastpath.attach(dispatcher, "udp")

    def startProtocol(self):
        # Replies go to the socket's own sendto: Port.write checks the address
        # with isIPAddress/isIPv6Address on every send (about a fifth of a
        # fast-path hit, issue 8).  Our addresses come from recvfrom, so the
        # check adds nothing.  Transports without a socket (test doubles) keep
        # transport.write.
        sock = getattr(self.transport, "socket", None)
        self._sendto = getattr(sock, "sendto", None)

    def stopProtocol(self):
        self._sendto = None
        if self.fast is not None:
            self.fast.close()

    def datagramReceived(self, data, addr):
        handle = self.dispatcher.handle if self.fast is None else self.fast.handle
        result = handle(data, addr[:2], "udp")
        if result is None:
            return
        if isinstance(result, defer.Deferred):
            result.addCallback(self._send, addr).addErrback(self._lost, addr)
            return
        self._send(result, addr)

    def _send(self, data, addr):
        if data is None or self.transport is None:
            return
        sendto = self._sendto
        if sendto is not None:
            try:
                sendto(data, addr)
                return
            except OSError:
                pass  # EAGAIN, EINTR, EMSGSIZE...: Port.write handles or reports it
        try:
            self.transport.write(data, addr)
        except OSError as e:
            # ICMP errors and full buffers surface here; the client retries.
            log.debug("could not send to {addr}: {err}", addr=addr, err=e)

    def _lost(self, failure, addr):
        log.failure("reply to {addr} lost", failure, addr=addr)
