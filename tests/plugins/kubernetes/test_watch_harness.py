"""
Shared set-up for the watcher tests (no tests here): a running API stand-in, a real Store
and an L{ApiSource} on the real reactor, and a poll-until helper that keeps
the reactor running while it waits.
"""

import time

from twisted.internet import defer, reactor, task

from tests.k8s_apiserver import FakeApiServer, endpointslice, namespace, service
from twisted_kdns.plugins.kubernetes import KubernetesConfig
from twisted_kdns.plugins.kubernetes.objects import convert
from twisted_kdns.plugins.kubernetes.store import Store
from twisted_kdns.plugins.kubernetes.watch import ApiSource

KINDS = ("namespaces", "services", "endpointslices")


@defer.inlineCallbacks
def wait_for(predicate, timeout=5.0, what="condition", interval=0.002):
    """Poll C{predicate} on the reactor until true; fail after C{timeout} seconds."""
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        yield task.deferLater(reactor, interval, lambda: None)


def expected(api, kind, namespaces=None):
    """What the store must hold for C{kind}: the stand-in's objects, converted."""
    out = {}
    for raw in api.items(kind):
        meta = raw["metadata"]
        ns = meta["name"] if kind == "namespaces" else meta.get("namespace")
        if namespaces and ns not in namespaces:
            continue
        record = convert(kind, raw)
        out[record.key] = record
    return out


def table(store, kind):
    return dict(store._table(kind))


class WatchHarness(object):
    """Mixin for trial TestCases: C{self.api}, C{self.store}, C{self.source}."""

    def start_api(self, **kw):
        self.api = FakeApiServer(**kw)
        self.api.start()
        self.addCleanup(self.api.stop)
        return self.api

    def populate(self, services=5, namespaces=("default", "other")):
        api = self.api
        api.load("namespaces", [namespace(n) for n in namespaces])
        svcs, slices = [], []
        for i in range(services):
            ns = namespaces[i % len(namespaces)]
            name = "svc-%d" % (i,)
            svcs.append(service(name, ns, cluster_ip="10.0.%d.%d" % (i // 200, i % 200 + 1),
                                headless=(i % 3 == 0)))
            slices.append(endpointslice(name, ["10.1.%d.%d" % (i // 200, i % 200 + 1)], ns))
        api.load("services", svcs)
        api.load("endpointslices", slices)

    def config(self, **attrs):
        cfg = KubernetesConfig()
        cfg.endpoint = self.api.url
        for k, v in attrs.items():
            setattr(cfg, k, v)
        return cfg

    def start_source(self, cfg=None, kinds=KINDS, **kw):
        cfg = cfg or self.config()
        self.store = Store(reactor, kinds, [b"cluster.local"])
        kw.setdefault("backoff", (0.01, 0.05))
        self.source = ApiSource(cfg, kinds, self.store, reactor, **kw)
        self.source.startService()
        self.addCleanup(self.source.stopService)
        return self.source

    def wait_ready(self, timeout=10.0):
        return wait_for(self.store.ready, timeout, "the store to sync")

    def assertInSync(self, kinds=KINDS, namespaces=None):
        """Every object equal (resourceVersion included), nothing missing, nothing extra."""
        for kind in kinds:
            self.assertEqual(table(self.store, kind), expected(self.api, kind, namespaces), kind)

    def in_sync(self, kinds=KINDS):
        return all(table(self.store, k) == expected(self.api, k) for k in kinds)

    def list_requests(self, path):
        return [r for r in self.api.requests if r[1].split("?")[0] == path and "watch=true" not in r[1]]
