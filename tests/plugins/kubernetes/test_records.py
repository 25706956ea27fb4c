"""
The kubernetes plugin's records over real UDP/TCP (reference d.5): a server
reads a manifests folder (tests/plugins/kubernetes/support.py CLUSTER) and
dnspython asks it.
"""

from twisted.internet import defer
from twisted.trial import unittest

from tests.plugins.kubernetes.support import (
    NOERROR, NXDOMAIN, REFUSED, ClusterMixin, texts)

Z = "cluster.local."


class ClusterIPTests(ClusterMixin, unittest.TestCase):
    options = ""

    def setUp(self):
        self.start(self.options)

    @defer.inlineCallbacks
    def test_clusterIP(self):
        """A ClusterIP service answers its IPv4 ClusterIP with TTL 5, AA, over UDP and TCP."""
        yield self.expect("svc1.ns1.svc." + Z, "A", NOERROR, ["svc1.ns1.svc.cluster.local. 5 A 10.0.0.1"])
        yield self.expect("svc1.ns1.svc." + Z, "A", NOERROR, ["svc1.ns1.svc.cluster.local. 5 A 10.0.0.1"],
                          tcp=True)

    @defer.inlineCallbacks
    def test_missingFamilyIsNodata(self):
        """AAAA on an IPv4-only service and A on an IPv6-only one are NODATA with the SOA."""
        yield self.expect("svc1.ns1.svc." + Z, "AAAA", NOERROR, [])
        yield self.expect("v6only.ns1.svc." + Z, "A", NOERROR, [])
        yield self.expect("v6only.ns1.svc." + Z, "AAAA", NOERROR, ["v6only.ns1.svc.cluster.local. 5 AAAA 1234:abcd::7"])

    @defer.inlineCallbacks
    def test_dualStack(self):
        """A dual-stack service answers A with its IPv4 and AAAA with its IPv6 ClusterIP."""
        yield self.expect("dual.ns1.svc." + Z, "A", NOERROR, ["dual.ns1.svc.cluster.local. 5 A 10.0.0.6"])
        yield self.expect("dual.ns1.svc." + Z, "AAAA", NOERROR, ["dual.ns1.svc.cluster.local. 5 AAAA 1234:abcd::6"])

    @defer.inlineCallbacks
    def test_ownerKeepsQueryCase(self):
        """The owner name echoes the question's case; SRV targets use the zone in the query's case."""
        reply = yield self.expect("SVC1.Ns1.svc.cLuStEr.LoCaL.", "A", NOERROR)
        self.assertEqual(reply.answer[0].name.to_text(), "SVC1.Ns1.svc.cLuStEr.LoCaL.")
        reply = yield self.expect("_http._tcp.svc1.ns1.svc.cLuStEr.LoCaL.", "SRV", NOERROR)
        self.assertEqual([rd.target.to_text() for rd in reply.answer[0]], ["svc1.ns1.svc.cLuStEr.LoCaL."])

    @defer.inlineCallbacks
    def test_srvNamedPort(self):
        """SRV _port._proto: the service port, target the service, weight 100, the A in additional."""
        reply = yield self.expect("_http._tcp.svc1.ns1.svc." + Z, "SRV", NOERROR,
                                  ["_http._tcp.svc1.ns1.svc.cluster.local. 5 SRV 0 100 80 svc1.ns1.svc.cluster.local."])
        self.assertEqual(texts(reply, "additional"), ["svc1.ns1.svc.cluster.local. 5 A 10.0.0.1"])
        # protocol matched case-insensitively, underscores optional (CoreDNS quirk)
        yield self.expect("_dns._UDP.svc1.ns1.svc." + Z, "SRV", NOERROR,
                          ["_dns._UDP.svc1.ns1.svc.cluster.local. 5 SRV 0 100 53 svc1.ns1.svc.cluster.local."])
        yield self.expect("http.tcp.svc1.ns1.svc." + Z, "SRV", NOERROR,
                          ["http.tcp.svc1.ns1.svc.cluster.local. 5 SRV 0 100 80 svc1.ns1.svc.cluster.local."])

    @defer.inlineCallbacks
    def test_srvBareName(self):
        """SRV on the service name gives one record per port, weight floor(100/N)."""
        yield self.expect("svc1.ns1.svc." + Z, "SRV", NOERROR,
                          ["svc1.ns1.svc.cluster.local. 5 SRV 0 50 53 svc1.ns1.svc.cluster.local.",
                           "svc1.ns1.svc.cluster.local. 5 SRV 0 50 80 svc1.ns1.svc.cluster.local."])

    @defer.inlineCallbacks
    def test_srvDualStackWeight(self):
        """Dual stack, one port: one SRV with weight 50 and both addresses in additional."""
        reply = yield self.expect("_http._tcp.dual.ns1.svc." + Z, "SRV", NOERROR,
                                  ["_http._tcp.dual.ns1.svc.cluster.local. 5 SRV 0 50 80 dual.ns1.svc.cluster.local."])
        self.assertEqual(texts(reply, "additional"), ["dual.ns1.svc.cluster.local. 5 A 10.0.0.6",
                                                      "dual.ns1.svc.cluster.local. 5 AAAA 1234:abcd::6"])

    @defer.inlineCallbacks
    def test_srvNoMatch(self):
        """An SRV port or protocol that the service lacks is NXDOMAIN."""
        yield self.expect("_https._tcp.svc1.ns1.svc." + Z, "SRV", NXDOMAIN)
        yield self.expect("_http._udp.svc1.ns1.svc." + Z, "SRV", NXDOMAIN)

    @defer.inlineCallbacks
    def test_addressOnPortName(self):
        """A for _port._proto.<svc> answers the ClusterIP with that owner (CoreDNS quirk)."""
        yield self.expect("_http._tcp.svc1.ns1.svc." + Z, "A", NOERROR,
                          ["_http._tcp.svc1.ns1.svc.cluster.local. 5 A 10.0.0.1"])

    @defer.inlineCallbacks
    def test_endpointOfClusterIP(self):
        """An endpoint name under a ClusterIP service answers the endpoint; its SRV uses the target port."""
        yield self.expect("172-0-0-1.svc1.ns1.svc." + Z, "A", NOERROR,
                          ["172-0-0-1.svc1.ns1.svc.cluster.local. 5 A 172.0.0.1"])
        yield self.expect("172-0-0-1.svc1.ns1.svc." + Z, "SRV", NOERROR,
                          ["172-0-0-1.svc1.ns1.svc.cluster.local. 5 SRV 0 100 8080 172-0-0-1.svc1.ns1.svc.cluster.local."])
        yield self.expect("svc1-pod-abc.svc1.ns1.svc." + Z, "A", NXDOMAIN)

    @defer.inlineCallbacks
    def test_otherTypes(self):
        """MX, CNAME and TXT on an existing service are NODATA; HINFO on a missing one NXDOMAIN."""
        yield self.expect("svc1.ns1.svc." + Z, "MX", NOERROR, [])
        yield self.expect("svc1.ns1.svc." + Z, "CNAME", NOERROR, [])
        yield self.expect("svc1.ns1.svc." + Z, "TXT", NOERROR, [])
        yield self.expect("nope.ns1.svc." + Z, "HINFO", NXDOMAIN)
        yield self.expect("svc1.ns1.svc." + Z, "AXFR", REFUSED, tcp=True)


class HeadlessTests(ClusterMixin, unittest.TestCase):
    options = ""

    def setUp(self):
        self.start(self.options)

    @defer.inlineCallbacks
    def test_readyEndpoints(self):
        """A headless name answers each ready endpoint (ready true or absent), not the not-ready one."""
        yield self.expect("hdls1.ns1.svc." + Z, "A", NOERROR,
                          ["hdls1.ns1.svc.cluster.local. 5 A 172.0.0.2",
                           "hdls1.ns1.svc.cluster.local. 5 A 172.0.0.3"])
        yield self.expect("hdls1.ns1.svc." + Z, "AAAA", NOERROR, ["hdls1.ns1.svc.cluster.local. 5 AAAA 5678:abcd::"])

    @defer.inlineCallbacks
    def test_endpointNames(self):
        """Endpoint names: the hostname, else the dashed IP (fd00:: -> ...--0); a hostname hides the dashed form."""
        yield self.expect("hdls1-host.hdls1.ns1.svc." + Z, "A", NOERROR,
                          ["hdls1-host.hdls1.ns1.svc.cluster.local. 5 A 172.0.0.2"])
        yield self.expect("172-0-0-3.hdls1.ns1.svc." + Z, "A", NOERROR,
                          ["172-0-0-3.hdls1.ns1.svc.cluster.local. 5 A 172.0.0.3"])
        yield self.expect("5678-abcd--0.hdls1.ns1.svc." + Z, "AAAA", NOERROR,
                          ["5678-abcd--0.hdls1.ns1.svc.cluster.local. 5 AAAA 5678:abcd::"])
        yield self.expect("172-0-0-2.hdls1.ns1.svc." + Z, "A", NXDOMAIN)
        yield self.expect("172-0-0-4.hdls1.ns1.svc." + Z, "A", NXDOMAIN)
        yield self.expect("hdls1-pod-3.hdls1.ns1.svc." + Z, "A", NXDOMAIN)

    @defer.inlineCallbacks
    def test_srv(self):
        """SRV per ready endpoint x matching port, target the endpoint name, EndpointSlice port, A/AAAA in additional."""
        reply = yield self.expect("_http._tcp.hdls1.ns1.svc." + Z, "SRV", NOERROR, [
            "_http._tcp.hdls1.ns1.svc.cluster.local. 5 SRV 0 33 80 172-0-0-3.hdls1.ns1.svc.cluster.local.",
            "_http._tcp.hdls1.ns1.svc.cluster.local. 5 SRV 0 33 80 5678-abcd--0.hdls1.ns1.svc.cluster.local.",
            "_http._tcp.hdls1.ns1.svc.cluster.local. 5 SRV 0 33 80 hdls1-host.hdls1.ns1.svc.cluster.local."])
        self.assertEqual(texts(reply, "additional"), [
            "172-0-0-3.hdls1.ns1.svc.cluster.local. 5 A 172.0.0.3",
            "5678-abcd--0.hdls1.ns1.svc.cluster.local. 5 AAAA 5678:abcd::",
            "hdls1-host.hdls1.ns1.svc.cluster.local. 5 A 172.0.0.2"])
        reply = yield self.expect("hdls1.ns1.svc." + Z, "SRV", NOERROR)
        self.assertEqual(len(texts(reply)), 6)
        self.assertEqual({rd.weight for rd in reply.answer[0]}, {16})  # floor(100 / 6)
        yield self.expect("hdls1-host.hdls1.ns1.svc." + Z, "SRV", NOERROR, [
            "hdls1-host.hdls1.ns1.svc.cluster.local. 5 SRV 0 50 80 hdls1-host.hdls1.ns1.svc.cluster.local.",
            "hdls1-host.hdls1.ns1.svc.cluster.local. 5 SRV 0 50 9090 hdls1-host.hdls1.ns1.svc.cluster.local."])
        yield self.expect("_grpc._tcp.hdls1.ns1.svc." + Z, "SRV", NXDOMAIN)

    @defer.inlineCallbacks
    def test_portless(self):
        """A headless service without ports answers A; its SRV is NODATA."""
        yield self.expect("noports.ns1.svc." + Z, "A", NOERROR, ["noports.ns1.svc.cluster.local. 5 A 172.0.0.10"])
        yield self.expect("noports.ns1.svc." + Z, "SRV", NOERROR, [])

    @defer.inlineCallbacks
    def test_noReadyEndpoints(self):
        """A headless service whose endpoints are all not ready is NXDOMAIN."""
        yield self.expect("hdls-empty.ns1.svc." + Z, "A", NXDOMAIN)

    @defer.inlineCallbacks
    def test_publishNotReadyAddresses(self):
        """publishNotReadyAddresses serves not-ready endpoints, as the EndpointSlice controller would."""
        yield self.expect("pnr.ns1.svc." + Z, "A", NOERROR, ["pnr.ns1.svc.cluster.local. 5 A 172.0.0.9"])


class EndpointPodNamesTests(ClusterMixin, unittest.TestCase):
    def setUp(self):
        self.start("  endpoint_pod_names")

    @defer.inlineCallbacks
    def test_podNames(self):
        """With endpoint_pod_names the targetRef pod name names an endpoint without hostname; hostname still wins."""
        yield self.expect("hdls1-pod-3.hdls1.ns1.svc." + Z, "A", NOERROR,
                          ["hdls1-pod-3.hdls1.ns1.svc.cluster.local. 5 A 172.0.0.3"])
        yield self.expect("172-0-0-3.hdls1.ns1.svc." + Z, "A", NXDOMAIN)
        yield self.expect("hdls1-host.hdls1.ns1.svc." + Z, "A", NOERROR,
                          ["hdls1-host.hdls1.ns1.svc.cluster.local. 5 A 172.0.0.2"])
        yield self.expect("5678-abcd--0.hdls1.ns1.svc." + Z, "AAAA", NOERROR)

    @defer.inlineCallbacks
    def test_srvAndPtrUsePodNames(self):
        """SRV targets and PTR answers use the pod name."""
        reply = yield self.expect("_http._tcp.hdls1.ns1.svc." + Z, "SRV", NOERROR)
        self.assertIn("hdls1-pod-3.hdls1.ns1.svc.cluster.local.",
                      [rd.target.to_text() for rd in reply.answer[0]])
        yield self.expect("3.0.0.172.in-addr.arpa.", "PTR", NOERROR,
                          ["3.0.0.172.in-addr.arpa. 5 PTR hdls1-pod-3.hdls1.ns1.svc.cluster.local."])

    @defer.inlineCallbacks
    def test_podsWatched(self):
        """endpoint_pod_names makes the plugin load Pods (they are needed for readiness too)."""
        yield self.synced()
        self.assertIn("pods", self.store.kinds)
        self.assertTrue(self.store.synced("pods"))


class ExternalNameTests(ClusterMixin, unittest.TestCase):
    options = ""

    def setUp(self):
        self.start(self.options, after=" whoami\n", zones="cluster.local other.local in-addr.arpa")

    @defer.inlineCallbacks
    def test_outOfZoneTarget(self):
        """A/AAAA of an ExternalName: the CNAME, plus what the next plugins answer (whoami: nothing)."""
        yield self.expect("ext.ns1.svc." + Z, "A", NOERROR, ["ext.ns1.svc.cluster.local. 5 CNAME ext.example.org."])
        yield self.expect("ext.ns1.svc." + Z, "AAAA", NOERROR, ["ext.ns1.svc.cluster.local. 5 CNAME ext.example.org."])

    @defer.inlineCallbacks
    def test_inZoneTarget(self):
        """A target inside the zone is chased by the plugin; no record of the type drops the CNAME (NODATA)."""
        yield self.expect("extin.ns1.svc." + Z, "A", NOERROR,
                          ["extin.ns1.svc.cluster.local. 5 CNAME svc1.ns1.svc.cluster.local.",
                           "svc1.ns1.svc.cluster.local. 5 A 10.0.0.1"])
        yield self.expect("extin.ns1.svc." + Z, "AAAA", NOERROR, [])

    @defer.inlineCallbacks
    def test_otherZoneOfThePlugin(self):
        """A target in another zone of the plugin is answered through that zone."""
        yield self.synced()
        self.store.apply("services", "ADDED", _service("web", "ns2", "10.0.1.2"))
        yield self.expect("extother.ns1.svc." + Z, "A", NOERROR,
                          ["extother.ns1.svc.cluster.local. 5 CNAME web.ns2.svc.other.local.",
                           "web.ns2.svc.other.local. 5 A 10.0.1.2"])

    @defer.inlineCallbacks
    def test_otherTypes(self):
        """CNAME answers the CNAME; SRV and TXT are NODATA; port/endpoint labels and IP targets NXDOMAIN."""
        yield self.expect("ext.ns1.svc." + Z, "CNAME", NOERROR, ["ext.ns1.svc.cluster.local. 5 CNAME ext.example.org."])
        yield self.expect("ext.ns1.svc." + Z, "SRV", NOERROR, [])
        yield self.expect("ext.ns1.svc." + Z, "TXT", NOERROR, [])
        yield self.expect("_http._tcp.ext.ns1.svc." + Z, "SRV", NXDOMAIN)
        yield self.expect("foo.ext.ns1.svc." + Z, "A", NXDOMAIN)
        yield self.expect("extip.ns1.svc." + Z, "A", NXDOMAIN)


def _service(name, namespace, ip):
    from twisted_kdns.plugins.kubernetes.objects import convert
    return convert("services", {"metadata": {"name": name, "namespace": namespace},
                                "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]}})


class PtrTests(ClusterMixin, unittest.TestCase):
    options = ""

    def setUp(self):
        self.start("  fallthrough in-addr.arpa ip6.arpa\n" + self.options, after=" whoami\n")

    @defer.inlineCallbacks
    def test_clusterIP(self):
        """A ClusterIP (IPv4 and a dual-stack IPv6) answers one PTR to the service name."""
        yield self.expect("1.0.0.10.in-addr.arpa.", "PTR", NOERROR,
                          ["1.0.0.10.in-addr.arpa. 5 PTR svc1.ns1.svc.cluster.local."])
        name = "6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa."
        yield self.expect(name, "PTR", NOERROR, [name + " 5 PTR dual.ns1.svc.cluster.local."])

    @defer.inlineCallbacks
    def test_endpoints(self):
        """An endpoint IP answers PTR to its endpoint name; not-ready endpoints have none."""
        yield self.expect("2.0.0.172.in-addr.arpa.", "PTR", NOERROR,
                          ["2.0.0.172.in-addr.arpa. 5 PTR hdls1-host.hdls1.ns1.svc.cluster.local."])
        yield self.expect("1.0.0.172.in-addr.arpa.", "PTR", NOERROR,
                          ["1.0.0.172.in-addr.arpa. 5 PTR 172-0-0-1.svc1.ns1.svc.cluster.local."])

    @defer.inlineCallbacks
    def test_missFallsThrough(self):
        """With fallthrough for the reverse zones, an unknown or not-ready IP goes to the next plugin."""
        reply = yield self.ask("4.0.0.172.in-addr.arpa.", "PTR")
        self.assertEqual(reply.rcode(), NOERROR)
        self.assertEqual(texts(reply), [])
        self.assertEqual(len(reply.additional), 2)  # whoami's A and SRV
        reply = yield self.ask("1.20.0.10.in-addr.arpa.", "PTR")  # a pod IP, not an endpoint
        self.assertEqual(len(reply.additional), 2)


class PtrWithoutFallthroughTests(ClusterMixin, unittest.TestCase):
    def setUp(self):
        self.start()

    @defer.inlineCallbacks
    def test_negative(self):
        """Unknown IPs, partial reverse names and A on reverse names are NXDOMAIN; PTR on a service NODATA."""
        yield self.expect("4.0.0.172.in-addr.arpa.", "PTR", NXDOMAIN)
        yield self.expect("0.0.10.in-addr.arpa.", "PTR", NXDOMAIN)
        yield self.expect("1.0.0.10.in-addr.arpa.", "A", NXDOMAIN)
        yield self.expect("in-addr.arpa.", "PTR", NOERROR, [])
        yield self.expect("svc1.ns1.svc." + Z, "PTR", NOERROR, [])
        yield self.expect("nope.ns1.svc." + Z, "PTR", NXDOMAIN)


class PodsDisabledTests(ClusterMixin, unittest.TestCase):
    def setUp(self):
        self.start()

    @defer.inlineCallbacks
    def test_disabled(self):
        """With pods disabled (the default) every name under pod.<zone> is NXDOMAIN, pod.<zone> itself NODATA."""
        yield self.expect("10-20-0-1.ns1.pod." + Z, "A", NXDOMAIN)
        yield self.expect("ns1.pod." + Z, "A", NXDOMAIN)
        yield self.expect("pod." + Z, "A", NOERROR, [])


class PodsInsecureTests(ClusterMixin, unittest.TestCase):
    def setUp(self):
        self.start("  pods insecure")

    @defer.inlineCallbacks
    def test_insecure(self):
        """pods insecure answers any well-formed IP label in an existing namespace."""
        yield self.expect("1-2-3-4.ns1.pod." + Z, "A", NOERROR, ["1-2-3-4.ns1.pod.cluster.local. 5 A 1.2.3.4"])
        yield self.expect("1-2-3-4.ns1.pod." + Z, "AAAA", NOERROR, [])
        yield self.expect("fd00-10-244--1.ns1.pod." + Z, "AAAA", NOERROR,
                          ["fd00-10-244--1.ns1.pod.cluster.local. 5 AAAA fd00:10:244::1"])
        yield self.expect("1-2-3-4.nope.pod." + Z, "A", NXDOMAIN)
        yield self.expect("1-2-3-x.ns1.pod." + Z, "A", NXDOMAIN)
        yield self.expect("ns1.pod." + Z, "A", NOERROR, [])

    def test_podsNotWatched(self):
        """pods insecure does not need Pod objects."""
        self.assertNotIn("pods", self.store.kinds)


class PodsVerifiedTests(ClusterMixin, unittest.TestCase):
    def setUp(self):
        self.start("  pods verified")

    @defer.inlineCallbacks
    def test_verified(self):
        """pods verified answers only the IP of a pod in that namespace (finished pods excluded)."""
        yield self.expect("10-20-0-1.ns1.pod." + Z, "A", NOERROR, ["10-20-0-1.ns1.pod.cluster.local. 5 A 10.20.0.1"])
        yield self.expect("fd00-10-244--1.ns1.pod." + Z, "AAAA", NOERROR)
        yield self.expect("10-20-0-1.ns2.pod." + Z, "A", NXDOMAIN)
        yield self.expect("1-2-3-4.ns1.pod." + Z, "A", NXDOMAIN)
        yield self.expect("10-20-0-9.ns1.pod." + Z, "A", NXDOMAIN)
        yield self.expect("ns1.pod." + Z, "A", NOERROR, [])

    @defer.inlineCallbacks
    def test_podNamespace(self):
        """The resolver tells autopath the namespace of a pod IP."""
        yield self.synced()
        self.assertEqual(self.resolver.pod_namespace("10.20.0.1"), "ns1")
        self.assertIsNone(self.resolver.pod_namespace("10.20.0.9"))


class ApexTests(ClusterMixin, unittest.TestCase):
    options = ""

    def setUp(self):
        self.start(self.options)

    @defer.inlineCallbacks
    def test_soa(self):
        """SOA at the apex: ns.dns/hostmaster in the query's case, 7200 1800 86400, minimum = ttl."""
        reply = yield self.expect("Cluster.Local.", "SOA", NOERROR)
        rr = reply.answer[0]
        self.assertEqual(rr.name.to_text(), "Cluster.Local.")
        soa = rr[0]
        self.assertEqual((soa.mname.to_text(), soa.rname.to_text(), soa.refresh, soa.retry, soa.expire,
                          soa.minimum, rr.ttl),
                         ("ns.dns.Cluster.Local.", "hostmaster.Cluster.Local.", 7200, 1800, 86400, 5, 5))
        self.assertEqual(soa.serial, self.store.modified)
        yield self.expect("svc1.ns1.svc." + Z, "SOA", NOERROR, [])
        yield self.expect("nope.ns1.svc." + Z, "SOA", NOERROR, [])

    @defer.inlineCallbacks
    def test_nsWithBindIsNodata(self):
        """Under bind, CoreDNS finds no local IPs, so NS at the apex is NODATA (reference c.14)."""
        yield self.expect(Z, "NS", NOERROR, [])
        yield self.expect("ns.dns." + Z, "A", NOERROR, [])

    @defer.inlineCallbacks
    def test_nsLocalAddresses(self):
        """NS at the apex: ns.dns.<zone> with the local IPs as glue; ns.dns.<zone> answers A."""
        self.resolver.local_ips = ["192.0.2.53"]
        reply = yield self.expect(Z, "NS", NOERROR, ["cluster.local. 5 NS ns.dns.cluster.local."])
        self.assertEqual(texts(reply, "additional"), ["ns.dns.cluster.local. 5 A 192.0.2.53"])
        yield self.expect("ns.dns." + Z, "A", NOERROR, ["ns.dns.cluster.local. 5 A 192.0.2.53"])
        yield self.expect("ns.dns." + Z, "AAAA", NOERROR, [])

    @defer.inlineCallbacks
    def test_nsFromOwnService(self):
        """When a local IP is an endpoint of a service, NS names that service with its ClusterIP as glue."""
        self.resolver.local_ips = ["172.0.0.1"]
        reply = yield self.expect(Z, "NS", NOERROR, ["cluster.local. 5 NS svc1.ns1.svc.cluster.local."])
        self.assertEqual(texts(reply, "additional"), ["svc1.ns1.svc.cluster.local. 5 A 10.0.0.1"])
        self.resolver.local_ips = ["172.0.0.2"]
        yield self.expect(Z, "NS", NOERROR, ["cluster.local. 5 NS 172-0-0-3.hdls1.ns1.svc.cluster.local.",
                                             "cluster.local. 5 NS hdls1-host.hdls1.ns1.svc.cluster.local."])

    @defer.inlineCallbacks
    def test_dnsVersion(self):
        """dns-version.<zone> TXT is "1.1.0" with TTL 28800; other types on it are NXDOMAIN."""
        yield self.expect("dns-version." + Z, "TXT", NOERROR, ['dns-version.cluster.local. 28800 TXT "1.1.0"'])
        yield self.expect("dns-version." + Z, "A", NXDOMAIN)

    @defer.inlineCallbacks
    def test_txtQuirk(self):
        """TXT at the apex and on an existing namespace is NXDOMAIN (CoreDNS quirk)."""
        yield self.expect(Z, "TXT", NXDOMAIN)
        yield self.expect("ns1.svc." + Z, "TXT", NXDOMAIN)


class NegativeTableTests(ClusterMixin, unittest.TestCase):
    options = ""

    """Reference d.6: NXDOMAIN vs NODATA, always with the SOA."""

    TABLE = [
        ("svc1.ns1.svc." + Z, "A", NOERROR, True),
        ("svc1.ns1.svc." + Z, "AAAA", NOERROR, False),
        ("noports.ns1.svc." + Z, "SRV", NOERROR, False),
        (Z, "A", NOERROR, False),
        ("svc." + Z, "A", NOERROR, False),
        ("pod." + Z, "AAAA", NOERROR, False),
        ("ns1.svc." + Z, "A", NOERROR, False),
        ("ns1.svc." + Z, "MX", NOERROR, False),
        ("missing.ns1.svc." + Z, "A", NXDOMAIN, False),
        ("svc1.nons.svc." + Z, "A", NXDOMAIN, False),
        ("nons.svc." + Z, "A", NXDOMAIN, False),
        ("hdls-empty.ns1.svc." + Z, "A", NXDOMAIN, False),
        ("_nope._tcp.svc1.ns1.svc." + Z, "SRV", NXDOMAIN, False),
        ("foo." + Z, "A", NXDOMAIN, False),
        ("a.b.c.svc1.ns1.svc." + Z, "A", NXDOMAIN, False),
        ("*.ns1.svc." + Z, "A", NXDOMAIN, False),
        ("x.y.svc1.ns1.svc." + Z, "A", NXDOMAIN, False),
    ]

    def setUp(self):
        self.start(self.options)

    @defer.inlineCallbacks
    def test_table(self):
        """Every row of the NXDOMAIN/NODATA table answers its rcode; negatives carry the SOA."""
        for name, rdtype, rcode, has_answer in self.TABLE:
            reply = yield self.expect(name, rdtype, rcode)
            self.assertEqual(bool(reply.answer), has_answer, "%s %s" % (name, rdtype))


class TtlTests(ClusterMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_ttl(self):
        """ttl sets every record's TTL and the SOA minimum; the SOA RR TTL is min(ttl, 300)."""
        self.start("  ttl 3600")
        reply = yield self.expect("_http._tcp.svc1.ns1.svc." + Z, "SRV", NOERROR)
        self.assertEqual(reply.answer[0].ttl, 3600)
        self.assertEqual(reply.additional[0].ttl, 3600)
        reply = yield self.expect("nope.ns1.svc." + Z, "A", NXDOMAIN)
        self.assertEqual((reply.authority[0].ttl, reply.authority[0][0].minimum), (300, 3600))

    @defer.inlineCallbacks
    def test_ttlZero(self):
        """ttl 0 is allowed and gives TTL 0 records."""
        self.start("  ttl 0")
        yield self.expect("svc1.ns1.svc." + Z, "A", NOERROR, ["svc1.ns1.svc.cluster.local. 0 A 10.0.0.1"])


class ExternalNameUpstreamTests(ClusterMixin, unittest.TestCase):
    """An out-of-zone ExternalName target is resolved by the plugins after kubernetes (forward)."""

    def setUp(self):
        from tests.helpers import start_server
        _, upstream = start_server(self, ".:0 {\n bind 127.0.0.1\n hosts {\n"
                                         "  192.0.2.10 ext.example.org\n  2001:db8::10 ext.example.org\n }\n}\n")
        self.start(after=" forward . 127.0.0.1:%d\n" % (upstream,))

    @defer.inlineCallbacks
    def test_forwardedTarget(self):
        """A/AAAA of an ExternalName give the CNAME followed by the upstream's records."""
        reply = yield self.expect("ext.ns1.svc." + Z, "A", NOERROR)
        self.assertEqual(texts(reply), ["ext.example.org. 3600 A 192.0.2.10",
                                        "ext.ns1.svc.cluster.local. 5 CNAME ext.example.org."])
        self.assertEqual(reply.answer[0].rdtype, 5)  # the CNAME comes first
        reply = yield self.expect("ext.ns1.svc." + Z, "AAAA", NOERROR, tcp=True)
        self.assertEqual(texts(reply), ["ext.example.org. 3600 AAAA 2001:db8::10",
                                        "ext.ns1.svc.cluster.local. 5 CNAME ext.example.org."])


# The service, endpoint, PTR and apex records do not depend on the pods mode:
# the same tests again with Pods answered (insecure) and loaded (verified).
for _mode in ("insecure", "verified"):
    for _base in (ClusterIPTests, HeadlessTests, ExternalNameTests, PtrTests, ApexTests, NegativeTableTests):
        _name = "%sPods%s" % (_base.__name__[:-5], _mode.capitalize())
        globals()[_name + "Tests"] = type(_name + "Tests", (_base,), {"options": "  pods " + _mode})
del _mode, _base, _name
