# -*- test-case-name: tests.plugins.test_forward_transport -*-
"""
The wire side of forward: long-lived UDP sockets and pooled TCP / TLS
connections to one upstream.

Why not C{twisted.names.client}: it opens a new UDP port for every query,
retries on a (1, 3, 11, 45) s schedule and sends no EDNS.  Here each
upstream has a few connected UDP sockets (kernel-chosen random source ports,
kept for the process lifetime; a connected socket also drops datagrams from
other addresses), every query gets a random 16-bit ID, and a reply is only
accepted when its ID *and* question match an outstanding query: anything
else is ignored, so a spoofed or stale datagram cannot answer or abort a
query.  TLS uses the standard library's C{ssl} through memory BIOs, so no
pyOpenSSL is needed.
"""

import heapq
import os
import ssl
import struct

from twisted.internet import defer, error, protocol
from twisted.logger import Logger

from twisted_kdns.plugins.forward import wire

log = Logger(namespace="kdns.plugins.forward")

_ID = struct.Struct("!H")


class UpstreamError(Exception):
    """A network-level failure talking to an upstream (not a DNS rcode)."""


class UpstreamTimeout(UpstreamError):
    """No matching reply within the read timeout."""


class ConnectionClosed(UpstreamError):
    """The connection went away before the reply arrived."""


def question_key(name, qtype, qcls):
    return (name.lower().rstrip(b"."), qtype, qcls)


def parse_reply(data, key, qwire=None):
    """
    The reply read by C{wire.read_reply} when it matches question C{key}
    (and, when given, our question bytes C{qwire}), or C{None}: not a
    response, unreadable, or another question, all ignored and never
    fatal.  The question is checked before the records are read.
    """
    if len(data) < 12 or not data[2] & 0x80:
        return None
    try:
        return wire.read_reply(data, key, qwire)
    except (wire.BadMessage, ValueError, IndexError):
        return None


class _Ids(object):
    """
    Random 16-bit query IDs from the system's CSPRNG, read 4 KiB at a time
    (one C{getrandom} call per 2,048 queries instead of one per query).
    """

    def __init__(self, chunk=4096):
        self.chunk = chunk
        self.ids = iter(())

    def reset(self):
        """Drop the buffered IDs (a forked child must not reuse its parent's)."""
        self.ids = iter(())

    def next(self):
        for value in self.ids:
            return value
        self.ids = iter(struct.unpack("!%dH" % (self.chunk // 2,), os.urandom(self.chunk)))
        return next(self.ids)


_ids = _Ids()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.reset)


class _Pending(object):
    """One query waiting for its reply: C{ok(reply)} or C{fail(exception)} is called once."""

    __slots__ = ("ok", "fail", "key", "qwire", "deadline", "early")

    def __init__(self, ok, fail, key, qwire, deadline):
        self.ok = ok
        self.fail = fail
        self.key = key
        self.qwire = qwire
        self.deadline = deadline
        self.early = False


def question_wire(request):
    """The question section of a request we built (12-byte header, uncompressed name)."""
    off = 12
    n = len(request)
    while off < n:
        length = request[off]
        if length == 0:
            return request[12:off + 5]
        off += 1 + length
    return None


class _Outstanding(object):
    """
    Queries waiting on one socket or connection, by ID.

    Timeouts: one timer per socket instead of a C{callLater} (and its
    cancellation) per query.  Queries almost always share one timeout, so
    the pending dict, in sending order, is also in deadline order and the
    timer only has to watch its oldest entry.  A query sent with a shorter
    timeout than one before it (the last attempt before forward's 5 s
    deadline, a health probe) also goes into the small C{early} heap.
    Nothing else is kept per query: a reply just removes its entry.
    """

    def __init__(self, reactor):
        self.reactor = reactor
        self.pending = {}
        self.early = []
        self.latest = 0.0
        self.timer = None
        self.timer_at = None
        self.seq = 0

    def add(self, key, timeout):
        """A fresh random ID not in use here, and the Deferred of its reply."""
        d = defer.Deferred()
        msg_id = self.expect(d.callback, d.errback, key, None, timeout)
        return msg_id, d

    def expect(self, ok, fail, key, qwire, timeout):
        """Register a query; C{ok(reply)} or C{fail(exc)} will be called.  @return: its ID."""
        pending = self.pending
        if len(pending) >= 60000:
            raise UpstreamError("too many outstanding queries on one socket")
        while True:
            msg_id = _ids.next()
            if msg_id not in pending:
                break
        deadline = self.reactor.seconds() + timeout
        p = pending[msg_id] = _Pending(ok, fail, key, qwire, deadline)
        if deadline >= self.latest:
            self.latest = deadline
        else:
            p.early = True
            self.seq += 1
            heapq.heappush(self.early, (deadline, self.seq, msg_id, p))
        if self.timer_at is None or deadline < self.timer_at:
            self._arm(deadline)
        return msg_id

    def _arm(self, when):
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer_at = when
        self.timer = self.reactor.callLater(max(0.0, when - self.reactor.seconds()), self._expire)

    def _disarm(self):
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = self.timer_at = None

    def _expire(self):
        self.timer = self.timer_at = None
        now = self.reactor.seconds()
        pending = self.pending
        expired = {}
        following = None  # the next in-order deadline
        for msg_id, p in pending.items():
            if p.deadline <= now:
                expired[msg_id] = p
            elif not p.early:
                following = p.deadline
                break
        heap = self.early
        while heap:
            deadline, _seq, msg_id, p = heap[0]
            live = pending.get(msg_id) is p
            if live and deadline > now:
                following = deadline if following is None else min(following, deadline)
                break
            heapq.heappop(heap)
            if live:
                expired[msg_id] = p
        for msg_id in expired:
            del pending[msg_id]
        if not pending:
            self.early = []
            self.latest = 0.0
        elif following is not None:
            self._arm(following)
        for p in expired.values():
            p.fail(UpstreamTimeout("i/o timeout"))
        if expired:
            self.settled()

    def _forget(self, msg_id):
        p = self.pending.pop(msg_id, None)
        if not self.pending:
            self.early = []
            self.latest = 0.0
            self._disarm()
        return p

    def received(self, data):
        """Match reply bytes to a pending query; unmatched data is dropped."""
        if len(data) < 12:
            return False
        msg_id = _ID.unpack_from(data)[0]
        p = self.pending.get(msg_id)
        if p is None:
            return False
        m = parse_reply(data, p.key, p.qwire)
        if m is None:
            log.debug("ignoring a reply with ID {id} that does not match its question", id=msg_id)
            return False
        self._forget(msg_id)
        p.ok(m)
        self.settled()
        return True

    def fail_all(self, exc):
        pending, self.pending = self.pending, {}
        self.early = []
        self.latest = 0.0
        self._disarm()
        for p in pending.values():
            p.fail(exc)
        if pending:
            self.settled()

    def settled(self):
        """Called when a query left; subclasses close when draining."""


class UDPSocket(protocol.DatagramProtocol, _Outstanding):
    """One connected UDP socket to an upstream, shared by many queries."""

    noisy = False

    def __init__(self, reactor, pool):
        _Outstanding.__init__(self, reactor)
        self.pool = pool
        self.port = None
        self.draining = None

    def datagramReceived(self, data, addr):
        self.received(data)

    def connectionRefused(self):
        # ICMP port unreachable: the upstream is not listening; every query
        # on this socket went to the same place, so all of them fail now.
        self.fail_all(UpstreamError("connection refused"))

    def stopProtocol(self):
        # The epoll reactor reports the ICMP error of a connected UDP socket
        # as EPOLLERR and closes the port itself: same meaning as a refusal.
        if self.port is not None:
            self.port = None
            self.pool.forget(self)
            self.fail_all(UpstreamError("connection refused"))

    def send(self, request, key, timeout):
        d = defer.Deferred()
        self.send_to(request, key, None, timeout, d.callback, d.errback)
        return d

    def send_to(self, request, key, qwire, timeout, ok, fail):
        """Send; C{ok(reply)} or C{fail(exception)} follows (no Deferred on the hot path)."""
        msg_id = self.expect(ok, fail, key, qwire, timeout)
        try:
            self.transport.write(_ID.pack(msg_id) + request[2:])
        except OSError as e:
            p = self._forget(msg_id)
            if p is not None:
                p.fail(UpstreamError(str(e)))

    def settled(self):
        if self.draining is not None and not self.pending:
            drained, self.draining = self.draining, None
            self.close().chainDeferred(drained)

    def drain(self):
        """Close once the outstanding queries are answered or timed out."""
        if not self.pending:
            return self.close()
        self.draining = defer.Deferred()
        return self.draining

    def close(self):
        if self.port is not None:
            port, self.port = self.port, None
            self.fail_all(ConnectionClosed("forward stopped"))
            return defer.maybeDeferred(port.stopListening)
        return defer.succeed(None)


class UDPPool(object):
    """
    A few long-lived connected UDP sockets to one upstream, used in turn.
    Opened on first use; never one socket per query.
    """

    def __init__(self, reactor, host, port, size=4):
        self.reactor = reactor
        self.host = host
        self.port = port
        self.size = size
        self.sockets = []
        self.index = 0
        self.closed = False

    def _open(self):
        sock = UDPSocket(self.reactor, self)
        interface = "::" if ":" in self.host else ""
        sock.port = self.reactor.listenUDP(0, sock, interface=interface)
        sock.transport.connect(self.host, self.port)
        self.sockets.append(sock)
        return sock

    def query(self, request, key, timeout):
        d = defer.Deferred()
        self.query_to(request, key, None, timeout, d.callback, d.errback)
        return d

    def query_to(self, request, key, qwire, timeout, ok, fail):
        """As L{query}, calling C{ok(reply)} or C{fail(exception)} (maybe at once)."""
        if self.closed:
            return fail(ConnectionClosed("forward stopped"))
        if len(self.sockets) < self.size:
            try:
                sock = self._open()
            except (OSError, error.CannotListenError) as e:
                if not self.sockets:
                    return fail(UpstreamError("cannot open a UDP socket: %s" % (e,)))
                sock = self.sockets[0]
        else:
            self.index = (self.index + 1) % len(self.sockets)
            sock = self.sockets[self.index]
        sock.send_to(request, key, qwire, timeout, ok, fail)

    def forget(self, sock):
        if sock in self.sockets:
            self.sockets.remove(sock)

    def local_ports(self):
        out = set()
        for sock in self.sockets:
            if sock.port is not None:
                out.add(sock.port.getHost().port)
        return out

    def close(self, graceful=False):
        """Close every socket; C{graceful} lets outstanding queries finish first."""
        self.closed = True
        ds = [sock.drain() if graceful else sock.close() for sock in self.sockets]
        self.sockets = []
        return defer.gatherResults(ds)


class StreamConnection(protocol.Protocol, _Outstanding):
    """
    A TCP (optionally TLS) connection to an upstream carrying
    length-prefixed DNS messages.  TLS runs through C{ssl.SSLObject} on
    memory BIOs; C{ready} fires once the handshake is done.
    """

    def __init__(self, reactor, pool, tls_context=None, server_hostname=None):
        _Outstanding.__init__(self, reactor)
        self.pool = pool
        self.buffer = b""
        self.ready = defer.Deferred()
        self.lost = defer.Deferred()
        self.connected_ = False
        self.last_used = 0.0
        self.tls = None
        if tls_context is not None:
            self._in = ssl.MemoryBIO()
            self._out = ssl.MemoryBIO()
            self.tls = tls_context.wrap_bio(self._in, self._out, server_side=False,
                                            server_hostname=server_hostname)
            self.handshaken = False

    def connectionMade(self):
        self.connected_ = True
        if self.tls is None:
            self.ready.callback(self)
        else:
            self._handshake()

    def _flush(self):
        data = self._out.read()
        if data:
            self.transport.write(data)

    def _handshake(self):
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, ssl.CertificateError) as e:
            self._flush()
            if not self.ready.called:
                self.ready.errback(UpstreamError("TLS handshake failed: %s" % (e,)))
            self.transport.loseConnection()
            return
        self.handshaken = True
        self._flush()
        if not self.ready.called:
            self.ready.callback(self)

    def dataReceived(self, data):
        if self.tls is None:
            self._frames(data)
            return
        self._in.write(data)
        if not self.handshaken:
            self._handshake()
            if not self.handshaken:
                return
        chunks = []
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLError):
                self.transport.loseConnection()
                break
            if not chunk:
                break
            chunks.append(chunk)
        self._flush()
        if chunks:
            self._frames(b"".join(chunks))

    def _frames(self, data):
        buf = self.buffer + data
        while len(buf) >= 2:
            n = _ID.unpack_from(buf)[0]
            if len(buf) < 2 + n:
                break
            self.received(buf[2:2 + n])
            buf = buf[2 + n:]
        self.buffer = buf

    def send(self, request, key, timeout):
        msg_id, d = self.add(key, timeout)
        frame = _ID.pack(len(request)) + _ID.pack(msg_id) + request[2:]
        if self.tls is not None:
            self.tls.write(frame)
            self._flush()
        else:
            self.transport.write(frame)
        return d

    def connectionLost(self, reason=None):
        self.connected_ = False
        if not self.ready.called:
            self.ready.errback(UpstreamError("connection lost during setup"))
        self.fail_all(ConnectionClosed("connection closed by upstream"))
        self.pool.forget(self)
        if not self.lost.called:
            self.lost.callback(None)

    def close(self):
        """Close; the Deferred fires once the socket is really gone."""
        if self.connected_ and self.transport is not None:
            self.transport.loseConnection()
            return self.lost
        return defer.succeed(None)


class _ConnFactory(protocol.ClientFactory):
    """Connects one L{StreamConnection}; quiet (no per-connection log lines)."""

    noisy = False

    def __init__(self, conn):
        self.conn = conn

    def buildProtocol(self, addr):
        return self.conn

    def clientConnectionFailed(self, connector, reason):
        if not self.conn.ready.called:
            self.conn.ready.errback(UpstreamError(reason.getErrorMessage()))


class StreamPool(object):
    """
    Idle TCP/TLS connections to one upstream, reused (LIFO) until they
    have been idle longer than C{expire}; one query at a time per
    connection, as CoreDNS does.
    """

    def __init__(self, reactor, host, port, expire, tls_context=None, server_hostname=None):
        self.reactor = reactor
        self.host = host
        self.port = port
        self.expire = expire
        self.tls_context = tls_context
        self.server_hostname = server_hostname
        self.idle = []
        self.busy = set()
        self.closed = False

    @property
    def proto(self):
        return "tcp-tls" if self.tls_context is not None else "tcp"

    def get(self, timeout):
        """
        C{(connection, reused)} via a Deferred: an idle connection younger
        than C{expire}, or a new one.
        """
        now = self.reactor.seconds()
        while self.idle:
            conn = self.idle.pop()
            if conn.connected_ and now - conn.last_used <= self.expire:
                self.busy.add(conn)
                return defer.succeed((conn, True))
            conn.close()
        if self.closed:
            return defer.fail(ConnectionClosed("forward stopped"))
        conn = StreamConnection(self.reactor, self, self.tls_context, self.server_hostname)
        connector = self.reactor.connectTCP(self.host, self.port, _ConnFactory(conn),
                                            timeout=max(1, int(timeout + 0.999)))
        d = conn.ready

        def expire():
            if not d.called:
                d.errback(UpstreamTimeout("dial timeout"))
            if connector.state == "connecting":
                connector.stopConnecting()
            else:
                conn.close()
        guard = self.reactor.callLater(timeout, expire)

        def done(result):
            if guard.active():
                guard.cancel()
            return result

        def failed(f):
            if f.check(UpstreamError):
                return f
            raise UpstreamError(f.getErrorMessage())
        d.addBoth(done)
        d.addCallbacks(lambda c: (self.busy.add(c) or (c, False)), failed)
        return d

    def sweep(self):
        """Close idle connections unused for longer than C{expire}."""
        now = self.reactor.seconds()
        keep = []
        for conn in self.idle:
            if now - conn.last_used > self.expire or not conn.connected_:
                conn.close()
            else:
                keep.append(conn)
        self.idle = keep

    def put(self, conn):
        self.busy.discard(conn)
        if self.closed or not conn.connected_ or conn.pending:
            conn.close()
            return
        conn.last_used = self.reactor.seconds()
        self.idle.append(conn)

    def drop(self, conn):
        self.busy.discard(conn)
        conn.close()

    def forget(self, conn):
        self.busy.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def local_ports(self):
        out = set()
        for conn in list(self.idle) + list(self.busy):
            if conn.transport is not None:
                try:
                    out.add(conn.transport.getHost().port)
                except Exception:
                    pass
        return out

    def close(self, graceful=False):
        """Close idle connections now; busy ones too unless C{graceful}
        (then they close when their query is done)."""
        self.closed = True
        ds = [conn.close() for conn in self.idle]
        self.idle = []
        for conn in list(self.busy):
            ds.append(conn.lost if graceful and conn.connected_ else conn.close())
        return defer.gatherResults(ds)


def tls_context(args, servername):
    """
    An C{ssl.SSLContext} for C{tls [CERT KEY [CA]] | tls CA | tls}: the
    system CAs unless a CA file is given; a client certificate when CERT
    and KEY are; the name checked is C{tls_servername} (or the IP).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    args = list(args or [])
    ca = None
    if len(args) == 1:
        ca = args[0]
    elif len(args) >= 2:
        ctx.load_cert_chain(args[0], args[1])
        if len(args) == 3:
            ca = args[2]
    if ca:
        ctx.load_verify_locations(cafile=ca)
    else:
        ctx.load_default_certs()
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
