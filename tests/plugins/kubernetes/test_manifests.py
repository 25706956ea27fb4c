"""
The manifests source (our extension): files and folders as kubectl apply -f
reads them, selectors, errors with file:line, reload on change with an
injected Clock; and the shipped example cluster served over real sockets.
"""

import json
import os

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from twisted_kdns.plugins.kubernetes.manifests import ManifestError, ManifestSource, load_objects
from twisted_kdns.plugins.kubernetes.store import Store

from tests.plugins.kubernetes.support import NOERROR, ClusterMixin, texts, write_manifests

KINDS = ["namespaces", "services", "endpointslices", "pods"]

SERVICE = """apiVersion: v1
kind: Service
metadata: {name: %s, namespace: ns1}
spec: {clusterIP: %s}
"""

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "etc", "examples", "cluster")


class LoadTests(unittest.SynchronousTestCase):
    def write(self, name, text, directory=None):
        return write_manifests(self, text, name, directory)

    def test_multiDocumentAndLists(self):
        """Multi-document YAML, List and <Kind>List documents expand; other kinds are ignored."""
        folder = self.write("a.yaml", SERVICE % ("a", "10.0.0.1") + "---\n" + SERVICE % ("b", "10.0.0.2")
                            + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\n")
        self.write("b.json", json.dumps({"kind": "ServiceList", "items": [
            {"kind": "Service", "metadata": {"name": "c"}, "spec": {"clusterIP": "10.0.0.3"}}]}), folder)
        self.write("ignored.txt", "not: [a manifest", folder)
        found = load_objects([folder], KINDS)
        self.assertEqual(sorted(o["metadata"]["name"] for _, _, o in found["services"]), ["a", "b", "c"])
        lines = sorted((os.path.basename(p), line) for p, line, _ in found["services"])
        self.assertEqual(lines, [("a.yaml", 1), ("a.yaml", 6), ("b.json", 1)])

    def test_yamlError(self):
        """A YAML syntax error names the file and line."""
        folder = self.write("bad.yaml", SERVICE % ("a", "10.0.0.1") + "---\nmetadata: {name: x\nspec: 1\n")
        e = self.assertRaises(ManifestError, load_objects, [folder], KINDS)
        self.assertEqual(e.line, 7)
        self.assertIn("bad.yaml:7 - invalid YAML", str(e))

    def test_jsonAndShapeErrors(self):
        """Bad JSON, non-object documents, missing kind or name are errors naming the file."""
        for name, text, needle in [
                ("x.json", "{\n\"kind\": }", "x.json:2 - invalid JSON"),
                ("x.yaml", "- a\n- b\n", "must be an object"),
                ("x.yaml", "metadata: {name: a}\n", "has no kind"),
                ("x.yaml", "kind: Service\nmetadata: {}\n", "Service has no metadata.name")]:
            path = os.path.join(self.write(name, text), name)
            e = self.assertRaises(ManifestError, load_objects, [path], KINDS)
            self.assertIn(needle, str(e))
        self.assertIn("No such file", str(self.assertRaises(ManifestError, load_objects, ["/nonexistent.yaml"], KINDS)))

    def test_onlyWantedKinds(self):
        """Only the kinds the options need are kept (no Pods unless asked)."""
        folder = self.write("p.yaml", "kind: Pod\nmetadata: {name: p}\nstatus: {podIP: 10.1.1.1}\n")
        self.assertEqual(load_objects([folder], ["services"]), {"services": []})


class SourceTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.store = Store(self.clock, KINDS, [b"cluster.local"])
        self.folder = write_manifests(self, SERVICE % ("a", "10.0.0.1"), "s.yaml")
        self.path = os.path.join(self.folder, "s.yaml")

    def source(self, **kw):
        src = ManifestSource([self.folder], KINDS, self.store, self.clock, threaded=False, **kw)
        src.startService()
        self.addCleanup(src.stopService)
        return src

    def rewrite(self, text):
        with open(self.path, "w") as f:
            f.write(text)
        st = os.stat(self.path)
        os.utime(self.path, ns=(st.st_atime_ns, st.st_mtime_ns + 1000000))

    def test_initialLoad(self):
        """Starting loads everything, marks every kind synced and adds the built-in namespaces."""
        self.source()
        self.assertTrue(self.store.ready())
        self.assertEqual(sorted(self.store.services), ["ns1/a"])
        self.assertEqual(sorted(self.store.namespaces), ["default", "kube-node-lease", "kube-public", "kube-system"])

    def test_reloadOnChange(self):
        """A changed file is re-read on the next check (1 s); the store then holds the new content only."""
        src = self.source()
        self.rewrite(SERVICE % ("b", "10.0.0.2"))
        self.clock.advance(0.5)
        self.assertEqual(sorted(self.store.services), ["ns1/a"])
        self.clock.advance(0.5)
        self.assertEqual(sorted(self.store.services), ["ns1/b"])
        self.assertEqual(src.loads, 2)
        self.clock.advance(5)
        self.assertEqual(src.loads, 2)  # unchanged files are not re-read

    def test_newFileInFolder(self):
        """A file added to a watched folder is picked up."""
        self.source()
        write_manifests(self, SERVICE % ("c", "10.0.0.3"), "t.yml", self.folder)
        self.clock.advance(1)
        self.assertEqual(sorted(self.store.services), ["ns1/a", "ns1/c"])

    def test_badEditKeepsLastState(self):
        """A broken edit keeps the last good state and records the error with file:line."""
        src = self.source()
        self.rewrite("kind: Service\nmetadata: {name: x\n")
        self.clock.advance(1)
        self.assertEqual(sorted(self.store.services), ["ns1/a"])
        self.assertIn("s.yaml:3", src.error)
        self.flushLoggedErrors()
        self.rewrite(SERVICE % ("d", "10.0.0.4"))
        self.clock.advance(1)
        self.assertEqual((sorted(self.store.services), src.error), (["ns1/d"], None))

    def test_brokenAtStartIsNotSynced(self):
        """If the first load fails nothing is synced (the plugin is not ready)."""
        self.rewrite("kind: [")
        self.source()
        self.assertFalse(self.store.ready())

    def test_selectors(self):
        """labels filters Services/EndpointSlices/Pods, namespace_labels filters Namespaces."""
        self.rewrite(SERVICE % ("a", "10.0.0.1") + "---\n"
                     "kind: Service\nmetadata: {name: b, namespace: ns1, labels: {app: x}}\nspec: {clusterIP: 10.0.0.2}\n"
                     "---\nkind: Namespace\nmetadata: {name: ns1, labels: {team: a}}\n"
                     "---\nkind: Namespace\nmetadata: {name: ns2}\n")
        self.source(labels="app=x", namespace_labels="team=a")
        self.assertEqual(sorted(self.store.services), ["ns1/b"])
        self.assertEqual(sorted(self.store.namespaces), ["ns1"])

    def test_stopCancelsTimer(self):
        """Stopping the source leaves no pending timer."""
        src = self.source()
        src.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ExampleClusterTests(ClusterMixin, unittest.TestCase):
    """etc/examples/cluster (what make run serves) answers the documented examples."""

    def setUp(self):
        self.folder = os.path.abspath(EXAMPLES)
        from tests.helpers import start_server
        text = (".:0 {\n bind 127.0.0.1\n kubernetes cluster.local in-addr.arpa ip6.arpa {\n"
                "  manifests %s\n  pods insecure\n }\n}\n" % (self.folder,))
        self.service, self.port = start_server(self, text)
        self.resolver = self.service.generation.blocks[0].plugins["kubernetes"]
        self.store = self.resolver.store

    @defer.inlineCallbacks
    def test_examples(self):
        """my-nginx-svc, the StatefulSet, ExternalName and dual-stack examples answer as documented."""
        yield self.expect("my-nginx-svc.default.svc.cluster.local.", "A", NOERROR,
                          ["my-nginx-svc.default.svc.cluster.local. 5 A 10.100.200.30"])
        yield self.expect("30.200.100.10.in-addr.arpa.", "PTR", NOERROR,
                          ["30.200.100.10.in-addr.arpa. 5 PTR my-nginx-svc.default.svc.cluster.local."])
        yield self.expect("db.data.svc.cluster.local.", "A", NOERROR,
                          ["db.data.svc.cluster.local. 5 A 10.244.1.10", "db.data.svc.cluster.local. 5 A 10.244.2.11"])
        reply = yield self.expect("_postgres._tcp.db.data.svc.cluster.local.", "SRV", NOERROR)
        self.assertEqual(sorted(rd.target.to_text() for rd in reply.answer[0]),
                         ["db-0.db.data.svc.cluster.local.", "db-1.db.data.svc.cluster.local."])
        yield self.expect("search.default.svc.cluster.local.", "CNAME", NOERROR,
                          ["search.default.svc.cluster.local. 5 CNAME www.example.org."])
        yield self.expect("web.dual.svc.cluster.local.", "AAAA", NOERROR,
                          ["web.dual.svc.cluster.local. 5 AAAA fd00:10:96::28"])
        reply = yield self.expect("kube-dns.kube-system.svc.cluster.local.", "SRV", NOERROR)
        self.assertEqual({rd.weight for rd in reply.answer[0]}, {33})
        self.assertEqual(len(texts(reply)), 2)

    @defer.inlineCallbacks
    def test_dig(self):
        """dig, as the README shows it, gets the nginx ClusterIP and the SRV of the StatefulSet."""
        from tests.helpers import dig, require_tool
        require_tool(self, "dig")
        out = yield dig(self.port, "+short", "my-nginx-svc.default.svc.cluster.local")
        self.assertEqual(out.split(), ["10.100.200.30"])
        out = yield dig(self.port, "+short", "+tcp", "_postgres._tcp.db.data.svc.cluster.local", "SRV")
        self.assertEqual(sorted(out.splitlines()), ["0 50 5432 db-0.db.data.svc.cluster.local.",
                                                    "0 50 5432 db-1.db.data.svc.cluster.local."])
