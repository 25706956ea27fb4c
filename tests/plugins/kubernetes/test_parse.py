"""
Parsing the kubernetes directive: every option, and CoreDNS's errors
(plugin/kubernetes/setup.go) located at FILE:LINE.
"""

from twisted.trial import unittest

from twisted_kdns.config import build, load
from twisted_kdns.corefile import parse_text
from twisted_kdns.errors import ConfigError
from twisted_kdns.plugins import kubernetes
from twisted_kdns.plugins.kubernetes.selectors import Selector, SelectorError


def parse(body, args="cluster.local in-addr.arpa"):
    text = ". {\n kubernetes %s {\n%s\n }\n}\n" % (args, body)
    return kubernetes.parse(parse_text(text, "Corefile").blocks[0].by_name()["kubernetes"])


class ParseTests(unittest.SynchronousTestCase):
    def error(self, body, args="cluster.local"):
        e = self.assertRaises(ConfigError, parse, body, args)
        return str(e)

    def test_defaults(self):
        """No options: pods disabled, ttl 5, startup_timeout 5 s, in-cluster, the base kinds."""
        cfg = parse("")
        self.assertEqual((cfg.pods, cfg.ttl, cfg.startup_timeout, cfg.endpoint, cfg.tls, cfg.kubeconfig,
                          cfg.namespaces, cfg.labels, cfg.namespace_labels, cfg.manifests),
                         ("disabled", 5, 5.0, None, None, None, set(), None, None, None))
        self.assertEqual(cfg.zones, [b"cluster.local", b"in-addr.arpa"])
        self.assertEqual(cfg.kinds(), ["namespaces", "services", "endpointslices"])
        self.assertFalse(cfg.fallthrough.through(b"x.cluster.local"))

    def test_zones(self):
        """Zones are normalised; a CIDR expands to reverse zones; no arguments = the block's zones."""
        self.assertEqual(parse("", "Cluster.Local. 10.0.0.0/15").zones,
                         [b"cluster.local", b"0.10.in-addr.arpa", b"1.10.in-addr.arpa"])
        self.assertIsNone(parse("", "").zones)

    def test_reverseOnly(self):
        """Only reverse zones: 'non-reverse zone name must be used'."""
        self.assertIn("non-reverse zone name must be used", self.error("", "in-addr.arpa ip6.arpa"))

    def test_reverseOnlyBlock(self):
        """The same check applies to zones taken from the server block, at build time."""
        plan = load(text="in-addr.arpa:0 {\n kubernetes {\n  manifests /nonexistent\n }\n}\n")
        from twisted.internet.task import Clock
        e = self.assertRaises(ConfigError, build, plan, Clock())
        self.assertIn("non-reverse zone name must be used", str(e))

    def test_endpointAndTls(self):
        """endpoint keeps the first URL; tls takes exactly CERT KEY CACERT."""
        cfg = parse(" endpoint https://10.0.0.1:6443 https://other\n tls /c.pem /k.pem /ca.pem")
        self.assertEqual(cfg.endpoint, "https://10.0.0.1:6443")
        self.assertEqual(cfg.tls, ("/c.pem", "/k.pem", "/ca.pem"))
        self.assertIn("Wrong argument count", self.error(" tls /c.pem /k.pem"))
        self.assertIn("Wrong argument count", self.error(" endpoint"))

    def test_kubeconfig(self):
        """kubeconfig PATH [CONTEXT]; relative paths are relative to the Corefile."""
        self.assertEqual(parse(" kubeconfig /etc/kube.conf").kubeconfig, ("/etc/kube.conf", None))
        self.assertEqual(parse(" kubeconfig /etc/kube.conf ctx").kubeconfig, ("/etc/kube.conf", "ctx"))
        self.assertIn("Wrong argument count", self.error(" kubeconfig a b c"))
        text = ". {\n kubernetes cluster.local {\n  kubeconfig kube.conf\n }\n}\n"
        d = parse_text(text, "/srv/dns/Corefile").blocks[0].by_name()["kubernetes"]
        self.assertEqual(kubernetes.parse(d).kubeconfig, ("/srv/dns/kube.conf", None))

    def test_namespaces(self):
        """namespaces NS...: a set; needs at least one."""
        self.assertEqual(parse(" namespaces a b").namespaces, {"a", "b"})
        self.assertIn("Wrong argument count", self.error(" namespaces"))

    def test_labels(self):
        """labels / namespace_labels keep the selector text; a bad selector is CoreDNS's error."""
        cfg = parse(" labels environment in (production, qa),tier!=front\n namespace_labels team=a")
        self.assertEqual(cfg.labels, "environment in (production, qa),tier!=front")
        self.assertEqual(cfg.namespace_labels, "team=a")
        self.assertIn("unable to parse label selector value: 'a b c'", self.error(" labels a b c"))
        self.assertIn("unable to parse namespace_label selector value", self.error(" namespace_labels =x"))
        self.assertIn("Wrong argument count", self.error(" labels"))

    def test_namespacesAndLabelsExclusive(self):
        """namespaces and namespace_labels together are an error."""
        self.assertIn("namespaces and namespace_labels cannot both be set",
                      self.error(" namespaces a\n namespace_labels team=a"))

    def test_pods(self):
        """pods disabled|insecure|verified; verified adds the pods kind; other words are an error."""
        self.assertEqual(parse(" pods insecure").pods, "insecure")
        cfg = parse(" pods verified")
        self.assertEqual(cfg.kinds(), ["namespaces", "services", "endpointslices", "pods"])
        self.assertIn("wrong value for pods: secure,  must be one of: disabled, verified, insecure",
                      self.error(" pods secure"))
        self.assertIn("Wrong argument count", self.error(" pods"))

    def test_endpointPodNames(self):
        """endpoint_pod_names takes no argument and adds the pods kind."""
        cfg = parse(" endpoint_pod_names")
        self.assertTrue(cfg.endpoint_pod_names)
        self.assertIn("pods", cfg.kinds())
        self.assertIn("Wrong argument count", self.error(" endpoint_pod_names x"))

    def test_ttl(self):
        """ttl 0..3600; out of range and non-numbers are CoreDNS's errors."""
        self.assertEqual(parse(" ttl 0").ttl, 0)
        self.assertEqual(parse(" ttl 3600").ttl, 3600)
        self.assertIn("ttl must be in range [0, 3600]: 3601", self.error(" ttl 3601"))
        self.assertIn("ttl must be in range [0, 3600]: -1", self.error(" ttl -1"))
        self.assertIn('strconv.Atoi: parsing "x": invalid syntax', self.error(" ttl x"))
        self.assertIn("Wrong argument count", self.error(" ttl"))

    def test_noendpoints(self):
        """noendpoints drops the endpointslices kind and takes no argument."""
        self.assertEqual(parse(" noendpoints").kinds(), ["namespaces", "services"])
        self.assertIn("Wrong argument count", self.error(" noendpoints x"))

    def test_fallthrough(self):
        """fallthrough alone covers everything; with zones only those."""
        self.assertTrue(parse(" fallthrough").fallthrough.through(b"a.cluster.local"))
        ft = parse(" fallthrough in-addr.arpa").fallthrough
        self.assertTrue(ft.through(b"1.0.0.10.in-addr.arpa"))
        self.assertFalse(ft.through(b"a.cluster.local"))

    def test_ignore(self):
        """ignore empty_service; another value is an error; a bare ignore is accepted as by CoreDNS."""
        self.assertTrue(parse(" ignore empty_service").ignore_empty_service)
        self.assertFalse(parse(" ignore").ignore_empty_service)
        self.assertIn("unable to parse ignore value: 'everything'", self.error(" ignore everything"))

    def test_startupTimeout(self):
        """startup_timeout takes a Go duration."""
        self.assertEqual(parse(" startup_timeout 1m30s").startup_timeout, 90.0)
        self.assertEqual(parse(" startup_timeout 250ms").startup_timeout, 0.25)
        self.assertIn('failed to parse startup_timeout: 10, time: invalid duration "10"',
                      self.error(" startup_timeout 10"))
        self.assertIn("Wrong argument count", self.error(" startup_timeout 1s 2s"))

    def test_manifests(self):
        """manifests PATH... (our extension) keeps paths, relative to the Corefile."""
        text = ". {\n kubernetes cluster.local {\n  manifests cluster /abs/x.yaml\n }\n}\n"
        d = parse_text(text, "/srv/dns/Corefile").blocks[0].by_name()["kubernetes"]
        self.assertEqual(kubernetes.parse(d).manifests, ["/srv/dns/cluster", "/abs/x.yaml"])
        self.assertIn("Wrong argument count", self.error(" manifests"))

    def test_unknown(self):
        """An unknown property is 'unknown property' at its file:line."""
        msg = self.error(" pods insecure\n bogus 1")
        self.assertIn("plugin/kubernetes: Corefile:4 - Error during parsing: unknown property 'bogus'", msg)

    def test_unsupported(self):
        """CoreDNS options we do not implement are named as unsupported, not silently ignored."""
        for option in ("multicluster clusterset.local", "zonal", "apiserver_qps 10"):
            self.assertIn("not supported by kdns", self.error(" " + option))

    def test_once(self):
        """The plugin may appear only once per server block."""
        text = ". {\n kubernetes cluster.local\n kubernetes other.local\n}\n"
        directives = parse_text(text, "Corefile").blocks[0].by_name()["kubernetes"]
        self.assertIn("can only be used once per Server Block",
                      str(self.assertRaises(ConfigError, kubernetes.parse, directives)))


class SelectorTests(unittest.SynchronousTestCase):
    def test_matching(self):
        """Equality, inequality, set and existence requirements match as the API server does."""
        labels = {"app": "web", "tier": "front", "kubernetes.io/metadata.name": "ns1"}
        for text, expected in [
                ("app=web", True), ("app==web", True), ("app!=web", False), ("app!=db", True),
                ("app in (web, db)", True), ("app notin (web)", False), ("tier", True), ("!tier", False),
                ("missing!=x", True), ("missing in (x)", False), ("app=web,tier=back", False),
                ("kubernetes.io/metadata.name=ns1", True), ("", True)]:
            self.assertEqual(Selector(text).matches(labels), expected, text)

    def test_errors(self):
        """Malformed selectors raise SelectorError."""
        for text in ("a b c", "=x", "app in (a", "app=web,", "bad key=x", "app=a b"):
            self.assertRaises(SelectorError, Selector, text)
