"""
The HTTP side (L{twisted_kdns.web}): sites per address kept across
configuration changes, the resources, and the health self-probe.  Real
sockets on 127.0.0.1 port 0; requests from a thread with urllib.
"""

import socket
import urllib.error
import urllib.request

from prometheus_client import REGISTRY
from twisted.internet import defer, reactor, task, threads
from twisted.internet.error import CannotListenError
from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest

from twisted_kdns import web
from twisted_kdns.plugin import ServerOptions

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(port, path, host="127.0.0.1", timeout=2.0):
    """
    GET in a thread; Deferred firing with C{(status, body, content_type)},
    status C{None} when the connection failed (refused, reset).
    """
    def run():
        try:
            with _OPENER.open("http://%s:%d%s" % (host, port, path), timeout=timeout) as r:
                return r.status, r.read(), r.headers.get("Content-Type")
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers.get("Content-Type")
        except (urllib.error.URLError, OSError) as e:
            return None, str(e).encode(), None
    return threads.deferToThread(run)


class FakeGeneration(object):
    def __init__(self, readiness=(), monitor=None):
        self.options = ServerOptions()
        self.options.readiness = list(readiness)
        if monitor:
            self.options.extras["ready.monitor"] = monitor


class FakeService(object):
    """What L{web.ReadyResource} reads: a generation and a stopping flag."""

    def __init__(self, generation):
        self.generation = generation
        self.stopping = False


class Flag(object):
    """A readiness provider whose answer the test sets."""

    def __init__(self, value=False):
        self.value = value
        self.asked = 0

    def ready(self):
        self.asked += 1
        return self.value


def render(resource):
    request = DummyRequest([b""])
    body = resource.render_GET(request)
    return request.responseCode or 200, body, request.responseHeaders.getRawHeaders(b"content-type")


class SplitAddressTests(unittest.SynchronousTestCase):
    def test_forms(self):
        """C{HOST:PORT}, C{:PORT} and C{[V6]:PORT} split into host and integer port."""
        self.assertEqual(web.split_address("localhost:9153"), ("localhost", 9153))
        self.assertEqual(web.split_address(":8080"), ("", 8080))
        self.assertEqual(web.split_address("[::1]:8181"), ("::1", 8181))
        self.assertEqual(web.split_address("127.0.0.1:0"), ("127.0.0.1", 0))

    def test_bad(self):
        """A missing port, a non-numeric port or a bare IPv6 address are rejected."""
        for text in ("localhost", "a:b", "::1:80", "x:70000"):
            self.assertRaises(ValueError, web.split_address, text)

    def test_wantedSitesGroupsByAddress(self):
        """Kinds naming one address share one site that serves each kind's path."""
        options = ServerOptions()
        options.web = {"health": ["127.0.0.1:0"], "ready": ["127.0.0.1:0"], "metrics": [":9153"]}
        resources = {"health": object(), "ready": object(), "metrics": object()}
        wanted, kinds = web.wanted_sites(options, resources)
        self.assertEqual(sorted(wanted), [("", 9153), ("127.0.0.1", 0)])
        self.assertEqual(wanted[("127.0.0.1", 0)], {b"health": resources["health"], b"ready": resources["ready"]})
        self.assertEqual(kinds["metrics"], [("", 9153)])


class ResourceTests(unittest.SynchronousTestCase):
    def test_health(self):
        """C{/health} answers 200 C{OK} as text."""
        code, body, ctype = render(web.HealthResource())
        self.assertEqual((code, body), (200, b"OK"))
        self.assertEqual(ctype, [b"text/plain; charset=utf-8"])

    def test_readyNoProviders(self):
        """With no readiness provider, C{/ready} is 200 C{OK} (CoreDNS: nothing to wait for)."""
        self.assertEqual(render(web.ReadyResource(FakeService(FakeGeneration())))[:2], (200, b"OK"))

    def test_readyNamesSortedAndJoined(self):
        """Providers not ready are listed sorted and comma-joined in a 503 body."""
        gen = FakeGeneration([("zeta", Flag()), ("kubernetes", Flag()), ("ok", Flag(True))])
        self.assertEqual(render(web.ReadyResource(FakeService(gen)))[:2], (503, b"kubernetes,zeta"))

    def test_readyUntilReady(self):
        """By default a provider that was ready once is not asked again, even if it would say no."""
        flag = Flag(True)
        resource = web.ReadyResource(FakeService(FakeGeneration([("kubernetes", flag)])))
        self.assertEqual(render(resource)[0], 200)
        flag.value = False
        self.assertEqual(render(resource)[0], 200)
        self.assertEqual(flag.asked, 1)

    def test_readyContinuously(self):
        """With C{monitor continuously} every request asks, so readiness can be lost."""
        flag = Flag(True)
        resource = web.ReadyResource(FakeService(FakeGeneration([("kubernetes", flag)], "continuously")))
        self.assertEqual(render(resource)[0], 200)
        flag.value = False
        self.assertEqual(render(resource)[:2], (503, b"kubernetes"))

    def test_readyForgetsOnNewGeneration(self):
        """A new generation (reload) brings new providers, asked afresh."""
        svc = FakeService(FakeGeneration([("kubernetes", Flag(True))]))
        resource = web.ReadyResource(svc)
        self.assertEqual(render(resource)[0], 200)
        svc.generation = FakeGeneration([("kubernetes", Flag(False))])
        self.assertEqual(render(resource)[:2], (503, b"kubernetes"))

    def test_readyRaisingProviderIsNotReady(self):
        """A provider whose C{ready()} raises counts as not ready (and is logged)."""
        class Broken(object):
            def ready(self):
                raise RuntimeError("boom")
        resource = web.ReadyResource(FakeService(FakeGeneration([("broken", Broken())])))
        self.assertEqual(render(resource)[:2], (503, b"broken"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_readyShuttingDown(self):
        """Once the service is stopping C{/ready} is 503 C{Shutting down} whatever the providers say."""
        svc = FakeService(FakeGeneration([("kubernetes", Flag(True))]))
        svc.stopping = True
        self.assertEqual(render(web.ReadyResource(svc))[:2], (503, b"Shutting down"))

    def test_metrics(self):
        """C{/metrics} is the registry's text exposition with Prometheus's content type."""
        code, body, ctype = render(web.MetricsResource())
        self.assertEqual(code, 200)
        self.assertIn(b"coredns_build_info{", body)
        self.assertEqual(ctype[0].split(b";")[0], b"text/plain")


class WebSitesTests(unittest.TestCase):
    def setUp(self):
        self.sites = web.WebSites(reactor)
        self.addCleanup(self.sites.close_all)

    def apply(self, wanted, kinds=None):
        opened = self.sites.prepare(wanted)
        self.sites.commit(wanted, kinds or {})
        return opened

    @defer.inlineCallbacks
    def test_servesPaths(self):
        """A site serves the paths it was given and 404 for others."""
        key = ("127.0.0.1", 0)
        self.apply({key: {b"health": web.HealthResource()}}, {"health": [key]})
        port = self.sites.port_of("health")
        self.assertNotEqual(port, 0)
        status, body, _ = yield http_get(port, "/health")
        self.assertEqual((status, body), (200, b"OK"))
        status, _, _ = yield http_get(port, "/ready")
        self.assertEqual(status, 404)

    @defer.inlineCallbacks
    def test_sameAddressKeepsSocket(self):
        """Committing a configuration that keeps an address keeps its port object and updates its paths."""
        key = ("127.0.0.1", 0)
        self.apply({key: {b"health": web.HealthResource()}}, {"health": [key]})
        before = self.sites.sites[key].ports[0]
        port = self.sites.port_of("health")
        opened = self.apply({key: {b"health": web.HealthResource(), b"metrics": web.MetricsResource()}},
                            {"health": [key], "metrics": [key]})
        self.assertEqual(opened, [])
        self.assertIs(self.sites.sites[key].ports[0], before)
        status, body, _ = yield http_get(port, "/metrics")
        self.assertEqual(status, 200)
        self.assertIn(b"coredns_build_info", body)

    @defer.inlineCallbacks
    def test_movedAddressMoves(self):
        """A changed address opens the new socket and closes the old one."""
        old, new = ("127.0.0.1", 0), ("localhost", 0)
        self.apply({old: {b"health": web.HealthResource()}}, {"health": [old]})
        old_port = self.sites.port_of("health")
        self.apply({new: {b"health": web.HealthResource()}}, {"health": [new]})
        new_port = self.sites.port_of("health")
        self.assertEqual(list(self.sites.sites), [new])
        status, _, _ = yield http_get(new_port, "/health")
        self.assertEqual(status, 200)
        if new_port != old_port:
            status, _, _ = yield http_get(old_port, "/health")
            self.assertIsNone(status)

    def test_busyPortFailsAndOpensNothing(self):
        """When one new address cannot be bound, C{prepare} raises and leaves no new site open."""
        blocker = socket.socket()
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        busy = blocker.getsockname()[1]
        wanted = {("127.0.0.1", 0): {b"health": web.HealthResource()},
                  ("127.0.0.1", busy): {b"ready": web.HealthResource()}}
        self.assertRaises(CannotListenError, self.sites.prepare, wanted)
        self.assertEqual(self.sites.sites, {})


class MonitorTests(unittest.TestCase):
    def health_site(self):
        """Real web sites serving C{/health} on 127.0.0.1, closed when the test ends."""
        sites = web.WebSites(reactor)
        self.addCleanup(sites.close_all)
        key = ("127.0.0.1", 0)
        sites.prepare({key: {b"health": web.HealthResource()}})
        sites.commit({key: {b"health": web.HealthResource()}}, {"health": [key]})
        return sites

    def test_reactorLag(self):
        """Each tick records how late it fired beyond the interval."""
        clock = Clock()
        monitor = web.Monitor(clock, lambda: None)
        monitor.start()
        clock.advance(1.0)
        self.assertEqual(REGISTRY.get_sample_value("kdns_reactor_lag_seconds"), 0.0)
        clock.advance(1.25)
        self.assertAlmostEqual(REGISTRY.get_sample_value("kdns_reactor_lag_seconds"), 0.25)
        monitor.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_probeObservesDuration(self):
        """A probe of a live C{/health} is timed into coredns_health_request_duration_seconds."""
        sites = self.health_site()
        before = REGISTRY.get_sample_value("coredns_health_request_duration_seconds_count") or 0
        ok = yield web.Monitor(reactor, None).probe(*sites.address_of("health"))
        self.assertTrue(ok)
        self.assertEqual(REGISTRY.get_sample_value("coredns_health_request_duration_seconds_count"), before + 1)

    @defer.inlineCallbacks
    def test_probeFailureCounted(self):
        """A probe that cannot connect counts in coredns_health_request_failures_total."""
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        before = REGISTRY.get_sample_value("coredns_health_request_failures_total") or 0
        ok = yield web.Monitor(reactor, None).probe("127.0.0.1", port)
        self.assertFalse(ok)
        self.assertEqual(REGISTRY.get_sample_value("coredns_health_request_failures_total"), before + 1)

    @defer.inlineCallbacks
    def test_tickProbesHealthSite(self):
        """Running, the monitor probes the configured health site on each tick."""
        sites = self.health_site()
        before = REGISTRY.get_sample_value("coredns_health_request_duration_seconds_count") or 0
        monitor = web.Monitor(reactor, lambda: sites.address_of("health"), interval=0.05)
        monitor.start()
        self.addCleanup(monitor.stop)
        for _ in range(100):
            yield task.deferLater(reactor, 0.02, lambda: None)
            if (REGISTRY.get_sample_value("coredns_health_request_duration_seconds_count") or 0) >= before + 2:
                break
        self.assertGreaterEqual(REGISTRY.get_sample_value("coredns_health_request_duration_seconds_count"),
                                before + 2)
