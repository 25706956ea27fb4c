# -*- test-case-name: tests.plugins.test_loadbalance -*-
"""
loadbalance: shuffle address and MX records so clients that take the first
record spread over all of them (CoreDNS's round_robin).

Each section of a NOERROR reply is rebuilt as CNAMEs first (so a chain keeps
its order), then other records, then A/AAAA shuffled, then MX shuffled;
C{prefer CIDR...} then moves addresses inside those networks to the front.
The reply may be a cached one shared with other clients, so the shuffle
works on new lists and a L{Response.replace} copy, never in place.
"""

import ipaddress
import random

from twisted.names import dns

from twisted_kdns.plugin import Wrapper, once
from twisted_kdns.plugins._middleware import call_next, settle
from twisted_kdns.response import as_response

KIND = "wrapper"
ONCE = True
SKIP_TYPES = frozenset([dns.AXFR, dns.IXFR])


class LoadbalanceConfig(object):
    def __init__(self):
        self.policy = "round_robin"
        self.prefer = []


def parse(directives):
    args = once(directives, "loadbalance")
    cfg = LoadbalanceConfig()
    values = args.count(0, 2)
    if values:
        if values[0] == "weighted":
            raise args.error("the weighted policy is not supported by this version of kdns (use round_robin)")
        if values[0] != "round_robin" or len(values) > 1:
            raise args.error("unknown policy: %s" % (values[0],))
    for sub in args.block():
        if sub.name == "prefer":
            for text in sub.count(1):
                try:
                    cfg.prefer.append(ipaddress.ip_network(text, strict=False))
                except ValueError:
                    raise sub.error("invalid CIDR %s" % (text,))
        elif sub.name == "reload":
            raise sub.error("reload applies only to the weighted policy, which is not supported")
        else:
            raise sub.unknown()
    return cfg


def _address(rr):
    payload = rr.payload
    if rr.type == dns.A:
        return ipaddress.ip_address(payload.dottedQuad())
    return ipaddress.ip_address(payload._address)


class LoadbalanceResolver(Wrapper):
    name = "loadbalance"

    def __init__(self, config, next, rng=None):
        Wrapper.__init__(self, next)
        self.prefer = config.prefer
        self.rng = rng or random.Random()

    def query(self, kq, timeout=None):
        d = call_next(self.next, kq)
        if kq.type in SKIP_TYPES:
            return d
        return d.addCallback(self._balance)

    def _balance(self, result):
        response = settle(result)
        if response is None or response.rcode != dns.OK:
            return result
        return as_response(result).replace(
            answers=self.reorder(response.answers),
            authority=self.reorder(response.authority),
            additional=self.reorder(response.additional))

    def reorder(self, records):
        """A new list: CNAMEs, others, shuffled A/AAAA (preferred networks first), shuffled MX."""
        if len(records) < 2:
            return list(records)
        cnames, other, addresses, mxs = [], [], [], []
        for rr in records:
            if rr.type == dns.CNAME:
                cnames.append(rr)
            elif rr.type in (dns.A, dns.AAAA):
                addresses.append(rr)
            elif rr.type == dns.MX:
                mxs.append(rr)
            else:
                other.append(rr)
        self.rng.shuffle(addresses)
        self.rng.shuffle(mxs)
        if self.prefer and addresses:
            preferred = [rr for rr in addresses if any(_address(rr) in net for net in self.prefer)]
            if preferred:
                rest = [rr for rr in addresses if not any(_address(rr) in net for net in self.prefer)]
                addresses = preferred + rest
        return cnames + other + addresses + mxs


def setup(config, ctx, next):
    return LoadbalanceResolver(config, next)
