"""
health: Corefile syntax, C{/health} over real HTTP, and lameduck on
shutdown (DNS still answers, C{/ready} already 503, then everything stops).
"""

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.helpers import query, raw_udp, rrset_values, start_server
from tests.plugins.test_prometheus import parse, parse_error
from tests.test_web import http_get
from twisted_kdns import config

LAMEDUCK = """\
.:0 {
    bind 127.0.0.1
    health 127.0.0.1:0 {
        lameduck 400ms
    }
    ready 127.0.0.1:0
    hosts {
        10.1.2.3 a.example.org
    }
}
"""


class ParseTests(unittest.SynchronousTestCase):
    def test_default(self):
        """Without arguments health listens on :8080 with no lameduck."""
        cfg = parse(" health", "health")
        self.assertEqual((cfg.addresses, cfg.lameduck), ([":8080"], 0.0))

    def test_lameduck(self):
        """C{lameduck} takes a Go duration; several health directives keep every address and the longest lameduck."""
        cfg = parse(" health :8080 {\n  lameduck 5s\n }\n health 127.0.0.1:8081 {\n  lameduck 1m\n }", "health")
        self.assertEqual((cfg.addresses, cfg.lameduck), ([":8080", "127.0.0.1:8081"], 60.0))

    def test_errors(self):
        """A bad address, a bad duration and unknown properties are file:line errors."""
        self.assertIn("Corefile:2 - Error during parsing: missing port", parse_error(self, " health 8080"))
        self.assertIn("invalid lameduck duration '5'", parse_error(self, " health {\n  lameduck 5\n }"))
        self.assertIn("Corefile:3 - Error during parsing: unknown property 'lame'",
                      parse_error(self, " health {\n  lame 5s\n }"))

    def test_setup(self):
        """Setup declares the address and the process-wide lameduck."""
        g = config.build(config.load(text=".:53 {\n health :8080 {\n  lameduck 2s\n }\n whoami\n}\n"), reactor)
        self.assertEqual((g.options.web["health"], g.options.lameduck), ([":8080"], 2.0))




class HealthHttpTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_ok(self):
        """GET /health answers 200 OK; other paths on that site are 404."""
        svc, _ = start_server(self, ".:0 {\n bind 127.0.0.1\n health 127.0.0.1:0\n whoami\n}\n")
        status, body, _ = yield http_get(svc.web_port("health"), "/health")
        self.assertEqual((status, body), (200, b"OK"))
        status, _, _ = yield http_get(svc.web_port("health"), "/metrics")
        self.assertEqual(status, 404)

    @defer.inlineCallbacks
    def test_lameduck(self):
        """
        During lameduck DNS answers, /health is 200 and /ready 503; when it
        ends the DNS and HTTP sockets are closed.
        """
        svc, port = start_server(self, LAMEDUCK)
        health, ready = svc.web_port("health"), svc.web_port("ready")
        status, _, _ = yield http_get(ready, "/ready")
        self.assertEqual(status, 200)
        started = reactor.seconds()
        stopped = svc.stopService()
        self.assertNoResult(stopped)
        reply = yield query(port, "a.example.org.", "A")
        self.assertEqual(rrset_values(reply), ["10.1.2.3"])
        status, body, _ = yield http_get(ready, "/ready")
        self.assertEqual((status, body), (503, b"Shutting down"))
        status, body, _ = yield http_get(health, "/health")
        self.assertEqual((status, body), (200, b"OK"))
        yield stopped
        self.assertGreaterEqual(reactor.seconds() - started, 0.39)
        self.assertIsNone((yield raw_udp(port, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                                               b"\x01a\x07example\x03org\x00\x00\x01\x00\x01", timeout=0.3)))
        status, _, _ = yield http_get(health, "/health")
        self.assertIsNone(status)
