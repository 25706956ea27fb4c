"""
The slim records (objects.convert) and the Store that indexes them:
conversion rules, bad input, events, full replacement, change names for
subscribers, readiness, and memory per record.
"""

import sys

from twisted.internet.task import Clock
from twisted.trial import unittest

from twisted_kdns.plugins.kubernetes.objects import Endpoint, EndpointSlice, Pod, Service, convert
from twisted_kdns.plugins.kubernetes.store import Store, dashed_ip


def svc(name="s", ns="ns", ip="10.0.0.1", rv="1", **spec):
    spec.setdefault("clusterIP", ip)
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv}, "spec": spec}


def eps(name="s-1", ns="ns", service="s", addresses=("172.0.0.1",), ready=True, rv="1"):
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
            "endpoints": [{"addresses": list(addresses), "conditions": {"ready": ready}}]}


def pod(name="p", ns="ns", ip="10.20.0.1", phase="Running", **meta):
    m = {"name": name, "namespace": ns}
    m.update(meta)
    return {"metadata": m, "status": {"phase": phase, "podIP": ip}}


class ConvertTests(unittest.SynchronousTestCase):
    def test_service(self):
        """A Service keeps name, namespace, rv, type, canonical ClusterIPs and (name, PROTO, port)."""
        s = convert("services", svc(ip="10.0.0.1", clusterIPs=["10.0.0.1", "FD00::0:1"],
                                    ports=[{"name": "HTTP", "port": 80}, {"port": 53, "protocol": "udp"}]))
        self.assertEqual((s.key, s.resource_version, s.type, s.cluster_ips, s.headless, s.ports),
                         ("ns/s", "1", "ClusterIP", ("10.0.0.1", "fd00::1"), False,
                          (("http", "TCP", 80), ("", "UDP", 53))))

    def test_headlessAndExternal(self):
        """clusterIP None is headless; ExternalName keeps its lower-case target; an IP target is dropped."""
        self.assertTrue(convert("services", svc(ip="None")).headless)
        e = convert("services", svc(ip=None, type="ExternalName", externalName="Foo.Example.ORG."))
        self.assertEqual((e.is_external, e.external_name, e.cluster_ips), (True, "foo.example.org", ()))
        self.assertIsNone(convert("services", svc(type="ExternalName", externalName="1.2.3.4")).external_name)

    def test_badInput(self):
        """Malformed objects give None or drop the bad field; convert never raises."""
        for kind in ("namespaces", "services", "endpointslices", "pods", "bogus"):
            for raw in (None, [], {}, {"metadata": None}, {"metadata": {"name": 5}}, "x"):
                self.assertIsNone(convert(kind, raw), (kind, raw))
        s = convert("services", svc(ip="not-an-ip", ports=[{"port": "x"}, {"port": 70000}, "junk", {"port": True}]))
        self.assertEqual((s.cluster_ips, s.ports), ((), ()))
        s = convert("services", {"metadata": {"name": "x"}, "spec": "junk"})
        self.assertEqual((s.namespace, s.type), ("default", "ClusterIP"))
        e = convert("endpointslices", {"metadata": {"name": "e", "namespace": "n"},
                                       "endpoints": [{"addresses": ["1.2.3.4", "bad"]}, {"addresses": []},
                                                     "junk", {"addresses": "1.2.3.4"}]})
        self.assertEqual([ep.addresses for ep in e.endpoints], [("1.2.3.4",)])
        self.assertIsNone(e.service)

    def test_endpointSlice(self):
        """EndpointSlice: service label, ready (absent = true), hostname, short targetRef names, -1 for a portless port."""
        raw = eps()
        raw["ports"].append({"name": "x"})
        raw["endpoints"] = [
            {"addresses": ["172.0.0.1"], "hostname": "H", "targetRef": {"kind": "Pod", "name": "p1"}},
            {"addresses": ["172.0.0.2"], "conditions": {"ready": False},
             "targetRef": {"kind": "Pod", "name": "p" * 64}}]
        e = convert("endpointslices", raw)
        self.assertEqual(e.service_key, "ns/s")
        self.assertEqual(e.ports, (("http", "TCP", 80), ("x", "TCP", -1)))
        self.assertEqual([(x.ready, x.hostname, x.target) for x in e.endpoints],
                         [(True, "h", "p1"), (False, None, None)])

    def test_pod(self):
        """A Pod keeps its primary IP; finished pods have none; terminating ones are flagged."""
        self.assertEqual(convert("pods", pod()).ip, "10.20.0.1")
        self.assertIsNone(convert("pods", pod(phase="Succeeded")).ip)
        self.assertIsNone(convert("pods", pod(ip=None)).ip)
        self.assertTrue(convert("pods", pod(deletionTimestamp="2026-01-01T00:00:00Z")).terminating)

    def test_slots(self):
        """Records have no per-instance dict (memory: 50,000 pods must stay small)."""
        for record in (convert("pods", pod()), convert("services", svc()), convert("endpointslices", eps()),
                       Endpoint(("1.2.3.4",))):
            self.assertFalse(hasattr(record, "__dict__"), type(record))
        self.assertLess(sys.getsizeof(convert("pods", pod())), 100)


class StoreTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.store = Store(self.clock, zones=[b"cluster.local"])
        self.changes = []
        self.store.subscribe(self.changes.append)

    def test_ready(self):
        """ready() once every required kind had a full LIST; synced() per kind."""
        self.assertFalse(self.store.ready())
        self.store.replace("namespaces", [])
        self.store.replace("services", [])
        self.assertTrue(self.store.synced("services"))
        self.assertFalse(self.store.ready())
        self.store.replace("endpointslices", [])
        self.assertTrue(self.store.ready())

    def test_serviceEvents(self):
        """ADDED/MODIFIED/DELETED update the ClusterIP index and name the service and PTR names."""
        s = self.store
        s.apply("services", "ADDED", convert("services", svc()))
        self.assertEqual(self.changes[-1], [b"s.ns.svc.cluster.local", b"1.0.0.10.in-addr.arpa"])
        s.apply("services", "MODIFIED", convert("services", svc(ip="10.0.0.2", rv="2")))
        self.assertEqual(s.services_by_cluster_ip("10.0.0.1"), ())
        self.assertEqual([x.key for x in s.services_by_cluster_ip("10.0.0.2")], ["ns/s"])
        self.assertEqual(self.changes[-1], [b"s.ns.svc.cluster.local", b"1.0.0.10.in-addr.arpa",
                                            b"2.0.0.10.in-addr.arpa"])
        s.apply("services", "DELETED", convert("services", svc(ip="10.0.0.2", rv="3")))
        self.assertEqual((len(s.services), s.cluster_ips), (0, {}))
        self.assertEqual(len(self.changes), 3)

    def test_sameContentIsSilent(self):
        """An update that changes only the resourceVersion notifies nobody and keeps the serial."""
        self.clock.advance(10)
        self.store.apply("services", "ADDED", convert("services", svc()))
        self.clock.advance(10)
        self.store.apply("services", "MODIFIED", convert("services", svc(rv="9")))
        self.assertEqual(len(self.changes), 1)
        self.assertEqual(self.store.modified, 10)
        self.assertEqual(self.store.services["ns/s"].resource_version, "9")

    def test_sliceEvents(self):
        """Slices are grouped per service and indexed per address; changes name the service and both IPs."""
        s = self.store
        s.apply("endpointslices", "ADDED", convert("endpointslices", eps()))
        s.apply("endpointslices", "ADDED", convert("endpointslices", eps(name="s-2", addresses=["172.0.0.2"])))
        self.assertEqual(sorted(x.name for x in s.slices_of("ns", "s")), ["s-1", "s-2"])
        s.apply("endpointslices", "MODIFIED", convert("endpointslices", eps(addresses=["172.0.0.3"], rv="2")))
        self.assertEqual(self.changes[-1], [b"s.ns.svc.cluster.local", b"1.0.0.172.in-addr.arpa",
                                            b"3.0.0.172.in-addr.arpa"])
        self.assertEqual(s.slices_by_ip("172.0.0.1"), ())
        s.apply("endpointslices", "DELETED", convert("endpointslices", eps(name="s-2")))
        s.apply("endpointslices", "DELETED", convert("endpointslices", eps()))
        self.assertEqual((s.service_slices, s.endpoint_ips), ({}, {}))

    def test_replace(self):
        """replace() removes what the LIST lacks, adds the new, and names only what changed."""
        s = self.store
        s.replace("services", [convert("services", svc("a", ip="10.0.0.1")),
                               convert("services", svc("b", ip="10.0.0.2"))])
        self.changes[:] = []
        s.replace("services", [convert("services", svc("b", ip="10.0.0.2", rv="7")),
                               convert("services", svc("c", ip="10.0.0.3"))])
        self.assertEqual(sorted(s.services), ["ns/b", "ns/c"])
        self.assertEqual(sorted(self.changes[0]), sorted([b"a.ns.svc.cluster.local", b"1.0.0.10.in-addr.arpa",
                                                          b"c.ns.svc.cluster.local", b"3.0.0.10.in-addr.arpa"]))

    def test_pods(self):
        """Pods index by IP (pod_namespace); terminating updates are skipped as CoreDNS does."""
        s = self.store
        s.apply("pods", "ADDED", convert("pods", pod()))
        self.assertEqual(self.changes[-1], [b"10-20-0-1.ns.pod.cluster.local"])
        self.assertEqual(s.pod_namespace("10.20.0.1"), "ns")
        s.apply("pods", "MODIFIED", convert("pods", pod(ip="10.20.0.2", deletionTimestamp="x")))
        self.assertEqual(s.pod_namespace("10.20.0.1"), "ns")
        s.replace("pods", [convert("pods", pod(ip="10.20.0.2", deletionTimestamp="x"))])
        self.assertEqual(s.pod_namespace("10.20.0.1"), "ns")
        s.apply("pods", "DELETED", convert("pods", pod(deletionTimestamp="x")))
        self.assertIsNone(s.pod_namespace("10.20.0.1"))

    def test_namespaces(self):
        """A namespace change names <ns>.svc and <ns>.pod under each zone."""
        self.store.apply("namespaces", "ADDED", convert("namespaces", {"metadata": {"name": "ns"}}))
        self.assertEqual(self.changes[-1], [b"ns.svc.cluster.local", b"ns.pod.cluster.local"])

    def test_badEvents(self):
        """None records are ignored; unknown event types and kinds raise ValueError."""
        self.store.apply("services", "ADDED", None)
        self.assertEqual(self.changes, [])
        self.assertRaises(ValueError, self.store.apply, "services", "BOOKMARK", Service("a", "b"))
        self.assertRaises(ValueError, self.store.replace, "deployments", [])

    def test_subscriberErrorsContained(self):
        """A failing subscriber does not stop the others or the update."""
        def broken(names):
            raise RuntimeError("boom")
        self.store._subscribers.insert(0, broken)
        self.store.apply("pods", "ADDED", Pod("p", "ns", "1", "10.1.1.1"))
        self.assertEqual(len(self.changes), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_dashedIp(self):
        """Endpoint/pod labels: dots and colons become dashes; a trailing dash gets a 0."""
        self.assertEqual([dashed_ip(i) for i in ("10.0.0.1", "fd00::1", "fd00::")],
                         ["10-0-0-1", "fd00--1", "fd00--0"])
        self.assertEqual(EndpointSlice("a", "b").service_key, None)
