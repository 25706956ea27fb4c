"""
Helpers for the kubernetes record tests: a real server whose kubernetes
plugin reads a manifests folder written by the test, and dnspython
accessors for what the client receives.
"""

import os
import shutil
import tempfile

import dns.flags
import dns.rcode
import dns.rdatatype
from twisted.internet import defer

from tests.helpers import query, start_server

NOERROR = dns.rcode.NOERROR
NXDOMAIN = dns.rcode.NXDOMAIN
SERVFAIL = dns.rcode.SERVFAIL
REFUSED = dns.rcode.REFUSED

# A small cluster covering every record shape (reference d.5).
CLUSTER = """
apiVersion: v1
kind: Namespace
metadata: {name: ns1, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ns2, labels: {team: b}}
---
apiVersion: v1
kind: Service
metadata: {name: svc1, namespace: ns1, labels: {app: one}}
spec:
  clusterIP: 10.0.0.1
  ports:
    - {name: http, protocol: TCP, port: 80}
    - {name: dns, protocol: UDP, port: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc1-abc, namespace: ns1, labels: {kubernetes.io/service-name: svc1, app: one}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}]
endpoints:
  - addresses: [172.0.0.1]
    conditions: {ready: true}
    targetRef: {kind: Pod, name: svc1-pod-abc, namespace: ns1}
---
apiVersion: v1
kind: Service
metadata: {name: dual, namespace: ns1}
spec:
  clusterIPs: [10.0.0.6, "1234:abcd::6"]
  ports: [{name: http, protocol: TCP, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: v6only, namespace: ns1}
spec:
  clusterIP: "1234:abcd::7"
  ports: [{name: http, protocol: TCP, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: hdls1, namespace: ns1}
spec:
  clusterIP: None
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: hdls1-v4, namespace: ns1, labels: {kubernetes.io/service-name: hdls1}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 80}, {name: metrics, protocol: TCP, port: 9090}]
endpoints:
  - addresses: [172.0.0.2]
    hostname: hdls1-host
    conditions: {ready: true}
    targetRef: {kind: Pod, name: hdls1-pod-2}
  - addresses: [172.0.0.3]
    targetRef: {kind: Pod, name: hdls1-pod-3}
  - addresses: [172.0.0.4]
    conditions: {ready: false}
    targetRef: {kind: Pod, name: hdls1-pod-4}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: hdls1-v6, namespace: ns1, labels: {kubernetes.io/service-name: hdls1}}
addressType: IPv6
ports: [{name: http, protocol: TCP, port: 80}, {name: metrics, protocol: TCP, port: 9090}]
endpoints:
  - addresses: ["5678:abcd::"]
    conditions: {ready: true}
---
apiVersion: v1
kind: Service
metadata: {name: pnr, namespace: ns1}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: pnr-1, namespace: ns1, labels: {kubernetes.io/service-name: pnr}}
addressType: IPv4
endpoints:
  - addresses: [172.0.0.9]
    conditions: {ready: false}
---
apiVersion: v1
kind: Service
metadata: {name: hdls-empty, namespace: ns1}
spec: {clusterIP: None}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: hdls-empty-1, namespace: ns1, labels: {kubernetes.io/service-name: hdls-empty}}
addressType: IPv4
endpoints:
  - addresses: [172.0.0.8]
    conditions: {ready: false}
---
apiVersion: v1
kind: Service
metadata: {name: noports, namespace: ns1}
spec: {clusterIP: None}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: noports-1, namespace: ns1, labels: {kubernetes.io/service-name: noports}}
addressType: IPv4
endpoints:
  - addresses: [172.0.0.10]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: ns1}
spec: {type: ExternalName, externalName: ext.example.org}
---
apiVersion: v1
kind: Service
metadata: {name: extin, namespace: ns1}
spec: {type: ExternalName, externalName: svc1.ns1.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: extother, namespace: ns1}
spec: {type: ExternalName, externalName: web.ns2.svc.other.local}
---
apiVersion: v1
kind: Service
metadata: {name: extip, namespace: ns1}
spec: {type: ExternalName, externalName: 1.2.3.4}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: ns1}
spec:
  clusterIP: 10.0.0.8
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ns2, labels: {app: two}}
spec:
  clusterIP: 10.0.1.1
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: pod1, namespace: ns1, labels: {app: one}}
    status: {phase: Running, podIP: 10.20.0.1}
  - apiVersion: v1
    kind: Pod
    metadata: {name: pod6, namespace: ns1}
    status: {phase: Running, podIP: "fd00:10:244::1"}
  - apiVersion: v1
    kind: Pod
    metadata: {name: done, namespace: ns1}
    status: {phase: Succeeded, podIP: 10.20.0.9}
"""


def write_manifests(testcase, text=CLUSTER, name="cluster.yaml", directory=None):
    """A fresh folder (removed after the test) holding one manifest file."""
    if directory is None:
        directory = tempfile.mkdtemp(prefix="kdns-k8s-")
        testcase.addCleanup(shutil.rmtree, directory, True)
    with open(os.path.join(directory, name), "w") as f:
        f.write(text)
    return directory


class ClusterMixin(object):
    """
    C{start(options)} runs a server with C{kubernetes ZONES { manifests DIR
    OPTIONS }} (then C{after}) on 127.0.0.1 and remembers its port and the
    kubernetes resolver.
    """

    zones = "cluster.local in-addr.arpa ip6.arpa"

    def start(self, options="", manifests=CLUSTER, after="", zones=None, before="", key="."):
        self.folder = write_manifests(self, manifests)
        text = key + ":0 {\n bind 127.0.0.1\n%s kubernetes %s {\n  manifests %s\n%s\n }\n%s}\n" % (
            before, self.zones if zones is None else zones, self.folder, options, after)
        self.service, self.port = start_server(self, text)
        runtime = self.service.generation.blocks[0]
        self.resolver = runtime.plugins["kubernetes"]
        self.store = self.resolver.store
        return self.resolver

    def synced(self):
        """A Deferred firing once the store has loaded every kind."""
        if self.store.ready():
            return defer.succeed(None)
        d = defer.Deferred()

        def changed(names):
            if self.store.ready() and not d.called:
                self.store.unsubscribe(changed)
                d.callback(None)
        self.store.subscribe(changed)
        return d

    def ask(self, name, rdtype="A", tcp=False):
        return query(self.port, name, rdtype, tcp=tcp)

    @defer.inlineCallbacks
    def expect(self, name, rdtype, rcode, answers=None, tcp=False):
        """
        Ask, check the rcode, AA, and the SOA in authority of negative
        answers; C{answers} (sorted texts of the answer section) when given.
        """
        reply = yield self.ask(name, rdtype, tcp=tcp)
        self.assertEqual(dns.rcode.to_text(reply.rcode()), dns.rcode.to_text(rcode),
                         "%s %s: %s" % (name, rdtype, reply))
        if rcode in (NOERROR, NXDOMAIN):
            self.assertTrue(reply.flags & dns.flags.AA, "%s %s: AA not set" % (name, rdtype))
        if rcode == NXDOMAIN or (rcode == NOERROR and not reply.answer):
            self.assertEqual([dns.rdatatype.to_text(r.rdtype) for r in reply.authority], ["SOA"],
                             "%s %s: negative answer without the SOA" % (name, rdtype))
        if answers is not None:
            self.assertEqual(texts(reply), sorted(answers), "%s %s" % (name, rdtype))
        return reply


def texts(reply, section="answer"):
    """Sorted C{"owner TTL TYPE rdata"} lines of a section (owner as sent)."""
    out = []
    for rrset in getattr(reply, section):
        for rd in rrset:
            out.append("%s %d %s %s" % (rrset.name.to_text(), rrset.ttl,
                                        dns.rdatatype.to_text(rrset.rdtype), rd.to_text()))
    return sorted(out)
