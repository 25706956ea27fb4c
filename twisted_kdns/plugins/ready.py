# -*- test-case-name: tests.plugins.test_ready -*-
"""
ready: C{/ready} on ADDRESS (default C{:8181}): 200 C{OK} once every
plugin that reports readiness (C{ctx.add_readiness}) is ready, else 503
with the comma-joined sorted names of those that are not, and 503 during
shutdown.  C{monitor until-ready} (default) stops asking a plugin once it
was ready; C{monitor continuously} asks on every request.
"""

from twisted_kdns.plugin import once
from twisted_kdns.plugins.prometheus import check_address

KIND = "server"
ONCE = True
DEFAULT_ADDRESS = ":8181"
MONITORS = ("until-ready", "continuously")


class ReadyConfig(object):
    def __init__(self, address=DEFAULT_ADDRESS, monitor="until-ready"):
        self.address = address
        self.monitor = monitor


def parse(directives):
    args = once(directives, "ready")
    values = args.count(0, 1)
    cfg = ReadyConfig(check_address(args, values[0]) if values else DEFAULT_ADDRESS)
    for sub in args.block():
        if sub.name != "monitor":
            raise sub.unknown()
        mode = sub.count(1, 1)[0]
        if mode not in MONITORS:
            raise sub.error("monitor type '%s' not supported (until-ready or continuously)" % (mode,))
        cfg.monitor = mode
    return cfg


def setup(config, ctx, next):
    addresses = ctx.options.web.setdefault("ready", [])
    if config.address not in addresses:
        addresses.append(config.address)
    if config.monitor == "continuously" or "ready.monitor" not in ctx.options.extras:
        ctx.options.extras["ready.monitor"] = config.monitor
    return None
