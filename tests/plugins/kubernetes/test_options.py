"""
Options that change what the kubernetes plugin answers (reference d.1,
d.3), over real sockets: namespaces, namespace_labels, labels, noendpoints,
ignore empty_service, fallthrough, foreign zones, sync and readiness.
"""

from twisted.internet import defer, task
from twisted.trial import unittest

from tests.plugins.kubernetes.support import (
    NOERROR, NXDOMAIN, SERVFAIL, ClusterMixin, texts)

Z = "cluster.local."


class NamespacesTests(ClusterMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_namespaces(self):
        """namespaces: only the listed namespaces are served; others are NXDOMAIN (PTR too)."""
        self.start("  namespaces ns2")
        yield self.expect("web.ns2.svc." + Z, "A", NOERROR, ["web.ns2.svc.cluster.local. 5 A 10.0.1.1"])
        yield self.expect("svc1.ns1.svc." + Z, "A", NXDOMAIN)
        yield self.expect("ns1.svc." + Z, "A", NXDOMAIN)
        yield self.expect("ns2.svc." + Z, "A", NOERROR, [])
        yield self.expect("1.0.0.10.in-addr.arpa.", "PTR", NXDOMAIN)
        yield self.expect("1.1.0.10.in-addr.arpa.", "PTR", NOERROR,
                          ["1.1.0.10.in-addr.arpa. 5 PTR web.ns2.svc.cluster.local."])

    @defer.inlineCallbacks
    def test_namespaceLabels(self):
        """namespace_labels: a namespace whose labels do not match does not exist for DNS."""
        self.start("  namespace_labels team=b")
        yield self.expect("web.ns2.svc." + Z, "A", NOERROR)
        yield self.expect("svc1.ns1.svc." + Z, "A", NXDOMAIN)
        # not applied to PTR (CoreDNS quirk)
        yield self.expect("1.0.0.10.in-addr.arpa.", "PTR", NOERROR)

    @defer.inlineCallbacks
    def test_namespaceLabelsSetExpression(self):
        """namespace_labels takes set expressions; built-in namespaces carry kubernetes.io/metadata.name."""
        self.start("  namespace_labels kubernetes.io/metadata.name in (ns1, default)")
        yield self.expect("svc1.ns1.svc." + Z, "A", NOERROR)
        yield self.expect("default.svc." + Z, "A", NOERROR, [])
        yield self.expect("web.ns2.svc." + Z, "A", NXDOMAIN)

    @defer.inlineCallbacks
    def test_labels(self):
        """labels: Services, EndpointSlices and Pods not matching the selector are not loaded."""
        self.start("  labels app in (one, two)\n  pods verified")
        yield self.expect("svc1.ns1.svc." + Z, "A", NOERROR)
        yield self.expect("web.ns2.svc." + Z, "A", NOERROR)
        yield self.expect("dual.ns1.svc." + Z, "A", NXDOMAIN)
        yield self.expect("172-0-0-1.svc1.ns1.svc." + Z, "A", NOERROR)
        yield self.expect("10-20-0-1.ns1.pod." + Z, "A", NOERROR)
        yield self.expect("fd00-10-244--1.ns1.pod." + Z, "AAAA", NXDOMAIN)


class NoEndpointsTests(ClusterMixin, unittest.TestCase):
    def setUp(self):
        self.start("  noendpoints")

    @defer.inlineCallbacks
    def test_noendpoints(self):
        """noendpoints: no EndpointSlices; headless services and endpoint names are NXDOMAIN, ClusterIPs work."""
        yield self.synced()
        self.assertNotIn("endpointslices", self.store.kinds)
        yield self.expect("svc1.ns1.svc." + Z, "A", NOERROR)
        yield self.expect("hdls1.ns1.svc." + Z, "A", NXDOMAIN)
        yield self.expect("172-0-0-1.svc1.ns1.svc." + Z, "A", NXDOMAIN)
        yield self.expect("1.0.0.172.in-addr.arpa.", "PTR", NXDOMAIN)


class IgnoreEmptyServiceTests(ClusterMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_ignoreEmptyService(self):
        """ignore empty_service: a ClusterIP service without ready endpoints is NXDOMAIN; others unchanged."""
        self.start("  ignore empty_service")
        yield self.expect("empty.ns1.svc." + Z, "A", NXDOMAIN)
        yield self.expect("svc1.ns1.svc." + Z, "A", NOERROR)
        yield self.expect("ext.ns1.svc." + Z, "CNAME", NOERROR)

    @defer.inlineCallbacks
    def test_default(self):
        """Without the option a ClusterIP service without endpoints still answers."""
        self.start()
        yield self.expect("empty.ns1.svc." + Z, "A", NOERROR, ["empty.ns1.svc.cluster.local. 5 A 10.0.0.8"])


class FallthroughTests(ClusterMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_fallthroughAll(self):
        """fallthrough: name errors go to the next plugin; NODATA does not."""
        self.start("  fallthrough", after=" whoami\n")
        reply = yield self.ask("missing.ns1.svc." + Z, "A")
        self.assertEqual((reply.rcode(), len(reply.additional)), (NOERROR, 2))  # whoami
        yield self.expect("svc1.ns1.svc." + Z, "AAAA", NOERROR, [])

    @defer.inlineCallbacks
    def test_fallthroughZones(self):
        """fallthrough ZONES: only names under those zones fall through."""
        self.start("  fallthrough ns2.svc.cluster.local", after=" whoami\n")
        reply = yield self.ask("missing.ns2.svc." + Z, "A")
        self.assertEqual(len(reply.additional), 2)
        yield self.expect("missing.ns1.svc." + Z, "A", NXDOMAIN)

    @defer.inlineCallbacks
    def test_fallthroughWithoutNext(self):
        """Falling through with nothing after the plugin is SERVFAIL."""
        self.start("  fallthrough")
        reply = yield self.ask("missing.ns1.svc." + Z, "A")
        self.assertEqual(reply.rcode(), SERVFAIL)

    @defer.inlineCallbacks
    def test_foreignZone(self):
        """A name outside the plugin's zones always goes to the next plugin."""
        self.start(after=" whoami\n")
        reply = yield self.ask("www.example.org.", "A")
        self.assertEqual((reply.rcode(), len(reply.additional)), (NOERROR, 2))

    @defer.inlineCallbacks
    def test_zonesFromServerBlock(self):
        """Without zone arguments the plugin serves the server block's zones (the SOA names that zone)."""
        self.start(zones="", key="cluster.local")
        yield self.expect("svc1.ns1.svc." + Z, "A", NOERROR, ["svc1.ns1.svc.cluster.local. 5 A 10.0.0.1"])
        reply = yield self.expect("missing.ns1.svc." + Z, "A", NXDOMAIN)
        self.assertEqual(texts(reply, "authority")[0].split()[0], "cluster.local.")


BROKEN = "apiVersion: v1\nkind: Service\nmetadata: {name: x\n"


class SyncTests(ClusterMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_servfailBeforeSync(self):
        """
        Unsynced (the manifests never loaded) after startup_timeout: would-be
        NXDOMAIN is SERVFAIL with the SOA; shape-NODATA names still answer.
        """
        resolver = self.start("  startup_timeout 200ms", manifests=BROKEN)
        self.assertFalse(resolver.ready())
        reply = yield self.ask("missing.ns1.svc." + Z, "A")
        self.assertEqual(reply.rcode(), SERVFAIL)
        self.assertEqual(texts(reply, "authority")[0].split()[2], "SOA")
        yield self.expect(Z, "A", NOERROR, [])
        yield self.expect("dns-version." + Z, "TXT", NOERROR)

    @defer.inlineCallbacks
    def test_fallthroughBeforeSync(self):
        """Before sync, fallthrough still hands would-be NXDOMAIN to the next plugin."""
        self.start("  startup_timeout 100ms\n  fallthrough", manifests=BROKEN, after=" whoami\n")
        reply = yield self.ask("missing.ns1.svc." + Z, "A")
        self.assertEqual((reply.rcode(), len(reply.additional)), (NOERROR, 2))

    @defer.inlineCallbacks
    def test_readiness(self):
        """The plugin registers its readiness, true once every kind is synced."""
        resolver = self.start()
        self.assertIn(("kubernetes", resolver), self.service.generation.options.readiness)
        yield self.synced()
        self.assertTrue(resolver.ready())

    @defer.inlineCallbacks
    def test_heldUntilSync(self):
        """A query that arrives before the first load is held and answered once the data is in."""
        resolver = self.start()
        d = self.ask("svc1.ns1.svc." + Z, "A")  # sent at once; the load runs in a thread
        reply = yield d
        self.assertTrue(resolver.ready())
        self.assertEqual(texts(reply), ["svc1.ns1.svc.cluster.local. 5 A 10.0.0.1"])


class StartupGateTests(unittest.SynchronousTestCase):
    """The startup gate with a Clock: hold, then release on sync or timeout."""

    def build(self, timeout=5.0):
        from twisted_kdns.names import Fallthrough
        from twisted_kdns.plugins.kubernetes import KubernetesConfig
        from twisted_kdns.plugins.kubernetes.resolver import KubernetesResolver
        from twisted_kdns.plugins.kubernetes.store import Store
        from twisted_kdns.query import KdnsQuery
        self.clock = task.Clock()
        config = KubernetesConfig()
        config.startup_timeout = timeout
        config.fallthrough = Fallthrough.never()
        store = Store(self.clock, ["namespaces", "services", "endpointslices"], [b"cluster.local"])
        resolver = KubernetesResolver(config, [b"cluster.local"], store, self.clock)
        gate = resolver.startup_service()
        gate.startService()
        self.addCleanup(gate.stopService)
        return resolver, store, KdnsQuery(b"missing.default.svc.cluster.local")

    def test_releasedOnSync(self):
        """Held queries are answered as soon as the last kind syncs (NXDOMAIN now that data is in)."""
        from twisted_kdns.errors import NXDomain
        resolver, store, q = self.build()
        d = resolver.query(q)
        self.assertNoResult(d)
        for kind in ("namespaces", "services"):
            store.replace(kind, [])
        self.assertNoResult(d)
        store.replace("endpointslices", [])
        self.failureResultOf(d, NXDomain)

    def test_releasedOnTimeout(self):
        """Without sync, held queries are answered at startup_timeout: SERVFAIL instead of NXDOMAIN."""
        from twisted_kdns.errors import ServFail
        resolver, store, q = self.build(timeout=1.0)
        d = resolver.query(q)
        self.clock.advance(0.9)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        f = self.failureResultOf(d, ServFail)
        self.assertEqual(len(f.value.response.authority), 1)
        self.successResultOf(resolver.query(q).addErrback(lambda f: f.trap(ServFail)))
