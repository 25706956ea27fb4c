"""
The cache plugin's per-query counters (requests, hits, misses) as plain
integers, exported under CoreDNS's names and labels by a collector when
scraped.

Every query through the cache, and every fast-path memo hit, counted two
prometheus_client series: each C{labels()} call validates and looks up its
labels under a lock, each C{inc()} takes another lock.  That was about 7% of
a memo hit (issue 8, C{bench/results/profile-A-kdns.md}).  Here a series is
a small object with an integer, looked up in a dict; the values, names, help
texts and labels exported are the same (the C{_created} samples, which
CoreDNS does not have, are gone, as for C{coredns_dns_requests_total} in
L{twisted_kdns.metrics}).  The rarer counters (prefetch, drops, stale,
evictions) stay prometheus_client counters.
"""

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily


class Tally(object):
    """One labelled series: C{inc()} like a prometheus_client child."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0

    def inc(self, amount=1):
        self.value += amount


class IntCounter(object):
    """
    A counter family with C{labels(*values)} like prometheus_client's, whose
    children are L{Tally} objects, kept until the process ends (like a
    prometheus_client counter's children).
    """

    def __init__(self, name, documentation, labelnames):
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.children = {}

    def labels(self, *values):
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError("%s takes labels %r" % (self.name, self.labelnames))
            child = self.children[values] = Tally()
        return child

    def family(self):
        return CounterMetricFamily(self.name, self.documentation, labels=list(self.labelnames))


class CacheCollector(object):
    """Exports the L{IntCounter}s of the cache plugin when the registry is scraped."""

    def __init__(self, counters):
        self.counters = counters

    def describe(self):
        return [c.family() for c in self.counters]

    def collect(self):
        families = []
        for counter in self.counters:
            family = counter.family()
            for values, child in list(counter.children.items()):
                family.add_metric([str(v) for v in values], child.value)
            families.append(family)
        return families


REQUESTS = IntCounter("coredns_cache_requests", "The count of cache requests.",
                      ["server", "zones", "view"])
HITS = IntCounter("coredns_cache_hits", "The count of cache hits.",
                  ["server", "type", "zones", "view"])
MISSES = IntCounter("coredns_cache_misses",
                    "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
                    ["server", "zones", "view"])

COLLECTOR = CacheCollector([REQUESTS, HITS, MISSES])
REGISTRY.register(COLLECTOR)
