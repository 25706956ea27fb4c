"""
Connection options of the API source, and proof that the stand-in in
C{tests/k8s_apiserver.py} behaves like an API server: the official client
lists and watches it, and C{kubectl} reads it through a kubeconfig.
"""

import json
import os
import shutil
import subprocess
import tempfile

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.helpers import require_tool
from tests.k8s_apiserver import service
from tests.plugins.kubernetes.test_watch_harness import WatchHarness, wait_for
from twisted_kdns.plugins.kubernetes import KubernetesConfig
from twisted_kdns.plugins.kubernetes.apiclient import (
    ClientFactory, ConnectionError_, TokenFile, endpoint_configuration, incluster_configuration)


def tempdir(testcase):
    path = tempfile.mkdtemp(prefix="kdns-k8s-")
    testcase.addCleanup(shutil.rmtree, path, True)
    return path


def write_atomically(path, text):
    """Replace a file the way the kubelet rotates projected tokens (new inode, rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class OfficialClientTests(WatchHarness, unittest.TestCase):
    """The stand-in speaks the API the official client expects."""

    @defer.inlineCallbacks
    def test_list_pages_and_models(self):
        """The client's typed LIST decodes our pages into models and follows continue tokens."""
        from kubernetes import client
        self.start_api()
        self.populate(services=5)
        api = client.CoreV1Api(client.ApiClient(endpoint_configuration(self.api.url)))

        def pages():
            names, token = [], None
            while True:
                page = api.list_service_for_all_namespaces(limit=2, _continue=token)
                names.extend("%s/%s" % (s.metadata.namespace, s.metadata.name) for s in page.items)
                token = page.metadata._continue
                if not token:
                    return names, page.metadata.resource_version
        names, rv = yield threads.deferToThread(pages)
        self.assertEqual(sorted(names), sorted("%s/%s" % (o["metadata"]["namespace"], o["metadata"]["name"])
                                               for o in self.api.items("services")))
        self.assertEqual(rv, str(self.api.rv))

    @defer.inlineCallbacks
    def test_watch_stream_events(self):
        """The client's Watch helper receives our chunked ADDED and DELETED events as models."""
        from kubernetes import client, watch
        self.start_api()
        self.populate(services=2)
        api = client.CoreV1Api(client.ApiClient(endpoint_configuration(self.api.url)))
        rv = str(self.api.rv)
        seen = []

        def run():
            w = watch.Watch()
            for event in w.stream(api.list_namespaced_service, "default", resource_version=rv,
                                  timeout_seconds=5):
                seen.append((event["type"], event["object"].metadata.name,
                             event["object"].spec.cluster_ip))
                if event["type"] == "DELETED":
                    w.stop()
        d = threads.deferToThread(run)
        yield wait_for(lambda: self.api.open_watches() >= 1, 5.0, "the client's watch")
        self.api.create("services", service("watched", "default", cluster_ip="10.7.0.1"))
        self.api.create("services", service("elsewhere", "other", cluster_ip="10.7.0.2"))
        self.api.delete("services", "default", "watched")
        yield d
        self.assertEqual(seen, [("ADDED", "watched", "10.7.0.1"), ("DELETED", "watched", "10.7.0.1")])

    @defer.inlineCallbacks
    def test_kubectl_reads_the_standin(self):
        """kubectl --kubeconfig (discovery, chunked list, single get) works against the stand-in."""
        require_tool(self, "kubectl", ci_installs=False)
        self.start_api()
        self.populate(services=4)
        d = tempdir(self)
        kubeconfig = self.api.kubeconfig(os.path.join(d, "kubeconfig"))

        def kubectl(*args):
            cmd = ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir", os.path.join(d, "cache"),
                   "--request-timeout", "5s"] + list(args)
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                                 env=dict(os.environ, HOME=d))
            if out.returncode:
                raise AssertionError("%s failed: %s" % (" ".join(args), out.stderr))
            return out.stdout
        names = yield threads.deferToThread(kubectl, "get", "services", "-A", "-o", "name", "--chunk-size", "3")
        self.assertEqual(sorted(names.split()), sorted("service/" + o["metadata"]["name"]
                                                       for o in self.api.items("services")))
        ip = yield threads.deferToThread(kubectl, "get", "service", "svc-1", "-n", "other",
                                         "-o", "jsonpath={.spec.clusterIP}")
        self.assertEqual(ip, self.api.get("services", "other", "svc-1")["spec"]["clusterIP"])
        slices = yield threads.deferToThread(kubectl, "get", "endpointslices.discovery.k8s.io", "-n", "default",
                                             "-o", "json")
        self.assertEqual(sorted(i["metadata"]["name"] for i in json.loads(slices)["items"]),
                         sorted(o["metadata"]["name"] for o in self.api.items("endpointslices")
                                if o["metadata"]["namespace"] == "default"))
        self.assertTrue(any(r[1].startswith("/api?") or r[1] == "/api" for r in self.api.requests))


LIGHT_SCRIPT = """
import json, sys
from twisted_kdns.plugins.kubernetes.apiclient import ClientFactory, client_classes
from twisted_kdns.plugins.kubernetes.watch import Http
class Cfg(object):
    endpoint = sys.argv[1]
    tls = kubeconfig = None
conn = ClientFactory(Cfg())()
light = sorted(m for m in sys.modules if m.startswith("kubernetes"))
resp = Http(conn).get("/api/v1/services", {"limit": "2"}, (2, 5))
items = len(json.loads(resp.data)["items"])
from kubernetes import client            # the real package still imports cleanly afterwards
full_ok = client.rest.RESTClientObject is not None and client.Configuration is not None
print(json.dumps({"light": light, "items": items, "full_ok": full_ok}))
"""


class LightImportTests(WatchHarness, unittest.TestCase):

    @defer.inlineCallbacks
    def test_endpoint_mode_skips_the_client_package(self):
        """
        With endpoint (or in-cluster) the client's models and APIs are never
        imported, requests still work through its configuration and HTTP
        layer, and the real package imports normally afterwards.
        """
        import sys
        self.start_api()
        self.populate(services=3)
        out = yield threads.deferToThread(
            subprocess.run, [sys.executable, "-c", LIGHT_SCRIPT, self.api.url], capture_output=True,
            text=True, timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__))))))
        self.assertEqual(out.returncode, 0, out.stderr)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        self.assertEqual(result["light"], [])
        self.assertEqual(result["items"], 2)
        self.assertTrue(result["full_ok"])


class TokenFileTests(unittest.SynchronousTestCase):

    def test_rereads_on_change_and_keeps_last_when_missing(self):
        """The token is re-read when the file is replaced; a momentarily missing file keeps the last one."""
        path = os.path.join(tempdir(self), "token")
        write_atomically(path, "first\n")
        token = TokenFile(path)
        self.assertEqual(token.token(), "first")
        write_atomically(path, "second")
        self.assertEqual(token.token(), "second")
        os.unlink(path)
        self.assertEqual(token.token(), "second")
        write_atomically(path, "third")
        token.invalidate()
        self.assertEqual(token.token(), "third")

    def test_hook_sets_authorization(self):
        """As a refresh hook it writes the bearer header value into the configuration."""
        path = os.path.join(tempdir(self), "token")
        write_atomically(path, "abc")
        cfg, token = incluster_configuration({"KUBERNETES_SERVICE_HOST": "10.0.0.1",
                                              "KUBERNETES_SERVICE_PORT": "443"}, token_path=path,
                                             ca_path="/nonexistent/ca.crt")
        self.assertEqual(cfg.host, "https://10.0.0.1:443")
        self.assertEqual(cfg.api_key["authorization"], "Bearer abc")
        write_atomically(path, "xyz")
        self.assertEqual(cfg.get_api_key_with_prefix("authorization"), "Bearer xyz")

    def test_not_in_cluster(self):
        """Without the service environment the in-cluster mode is a clear error."""
        self.assertRaises(ConnectionError_, incluster_configuration, {}, "/nonexistent")

    def test_ipv6_service_host(self):
        """An IPv6 KUBERNETES_SERVICE_HOST is bracketed in the URL."""
        path = os.path.join(tempdir(self), "token")
        write_atomically(path, "abc")
        cfg, _ = incluster_configuration({"KUBERNETES_SERVICE_HOST": "fd00::1",
                                          "KUBERNETES_SERVICE_PORT": "443"}, token_path=path)
        self.assertEqual(cfg.host, "https://[fd00::1]:443")


class ConnectionTests(WatchHarness, unittest.TestCase):

    @defer.inlineCallbacks
    def test_token_rotation(self):
        """
        In-cluster: when the token file rotates, the next request carries the
        new token; requests refused with 401 carried the old one, and the
        watcher recovers without losing data.
        """
        self.start_api(token="old-token")
        self.populate(services=3)
        path = os.path.join(tempdir(self), "token")
        write_atomically(path, "old-token")
        factory = ClientFactory(KubernetesConfig(), environ={
            "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.api.port)},
            token_path=path, incluster_scheme="http")
        self.start_source(self.config(endpoint=None), kinds=("services",), client_factory=factory)
        yield self.wait_ready()
        self.assertTrue(self.api.wait_for_watches(1))

        # The server moves on first: the reconnect is refused until the file rotates.
        self.api.set_token("new-token")
        self.api.drop_watches()
        yield wait_for(lambda: any(r[3] == 401 for r in self.api.requests), 3.0, "a 401")
        write_atomically(path, "new-token")
        self.assertTrue(self.api.wait_for_watches(1))
        self.api.create("services", service("after-rotation", "default", cluster_ip="10.6.0.1"))
        yield wait_for(lambda: "default/after-rotation" in self.store.services, 3.0, "the event")
        refused = [r for r in self.api.requests if r[3] == 401]
        self.assertTrue(refused)
        self.assertTrue(all(r[2] == "Bearer old-token" for r in refused))
        first_new = [i for i, r in enumerate(self.api.requests) if r[2] == "Bearer new-token"][0]
        self.assertTrue(all(r[3] in (200, None) for r in self.api.requests[first_new:]))

        # File and server rotate together: the very next request uses the new token.
        mark = len(self.api.requests)
        write_atomically(path, "newer-token")
        self.api.set_token("newer-token")
        self.api.drop_watches()
        self.assertTrue(self.api.wait_for_watches(1))
        self.api.create("services", service("after-second", "default", cluster_ip="10.6.0.2"))
        yield wait_for(lambda: "default/after-second" in self.store.services, 3.0, "the event")
        later = self.api.requests[mark:]
        self.assertEqual([r[2] for r in later], ["Bearer newer-token"] * len(later))
        self.assertEqual([r[3] for r in later if r[3] is not None], [200] * len([r for r in later if r[3]]))
        self.assertInSync(kinds=("services",))

    @defer.inlineCallbacks
    def test_kubeconfig_with_context(self):
        """kubeconfig PATH CONTEXT connects through the official loader (server and token from the file)."""
        self.start_api(token="kc-token")
        self.populate(services=3)
        path = self.api.kubeconfig(os.path.join(tempdir(self), "kubeconfig"), token="kc-token", context="lab")
        self.start_source(self.config(endpoint=None, kubeconfig=(path, "lab")), kinds=("services",))
        yield self.wait_ready()
        self.assertInSync(kinds=("services",))
        self.assertEqual({r[2] for r in self.api.requests}, {"Bearer kc-token"})

    def test_kubeconfig_unknown_context(self):
        """A context missing from the kubeconfig is a clear connection error."""
        from tests.k8s_apiserver import FakeApiServer
        path = FakeApiServer().kubeconfig(os.path.join(tempdir(self), "kubeconfig"))
        cfg = KubernetesConfig()
        cfg.kubeconfig = (path, "nope")
        self.assertRaises(ConnectionError_, ClientFactory(cfg))

    @defer.inlineCallbacks
    def test_endpoint_with_client_tls(self):
        """endpoint https://... with tls CERT KEY CACERT: mutual TLS against a server that demands a client cert."""
        require_tool(self, "openssl")
        d = tempdir(self)
        yield threads.deferToThread(make_pki, d)
        p = lambda n: os.path.join(d, n)  # noqa: E731
        self.start_api(tls=(p("server.crt"), p("server.key"), p("ca.crt")))
        self.populate(services=2)
        self.start_source(self.config(tls=(p("client.crt"), p("client.key"), p("ca.crt"))),
                          kinds=("services",))
        yield self.wait_ready()
        self.assertInSync(kinds=("services",))
        self.assertTrue(self.api.url.startswith("https://"))

        # Without the client certificate the server refuses the handshake.
        from kubernetes import client
        api = client.CoreV1Api(client.ApiClient(endpoint_configuration(self.api.url, ("", "", p("ca.crt")))))
        api.api_client.rest_client.pool_manager.connection_pool_kw["retries"] = 0
        d2 = threads.deferToThread(api.list_service_for_all_namespaces, _request_timeout=3)
        yield self.assertFailure(d2, Exception)

    def test_tls_missing_file(self):
        """A tls path that does not exist is named in the error."""
        e = self.assertRaises(ConnectionError_, endpoint_configuration, "https://127.0.0.1:1",
                              ("/nonexistent/c.crt", "", ""))
        self.assertIn("/nonexistent/c.crt", str(e))


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate (EC keys: fast)."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True, timeout=30)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=kdns-test-ca")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        run("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=kdns-" + name)
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", name + ".crt", "-days", "1", "-extfile", name + ".ext")
