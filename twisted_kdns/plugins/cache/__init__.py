# -*- test-case-name: tests.plugins.test_cache -*-
"""
cache: CoreDNS's cache plugin (C{cache [TTL] [ZONES...] { ... }}).

Parsing and setup live here; L{resolver} holds the query path and
L{store} the bounded maps.  Beyond CoreDNS: when the block also runs the
kubernetes plugin, cached answers for a cluster name are dropped the moment
a watch event changes that name (CoreDNS serves them stale for the TTL).
"""

from twisted_kdns.names import is_subdomain
from twisted_kdns.plugin import once
from twisted_kdns.plugins.cache.resolver import CacheResolver
from twisted_kdns.plugins.cache.store import real_capacity

KIND = "wrapper"
ONCE = True

DEFAULT_CAPACITY = 10000
MAX_SERVFAIL = 300.0


class Limits(object):
    """CAPACITY [TTL [MINTTL]] of one of the two caches."""

    def __init__(self, ttl, min_ttl=5, capacity=DEFAULT_CAPACITY):
        self.capacity = real_capacity(capacity)
        self.configured = capacity
        self.ttl = ttl
        self.min_ttl = min_ttl


class CacheConfig(object):
    def __init__(self):
        self.zones = None
        self.success = Limits(3600)
        self.denial = Limits(1800)
        self.prefetch = 0
        self.prefetch_window = 60.0
        self.prefetch_percentage = 10
        self.stale = 0.0
        self.verify = False
        self.verify_timeout = 0.0
        self.stale_ttl = 0
        self.stale_recheck = 0.0
        self.prefer_positive = False
        self.servfail = 5.0
        self.disable = {"success": None, "denial": None}  # None: enabled; (): all; zones
        self.keepttl = False

    def disabled(self, kind, qname):
        zones = self.disable[kind]
        if zones is None:
            return False
        return not zones or any(is_subdomain(qname, z) for z in zones)


def _limits(sub, default_ttl):
    values = sub.count(1, 3)
    capacity = sub.integer(values[0], 0, None, "capacity")
    ttl = default_ttl
    min_ttl = 5
    if len(values) > 1:
        ttl = sub.integer(values[1], None, None, "TTL")
        if ttl <= 0:
            raise sub.error("cache TTL can not be zero or negative: %d" % (ttl,))
    if len(values) > 2:
        min_ttl = sub.integer(values[2], None, None, "minimum TTL")
        if min_ttl < 0:
            raise sub.error("cache min TTL can not be negative: %d" % (min_ttl,))
    return Limits(ttl, min_ttl, capacity)


def parse(directives):
    args = once(directives, "cache")
    cfg = CacheConfig()
    values = list(args.count(0))
    if values and values[0].lstrip("-").isdigit():
        ttl = int(values.pop(0))
        if ttl <= 0:
            raise args.error("cache TTL can not be zero or negative: %d" % (ttl,))
        cfg.success.ttl = cfg.denial.ttl = ttl
    if values:
        cfg.zones = args.zones(values)
    for sub in args.block():
        name = sub.name
        if name == "success":
            cfg.success = _limits(sub, cfg.success.ttl)
        elif name == "denial":
            cfg.denial = _limits(sub, cfg.denial.ttl)
        elif name == "prefetch":
            vals = sub.count(1, 3)
            cfg.prefetch = sub.integer(vals[0], None, None, "prefetch amount")
            if cfg.prefetch <= 0:
                raise sub.error("prefetch amount should be positive: %d" % (cfg.prefetch,))
            if len(vals) > 1:
                cfg.prefetch_window = sub.duration(vals[1], "prefetch duration", allow_bare_seconds=False)
            if len(vals) > 2:
                pct = vals[2]
                if not pct.endswith("%"):
                    raise sub.error("last character of percentage should be `%`, but is: %r" % (pct[-1:],))
                num = sub.integer(pct[:-1], None, None, "percentage")
                if num < 10 or num > 90:
                    raise sub.error("percentage should fall in range [10, 90]: %d" % (num,))
                cfg.prefetch_percentage = num
        elif name == "serve_stale":
            _serve_stale(sub, cfg)
        elif name == "serve_stale_policy":
            vals = sub.count(1, 1)
            if vals[0] != "prefer_positive":
                raise sub.error("invalid serve_stale_policy '%s' (only prefer_positive)" % (vals[0],))
            cfg.prefer_positive = True
        elif name == "servfail":
            vals = sub.count(1, 1)
            cfg.servfail = sub.duration(vals[0], "servfail duration", allow_bare_seconds=False)
            if cfg.servfail > MAX_SERVFAIL:
                raise sub.error("caching SERVFAIL responses over 5 minutes is not permitted")
        elif name == "disable":
            vals = sub.count(1)
            if vals[0] not in ("success", "denial"):
                raise sub.error("cache type for disable must be 'success' or 'denial', got '%s'" % (vals[0],))
            cfg.disable[vals[0]] = tuple(sub.zones(vals[1:]))
        elif name == "keepttl":
            sub.count(0, 0)
            cfg.keepttl = True
        else:
            raise sub.unknown()
    if cfg.prefer_positive and cfg.stale <= 0:
        raise args.error("serve_stale_policy requires serve_stale")
    return cfg


def _serve_stale(sub, cfg):
    """C{serve_stale [DURATION] [immediate [RESPONSE_TTL [FAILURE_RECHECK]] | verify [VERIFY_TIMEOUT [RESPONSE_TTL [FAILURE_RECHECK]]]]}."""
    vals = sub.count(0, 5)
    cfg.stale = 3600.0
    if vals:
        if vals[0].startswith("-"):
            raise sub.error("invalid negative duration for serve_stale")
        cfg.stale = sub.duration(vals[0], "serve_stale duration", allow_bare_seconds=False)
    if len(vals) > 1:
        mode = vals[1]
        if mode not in ("immediate", "verify"):
            raise sub.error("invalid value for serve_stale refresh mode: %s" % (mode,))
        cfg.verify = mode == "verify"
        rest = vals[2:]
        if cfg.verify and rest:
            cfg.verify_timeout = sub.duration(rest.pop(0), "verify timeout", allow_bare_seconds=False)
        if rest:
            cfg.stale_ttl = sub.integer(rest.pop(0), 0, None, "stale response TTL")
        if rest:
            cfg.stale_recheck = sub.duration(rest.pop(0), "failure recheck", allow_bare_seconds=False)
            if cfg.stale_recheck > MAX_SERVFAIL:
                raise sub.error("failure recheck over 5 minutes is not permitted")
    elif len(vals) > 2:
        raise sub.error("Wrong argument count or unexpected line ending after 'serve_stale'")


def find_subscribe(kubernetes):
    """
    The kubernetes plugin's change-notification hook, wherever its resolver
    exposes it (C{subscribe} on the resolver or on its C{store}), or C{None}.
    """
    if kubernetes is None:
        return None
    for holder in (kubernetes, getattr(kubernetes, "store", None)):
        subscribe = getattr(holder, "subscribe", None)
        if callable(subscribe):
            return subscribe
    return None


def setup(config, ctx, next):
    zones = config.zones if config.zones is not None else ctx.zones
    resolver = CacheResolver(config, next, ctx.reactor, zones)
    subscribe = find_subscribe(ctx.plugins.get("kubernetes"))
    if subscribe is not None:
        subscribe(resolver.invalidate)
    return resolver
