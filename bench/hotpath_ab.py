"""
In-process A/B of the levers of issue 8's second round, in one process so that
machine noise hits both sides alike: CPU microseconds (time.process_time) per
request, alternating the variants over several rounds and printing medians.

  sendto   memo hit, reply on a real UDP socket: socket.sendto vs Port.write
  counters memo hit: cache request/hit counts as plain integers vs prometheus_client children
  gc       memo hit and full path with a 300,000-object heap: default, gc.freeze(),
           gen0 threshold 20,000, both
  chain    full path (hosts, no cache): FallthroughChain returning the synchronous
           Deferred vs a new defer.succeed

    .venv/bin/python bench/hotpath_ab.py
"""

import gc
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from prometheus_client import Counter  # noqa: E402
from twisted.internet import defer, reactor  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402
from twisted.names.error import DomainError  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

from tests.server.test_fastpath import KEY, PRODUCTION, request  # noqa: E402
from twisted_kdns import chain  # noqa: E402
from twisted_kdns.config import build, load  # noqa: E402
from twisted_kdns.errors import ServFail  # noqa: E402
from twisted_kdns.server.dispatch import Dispatcher  # noqa: E402
from twisted_kdns.server.udp import DNSDatagramProtocol  # noqa: E402

ROUNDS = 6


def ab(label, variants, call, n):
    """Median µs per call of each variant (a setup function), alternated over ROUNDS."""
    res = {name: [] for name in variants}
    for _ in range(ROUNDS):
        for name, setup in variants.items():
            setup()
            t = time.process_time()
            for _ in range(n):
                call()
            res[name].append((time.process_time() - t) / n * 1e6)
    print(label)
    for name, v in res.items():
        print("  %-10s %6.2f us  (rounds: %s)" % (name, sorted(v)[len(v) // 2], " ".join("%.1f" % x for x in v)))


def old_try(self, query, index):
    """FallthroughChain._try before: a synchronous answer re-wrapped in defer.succeed."""
    resolvers = self.resolvers
    while index < len(resolvers):
        resolver = resolvers[index]
        index += 1
        try:
            d = resolver.query(query)
        except DomainError:
            continue
        except Exception:
            return defer.fail(Failure())
        if d.called and not d.paused:
            result = []
            d.addBoth(result.append)
            outcome = result[0]
            if isinstance(outcome, Failure):
                if outcome.check(DomainError):
                    continue
                return defer.fail(outcome)
            return defer.succeed(outcome)
        return d.addErrback(self._next, query, index)
    return defer.fail(ServFail("no next plugin found"))


def main():
    clock = Clock()
    clock.advance(1000)
    gen = build(load(text=PRODUCTION), clock)
    disp = Dispatcher(lambda: gen.routes.get(KEY), "dns://:53", KEY, clock=time.time)
    proto = DNSDatagramProtocol(disp)
    port = reactor.listenUDP(0, proto, interface="127.0.0.1")
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    addr = sink.getsockname()
    data = request("svc.example.org")
    for _ in range(3):
        proto.datagramReceived(data, addr)
    assert proto.fast.hits >= 1, "the memo did not answer"
    hit = lambda: proto.datagramReceived(data, addr)  # noqa: E731
    direct = proto._sendto

    def use(value):
        return lambda: setattr(proto, "_sendto", value)
    ab("sendto (memo hit, UDP reply sent)", {"sendto": use(direct), "Port.write": use(None)}, hit, 20000)

    (m,) = list(proto.fast.memo.values())
    ints = (m.requests, m.hits)
    req = Counter("hotpath_ab_requests_total", "A/B only", ["server", "zones", "view"])
    hits = Counter("hotpath_ab_hits_total", "A/B only", ["server", "type", "zones", "view"])
    proms = (req.labels("a", "b", "c"), hits.labels("a", "b", "c", "d"))

    def counters(pair):
        def setup():
            m.requests, m.hits = pair
        return setup
    ab("counters (memo hit)", {"int": counters(ints), "prometheus": counters(proms)}, hit, 20000)
    m.requests, m.hits = ints

    heap = [dict(a=i, b=[i]) for i in range(300000)]  # noqa: F841 (a heap like the kubernetes objects')

    def gc_mode(freeze, threshold):
        def setup():
            gc.unfreeze()
            gc.set_threshold(threshold, 10, 10)
            if freeze:
                gc.freeze()
        return setup
    modes = {"default": gc_mode(False, 700), "freeze": gc_mode(True, 700),
             "gen0 20000": gc_mode(False, 20000), "both": gc_mode(True, 20000)}
    ab("gc (memo hit)", modes, hit, 40000)
    proto.fast = None
    ab("gc (full path, cache hit)", modes, hit, 10000)
    gc_mode(False, 700)()

    gen2 = build(load(text=PRODUCTION.replace("    cache 30\n", "")), clock)
    disp2 = Dispatcher(lambda: gen2.routes.get(KEY), "dns://:53", KEY, clock=time.time)
    data2 = request("svc.example.org", rdtype="AAAA")
    new_try = chain.FallthroughChain._try

    def try_with(fn):
        return lambda: setattr(chain.FallthroughChain, "_try", fn)
    ab("chain (full path, hosts, no cache)", {"same Deferred": try_with(new_try), "defer.succeed": try_with(old_try)},
       lambda: disp2.handle(data2, ("127.0.0.1", 1), "udp"), 5000)
    chain.FallthroughChain._try = new_try
    port.stopListening()


if __name__ == "__main__":
    main()
