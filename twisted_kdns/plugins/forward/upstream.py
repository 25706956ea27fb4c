# -*- test-case-name: tests.plugins.test_forward -*-
"""
One upstream server: its transports, its failure count and its health
probe.

Health follows CoreDNS: a failed exchange starts a probe (C{<domain> IN
NS}, RD unless C{no_rec}, over the upstream's own transport, 1 s timeout)
that repeats every C{health_check} interval until one succeeds.  Any reply
that parses counts as healthy and resets the failure count; each failed
probe adds one.  The upstream is down while C{fails > max_fails}
(C{max_fails 0}: never probed, never down).
"""

from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import dns

from twisted_kdns.plugins.forward import metrics
from twisted_kdns.plugins.forward.transport import (
    ConnectionClosed, StreamPool, UDPPool, UpstreamError, question_key)
from twisted_kdns.plugins.forward.wire import build_request

log = Logger(namespace="kdns.plugins.forward")

HC_TIMEOUT = 1.0


class Upstream(object):
    """
    @ivar spec: the L{UpstreamSpec} it was built from.
    @ivar fails: consecutive failed health probes.
    """

    def __init__(self, spec, cfg, reactor, tls_context=None):
        self.spec = spec
        self.cfg = cfg
        self.reactor = reactor
        self.label = spec.label
        self.fails = 0
        self.tls = spec.tls
        self.udp = UDPPool(reactor, spec.host, spec.port)
        servername = spec.servername or cfg.tls_servername or spec.host
        self.stream = StreamPool(reactor, spec.host, spec.port, cfg.expire,
                                 tls_context if spec.tls else None, servername)
        self.probing = False
        self.probe_call = None
        self.active = False  # health probes only run between start() and stop()
        self.closed = False
        counts = metrics.COUNTS.counts(self.label)
        # Plain counters (metrics.ForwardCollector exports them when scraped).
        self.count_request = counts.request
        self.count_response = counts.response

    def __repr__(self):
        return "<Upstream %r fails=%d>" % (self.spec, self.fails)

    # -- health ---------------------------------------------------------

    def down(self):
        max_fails = self.cfg.max_fails
        return max_fails != 0 and self.fails > max_fails

    def start(self):
        self.active = True

    def stop(self):
        self.active = False
        if self.probe_call is not None and self.probe_call.active():
            self.probe_call.cancel()
        self.probe_call = None
        self.probing = False

    def kick(self):
        """A query failed here: probe now and every interval until healthy."""
        if self.cfg.max_fails == 0 or self.probing or not self.active or self.closed:
            return
        self.probing = True
        self._probe()

    def _probe(self):
        self.probe_call = None
        if not self.active or self.closed:
            self.probing = False
            return
        name = self.cfg.hc_domain or b"."
        request = build_request(name, dns.NS, dns.IN, rd=self.cfg.hc_recursion)
        key = question_key(name, dns.NS, dns.IN)
        proto = "tls" if self.tls else ("tcp" if self.cfg.force_tcp else "udp")
        d = self.send(request, key, proto, HC_TIMEOUT)
        d.addCallbacks(self._healthy, self._unhealthy)

    def _healthy(self, _):
        if self.fails:
            log.info("forward: upstream {to} is healthy again", to=self.label)
        self.fails = 0
        self.probing = False

    def _unhealthy(self, failure):
        self.fails += 1
        metrics.healthcheck_failed(self.label)
        if self.fails == self.cfg.max_fails + 1:
            log.warn("forward: upstream {to} is down: {why}", to=self.label,
                     why=failure.getErrorMessage())
        if self.active and not self.closed:
            self.probe_call = self.reactor.callLater(self.cfg.health_check, self._probe)
        else:
            self.probing = False

    # -- exchange -------------------------------------------------------

    def send(self, request, key, proto, timeout):
        """
        One exchange over C{proto} (C{"udp"}, C{"tcp"}; a C{tls://}
        upstream always uses TLS): a Deferred firing with the reply
        C{dns.Message} or failing with L{UpstreamError}.
        """
        if self.closed:
            return defer.fail(ConnectionClosed("upstream removed"))
        if proto == "udp" and not self.tls:
            return self.udp.query(request, key, timeout)
        return self._stream(request, key, timeout, retry=True)

    def send_to(self, request, key, qwire, proto, timeout, ok, fail):
        """
        L{send} without a Deferred on the UDP path: C{ok(reply)} or
        C{fail(exception or Failure)} is called once, maybe before this
        returns.  C{qwire}: the question as sent, for the fast reply match.
        """
        if self.closed:
            return fail(ConnectionClosed("upstream removed"))
        if proto == "udp" and not self.tls:
            return self.udp.query_to(request, key, qwire, timeout, ok, fail)
        self._stream(request, key, timeout, retry=True).addCallbacks(ok, fail)

    def _stream(self, request, key, timeout, retry):
        pool = self.stream
        started = self.reactor.seconds()
        d = pool.get(timeout)

        def connected(got):
            conn, reused = got
            (metrics.conn_hit if reused else metrics.conn_miss)(self.label, pool.proto)
            left = max(0.05, timeout - (self.reactor.seconds() - started))
            r = conn.send(request, key, left)

            def ok(message):
                pool.put(conn)
                return message

            def bad(f):
                pool.drop(conn)
                # A cached connection the upstream had already closed: one
                # retry on a fresh one, as CoreDNS does on ErrCachedClosed.
                if reused and retry and f.check(ConnectionClosed) and not pool.closed:
                    return self._stream(request, key, left, retry=False)
                return f
            return r.addCallbacks(ok, bad)
        return d.addCallback(connected)

    def local_ports(self):
        """Our source ports towards this upstream (loop diagnosis)."""
        return self.udp.local_ports() | self.stream.local_ports()

    def close(self, graceful=False):
        self.stop()
        self.closed = True
        return defer.gatherResults([self.udp.close(graceful), self.stream.close(graceful)])


__all__ = ["Upstream", "UpstreamError"]
