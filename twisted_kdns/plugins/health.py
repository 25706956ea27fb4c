# -*- test-case-name: tests.plugins.test_health -*-
"""
health: C{/health} on ADDRESS (default C{:8080}): 200 C{OK} while the
process serves.  It says nothing about plugins; that is C{ready}.

C{lameduck DURATION}: on shutdown (SIGTERM) DNS keeps answering for
DURATION while C{/ready} already answers 503, so the pod leaves the Service
endpoints before it stops answering.  The wait is part of the service's
C{stopService}, which twistd runs as a "before shutdown" system event
trigger and whose Deferred the reactor waits for.  It is not applied on
reload.  Several blocks may declare health; the longest lameduck wins.
"""

from twisted_kdns.plugin import Args
from twisted_kdns.plugins.prometheus import check_address

KIND = "server"
ONCE = False
DEFAULT_ADDRESS = ":8080"


class HealthConfig(object):
    def __init__(self):
        self.addresses = []
        self.lameduck = 0.0


def parse(directives):
    cfg = HealthConfig()
    for d in directives:
        args = Args(d, "health")
        values = args.count(0, 1)
        address = check_address(args, values[0]) if values else DEFAULT_ADDRESS
        if address not in cfg.addresses:
            cfg.addresses.append(address)
        for sub in args.block():
            if sub.name != "lameduck":
                raise sub.unknown()
            duration = sub.duration(sub.count(1, 1)[0], "lameduck duration", allow_bare_seconds=False)
            cfg.lameduck = max(cfg.lameduck, duration)
    return cfg


def setup(config, ctx, next):
    addresses = ctx.options.web.setdefault("health", [])
    for address in config.addresses:
        if address not in addresses:
            addresses.append(address)
    ctx.options.lameduck = max(ctx.options.lameduck, config.lameduck)
    return None
