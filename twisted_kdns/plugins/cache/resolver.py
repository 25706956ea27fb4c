# -*- test-case-name: tests.plugins.test_cache -*-
"""
The cache wrapper: answers repeated questions from memory, as CoreDNS's
cache plugin does, and refreshes entries in the background (prefetch,
serve_stale).

Everything runs on the reactor thread; time is C{reactor.seconds()} so tests
drive it with a C{Clock}.  Stored replies are shared between hits: every
answer is built from fresh C{RRHeader}s (one uniform TTL, as CoreDNS writes
it) and the stored L{Response} is never touched.
"""

import math

from prometheus_client import Counter, Gauge
from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import dns
from twisted.python.failure import Failure

from twisted_kdns.names import fqdn, is_subdomain, match_zone
from twisted_kdns.plugin import Wrapper
from twisted_kdns.plugins._middleware import as_deferred, call_next, copy_rr, deliver, settle
from twisted_kdns.plugins.cache.counts import HITS, MISSES, REQUESTS  # noqa: F401 (fastpath.py uses them too)
from twisted_kdns.plugins.cache.store import LRU, Entry, minimal_ttl

log = Logger(namespace="kdns.plugins.cache")

SUCCESS, DENIAL = "success", "denial"
NOERROR, DELEGATION, NAMEERROR, NODATA, SERVERERROR, OTHER = range(6)
MIN_DEFAULT_TTL = 5      # CoreDNS's MinimalDefaultTTL: replies without records
MAX_DEFAULT_TTL = 3600   # upper bound before clamping (MaximumDefaulTTL)
NOT_CACHED = frozenset([dns.AXFR, dns.IXFR])

ENTRIES = Gauge("coredns_cache_entries", "The number of elements in the cache.",
                ["server", "type", "zones", "view"])
PREFETCHES = Counter("coredns_cache_prefetch_total", "The number of times the cache has prefetched a cached item.",
                     ["server", "zones", "view"])
DROPS = Counter("coredns_cache_drops_total", "The number responses that are not cached, because the reply is malformed.",
                ["server", "zones", "view"])
STALE = Counter("coredns_cache_served_stale_total", "The number of requests served from stale cache entries.",
                ["server", "zones", "view"])
EVICTIONS = Counter("coredns_cache_evictions_total", "The count of cache evictions.",
                    ["server", "type", "zones", "view"])


def classify(response, qtype):
    """CoreDNS's C{response.Typify} for the rcodes a cache cares about."""
    rcode = response.rcode
    soa = any(rr.type == dns.SOA for rr in response.authority)
    if rcode == dns.OK and response.answers:
        if (qtype not in (dns.CNAME, dns.ALL_RECORDS) and not soa
                and all(rr.type == dns.CNAME for rr in response.answers)):
            return OTHER  # CNAME chain that does not end in an answer
        return NOERROR
    if soa and rcode == dns.OK:
        return NODATA
    if soa and rcode == dns.ENAME:
        return NAMEERROR
    if rcode == dns.ESERVER:
        return SERVERERROR
    if rcode == dns.OK:
        if any(rr.type == dns.NS for rr in response.authority):
            return DELEGATION
        return NOERROR
    return OTHER


def _under(name, names):
    return match_zone(name, names) is not None


class CacheResolver(Wrapper):
    """
    @ivar config: a L{CacheConfig}.
    @ivar success, denial: the two L{LRU} maps, keyed by
        C{(do, cd, qtype, qclass, qname)}.
    """

    name = "cache"

    def __init__(self, config, next, reactor, zones, view=""):
        Wrapper.__init__(self, next)
        self.config = config
        self.reactor = reactor
        self.zones = {z: True for z in zones}
        self.zones_label = ",".join(fqdn(z) for z in zones)
        self.view = view
        self.success = LRU(config.success.capacity)
        self.denial = LRU(config.denial.capacity)
        self.servers = set()

    # -- the query path ---------------------------------------------------

    def query(self, kq, timeout=None):
        if kq.type in NOT_CACHED or match_zone(kq.qname, self.zones) is None:
            return call_next(self.next, kq)
        server = kq.server
        self.servers.add(server)
        now = self.reactor.seconds()
        key = (kq.do, kq.cd, kq.type, kq.cls, kq.qname)
        REQUESTS.labels(server, self.zones_label, self.view).inc()
        entry = self._lookup(key, now, server)
        if entry is None:
            MISSES.labels(server, self.zones_label, self.view).inc()
            d = call_next(self.next, kq)
            d.addBoth(self._filled, kq, key, now)
            return d
        ttl = entry.ttl(now)
        config = self.config
        if ttl < 0:
            if config.verify:
                return self._verify(kq, key, entry, now)
            STALE.labels(server, self.zones_label, self.view).inc()
            if not entry.busy and now >= entry.retry_after:
                self._refresh(kq, key, entry, stale=True)
            return as_deferred(self._answer(entry, config.stale_ttl))
        if self._should_prefetch(entry, now):
            self._refresh(kq, key, entry, stale=False)
        return as_deferred(self._answer(entry, ttl))

    def _lookup(self, key, now, server):
        """The usable entry for C{key} (fresh, or within the stale window), counting hits."""
        stale = self.config.stale
        found = None
        for cache in (self.denial, self.success):
            entry = cache.get(key)
            if entry is None:
                continue
            ttl = entry.ttl(now)
            if ttl > 0 or (stale > 0 and -ttl < stale):
                if found is None:
                    found = entry
                elif self.config.prefer_positive and entry.kind == SUCCESS and ttl > 0:
                    found = entry
            else:
                cache.remove(key)
                self._gauge(cache)
        if found is not None:
            HITS.labels(server, found.kind, self.zones_label, self.view).inc()
        return found

    def _should_prefetch(self, entry, now):
        config = self.config
        if config.prefetch <= 0:
            return False
        hits = entry.touch(now, config.prefetch_window)
        threshold = int(math.ceil(config.prefetch_percentage / 100.0 * entry.lifetime))
        return hits >= config.prefetch and entry.ttl(now) <= threshold and not entry.busy

    def _answer(self, entry, ttl):
        """A reply built from C{entry} with every record at C{ttl} (AA set, as CoreDNS)."""
        stored = entry.response
        if self.config.keepttl:
            response = stored.replace(aa=True)
        else:
            ttl = max(ttl, 0)
            response = stored.replace(
                answers=[copy_rr(rr, ttl=ttl) for rr in stored.answers],
                authority=[copy_rr(rr, ttl=ttl) for rr in stored.authority],
                additional=[copy_rr(rr, ttl=ttl) for rr in stored.additional], aa=True)
        return deliver(response)

    # -- filling ----------------------------------------------------------

    def _filled(self, outcome, kq, key, asked):
        """Store what the chain answered (when CoreDNS would) and pass it on."""
        response = settle(outcome)
        if response is None:
            return outcome
        if isinstance(outcome, Failure) and outcome.value.reason:
            # A local failure (upstream unreachable, no next plugin): CoreDNS
            # caches only replies that were written, such as a relayed SERVFAIL.
            return outcome
        lifetime = self.store(kq, key, response, asked)
        if lifetime is None or self.config.keepttl:
            return outcome
        reason = outcome.value.reason if isinstance(outcome, Failure) else ""
        return deliver(response.replace(
            answers=[copy_rr(rr, ttl=lifetime) for rr in response.answers],
            authority=[copy_rr(rr, ttl=lifetime) for rr in response.authority],
            additional=[copy_rr(rr, ttl=lifetime) for rr in response.additional]), reason)

    def store(self, kq, key, response, now, hits=0):
        """
        Put C{response} in the right cache; the stored lifetime, or C{None}
        when CoreDNS would not cache this reply.
        """
        config = self.config
        kind = classify(response, kq.type)
        if kind == OTHER:
            return None
        if (kind == NOERROR and response.answers
                and not any(rr.name.name.lower().rstrip(b".") == kq.qname for rr in response.answers)):
            # The reply does not answer the question asked: CoreDNS drops it.
            DROPS.labels(kq.server, self.zones_label, self.view).inc()
            return None
        if kind in (NOERROR, DELEGATION):
            if config.disabled(SUCCESS, kq.qname):
                return None
            cache, limits, label = self.success, config.success, SUCCESS
        else:
            if config.disabled(DENIAL, kq.qname):
                return None
            cache, limits, label = self.denial, config.denial, DENIAL
        if kind == SERVERERROR:
            lifetime = int(config.servfail)
            if lifetime <= 0:
                return None
            positive = self.success.get(key)
            if positive is not None and positive.ttl(now) > 0:
                return None  # a SERVFAIL never shadows a valid positive entry
        else:
            lowest = minimal_ttl(response)
            lifetime = MIN_DEFAULT_TTL if lowest is None else min(lowest, MAX_DEFAULT_TTL)
            lifetime = max(min(lifetime, limits.ttl), limits.min_ttl)
        stored = response.replace(
            answers=tuple(response.answers),
            authority=tuple(response.authority),
            additional=tuple(rr for rr in response.additional if rr.type != dns.OPT))
        entry = Entry(stored, lifetime, now, label)
        entry.hits = hits
        evicted = cache.put(key, entry)
        if evicted:
            EVICTIONS.labels(kq.server, label, self.zones_label, self.view).inc(evicted)
        if label == SUCCESS and config.prefetch > 0:
            self.denial.remove(key)
        self._gauge(cache)
        return lifetime

    # -- background work --------------------------------------------------

    def _background_query(self, kq):
        bg = kq.derive()
        bg.hooks = ()
        return call_next(self.next, bg)

    def _refresh(self, kq, key, entry, stale):
        """Prefetch (or, when C{stale}, refresh an expired entry) without blocking the reply."""
        entry.busy = True
        if not stale:
            PREFETCHES.labels(kq.server, self.zones_label, self.view).inc()
        d = self._background_query(kq)
        d.addBoth(self._refreshed, kq, key, entry, stale)
        return d

    def _refreshed(self, outcome, kq, key, entry, stale):
        entry.busy = False
        response = settle(outcome)
        now = self.reactor.seconds()
        if response is None or response.rcode not in (dns.OK, dns.ENAME):
            # Keep the old entry (still servable when stale); maybe rate-limit retries.
            entry.retry_after = now + self.config.stale_recheck
            if response is None and not outcome.check(defer.TimeoutError):
                log.failure("cache refresh of {name} failed", failure=outcome, name=kq.name)
            return None
        self.store(kq, key, response, now, hits=entry.hits if not stale else 0)
        return None

    def _verify(self, kq, key, entry, now):
        """serve_stale verify: ask upstream first, fall back to the stale entry."""
        if entry.busy or now < entry.retry_after:
            STALE.labels(kq.server, self.zones_label, self.view).inc()
            return as_deferred(self._answer(entry, self.config.stale_ttl))
        result = defer.Deferred()
        state = {"done": False}
        timer = None

        def serve_stale():
            if not state["done"]:
                state["done"] = True
                STALE.labels(kq.server, self.zones_label, self.view).inc()
                result.callback(None)

        def upstream(outcome):
            if timer is not None and timer.active():
                timer.cancel()
            entry.busy = False
            response = settle(outcome)
            if response is not None and response.rcode in (dns.OK, dns.ENAME):
                filled = self._filled(outcome, kq, key, self.reactor.seconds())
                if not state["done"]:  # else the client already got the stale answer
                    state["done"] = True
                    result.callback(filled)
                return None
            entry.retry_after = self.reactor.seconds() + self.config.stale_recheck
            serve_stale()
            return None

        entry.busy = True
        if self.config.verify_timeout > 0:
            timer = self.reactor.callLater(self.config.verify_timeout, serve_stale)
        self._background_query(kq).addBoth(upstream)

        def finish(value):
            if value is None:
                return self._answer(entry, self.config.stale_ttl)
            return value
        return result.addCallback(finish)

    # -- kubernetes change notifications (beyond CoreDNS) -------------------

    def invalidate(self, names):
        """
        Drop cached answers for C{names} (normalised) and every name under
        them: the kubernetes plugin calls this when a watch event changes
        what those names answer, so nothing stale is served for the TTL.
        """
        targets = {n: True for n in names if any(is_subdomain(n, z) or is_subdomain(z, n) for z in self.zones)}
        if not targets:
            return 0
        dropped = 0
        for cache in (self.success, self.denial):
            count = cache.remove_names(targets, _under)
            if count:
                dropped += count
                self._gauge(cache)
        return dropped

    def _gauge(self, cache):
        label = SUCCESS if cache is self.success else DENIAL
        for server in self.servers or ("",):
            ENTRIES.labels(server, label, self.zones_label, self.view).set(len(cache))
