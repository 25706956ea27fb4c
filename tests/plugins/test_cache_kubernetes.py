"""
cache beyond CoreDNS: answers for cluster names are dropped the moment the
kubernetes store changes them, so a Service's new ClusterIP is served at
once through C{cache 300} (CoreDNS would serve the old one for the TTL).
"""

import os
import shutil
import tempfile

from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers import query, start_server

SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: myapp
  namespace: default
spec:
  type: ClusterIP
  clusterIP: %s
  clusterIPs: [%s]
  ports:
  - {name: http, port: 80, protocol: TCP}
"""


def ips(reply):
    return sorted(rd.to_text() for rrset in reply.answer for rd in rrset)


class CacheKubernetesTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kdns-cache-k8s-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.manifest = os.path.join(self.dir, "svc.yaml")
        self.write("10.96.0.50")

    def write(self, ip):
        with open(self.manifest, "w") as f:
            f.write(SERVICE % (ip, ip))

    @defer.inlineCallbacks
    def test_clusterIpChangeServedImmediately(self):
        """After a Service's ClusterIP changes, the next query through C{cache 300} answers the new IP."""
        service, port = start_server(self, "cluster.local:0 {\n bind 127.0.0.1\n cache 300\n"
                                           " kubernetes cluster.local {\n  manifests %s\n }\n}\n" % (self.manifest,))
        block = service.generation.blocks[0]
        cache, kubernetes = block.plugins["cache"], block.plugins["kubernetes"]
        reply = yield query(port, "myapp.default.svc.cluster.local", "A")
        self.assertEqual(ips(reply), ["10.96.0.50"])
        reply = yield query(port, "myapp.default.svc.cluster.local", "A")
        self.assertEqual(ips(reply), ["10.96.0.50"])
        self.assertEqual(len(cache.success), 1)
        self.write("10.96.0.123")
        yield kubernetes.source.reload()  # what the 1 s poll does on a change
        self.assertEqual(len(cache.success), 0)
        reply = yield query(port, "myapp.default.svc.cluster.local", "A")
        self.assertEqual(ips(reply), ["10.96.0.123"])

    @defer.inlineCallbacks
    def test_newServiceNotShadowedByCachedNxdomain(self):
        """A cached NXDOMAIN for a Service that does not exist yet is dropped when it is created."""
        service, port = start_server(self, "cluster.local:0 {\n bind 127.0.0.1\n cache 300\n"
                                           " kubernetes cluster.local {\n  manifests %s\n }\n}\n" % (self.dir,))
        kubernetes = service.generation.blocks[0].plugins["kubernetes"]
        reply = yield query(port, "later.default.svc.cluster.local", "A")
        self.assertEqual(reply.rcode(), 3)
        with open(os.path.join(self.dir, "later.yaml"), "w") as f:
            f.write((SERVICE % ("10.96.0.77", "10.96.0.77")).replace("name: myapp", "name: later"))
        yield kubernetes.source.reload()
        reply = yield query(port, "later.default.svc.cluster.local", "A")
        self.assertEqual(ips(reply), ["10.96.0.77"])
