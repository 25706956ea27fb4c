"""autopath: server-side search-path completion over real sockets (resolv.conf form) and the walk rules."""

import os
import tempfile

from prometheus_client import REGISTRY
from twisted.internet import defer
from twisted.names import dns
from twisted.trial import unittest

from tests.helpers import query, start_server
from tests.plugins.middleware_support import Upstream, a, build, by_name, kquery, soa
from twisted_kdns import config
from twisted_kdns.errors import ConfigErrors, NXDomain, ServFail

SEARCH = "search default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
HOSTS = """ hosts {
  10.0.0.4 www.example.com
  10.96.0.10 myapp.default.svc.cluster.local
  10.96.0.11 other.kube-system.svc.cluster.local
 }
"""


def resolv_conf(testcase, text=SEARCH):
    fd, path = tempfile.mkstemp(prefix="kdns-resolv-")
    os.write(fd, text.encode())
    os.close(fd)
    testcase.addCleanup(os.unlink, path)
    return path


def answers(reply):
    return sorted((rrset.name.to_text(), dns_type(rrset.rdtype), rd.to_text()) for rrset in reply.answer for rd in rrset)


def dns_type(rdtype):
    return {1: "A", 5: "CNAME"}.get(int(rdtype), str(rdtype))


class AutopathSocketTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_ndotsQueryAnsweredInOneRoundTrip(self):
        """C{www.example.com.default.svc.cluster.local} is answered with a CNAME to www.example.com and its A record."""
        path = resolv_conf(self)
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n autopath %s\n%s}\n" % (path, HOSTS))
        labels = {"server": "dns://127.0.0.1:0"}
        before = REGISTRY.get_sample_value("coredns_autopath_success_total", labels) or 0.0
        reply = yield query(port, "www.example.com.default.svc.cluster.local", "A")
        self.assertEqual(reply.rcode(), 0)
        self.assertEqual(answers(reply), [
            ("www.example.com.", "A", "10.0.0.4"),
            ("www.example.com.default.svc.cluster.local.", "CNAME", "www.example.com.")])
        self.assertEqual(REGISTRY.get_sample_value("coredns_autopath_success_total", labels) - before, 1.0)

    @defer.inlineCallbacks
    def test_firstCandidateAnswersWithoutCname(self):
        """When the name as asked exists, it is answered as is (no CNAME)."""
        path = resolv_conf(self)
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n autopath %s\n%s}\n" % (path, HOSTS))
        reply = yield query(port, "myapp.default.svc.cluster.local", "A")
        self.assertEqual(answers(reply), [("myapp.default.svc.cluster.local.", "A", "10.96.0.10")])

    @defer.inlineCallbacks
    def test_otherNamespaceViaSecondSearchDomain(self):
        """C{other.kube-system.default.svc.cluster.local} finds C{other.kube-system.svc.cluster.local}."""
        path = resolv_conf(self)
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n autopath %s\n%s}\n" % (path, HOSTS))
        reply = yield query(port, "other.kube-system.default.svc.cluster.local", "A", tcp=True)
        self.assertEqual(answers(reply), [
            ("other.kube-system.default.svc.cluster.local.", "CNAME", "other.kube-system.svc.cluster.local."),
            ("other.kube-system.svc.cluster.local.", "A", "10.96.0.11")])

    @defer.inlineCallbacks
    def test_namesOutsideFirstSearchDomainPass(self):
        """A name not under the first search domain is not walked."""
        path = resolv_conf(self)
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n autopath %s\n%s}\n" % (path, HOSTS))
        reply = yield query(port, "www.example.com.svc.cluster.local", "A")
        self.assertEqual(reply.rcode(), 2)  # hosts has no such name; nothing walked


class AutopathWalkTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.path = resolv_conf(self)

    def test_allNxdomainReturnsFirstReply(self):
        """If every candidate is NXDOMAIN the client gets the first reply unchanged, after all were tried."""
        upstream = Upstream(by_name({}))
        ap = build(self, "autopath", "autopath %s" % self.path, upstream)
        f = self.failureResultOf(ap.query(kquery("nope.default.svc.cluster.local")), NXDomain)
        self.assertEqual(f.value.response.authority[0].type, dns.SOA)
        self.assertEqual([kq.qname for kq in upstream.asked],
                         [b"nope.default.svc.cluster.local", b"nope.svc.cluster.local",
                          b"nope.cluster.local", b"nope"])

    def test_errorStopsWalk(self):
        """A failure carrying an error (broken upstream) ends the walk with that failure."""
        upstream = Upstream(ServFail("plugin/forward: no healthy upstream"))
        ap = build(self, "autopath", "autopath %s" % self.path, upstream)
        self.failureResultOf(ap.query(kquery("x.default.svc.cluster.local")), ServFail)
        self.assertEqual(len(upstream.asked), 1)

    def test_zonesLimitWalk(self):
        """With ZONES, only names inside them are walked."""
        upstream = Upstream(by_name({(b"x", dns.A): [a(b"x", "10.0.0.1")]}))
        ap = build(self, "autopath", "autopath example.org %s" % self.path, upstream)
        self.failureResultOf(ap.query(kquery("x.default.svc.cluster.local")), NXDomain)
        self.assertEqual(len(upstream.asked), 1)

    def test_cnameCopiesTtlAndSharedReplyUntouched(self):
        """The synthesized CNAME takes the answer's TTL; the next plugin's reply is not modified."""
        records = [a(b"svc.example.org", "10.0.0.9", 42)]
        from twisted_kdns.response import Response
        upstream = Upstream(lambda kq: Response(records) if kq.qname == b"svc.example.org" else NXDomain(authority=[soa(b"org")]))
        ap = build(self, "autopath", "autopath %s" % self.path, upstream)
        reply = self.successResultOf(ap.query(kquery("svc.example.org.default.svc.cluster.local")))
        self.assertEqual([(rr.type, rr.ttl) for rr in reply.answers], [(dns.CNAME, 42), (dns.A, 42)])
        self.assertEqual(len(records), 1)

    def test_parseErrors(self):
        """A missing resolv.conf or an unknown @plugin is reported with file:line."""
        for body, text in [("autopath /nonexistent/resolv.conf", "failed to parse"),
                           ("autopath @etcd", "only @kubernetes"),
                           ("autopath", "Wrong argument count")]:
            e = self.assertRaises(ConfigErrors, config.load, text=".:53 {\n %s\n whoami\n}\n" % body)
            self.assertIn("plugin/autopath: Corefile:2", str(e))
            self.assertIn(text, str(e))

    def test_kubernetesNeeded(self):
        """C{@kubernetes} without the kubernetes plugin in the block is a clear setup error."""
        from twisted.internet.task import Clock
        plan = config.load(text=".:53 {\n autopath @kubernetes\n whoami\n}\n")
        e = self.assertRaises(Exception, config.build, plan, Clock())
        self.assertIn("needs the kubernetes plugin", str(e))


POD = """apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: default
status:
  phase: Running
  podIP: %s
---
apiVersion: v1
kind: Service
metadata:
  name: myapp
  namespace: kube-system
spec:
  type: ClusterIP
  clusterIP: 10.96.0.33
  clusterIPs: [10.96.0.33]
  ports:
  - {name: http, port: 80, protocol: TCP}
"""


class AutopathKubernetesTests(unittest.TestCase):
    def start(self, pod_ip):
        directory = tempfile.mkdtemp(prefix="kdns-autopath-k8s-")
        self.addCleanup(__import__("shutil").rmtree, directory, True)
        path = os.path.join(directory, "cluster.yaml")
        with open(path, "w") as f:
            f.write(POD % (pod_ip,))
        return start_server(self, "cluster.local:0 {\n bind 127.0.0.1\n autopath @kubernetes\n"
                                  " kubernetes cluster.local {\n  pods verified\n  manifests %s\n }\n}\n" % (path,))

    @defer.inlineCallbacks
    def synced(self, service):
        """Wait (bounded) for the manifests to be loaded: the pod map is empty until then."""
        from twisted.internet import reactor, task
        kubernetes = service.generation.blocks[0].plugins["kubernetes"]
        for _ in range(200):
            if kubernetes.ready():
                return
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.fail("kubernetes store never synced")

    @defer.inlineCallbacks
    def test_podNamespaceSearchPath(self):
        """A pod in C{default} asking C{myapp.kube-system.default.svc.cluster.local} gets the kube-system Service via a CNAME."""
        service, port = self.start("127.0.0.1")
        yield self.synced(service)
        reply = yield query(port, "myapp.kube-system.default.svc.cluster.local", "A")
        self.assertEqual(answers(reply), [
            ("myapp.kube-system.default.svc.cluster.local.", "CNAME", "myapp.kube-system.svc.cluster.local."),
            ("myapp.kube-system.svc.cluster.local.", "A", "10.96.0.33")])

    @defer.inlineCallbacks
    def test_unknownClientNotWalked(self):
        """A client whose address is no known pod gets no autopath (plain NXDOMAIN)."""
        service, port = self.start("10.244.0.9")
        yield self.synced(service)
        reply = yield query(port, "myapp.kube-system.default.svc.cluster.local", "A")
        self.assertEqual((reply.rcode(), reply.answer), (3, []))
