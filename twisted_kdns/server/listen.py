# -*- test-case-name: tests.server.test_listen -*-
"""
Opening the UDP+TCP socket pair of one listener.

We create the sockets ourselves and hand them to the reactor with
C{adoptDatagramPort}/C{adoptStreamPort}: C{listenUDP}/C{listenTCP} cannot
bind the IPv4 and IPv6 wildcards side by side (no C{IPV6_V6ONLY}) and cannot
set C{SO_REUSEPORT}.  Port 0 picks one free port for both UDP and TCP.
"""

import errno
import socket

from twisted.logger import Logger

log = Logger(namespace="kdns.server.listen")


def _family(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _socket(family, kind, address, port, reuseport):
    s = socket.socket(family, kind)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport and hasattr(socket, "SO_REUSEPORT"):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((address, port))
        if kind == socket.SOCK_STREAM:
            s.listen(1024)
        s.setblocking(False)
        return s
    except Exception:
        s.close()
        raise


def open_pair(reactor, address, port, udp_protocol, tcp_factory, reuseport=False):
    """
    Bind UDP and TCP on C{address}:C{port}.

    @return: C{(udp_port, tcp_port, actual_port)}.
    @raise OSError: the address cannot be bound (in use, not local, ...).
    """
    family = _family(address)
    for attempt in range(20):
        u = _socket(family, socket.SOCK_DGRAM, address, port, reuseport)
        actual = u.getsockname()[1]
        try:
            t = _socket(family, socket.SOCK_STREAM, address, actual, reuseport)
        except OSError as e:
            u.close()
            if port == 0 and e.errno == errno.EADDRINUSE:
                continue
            raise
        try:
            up = reactor.adoptDatagramPort(u.fileno(), family, udp_protocol, maxPacketSize=65535)
            tp = reactor.adoptStreamPort(t.fileno(), family, tcp_factory)
        finally:
            u.close()
            t.close()
        return up, tp, actual
    raise OSError(errno.EADDRINUSE, "no free port for both UDP and TCP")


def wildcard_addresses():
    """The wildcard as two sockets: IPv4 always, IPv6 where the host has it."""
    addrs = ["0.0.0.0"]
    if socket.has_ipv6:
        try:
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.close()
            addrs.append("::")
        except OSError:
            pass
    return addrs
