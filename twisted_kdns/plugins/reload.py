# -*- test-case-name: tests.plugins.test_reload -*-
"""
reload: C{reload [INTERVAL [JITTER]]} (30s, 15s): poll the Corefile and its
imports and apply a changed configuration without a restart; the work is
done by L{twisted_kdns.reloader.Reloader}.  INTERVAL is at least 2s; JITTER
is 0 or at least 1s and is capped to INTERVAL/2.  SIGHUP reloads at once,
with or without this plugin.
"""

from twisted_kdns.plugin import once

KIND = "server"
ONCE = True
DEFAULT_INTERVAL = 30.0
DEFAULT_JITTER = 15.0


class ReloadConfig(object):
    def __init__(self, interval=DEFAULT_INTERVAL, jitter=DEFAULT_JITTER):
        self.interval = interval
        self.jitter = jitter


def parse(directives):
    args = once(directives, "reload")
    args.no_block()
    values = args.count(0, 2)
    cfg = ReloadConfig()
    if values:
        cfg.interval = args.duration(values[0], "interval", allow_bare_seconds=False)
        if cfg.interval < 2:
            raise args.error("interval value must be greater or equal to 2s")
    if len(values) > 1:
        # Go's ParseDuration accepts a bare "0" and nothing else without a unit.
        cfg.jitter = 0.0 if values[1] == "0" else args.duration(values[1], "jitter", allow_bare_seconds=False)
        if 0 < cfg.jitter < 1 or cfg.jitter < 0:
            raise args.error("jitter value must be greater or equal to 1s (or 0)")
    if cfg.jitter > cfg.interval / 2:
        cfg.jitter = cfg.interval / 2
    return cfg


def setup(config, ctx, next):
    if ctx.options.reload is None:
        ctx.options.reload = (config.interval, config.jitter)
    return None
