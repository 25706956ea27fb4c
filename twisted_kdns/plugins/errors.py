# -*- test-case-name: tests.plugins.test_errors -*-
"""
errors: log what the rest of the chain failed with, in CoreDNS's shape
C{[ERROR] plugin/errors: RCODE NAME TYPE: REASON}, optionally consolidating
repeated errors matching a pattern into one line per period.
"""

import re

from twisted.logger import Logger, LogLevel
from twisted.names import dns

from twisted_kdns.errors import DNSRcode, Drop
from twisted_kdns.names import fqdn
from twisted_kdns.plugin import Wrapper, format_duration, once

KIND = "wrapper"
ONCE = True
log = Logger(namespace="kdns.plugins.errors")
LEVELS = {"warning": LogLevel.warn, "error": LogLevel.error, "info": LogLevel.info, "debug": LogLevel.debug}
PREFIX = {LogLevel.warn: "[WARNING]", LogLevel.error: "[ERROR]", LogLevel.info: "[INFO]",
          LogLevel.debug: "[DEBUG]"}


class Consolidate(object):
    def __init__(self, period, pattern, level, show_first):
        self.period = period
        self.pattern = pattern
        self.level = level
        self.show_first = show_first


class ErrorsConfig(object):
    def __init__(self):
        self.stdout = False
        self.stacktrace = False
        self.consolidate = []


def parse(directives):
    args = once(directives, "errors")
    cfg = ErrorsConfig()
    values = args.count(0, 1)
    if values:
        if values[0] != "stdout":
            raise args.error("unknown argument '%s' (only 'stdout')" % (values[0],))
        cfg.stdout = True
    for sub in args.block():
        if sub.name == "stacktrace":
            sub.count(0, 0)
            cfg.stacktrace = True
        elif sub.name == "consolidate":
            vals = sub.count(2, 4)
            period = sub.duration(vals[0], "consolidate duration", allow_bare_seconds=False)
            if len(vals[1]) > 10000:
                raise sub.error("regex too long")
            try:
                pattern = re.compile(vals[1])
            except re.error as e:
                raise sub.error("invalid regex '%s': %s" % (vals[1], e))
            level, show_first = LogLevel.error, False
            rest = vals[2:]
            if rest and rest[-1] == "show_first":
                show_first = True
                rest = rest[:-1]
            if rest:
                if rest[0] not in LEVELS or len(rest) > 1:
                    raise sub.error("unknown log level '%s'" % (rest[0],))
                level = LEVELS[rest[0]]
            cfg.consolidate.append(Consolidate(period, pattern, level, show_first))
        else:
            raise sub.error("Unknown field '%s'" % (sub.name,))
    return cfg


class ErrorsResolver(Wrapper):
    name = "errors"

    def __init__(self, config, next, reactor):
        Wrapper.__init__(self, next)
        self.config = config
        self.reactor = reactor
        self.counts = [0] * len(config.consolidate)
        self.timers = [None] * len(config.consolidate)

    def query(self, query, timeout=None):
        try:
            d = self.next.query(query)
        except Exception as e:
            from twisted.internet import defer
            d = defer.fail(e)
        return d.addErrback(self._failed, query)

    def _failed(self, failure, query):
        exc = failure.value
        if isinstance(exc, Drop):
            return failure
        if isinstance(exc, DNSRcode):
            if not exc.reason:
                return failure
            rcode, reason = exc.code, exc.reason
        else:
            rcode, reason = dns.ESERVER, "%s: %s" % (type(exc).__name__, exc)
        self.report("%d %s %s: %s" % (rcode, fqdn(query.qname), dns.QUERY_TYPES.get(query.type, str(query.type)),
                                      reason))
        return failure

    def report(self, text):
        """
        Log one error line, or count it under the first C{consolidate} rule
        whose pattern matches; the count is logged when the period ends.
        """
        for i, rule in enumerate(self.config.consolidate):
            if rule.pattern.search(text):
                self.counts[i] += 1
                if self.timers[i] is None:
                    if rule.show_first:
                        log.emit(rule.level, "{prefix} plugin/errors: {text}",
                                 prefix=PREFIX[rule.level], text=text)
                    self.timers[i] = self.reactor.callLater(rule.period, self._flush, i)
                return
        log.error("[ERROR] plugin/errors: {text}", text=text)

    def _flush(self, i):
        rule = self.config.consolidate[i]
        self.timers[i] = None
        count, self.counts[i] = self.counts[i], 0
        # With show_first the first one was logged already: a summary only
        # when more followed (the count includes the first, as in CoreDNS).
        if count == 0 or (count == 1 and rule.show_first):
            return
        log.emit(rule.level, "{prefix} plugin/errors: {count} errors like '{pattern}' occurred in last {period}",
                 prefix=PREFIX[rule.level], count=count, pattern=rule.pattern.pattern,
                 period=format_duration(rule.period))

    def stop(self):
        for i, t in enumerate(self.timers):
            if t is not None and t.active():
                t.cancel()
                self._flush(i)


def setup(config, ctx, next):
    from twisted.application.service import Service

    resolver = ErrorsResolver(config, next, ctx.reactor)

    class Flusher(Service):
        def stopService(self):
            Service.stopService(self)
            resolver.stop()

    ctx.add_service(Flusher())
    return resolver
