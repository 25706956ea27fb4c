# -*- test-case-name: tests.plugins.test_cache -*-
"""
The bounded maps behind the cache plugin and what one entry holds.

CoreDNS keeps 256 shards per cache and evicts a *random* entry of a full
shard.  Under the GIL one C{OrderedDict} per cache is simpler and as safe;
we keep CoreDNS's sizing (C{256 * max(CAPACITY // 256, 4)}, so the default
10000 holds 9984 entries) but evict the *least recently used* entry, which
keeps popular names (the ones prefetch refreshes) and costs O(1).  Expired
entries are removed lazily when read, or when evicted: no timer per entry
(Twisted's CacheResolver keeps one DelayedCall per entry).
"""

from collections import OrderedDict

from twisted.names import dns

SHARDS = 256
SHARD_MIN = 4


def real_capacity(capacity):
    """CoreDNS's effective size for a configured CAPACITY."""
    return SHARDS * max(capacity // SHARDS, SHARD_MIN)


class Entry(object):
    """
    One cached reply.  The records are kept exactly as the first reply had
    them and are never modified; every hit builds fresh C{RRHeader}s.

    @ivar lifetime: seconds the entry is fresh (the clamped minimum TTL).
    @ivar stored: C{reactor.seconds()} when it was stored.
    @ivar hits, last_hit: prefetch popularity (CoreDNS's C{Freq}).
    @ivar busy: a prefetch or stale refresh is in flight.
    @ivar retry_after: no stale refresh before this time (FAILURE_RECHECK).
    """

    __slots__ = ("response", "lifetime", "stored", "hits", "last_hit", "busy",
                 "retry_after", "kind")

    def __init__(self, response, lifetime, stored, kind):
        self.response = response
        self.lifetime = lifetime
        self.stored = stored
        self.kind = kind
        self.hits = 0
        self.last_hit = stored
        self.busy = False
        self.retry_after = 0.0

    def ttl(self, now):
        """Remaining whole seconds; zero or negative once expired (Go's int truncation)."""
        return self.lifetime - int(now - self.stored)

    def touch(self, now, window):
        """
        Count a hit for prefetch: hits in a row with gaps below C{window}
        seconds; a longer gap starts counting again at one.
        """
        if now - self.last_hit >= window and self.hits:
            self.hits = 1
        else:
            self.hits += 1
        self.last_hit = now
        return self.hits


class LRU(object):
    """
    A bounded map of keys to L{Entry}; C{put} evicts the least recently used
    entry when full and returns how many were evicted.
    """

    def __init__(self, capacity):
        self.capacity = capacity
        self.items = OrderedDict()

    def __len__(self):
        return len(self.items)

    def get(self, key):
        entry = self.items.get(key)
        if entry is not None:
            self.items.move_to_end(key)
        return entry

    def put(self, key, entry):
        items = self.items
        if key in items:
            items[key] = entry
            items.move_to_end(key)
            return 0
        evicted = 0
        while len(items) >= self.capacity:
            items.popitem(last=False)
            evicted += 1
        items[key] = entry
        return evicted

    def remove(self, key):
        return self.items.pop(key, None) is not None

    def remove_names(self, names, under):
        """
        Drop every entry whose name (the key's last element) equals a name of
        C{names} or lies under one; C{under(qname, names)} decides.
        Returns how many were dropped.
        """
        doomed = [key for key in self.items if under(key[-1], names)]
        for key in doomed:
            del self.items[key]
        return len(doomed)


def minimal_ttl(response):
    """
    CoreDNS's C{MinimalTTL}: the smallest TTL over answer, authority and
    additional (OPT excluded); C{None} when there are no records at all.
    """
    lowest = None
    for section in (response.answers, response.authority, response.additional):
        for rr in section:
            if rr.type == dns.OPT:
                continue
            if lowest is None or rr.ttl < lowest:
                lowest = rr.ttl
    return lowest
