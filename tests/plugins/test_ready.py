"""ready: Corefile syntax and C{/ready} over real HTTP as readiness changes."""

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.helpers import start_server
from tests.plugins.test_prometheus import parse, parse_error
from tests.test_web import Flag, http_get

READY = ".:0 {\n bind 127.0.0.1\n ready 127.0.0.1:0\n whoami\n}\n"


class ParseTests(unittest.SynchronousTestCase):
    def test_default(self):
        """Without arguments ready listens on :8181 and monitors until ready."""
        cfg = parse(" ready", "ready")
        self.assertEqual((cfg.address, cfg.monitor), (":8181", "until-ready"))

    def test_monitor(self):
        """C{monitor continuously} is accepted; other modes, two ready lines, bad addresses are errors."""
        self.assertEqual(parse(" ready :9000 {\n  monitor continuously\n }", "ready").monitor, "continuously")
        self.assertIn("monitor type 'sometimes' not supported",
                      parse_error(self, " ready {\n  monitor sometimes\n }"))
        self.assertIn("can only be used once", parse_error(self, " ready\n ready :1"))
        self.assertIn("Corefile:2 - Error during parsing: missing port", parse_error(self, " ready 8181"))




class ReadyHttpTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_flipsWithProvider(self):
        """/ready is 503 naming the plugin until its provider is ready, then 200 OK."""
        svc, _ = start_server(self, READY)
        flag = Flag(False)
        svc.generation.options.readiness.append(("kubernetes", flag))
        port = svc.web_port("ready")
        status, body, _ = yield http_get(port, "/ready")
        self.assertEqual((status, body), (503, b"kubernetes"))
        flag.value = True
        status, body, _ = yield http_get(port, "/ready")
        self.assertEqual((status, body), (200, b"OK"))

    @defer.inlineCallbacks
    def test_sharedAddressWithHealth(self):
        """health and ready on one address share one socket and serve both paths."""
        svc, _ = start_server(self, ".:0 {\n bind 127.0.0.1\n ready 127.0.0.1:0\n health 127.0.0.1:0\n whoami\n}\n")
        self.assertEqual(svc.web_port("ready"), svc.web_port("health"))
        self.assertEqual(len(svc.web.sites), 1)
        status, _, _ = yield http_get(svc.web_port("ready"), "/health")
        self.assertEqual(status, 200)
        status, _, _ = yield http_get(svc.web_port("ready"), "/ready")
        self.assertEqual(status, 200)


class ReadyKubernetesTests(unittest.TestCase):
    """/ready against the kubernetes plugin watching the API stand-in."""

    @defer.inlineCallbacks
    def test_notReadyUntilSynced(self):
        """/ready is 503 "kubernetes" while the API holds the initial LIST, 200 once it synced."""
        from tests.k8s_apiserver import FakeApiServer, namespace
        api = FakeApiServer()
        api.load("namespaces", [namespace("default")])
        api.start()
        self.addCleanup(api.stop)
        api.stall()
        svc, _ = start_server(self, ".:0 {\n bind 127.0.0.1\n ready 127.0.0.1:0\n"
                                    " kubernetes cluster.local {\n  endpoint %s\n }\n}\n" % (api.url,))
        port = svc.web_port("ready")
        status, body, _ = yield http_get(port, "/ready")
        self.assertEqual((status, body), (503, b"kubernetes"))
        api.release()
        for _ in range(200):
            status, body, _ = yield http_get(port, "/ready")
            if status == 200:
                break
            yield task.deferLater(reactor, 0.025, lambda: None)
        self.assertEqual((status, body), (200, b"OK"))
