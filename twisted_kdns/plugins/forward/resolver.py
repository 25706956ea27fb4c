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
from twisted_kdns.plugins.forward.reply import ForwardResponse, question_template
from twisted_kdns.plugins.forward.transport import (UpstreamError, UpstreamTimeout, question_key,
                                                    question_wire)
from twisted_kdns.plugins.forward.wire import Reply, build_request
from twisted_kdns.plugins.forward.upstream import Upstream
from twisted_kdns.response import Response

log = Logger(namespace="kdns.plugins.forward")

DEADLINE = 5.0
MAX_UDP_OFFER = 1232
REQUEST_MEMO = 4096  # encoded upstream requests kept per forward (cleared when full)

_RCODE_ERRORS = {dns.ENAME: None, dns.ESERVER: ServFail, dns.EREFUSED: Refused,
                 dns.ENOTIMP: NotImp, dns.EFORMAT: FormErr}


def to_response(message, kq=None, question=None):
    """
    The upstream's answer as a L{Response} keeping its rcode and AA/RA/AD:
    a L{ForwardResponse} (records decoded when read, reply written from the
    upstream bytes for C{kq}) for a L{Reply} read by C{wire.read_reply}.
    """
    if isinstance(message, Reply):
        if message.fast:
            return ForwardResponse(message, kq, question)
        message = message.message()
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
        self.everything = not self.from_zone and not self.ignored  # "forward ." without except
        self.policy = make_policy(cfg.policy, self.rng)
        self.upstreams = [Upstream(s, cfg, reactor, tls_context) for s in cfg.to]
        self.inflight = 0
        self.active = False
        self.requests = {}

    def __repr__(self):
        return "<Forward %s -> %r>" % (fqdn(self.from_zone), [u.spec for u in self.upstreams])

    def handles(self, qname):
        """CoreDNS's match: under FROM and not under an C{except} name (FROM itself always)."""
        if self.everything:
            return True
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
        name = kq.name.name
        memo_key = (name, kq.type, kq.cls, rd, kq.cd, payload, kq.do)
        built = self.requests.get(memo_key)
        if built is None:
            request = build_request(name, kq.type, kq.cls, rd=rd, cd=kq.cd, payload=payload, do=kq.do)
            built = (request, question_key(name, kq.type, kq.cls), question_wire(request),
                     question_template(name, kq.type, kq.cls))
            if len(self.requests) >= REQUEST_MEMO:
                self.requests.clear()
            self.requests[memo_key] = built
        self.inflight += 1
        return _Exchange(self, kq, built, proto).start()

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


def _has_answers(response):
    """Whether the answer section is non-empty, without decoding a L{ForwardResponse}."""
    if isinstance(response, ForwardResponse):
        return response.ancount > 0
    return bool(response.answers)


class _Exchange(object):
    """
    One client query walking the upstreams.  One attempt is outstanding at
    a time; the transport calls L{reply} or L{error} directly (no Deferred
    per attempt), the client's Deferred fires once, from L{deliver} or
    L{give_up}.
    """

    __slots__ = ("fwd", "kq", "request", "key", "qwire", "question", "proto", "reactor", "order", "total", "i",
                 "fails", "broken", "timed_out", "deadline", "last_error", "last_reply", "d",
                 "up", "started", "attempt_proto")

    def __init__(self, fwd, kq, built, proto):
        self.fwd = fwd
        self.kq = kq
        self.request, self.key, self.qwire, self.question = built
        self.proto = proto
        self.reactor = fwd.reactor
        ups = fwd.upstreams
        self.total = len(ups)
        self.order = ups if self.total == 1 else fwd.policy.order(ups)
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
            self.attempt(up, self.proto, now, timeout)
            return

    def attempt(self, up, proto, started, timeout):
        """Send to C{up}; a synchronous exception becomes a failed attempt (never a hang)."""
        self.up = up
        self.started = started
        self.attempt_proto = proto
        try:
            up.send_to(self.request, self.key, self.qwire, proto, timeout, self.reply, self.error)
        except Exception:
            self.error(Failure())

    def reply(self, message):
        up = self.up
        if message.trunc and self.attempt_proto == "udp" and not up.tls:
            # Truncated: ask the same upstream again over TCP.
            left = self.deadline - self.reactor.seconds()
            if left > 0:
                self.attempt(up, "tcp", self.started, min(self.fwd.cfg.read_timeout, left))
                return
        response = to_response(message, self.kq, self.question)
        up.count_response(response.rcode, self.reactor.seconds() - self.started)
        if response.rcode in self.fwd.cfg.failover_rcodes:
            self.last_reply = response
            if self.i < len(self.order):
                return self.step()
        self.deliver(response)

    def error(self, failure):
        if not isinstance(failure, Failure):
            failure = Failure(failure)
        up = self.up
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
        if rcode in cfg.next_rcodes or (cfg.next_on_nodata and rcode == dns.OK and not _has_answers(response)):
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
        # Only root forwards (the usual "forward . ..."): every name has the same candidates.
        self.same_for_all = self.by_zone.get(b"") if list(self.by_zone) == [b""] else None

    def candidates(self, qname):
        if self.same_for_all is not None:
            return self.same_for_all
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
