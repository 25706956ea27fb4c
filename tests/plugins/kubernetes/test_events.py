"""
Changes reach answers at once: a Service added, changed or deleted through
the Store (as a watch event lands) or through a rewritten manifest is
answered / NXDOMAIN on the very next query, and subscribers hear about it.
"""

import os

from twisted.internet import defer
from twisted.trial import unittest

from twisted_kdns.plugins.kubernetes.objects import convert

from tests.plugins.kubernetes.support import NOERROR, NXDOMAIN, ClusterMixin

Z = "cluster.local."


def service(name, ip, rv="100"):
    return convert("services", {"metadata": {"name": name, "namespace": "ns1", "resourceVersion": rv},
                                "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]}})


def slice_(name, service_name, addresses, hostname=None):
    return convert("endpointslices", {
        "metadata": {"name": name, "namespace": "ns1",
                     "labels": {"kubernetes.io/service-name": service_name}},
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
        "endpoints": [{"addresses": [a], "hostname": hostname} for a in addresses]})


class StoreEventTests(ClusterMixin, unittest.TestCase):
    def setUp(self):
        self.start()
        return self.synced()

    @defer.inlineCallbacks
    def test_serviceAddedAndDeleted(self):
        """A Service ADDED is answerable on the next query; DELETED is NXDOMAIN on the next one."""
        yield self.expect("new.ns1.svc." + Z, "A", NXDOMAIN)
        names = []
        self.store.subscribe(names.append)
        self.store.apply("services", "ADDED", service("new", "10.0.9.9"))
        self.assertEqual(names[-1], [b"new.ns1.svc.cluster.local", b"9.9.0.10.in-addr.arpa"])
        yield self.expect("new.ns1.svc." + Z, "A", NOERROR, ["new.ns1.svc.cluster.local. 5 A 10.0.9.9"])
        yield self.expect("9.9.0.10.in-addr.arpa.", "PTR", NOERROR,
                          ["9.9.0.10.in-addr.arpa. 5 PTR new.ns1.svc.cluster.local."])
        self.store.apply("services", "MODIFIED", service("new", "10.0.9.10", rv="101"))
        yield self.expect("new.ns1.svc." + Z, "A", NOERROR, ["new.ns1.svc.cluster.local. 5 A 10.0.9.10"])
        yield self.expect("9.9.0.10.in-addr.arpa.", "PTR", NXDOMAIN)
        self.store.apply("services", "DELETED", service("new", "10.0.9.10", rv="102"))
        yield self.expect("new.ns1.svc." + Z, "A", NXDOMAIN)
        yield self.expect("10.9.0.10.in-addr.arpa.", "PTR", NXDOMAIN)

    @defer.inlineCallbacks
    def test_endpointsFollowSlices(self):
        """Headless answers follow EndpointSlice events: new hostnames resolve, removed ones vanish."""
        self.store.apply("services", "ADDED", convert("services", {
            "metadata": {"name": "h", "namespace": "ns1"}, "spec": {"clusterIP": "None"}}))
        yield self.expect("h.ns1.svc." + Z, "A", NXDOMAIN)
        self.store.apply("endpointslices", "ADDED", slice_("h-1", "h", ["172.9.0.1"], "h-0"))
        yield self.expect("h-0.h.ns1.svc." + Z, "A", NOERROR, ["h-0.h.ns1.svc.cluster.local. 5 A 172.9.0.1"])
        self.store.apply("endpointslices", "MODIFIED", slice_("h-1", "h", ["172.9.0.2"], "h-1"))
        yield self.expect("h-0.h.ns1.svc." + Z, "A", NXDOMAIN)
        yield self.expect("h.ns1.svc." + Z, "A", NOERROR, ["h.ns1.svc.cluster.local. 5 A 172.9.0.2"])
        self.store.apply("endpointslices", "DELETED", slice_("h-1", "h", []))
        yield self.expect("h.ns1.svc." + Z, "A", NXDOMAIN)

    @defer.inlineCallbacks
    def test_namespaceDeleted(self):
        """Deleting a namespace makes its services NXDOMAIN even while the Service objects remain."""
        yield self.expect("svc1.ns1.svc." + Z, "A", NOERROR)
        self.store.apply("namespaces", "DELETED", convert("namespaces", {"metadata": {"name": "ns1"}}))
        yield self.expect("svc1.ns1.svc." + Z, "A", NXDOMAIN)


class ManifestEventTests(ClusterMixin, unittest.TestCase):
    def setUp(self):
        self.start()
        return self.synced()

    @defer.inlineCallbacks
    def test_rewriteAndReload(self):
        """Rewriting the manifest and reloading the source serves the new cluster at once."""
        path = os.path.join(self.folder, "cluster.yaml")
        with open(path) as f:
            text = f.read()
        text = text.replace("name: svc1, namespace: ns1", "name: renamed, namespace: ns1")
        with open(path, "w") as f:
            f.write(text)
        loaded = yield self.resolver.source.reload()
        self.assertTrue(loaded)
        yield self.expect("renamed.ns1.svc." + Z, "A", NOERROR, ["renamed.ns1.svc.cluster.local. 5 A 10.0.0.1"])
        yield self.expect("svc1.ns1.svc." + Z, "A", NXDOMAIN)
