"""
Hostile Kubernetes objects: missing and null fields, wrong JSON types,
invalid IPs, huge port lists, names at the length limits and objects of
unexpected kinds.  Conversion and the store never raise (in-process fuzz of
thousands of mutated objects); through the API stand-in and the watch, bad
objects are skipped, good ones keep answering, and the watch keeps
applying later events (the thread is not dead).
"""

import copy
import random

import dns.rcode
from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.helpers import query, rrset_values, start_server
from tests.k8s_apiserver import endpointslice, namespace, pod, service
from tests.plugins.logcapture import capture
from tests.plugins.kubernetes.test_watch_dns import answer_until, has, nxdomain
from tests.plugins.kubernetes.test_watch_harness import WatchHarness, expected, table, wait_for
from twisted_kdns.plugins.kubernetes.objects import KINDS, convert
from twisted_kdns.plugins.kubernetes.store import Store

MUTATIONS = 8000
SEED = 9
ODD_VALUES = [None, "", "None", 0, -1, 65536, 2 ** 64, True, 1.5, [], {}, [None], [{}], "999.1.1.1",
              "10.0.0.1/24", "::ffff:10.0.0.1", "fe80::1%eth0", "x" * 300, "\u00e9", {"a": None},
              [1, "a", None], "10.0.0.1"]


def samples():
    """One well-formed object of each kind."""
    svc = service("web", "default", cluster_ip="10.0.0.10", ports=(("http", 80), ("dns", 53)))
    svc["metadata"]["resourceVersion"] = "5"
    eps = endpointslice("web", ["10.1.0.1", "10.1.0.2"], "default", hostnames=["a", "b"])
    eps["metadata"]["resourceVersion"] = "6"
    p = pod("web-1", "10.1.0.1")
    p["metadata"]["resourceVersion"] = "7"
    ns = namespace("default")
    ns["metadata"]["resourceVersion"] = "8"
    return {"services": svc, "endpointslices": eps, "pods": p, "namespaces": ns}


def paths(obj, prefix=()):
    """Every path (tuple of keys/indexes) inside a JSON object."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.extend(paths(v, prefix + (k,)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(paths(v, prefix + (i,)))
    return out


def mutate(rng, obj):
    """Replace, delete or null one field anywhere in a copy of C{obj}."""
    obj = copy.deepcopy(obj)
    for _ in range(rng.randrange(1, 4)):
        candidates = paths(obj)[1:]
        if not candidates:
            break
        path = rng.choice(candidates)
        parent = obj
        try:
            for key in path[:-1]:
                parent = parent[key]
            if rng.random() < 0.25 and isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent[path[-1]] = copy.deepcopy(rng.choice(ODD_VALUES))
        except (KeyError, IndexError, TypeError):
            continue
    return obj


class ConversionFuzzTests(unittest.SynchronousTestCase):

    def test_mutated_objects_never_raise(self):
        """8,000 objects with one to three fields deleted, nulled or given the wrong JSON type: convert returns a record or None, and the store accepts every record (add, modify, delete)."""
        rng = random.Random(SEED)
        base = samples()
        store = Store(reactor, KINDS, [b"cluster.local"])
        for kind in KINDS:
            store.replace(kind, [convert(kind, base[kind])])
        outcomes = {"record": 0, "skipped": 0}
        for i in range(MUTATIONS):
            kind = KINDS[i % len(KINDS)]
            raw = mutate(rng, base[kind])
            record = convert(kind, raw)
            if record is None:
                outcomes["skipped"] += 1
                continue
            outcomes["record"] += 1
            self.assertIsNotNone(record.key)
            store.apply(kind, "ADDED", record)
            store.apply(kind, "MODIFIED", record)
            if i % 3 == 0:
                store.apply(kind, "DELETED", record)
        self.assertGreater(outcomes["record"], MUTATIONS // 4, outcomes)
        self.assertGreater(outcomes["skipped"], 0, outcomes)
        self.assertIsNone(convert("services", ["not", "a", "dict"]))
        self.assertIsNone(convert("configmaps", base["services"]))

    def test_scoped_ipv6_is_not_an_address(self):
        """Regression: a scoped IPv6 (fe80::1%eth0) was taken as a cluster IP and made the store's PTR index raise, failing the whole re-list; now it is dropped like any invalid address."""
        raw = service("scoped", "default", cluster_ip="fe80::1%eth0")
        record = convert("services", raw)
        self.assertEqual(record.cluster_ips, ())
        eps = convert("endpointslices", endpointslice("scoped", ["fe80::2%eth0", "10.1.0.9"], "default"))
        self.assertEqual([e.addresses for e in eps.endpoints], [("10.1.0.9",)])
        store = Store(reactor, KINDS, [b"cluster.local"])
        store.replace("services", [record, convert("services", service("ok", "default"))])
        store.replace("endpointslices", [eps])
        self.assertEqual(sorted(table(store, "services")), ["default/ok", "default/scoped"])


COREFILE = """\
.:0 {
    bind 127.0.0.1
    kubernetes cluster.local {
        endpoint %s
    }
}
"""

LONG63 = "a" * 62 + "z"


def hostile_objects():
    """Schema-valid but hostile: what a real API server can send."""
    svcs, slices = [], []
    s = service("nullspec", "default")
    s["spec"] = None
    svcs.append(s)
    s = service("noip", "default")
    del s["spec"]["clusterIP"], s["spec"]["clusterIPs"]
    svcs.append(s)
    svcs.append(service("badip", "default", cluster_ip="999.0.0.1"))
    svcs.append(service("cidr", "default", cluster_ip="10.0.0.0/24"))
    svcs.append(service("manyports", "default", cluster_ip="10.0.3.1",
                        ports=[("p%d" % i, 1 + i) for i in range(5000)]))
    svcs.append(service(LONG63, "default", cluster_ip="10.0.3.2"))
    s = service("nullports", "default", cluster_ip="10.0.3.3")
    s["spec"]["ports"] = None
    svcs.append(s)
    s = service("wrongkind", "default", cluster_ip="10.0.3.4")
    s["kind"] = "ConfigMap"  # an object of an unexpected kind in the services stream
    svcs.append(s)
    e = endpointslice("manyports", ["10.1.3.1", "not-an-ip", "10.1.3.1"], "default",
                      hostnames=[LONG63, "x" * 64, None])
    e["endpoints"][2]["addresses"] = None
    slices.append(e)
    e = endpointslice("nullports", [], "default")
    e["endpoints"] = None
    e["ports"] = None
    slices.append(e)
    return svcs, slices


class WatchHostileObjectTests(WatchHarness, unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_hostile_objects_skipped_watch_alive(self):
        """Hostile but schema-valid objects at list time and as watch events: good names answer, bad ones are skipped, later events still apply and the store equals the stand-in's."""
        self.start_api()
        self.populate(services=4)
        svcs, slices = hostile_objects()
        self.api.load("services", svcs[:4])
        self.api.load("endpointslices", slices[:1])
        _, port = start_server(self, COREFILE % (self.api.url,))
        yield answer_until(port, "svc-1.other.svc.cluster.local", has("10.0.0.2"), timeout=10.0)
        self.assertTrue(self.api.wait_for_watches(3))
        for s in svcs[4:]:
            self.api.create("services", s)
        for e in slices[1:]:
            self.api.create("endpointslices", e)
        self.api.create("services", service("after", "default", cluster_ip="10.0.9.9"))
        yield answer_until(port, "after.default.svc.cluster.local", has("10.0.9.9"))
        reply = yield query(port, LONG63 + ".default.svc.cluster.local.", "A")
        self.assertEqual(rrset_values(reply), ["10.0.3.2"])
        for name in ("badip", "cidr", "noip"):
            reply = yield query(port, name + ".default.svc.cluster.local.", "A")
            self.assertEqual(rrset_values(reply), [], name)
            self.assertIn(reply.rcode(), (dns.rcode.NOERROR, dns.rcode.NXDOMAIN), name)
        # 5,000 ports: SRV over UDP truncated within 512 bytes, complete-as-fits over TCP.
        reply = yield query(port, "manyports.default.svc.cluster.local.", "SRV")
        self.assertLessEqual(len(reply.to_wire()), 512)
        reply = yield query(port, "manyports.default.svc.cluster.local.", "SRV", tcp=True)
        self.assertEqual(reply.rcode(), dns.rcode.NOERROR)
        self.assertGreater(len(rrset_values(reply)), 100)
        reply = yield query(port, "manyports.default.svc.cluster.local.", "A")
        self.assertEqual(rrset_values(reply), ["10.0.3.1"])
        self.api.delete("services", "default", "after")
        yield answer_until(port, "after.default.svc.cluster.local", nxdomain)


class TypeConfusedStreamTests(WatchHarness, unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_type_confused_event_does_not_stall_the_watch(self):
        """A watch event whose spec or annotations have the wrong JSON type is skipped; the next events still apply."""
        logged = capture(self, "kdns.plugins.kubernetes")
        self.start_api()
        self.populate(services=2)
        self.start_source()
        yield self.wait_ready()
        self.assertTrue(self.api.wait_for_watches(3))
        bad = service("confused", "default", cluster_ip="10.0.5.5")
        bad["spec"] = "not an object"
        self.api.create("services", bad)
        e = endpointslice("svc-0", ["10.1.5.5"], "default", name="confused-slice")
        e["metadata"]["annotations"] = ["not", "a", "map"]
        self.api.create("endpointslices", e)
        self.api.create("services", service("later", "default", cluster_ip="10.0.5.6"))
        self.api.create("endpointslices", endpointslice("later", ["10.1.5.6"], "default"))
        yield wait_for(lambda: "default/later" in table(self.store, "services")
                       and "default/later-abcde" in table(self.store, "endpointslices"),
                       5.0, "events after the confused ones")
        # Skipped (with a logged warning, the watch resuming after it) or kept as
        # convert() reads it (no addresses): either way nothing else is lost.
        want = expected(self.api, "services")
        have = table(self.store, "services")
        have.setdefault("default/confused", want["default/confused"])
        self.assertEqual(have, want)
        self.assertEqual([line for line in logged if line[0] == "error"], [])
        if "default/confused" not in table(self.store, "services"):
            self.assertTrue([line for line in logged if line[0] == "warn"], logged)
