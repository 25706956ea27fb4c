# -*- test-case-name: tests.test_plugin -*-
"""
What every plugin module builds on: argument helpers for C{parse}, the
L{BlockContext} handed to C{setup}, and the L{Wrapper} base class.

A terminal resolver implements C{query(kquery)} and raises L{PassToNext} for
names it does not own (or misses its C{fallthrough} covers).  A wrapper gets
C{next} and calls C{self.next.query(kquery)}.  Both return a Deferred firing
with a L{Response} (or a Twisted 3-tuple), or fail with the exceptions of
L{twisted_kdns.errors}.
"""

import re

from twisted_kdns.errors import ConfigError, PassToNext
from twisted_kdns.names import Fallthrough, zone_names

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text, allow_bare_seconds=True):
    """
    A Go-style duration (C{500ms}, C{5s}, C{1m30s}) in seconds.  A bare
    integer counts as seconds where CoreDNS accepts one.

    @raise ValueError: not a duration.
    """
    if allow_bare_seconds and text.isdigit():
        return float(text)
    pos = 0
    total = 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            raise ValueError(text)
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(text)
    return total


def format_duration(seconds):
    """
    Go's C{time.Duration.String()}: C{5s}, C{5m0s}, C{1h0m0s}, C{500ms}, C{1.5s};
    CoreDNS prints durations this way in its log lines.
    """
    ns = int(round(seconds * 1e9))
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)

    def trim(value, digits):
        text = ("%%.%df" % (digits,)) % (value,)
        return text.rstrip("0").rstrip(".") if "." in text else text

    if ns < 1000000000:
        for unit, size, digits in (("ms", 1000000, 6), ("µs", 1000, 3), ("ns", 1, 0)):
            if ns >= size:
                return sign + trim(ns / size, digits) + unit
    hours, rest = divmod(ns, 3600 * 1000000000)
    minutes, rest = divmod(rest, 60 * 1000000000)
    secs = trim(rest / 1e9, 9)
    if hours:
        return "%s%dh%dm%ss" % (sign, hours, minutes, secs)
    if minutes:
        return "%s%dm%ss" % (sign, minutes, secs)
    return "%s%ss" % (sign, secs)


class Args(object):
    """
    Reads one directive for a plugin's C{parse}, raising CoreDNS-shaped
    errors (C{plugin/NAME: FILE:LINE - Error during parsing: ...}).
    """

    def __init__(self, directive, plugin):
        self.d = directive
        self.plugin = plugin

    @property
    def values(self):
        return self.d.values

    def error(self, message, token=None):
        return self.d.error(message, token, self.plugin)

    def count(self, low, high=None):
        """The argument texts, checking their number (C{high=None}: no upper bound)."""
        n = len(self.d.args)
        if n < low or (high is not None and n > high):
            raise self.error("Wrong argument count or unexpected line ending after '%s'" % (self.d.name,))
        return self.d.values

    def no_block(self):
        if self.d.block is not None:
            raise self.error("Unexpected token '{': %s takes no block" % (self.plugin,))

    def block(self):
        """Sub-directives as L{Args} (empty without a block)."""
        return [Args(sub, self.plugin) for sub in (self.d.block or [])]

    @property
    def name(self):
        return self.d.name

    def unknown(self):
        return self.error("unknown property '%s'" % (self.d.name,))

    def integer(self, text, low=None, high=None, what="value"):
        try:
            value = int(text)
        except ValueError:
            raise self.error("invalid %s '%s': not an integer" % (what, text))
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error("%s %d out of range [%s, %s]" % (what, value, low, high))
        return value

    def duration(self, text, what="duration", allow_bare_seconds=True):
        try:
            return parse_duration(text, allow_bare_seconds)
        except ValueError:
            raise self.error("invalid %s '%s'" % (what, text))

    def zones(self, texts):
        out = []
        for text in texts:
            try:
                out.extend(zone_names(text))
            except ValueError as e:
                raise self.error(str(e))
        return out

    def fallthrough(self):
        return Fallthrough(tuple(self.zones(self.d.values)))


def once(directives, plugin):
    """The single occurrence of a once-per-block plugin."""
    if len(directives) > 1:
        raise directives[1].error("this plugin can only be used once per Server Block", plugin=plugin)
    return Args(directives[0], plugin)


class ServerOptions(object):
    """
    Process-wide settings gathered from every server block of one
    configuration (a generation): what the C{server} plugins declare.

    @ivar services: background work of plugins (watch threads, reload loops,
        health checks), started and stopped with the generation.
    @ivar readiness: C{(name, provider)} pairs; C{provider.ready()} -> bool.
    @ivar web: C{{kind: [address...]}} for health, ready and metrics.
    @ivar extras: free-form place for plugins to share state by name.
    """

    def __init__(self):
        self.services = []
        self.readiness = []
        self.web = {}
        self.lameduck = 0.0
        self.reload = None
        self.extras = {}


class BlockContext(object):
    """
    What C{setup} gets for one server block.

    @ivar zones: the block's zones (normalised bytes).
    @ivar plugins: instances already built for this block, by name; setup
        runs innermost first, so a plugin sees those after it in the chain.
    @ivar bind: listen addresses (filled by the C{bind} plugin; empty = all).
    """

    def __init__(self, reactor, block, options, dns_port=53, corefile=None):
        self.reactor = reactor
        self.block = block
        self.zones = block.zones if block is not None else [b""]
        self.options = options
        self.plugins = {}
        self.bind = []
        self.dns_port = dns_port
        self.corefile = corefile

    def add_service(self, service):
        self.options.services.append(service)

    def add_readiness(self, name, provider):
        self.options.readiness.append((name, provider))


class Wrapper(object):
    """Base for wrapping resolvers: C{next} is everything after it."""

    name = "wrapper"

    def __init__(self, next):
        self.next = next

    def query(self, query, timeout=None):
        return self.next.query(query)


__all__ = ["Args", "once", "parse_duration", "format_duration", "ServerOptions", "BlockContext", "Wrapper",
           "ConfigError", "PassToNext"]
