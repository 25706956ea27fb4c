# -*- test-case-name: tests.plugins.test_acl -*-
"""
acl: allow, block (REFUSED), filter (empty NOERROR) or drop (no reply)
queries by client network and query type, as CoreDNS's acl plugin does.
It is what keeps a forwarding server from being an open resolver.

Each C{acl [ZONES...] { ... }} directive is one rule set, tried in Corefile
order for names in its zones; inside it the first matching line decides.
C{allow} stops the evaluation; a query no line matches is allowed.
"""

import ipaddress

from prometheus_client import Counter
from twisted.internet import defer

from twisted_kdns.errors import Drop, Refused
from twisted_kdns.names import fqdn, match_zone
from twisted_kdns.plugin import Args, Wrapper
from twisted_kdns.plugins._middleware import call_next, qtype_value
from twisted_kdns.response import Response

KIND = "wrapper"
ONCE = False
ACTIONS = ("allow", "block", "filter", "drop")

BLOCKED = Counter("coredns_acl_blocked_requests_total", "Counter of DNS requests being blocked.",
                  ["server", "zone", "view"])
FILTERED = Counter("coredns_acl_filtered_requests_total", "Counter of DNS requests being filtered.",
                   ["server", "zone", "view"])
DROPPED = Counter("coredns_acl_dropped_requests_total", "Counter of DNS requests being dropped.",
                  ["server", "zone", "view"])
ALLOWED = Counter("coredns_acl_allowed_requests_total", "Counter of DNS requests being allowed.",
                  ["server", "view"])


class Policy(object):
    """One line: ACTION [type QTYPE...] [net SOURCE...]; empty sets match all."""

    def __init__(self, action, qtypes, networks):
        self.action = action
        self.qtypes = qtypes      # frozenset, empty = any type
        self.networks = networks  # list of ip_network, empty = any source

    def matches(self, qtype, client):
        if self.qtypes and qtype not in self.qtypes:
            return False
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(client.split("%")[0])
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for net in self.networks)


class RuleSet(object):
    def __init__(self, zones, policies):
        self.zones = zones  # None: the block's zones
        self.policies = policies


def _policy(sub):
    action = sub.name
    if action not in ACTIONS:
        raise sub.error("unexpected token '%s'; expect 'allow', 'block', 'filter' or 'drop'" % (action,))
    qtypes, networks = set(), []
    any_type = any_source = False
    current = None
    for text in sub.values:
        if text in ("type", "net"):
            current = text
            continue
        if current is None:
            raise sub.error("unexpected token '%s'; expect 'type' or 'net'" % (text,))
        if current == "type":
            if text == "*":
                any_type = True
                continue
            value = qtype_value(text)
            if value is None:
                raise sub.error("unexpected token '%s'; expect legal QTYPE" % (text,))
            qtypes.add(value)
        else:
            if text == "*":
                any_source = True
                continue
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise sub.error("illegal CIDR notation '%s'" % (text,))
    return Policy(action, frozenset() if any_type else frozenset(qtypes), [] if any_source else networks)


def parse(directives):
    rules = []
    for directive in directives:
        args = Args(directive, "acl")
        values = args.count(0)
        zones = args.zones(values) if values else None
        rules.append(RuleSet(zones, [_policy(sub) for sub in args.block()]))
    return rules


class AclResolver(Wrapper):
    name = "acl"

    def __init__(self, rules, next, block_zones, view=""):
        Wrapper.__init__(self, next)
        self.rules = [({z: True for z in (r.zones if r.zones is not None else block_zones)}, r.policies)
                      for r in rules]
        self.view = view

    def query(self, kq, timeout=None):
        client = kq.client[0] if kq.client else ""
        for zones, policies in self.rules:
            zone = match_zone(kq.qname, zones)
            if zone is None:
                continue
            action = None
            for policy in policies:
                if policy.matches(kq.type, client):
                    action = policy.action
                    break
            if action == "allow":
                break
            if action == "block":
                BLOCKED.labels(kq.server, fqdn(zone), self.view).inc()
                return defer.fail(Refused())
            if action == "filter":
                FILTERED.labels(kq.server, fqdn(zone), self.view).inc()
                return defer.succeed(Response(aa=False, plugin="acl"))
            if action == "drop":
                DROPPED.labels(kq.server, fqdn(zone), self.view).inc()
                return defer.fail(Drop())
        ALLOWED.labels(kq.server, self.view).inc()
        return call_next(self.next, kq)


def setup(config, ctx, next):
    return AclResolver(config, next, ctx.zones)
