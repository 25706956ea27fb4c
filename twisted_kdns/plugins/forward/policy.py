"""
The order in which a query tries the upstreams (CoreDNS's C{policy}).

Each policy returns a new list; the caller walks it skipping upstreams
that are down.
"""

import random as _random


class Random(object):
    """A fresh shuffle per query (the default)."""

    def __init__(self, rng=None):
        self.rng = rng or _random.Random()

    def order(self, upstreams):
        out = list(upstreams)
        self.rng.shuffle(out)
        return out


class RoundRobin(object):
    """Each query starts one further along the list."""

    def __init__(self, rng=None):
        self.next = 0

    def order(self, upstreams):
        n = len(upstreams)
        if not n:
            return []
        start = self.next % n
        self.next = (start + 1) % n
        return list(upstreams[start:]) + list(upstreams[:start])


class Sequential(object):
    """Always in configured order: the first healthy upstream answers."""

    def __init__(self, rng=None):
        pass

    def order(self, upstreams):
        return list(upstreams)


POLICIES = {"random": Random, "round_robin": RoundRobin, "sequential": Sequential}


def make(name, rng=None):
    return POLICIES[name](rng)
