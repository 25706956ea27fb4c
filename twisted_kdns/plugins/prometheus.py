# -*- test-case-name: tests.plugins.test_prometheus -*-
"""
prometheus: C{/metrics} on ADDRESS (default C{localhost:9153}) and the
per-query C{coredns_dns_*} metrics of this server block.

As in CoreDNS, only blocks that list C{prometheus} record per-query
metrics; the endpoint itself is process-wide, and several blocks may name
one address (one HTTP site per distinct address).  Recording happens in a
hook run after the reply is encoded, when rcode, size and the writing
plugin are known (see L{twisted_kdns.metrics.DnsMetrics}).
"""

from twisted_kdns import metrics
from twisted_kdns.plugin import Wrapper, once
from twisted_kdns.web import split_address

KIND = "wrapper"
ONCE = True
DEFAULT_ADDRESS = "localhost:9153"

# One recorder for the process: its counts outlive reloads.
RECORDER = metrics.DNS


class PrometheusConfig(object):
    def __init__(self, address=DEFAULT_ADDRESS):
        self.address = address


def check_address(args, text):
    try:
        split_address(text)
    except ValueError as e:
        raise args.error(str(e))
    return text


def parse(directives):
    args = once(directives, "prometheus")
    values = args.count(0, 1)
    cfg = PrometheusConfig(check_address(args, values[0]) if values else DEFAULT_ADDRESS)
    for sub in args.block():
        if sub.name == "runtime_metrics":
            sub.count(0, 0)  # Go runtime metrics: Python's process_* collector is always on
        elif sub.name == "tls":
            raise sub.error("tls is not supported in this version of kdns")
        else:
            raise sub.unknown()
    return cfg


class MetricsWrapper(Wrapper):
    """Hooks the recorder onto each query of the block; costs one list append."""

    name = "prometheus"

    def __init__(self, next, recorder=RECORDER):
        Wrapper.__init__(self, next)
        self.record = recorder.record

    def query(self, query, timeout=None):
        query.add_hook(self.record)
        return self.next.query(query)


def setup(config, ctx, next):
    addresses = ctx.options.web.setdefault("metrics", [])
    if config.address not in addresses:
        addresses.append(config.address)
    return MetricsWrapper(next)
