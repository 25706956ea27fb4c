# -*- test-case-name: tests.plugins.test_forward -*-
"""
L{Forward}: one C{forward} directive (its upstreams, policy and limits);
L{ForwardRouter}: every C{forward} of a server block, routed by the
longest FROM zone that contains the name.

The per-query walk follows CoreDNS: upstreams in policy order, skipping the
ones marked down; each attempt gets the read timeout (2 s) and the whole
query a 5 s deadline; a failed attempt starts the upstream's health probe
and moves on to the next upstream.  When every upstream is down one random
upstream is tried anyway (C{coredns_forward_healthcheck_broken_total}),
unless C{failfast_all_unhealthy_upstreams}.  A pass is repeated (until the
deadline) only if one of its attempts timed out, i.e. a datagram may have
been lost; refused or closed upstreams end the query at once.  Nothing
succeeded: SERVFAIL, never a hang.
"""

import random

from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import dns
from twisted.python.failure import Failure

from twisted_kdns.errors import DNSRcode, FormErr, NotImp, NXDomain, PassToNext, Refused, ServFail
from twisted_kdns.names import fqdn, is_subdomain
from twisted_kdns.plugins.forward import metrics
from twisted_kdns.plugins.forward.policy import make as make_policy
from twisted_kdns.plugins.forward.transport import UpstreamError, UpstreamTimeout, question_key
from twisted_kdns.plugins.forward.wire import build_request
from twisted_kdns.plugins.forward.upstream import Upstream
from twisted_kdns.response import Response

log = Logger(namespace="kdns.plugins.forward")

DEADLINE = 5.0
MAX_UDP_OFFER = 1232

_RCODE_ERRORS = {dns.ENAME: None, dns.ESERVER: ServFail, dns.EREFUSED: Refused,
                 dns.ENOTIMP: NotImp, dns.EFORMAT: FormErr}


def to_response(message):
    """The upstream's answer as a L{Response} keeping its rcode and AA/RA/AD."""
    ext = 0
    additional = []
    for rr in message.additional:
        if rr.type == dns.OPT:
            ext = (rr.ttl >> 24) & 0xFF
        else:
            additional.append(rr)
    rcode = (ext << 4) | message.rCode
    return Response(message.answers, message.authority, additional, rcode=rcode,
                    aa=bool(message.auth), ra=bool(message.recAv),
                    ad=bool(message.authenticData), plugin="forward")


def rcode_error(response):
    """The exception carrying a non-NOERROR upstream answer (NXDOMAIN keeps its SOA)."""
    rcode = response.rcode
    if rcode == dns.ENAME:
        return NXDomain(response=response)
    cls = _RCODE_ERRORS.get(rcode) or DNSRcode
    return cls(response=response)


def outcome(response):
    """A Deferred for the client: success for NOERROR, the rcode's exception otherwise."""
    if response.rcode == dns.OK:
        return defer.succeed(response)
    return defer.fail(rcode_error(response))


class Forward(object):
    """One C{forward FROM TO...} directive."""

    def __init__(self, cfg, reactor, tls_context=None, rng=None):
        self.cfg = cfg
        self.reactor = reactor
        self.rng = rng or random.Random()
        self.tls_context = tls_context
        self.from_zone = cfg.from_zone
        self.ignored = tuple(cfg.ignored)
        self.policy = make_policy(cfg.policy, self.rng)
        self.upstreams = [Upstream(s, cfg, reactor, tls_context) for s in cfg.to]
        self.inflight = 0
        self.active = False

    def __repr__(self):
        return "<Forward %s -> %r>" % (fqdn(self.from_zone), [u.spec for u in self.upstreams])

    def handles(self, qname):
        """CoreDNS's match: under FROM and not under an C{except} name (FROM itself always)."""
        if not is_subdomain(qname, self.from_zone):
            return False
        if qname == self.from_zone:
            return True
        return not any(is_subdomain(qname, z) for z in self.ignored)

    def query(self, kq, timeout=None):
        if not self.handles(kq.qname):
            raise PassToNext(kq.qname)
        limit = self.cfg.max_concurrent
        if limit and self.inflight >= limit:
            metrics.MAX_CONCURRENT_REJECTS.inc()
            raise Refused("concurrent queries exceeded maximum %d" % (limit,))
        if not self.upstreams:
            raise ServFail("forward: no upstream addresses for %s" % (fqdn(self.from_zone),))
        cfg = self.cfg
        if cfg.force_tcp:
            proto = "tcp"
        elif cfg.prefer_udp:
            proto = "udp"
        else:
            proto = "tcp" if kq.transport == "tcp" else "udp"
        payload = None
        if kq.edns is not None:
            payload = max(512, min(kq.edns.payload, MAX_UDP_OFFER))
        message = kq.message
        rd = bool(message.recDes) if message is not None else True
        request = build_request(kq.name.name, kq.type, kq.cls, rd=rd, cd=kq.cd,
                                payload=payload, do=kq.do)
        key = question_key(kq.name.name, kq.type, kq.cls)
        self.inflight += 1
        return _Exchange(self, kq, request, key, proto).start()

    def start(self):
        self.active = True
        for u in self.upstreams:
            u.start()

    def stop(self):
        self.active = False
        return defer.gatherResults([u.close(graceful=True) for u in self.upstreams])

    def replace_upstreams(self, specs):
        """
        Switch to C{specs} (a resolv.conf changed): upstreams whose address
        stays keep their sockets and health; removed ones are closed after
        their outstanding queries.
        """
        current = {u.spec.key: u for u in self.upstreams}
        new = []
        for spec in specs:
            u = current.pop(spec.key, None)
            if u is None:
                u = Upstream(spec, self.cfg, self.reactor, self.tls_context)
                if self.active:
                    u.start()
            new.append(u)
        self.upstreams = new
        for u in current.values():
            u.close(graceful=True)

    def upstream_for_port(self, port):
        for u in self.upstreams:
            if port in u.local_ports():
                return u
        return None


def _send(up, request, key, proto, timeout):
    """C{up.send}, with a synchronous exception turned into a failed Deferred (never a hang)."""
    try:
        return up.send(request, key, proto, timeout)
    except Exception:
        return defer.fail(Failure())


class _Exchange(object):
    """One client query walking the upstreams."""

    def __init__(self, fwd, kq, request, key, proto):
        self.fwd = fwd
        self.kq = kq
        self.request = request
        self.key = key
        self.proto = proto
        self.reactor = fwd.reactor
        self.order = fwd.policy.order(fwd.upstreams)
        self.total = len(fwd.upstreams)
        self.i = 0
        self.fails = 0
        self.broken = False
        self.timed_out = False
        self.deadline = self.reactor.seconds() + DEADLINE
        self.last_error = None
        self.last_reply = None
        self.d = defer.Deferred()

    def start(self):
        self.step()
        return self.d

    def step(self):
        fwd = self.fwd
        while True:
            now = self.reactor.seconds()
            if now >= self.deadline:
                return self.give_up()
            if self.i >= len(self.order):
                if self.last_reply is not None:
                    return self.deliver(self.last_reply)
                if not self.timed_out or self.broken:
                    return self.give_up()
                # A datagram may have been lost: another pass while time remains.
                self.i = self.fails = 0
                self.timed_out = False
            up = self.order[self.i]
            self.i += 1
            if up.down():
                self.fails += 1
                if self.fails < self.total:
                    continue
                metrics.HC_BROKEN.inc()
                if fwd.cfg.failfast:
                    self.last_error = None
                    return self.give_up("no healthy upstreams")
                # Every upstream is marked down: the probes may be wrong, try one anyway.
                self.broken = True
                up = fwd.rng.choice(fwd.upstreams)
            timeout = min(fwd.cfg.read_timeout, self.deadline - now)
            up.count_request()
            d = _send(up, self.request, self.key, self.proto, timeout)
            d.addCallbacks(self.reply, self.error, callbackArgs=(up, now, self.proto), errbackArgs=(up,))
            return

    def reply(self, message, up, started, proto):
        if message.trunc and proto == "udp" and not up.tls:
            # Truncated: ask the same upstream again over TCP.
            left = self.deadline - self.reactor.seconds()
            if left > 0:
                d = _send(up, self.request, self.key, "tcp", min(self.fwd.cfg.read_timeout, left))
                d.addCallbacks(self.reply, self.error, callbackArgs=(up, started, "tcp"),
                               errbackArgs=(up,))
                return
        response = to_response(message)
        up.count_response(response.rcode, self.reactor.seconds() - started)
        if response.rcode in self.fwd.cfg.failover_rcodes:
            self.last_reply = response
            if self.i < len(self.order):
                return self.step()
        self.deliver(response)

    def error(self, failure, up):
        if not failure.check(UpstreamError):
            log.failure("forward: unexpected error talking to {to}", failure=failure, to=up.label)
        self.last_error = (up.label, failure.getErrorMessage())
        if failure.check(UpstreamTimeout):
            self.timed_out = True
        up.kick()
        if self.broken:
            return self.give_up()
        self.step()

    def deliver(self, response):
        fwd = self.fwd
        fwd.inflight -= 1
        cfg = fwd.cfg
        rcode = response.rcode
        if rcode in cfg.next_rcodes or (cfg.next_on_nodata and rcode == dns.OK and not response.answers):
            self.d.errback(Failure(PassToNext(self.kq.qname)))
        elif rcode == dns.OK:
            self.d.callback(response)
        else:
            self.d.errback(Failure(rcode_error(response)))

    def give_up(self, why=None):
        self.fwd.inflight -= 1
        kq = self.kq
        what = "%s %s" % (fqdn(kq.qname), dns.QUERY_TYPES.get(kq.type, kq.type))
        if why is None:
            if self.last_error is not None:
                why = "%s: %s" % self.last_error
            else:
                why = "no upstream answered in time"
        self.d.errback(Failure(ServFail("plugin/forward: %s: %s" % (what, why))))


class ForwardRouter(object):
    """
    Every C{forward} of one server block.  A name goes to the forward with
    the longest FROM zone containing it (several with the same FROM: in
    Corefile order); a forward that passes it on (C{except}, C{next}) hands
    it to the next shorter FROM, and past the last one to the next plugin.
    """

    name = "forward"

    def __init__(self, forwards):
        self.forwards = list(forwards)
        self.by_zone = {}
        for f in self.forwards:
            self.by_zone.setdefault(f.from_zone, []).append(f)

    def candidates(self, qname):
        out = []
        zones = self.by_zone
        name = qname
        while True:
            found = zones.get(name)
            if found:
                out.extend(found)
            if not name:
                return out
            dot = name.find(b".")
            name = b"" if dot < 0 else name[dot + 1:]

    def query(self, kq, timeout=None):
        cands = self.candidates(kq.qname)
        if not cands:
            raise PassToNext(kq.qname)
        return self._try(kq, cands, 0)

    def _try(self, kq, cands, i):
        while i < len(cands):
            fwd = cands[i]
            i += 1
            try:
                d = fwd.query(kq)
            except PassToNext:
                continue
            except Exception:
                return defer.fail(Failure())
            if i < len(cands):
                d.addErrback(self._next, kq, cands, i)
            return d
        return defer.fail(PassToNext(kq.qname))

    def _next(self, failure, kq, cands, i):
        failure.trap(PassToNext)
        return self._try(kq, cands, i)

    def upstreams_for(self, qname):
        """The upstreams a name would be sent to (loop diagnosis)."""
        for f in self.candidates(qname):
            if f.handles(qname):
                return list(f.upstreams)
        return []

    def upstream_for_port(self, port):
        for f in self.forwards:
            u = f.upstream_for_port(port)
            if u is not None:
                return u
        return None

    def __repr__(self):
        return "ForwardRouter(%r)" % (self.forwards,)
