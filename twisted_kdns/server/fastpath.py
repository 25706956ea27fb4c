# -*- test-case-name: tests.server.test_fastpath -*-
"""
A wire-level memo of the cache plugin's hit path, in front of the UDP
dispatcher (issue 8).

The profile of the production Corefile shows that a cache hit spends most of
its time outside the cache: decoding the request with twisted.names,
building C{KdnsQuery}, running the Deferreds of each wrapper, copying the
records, and encoding the reply.  A repeated question gets the same bytes
every time, apart from the ID and the TTLs.  So this module remembers the
encoded reply and serves it again, while doing exactly what the slow path
would do around it.

What a memo hit does (the slow path's cache hit, step by step):
  - it checks that the answer still comes from the same cache entry: the
    block's runtime is still current (a reload builds new runtimes), the
    cache still holds that C{Entry} object (a kubernetes change, an eviction
    or an expiry-and-refill removes or replaces it), the other cache (denial
    or success) has nothing for that key, and the entry's TTL is above zero;
  - it counts what the cache plugin counts (requests, hits), marks the entry
    as recently used, and writes the TTL the cache would write
    (C{Entry.ttl(now)}) into the TTL fields;
  - it runs the query's hooks (only prometheus' recorder is allowed) and
    the dispatcher's observers, on a copy of the query with this client and
    start time.

Which replies are memoised: the reply must be synchronous (cache hit), on
the transport of this memo (one for UDP, one for all TCP connections of a
listener), in a block whose chain from the root to the cache holds only wrappers
known to have no other per-query effect on a hit (prometheus, errors,
loadbalance).  The cache must have prefetch, serve_stale and keepttl off.
The query's hooks must be prometheus' recorder only, so a C{log} block never
uses the memo.  When loadbalance is in the chain, no section may hold two
address records or two MX records, because those are shuffled on every
query.  The entry is memoised on the second reply that the same cache entry
produced, so it is never a cache miss: the miss reply can differ, with AA
taken from upstream.  The key is the request bytes after the ID, compared
exactly, so 0x20 case variants, EDNS sizes and DO/CD bits get their own
entries.

Anything unexpected (an attribute missing after a plugin changed, a parse
error) makes the reply go the slow way.  A memo problem can cost speed, but
it never changes an answer.  Set C{KDNS_FASTPATH=0} to switch the memo off.
"""

import os
import struct
from collections import OrderedDict

from twisted.logger import Logger

from twisted_kdns.query import KdnsQuery

log = Logger(namespace="kdns.server.fastpath")

ENABLED = os.environ.get("KDNS_FASTPATH", "1") != "0"
# About 3 KB per entry (encoded reply, decoded reply and query kept for the
# metrics replay): 4096 entries stay near 12 MB per memo (one for UDP and
# one for TCP per listener).  Names past that go the full path.
CAPACITY = 4096
OPT = 41
A, AAAA, MX = 1, 28, 15
_TTL = struct.Struct("!I")
_RR = struct.Struct("!HHIH")


_TYPES = None


def _plugin_types():
    """
    The plugin classes the memo recognises, imported once.  L{attach} calls
    this when a listener opens: importing them on the first memo candidate
    instead stalled the reactor for 60-80 ms in the middle of a burst (the
    loadbalance import pulls in twisted.application.internet and automat),
    long enough for the kernel to drop queued datagrams.
    """
    global _TYPES
    if _TYPES is None:
        from twisted_kdns import metrics
        from twisted_kdns.plugins.cache import resolver as cache_module
        from twisted_kdns.plugins.errors import ErrorsResolver
        from twisted_kdns.plugins.loadbalance import LoadbalanceResolver
        from twisted_kdns.plugins.prometheus import MetricsWrapper
        _TYPES = (cache_module.CacheResolver, ErrorsResolver, LoadbalanceResolver, MetricsWrapper,
                  metrics.DnsMetrics, cache_module)
    return _TYPES


def attach(dispatcher, transport):
    """
    A L{FastPath} for a listener's C{transport} side, or C{None} when the
    memo is switched off or C{dispatcher} is not a full L{Dispatcher} (test
    doubles without routes and observers).
    """
    if not ENABLED or not isinstance(getattr(dispatcher, "observers", None), list) \
            or not callable(getattr(dispatcher, "routes", None)):
        return None
    _plugin_types()
    return FastPath(dispatcher, transport=transport)


def ttl_offsets(wire):
    """
    Offsets of the TTL field of every record except OPT in an encoded
    message, with the TTLs found there.

    @raise ValueError: the message does not parse.
    """
    if len(wire) < 12:
        raise ValueError("short message")
    qd, an, ns, ar = struct.unpack_from("!HHHH", wire, 4)
    off = 12
    for _ in range(qd):
        off = _skip_name(wire, off) + 4
    found = []
    for _ in range(an + ns + ar):
        off = _skip_name(wire, off)
        rtype, _cls, ttl, rdlen = _RR.unpack_from(wire, off)
        if rtype != OPT:
            found.append((off + 4, ttl))
        off += 10 + rdlen
    if off != len(wire):
        raise ValueError("trailing bytes")
    return found


def _skip_name(wire, off):
    while True:
        n = wire[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        if n & 0xC0:
            raise ValueError("bad label")
        off += n + 1


def shuffled_by_loadbalance(response):
    """True when loadbalance would reorder this response differently per query."""
    for section in (response.answers, response.authority, response.additional):
        addresses = mxs = 0
        for rr in section:
            if rr.type in (A, AAAA):
                addresses += 1
            elif rr.type == MX:
                mxs += 1
        if addresses > 1 or mxs > 1:
            return True
    return False


class _Memo(object):
    """One remembered reply and what proves it is still the cache's answer."""

    __slots__ = ("runtime", "zone", "cache", "lru", "other", "ckey", "entry", "ttl", "body",
                 "chunks", "reply", "kq", "hooks", "requests", "hits")

    def patched(self, ttl):
        """The reply after the ID with every TTL field set to C{ttl}."""
        if ttl == self.ttl:
            return self.body
        return _TTL.pack(ttl).join(self.chunks)


class FastPath(object):
    """
    Wraps a L{Dispatcher} for one listener's UDP (or TCP) side.  C{handle} has the
    dispatcher's signature.  The observer registered on the dispatcher fills
    the memo from slow-path replies; L{close} removes it.
    """

    def __init__(self, dispatcher, capacity=CAPACITY, transport="udp"):
        self.dispatcher = dispatcher
        self.capacity = capacity
        self.transport = transport
        self.memo = OrderedDict()
        self.candidates = OrderedDict()
        self.armed = None
        self.hits = 0
        self.zones = None    # the routes the memo was filled from
        self.chains = {}     # runtime -> (cache resolver or None, loadbalance present)
        self._observer = self._observe
        dispatcher.observers.append(self._observer)

    def close(self):
        """Stop filling (the listener is going away)."""
        try:
            self.dispatcher.observers.remove(self._observer)
        except ValueError:
            pass
        self._forget(None)

    def _forget(self, zones):
        """A new generation: drop everything that refers to the old one."""
        self.memo.clear()
        self.candidates.clear()
        self.chains.clear()
        self.zones = zones

    # -- serving ------------------------------------------------------------

    def handle(self, data, client, transport="udp"):
        zones = self.dispatcher.routes()
        if zones is not self.zones:
            self._forget(zones)  # reloaded: nothing of the old generation is kept alive
        memo = self.memo.get(data[2:]) if transport == self.transport else None
        if memo is not None:
            try:
                wire = self._hit(memo, zones, data, client)
            except Exception:
                log.failure("fast path hit failed; using the full path")
                wire = None
            if wire is not None:
                self.hits += 1
                return wire
            self.memo.pop(data[2:], None)
        if transport != self.transport:
            return self.dispatcher.handle(data, client, transport)
        self.armed = (data, client)
        try:
            return self.dispatcher.handle(data, client, transport)
        finally:
            self.armed = None

    def _hit(self, m, zones, data, client):
        dispatcher = self.dispatcher
        if not zones or zones.get(m.zone) is not m.runtime:
            return None  # reloaded
        items = m.lru.items
        if items.get(m.ckey) is not m.entry or m.other.items.get(m.ckey) is not None:
            return None  # invalidated, evicted, refilled, or a denial/success pair
        ttl = m.entry.ttl(m.cache.reactor.seconds())
        if ttl <= 0:
            return None  # expired: the full path misses and refills
        # The cache plugin's hit: request and hit counters, LRU recency.
        m.requests.inc()
        items.move_to_end(m.ckey)
        m.hits.inc()
        wire = data[:2] + m.patched(ttl)
        kq = KdnsQuery.__new__(KdnsQuery)
        kq.__dict__.update(m.kq)
        kq.client = client
        kq.started = dispatcher.clock()
        kq.size = len(data)
        for hook in m.hooks:
            hook(kq, m.reply, wire)
        for observer in dispatcher.observers:
            if observer is not self._observer:
                observer(kq, m.reply, wire)
        return wire

    # -- filling ------------------------------------------------------------

    def _observe(self, kq, reply, wire):
        armed = self.armed
        if armed is None or kq is None:
            return
        data, client = armed
        if (kq.transport != self.transport or kq.client != client or kq.size != len(data)
                or kq.message is None or kq.message.id != struct.unpack_from("!H", data)[0]):
            return
        self.armed = None
        try:
            self._consider(data, kq, reply, wire)
        except Exception:
            log.failure("fast path could not consider a reply; it stays on the full path")

    def _chain_cache(self, runtime):
        """The block's cache resolver when everything before it is memo-safe, and whether loadbalance is there."""
        found = self.chains.get(runtime)
        if found is None:
            found = self.chains[runtime] = self._walk(runtime)
        return found

    def _walk(self, runtime):
        CacheResolver, ErrorsResolver, LoadbalanceResolver, MetricsWrapper, _, _ = _plugin_types()
        node = runtime.root
        balanced = False
        for _ in range(64):
            if type(node) is CacheResolver:
                return node, balanced
            if type(node) is LoadbalanceResolver:
                balanced = True
            elif type(node) not in (MetricsWrapper, ErrorsResolver):
                return None, False
            node = node.next
        return None, False

    def _consider(self, data, kq, reply, wire):
        key = data[2:]
        if key in self.memo:
            return
        zones = self.zones
        runtime = zones.get(kq.zone) if zones else None
        if runtime is None:
            return
        cache, balanced = self._chain_cache(runtime)
        if cache is None:
            return
        config = cache.config
        if config.prefetch > 0 or config.stale > 0 or config.verify or config.keepttl:
            return
        DnsMetrics = _plugin_types()[4]
        hooks = list(kq.hooks)
        if any(getattr(h, "__func__", None) is not DnsMetrics.record for h in hooks):
            return
        if kq.error is not None and kq.response is None:
            return
        ckey = (kq.do, kq.cd, kq.type, kq.cls, kq.qname)
        in_success = cache.success.items.get(ckey)
        in_denial = cache.denial.items.get(ckey)
        if (in_success is None) == (in_denial is None):
            return
        entry, lru, other = ((in_success, cache.success, cache.denial) if in_success is not None
                             else (in_denial, cache.denial, cache.success))
        ttl = entry.ttl(cache.reactor.seconds())
        if ttl <= 0:
            return
        if self.candidates.get(key) is not entry:
            # First reply from this entry (maybe the miss that stored it): wait for a hit.
            self.candidates[key] = entry
            self.candidates.move_to_end(key)
            while len(self.candidates) > self.capacity:
                self.candidates.popitem(last=False)
            return
        if balanced and kq.response is not None and shuffled_by_loadbalance(kq.response):
            return
        offsets = ttl_offsets(wire)
        if any(found != ttl for _off, found in offsets):
            return  # not the uniform TTL the cache writes: leave it alone
        body = wire[2:]
        chunks, last = [], 0
        for off, _found in offsets:
            chunks.append(body[last:off - 2])
            last = off - 2 + 4
        chunks.append(body[last:])
        m = _Memo()
        m.runtime, m.zone, m.cache, m.lru, m.other, m.ckey = runtime, kq.zone, cache, lru, other, ckey
        m.entry, m.ttl, m.body, m.chunks, m.reply = entry, ttl, body, chunks, reply
        template = dict(kq.__dict__)
        template["hooks"] = hooks
        m.kq = template
        m.hooks = tuple(hooks)
        cache_module = _plugin_types()[5]
        m.requests = cache_module.REQUESTS.labels(kq.server, cache.zones_label, cache.view)
        m.hits = cache_module.HITS.labels(kq.server, entry.kind, cache.zones_label, cache.view)
        self.candidates.pop(key, None)
        self.memo[key] = m
        while len(self.memo) > self.capacity:
            self.memo.popitem(last=False)
