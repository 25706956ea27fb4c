"""
The API-server source (L{twisted_kdns.plugins.kubernetes.watch}) against the
HTTP stand-in in C{tests/k8s_apiserver.py}: real sockets, the official
client's HTTP layer, a real Store on the real reactor.
"""

import threading
import time

from prometheus_client import REGISTRY
from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.k8s_apiserver import endpointslice, namespace, service
from tests.plugins.kubernetes.test_watch_harness import KINDS, WatchHarness, expected, table, wait_for
from twisted_kdns.plugins.kubernetes import watch
from twisted_kdns.plugins.kubernetes.watch import ApiSource, KindLoop, parse_time, service_kind


def sample(name, labels):
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


class InitialSyncTests(WatchHarness, unittest.TestCase):

    @defer.inlineCallbacks
    def test_paged_list_syncs_every_object(self):
        """The first LIST is read page by page (limit/continue) and the store holds exactly the cluster."""
        self.start_api()
        self.populate(services=23)
        self.assertFalse(self.start_source(page_size=5).synced())
        yield self.wait_ready()
        self.assertInSync()
        self.assertEqual(self.source.synced(), frozenset(KINDS))
        pages = self.list_requests("/api/v1/services")
        self.assertEqual(len(pages), 5)
        self.assertIn("limit=5", pages[0][1])
        self.assertTrue(all("continue=" in p[1] for p in pages[1:]))

    @defer.inlineCallbacks
    def test_daemon_threads_outside_the_reactor_pool(self):
        """Each kind gets its own named daemon thread; the sync time is exported per kind."""
        self.start_api()
        self.populate(services=2)
        before = time.time()
        self.start_source()
        yield self.wait_ready()
        threads = [self.source.loops[k].thread for k in KINDS]
        self.assertEqual([t.name for t in threads], ["kdns-watch-" + k for k in KINDS])
        self.assertTrue(all(t.daemon and t.is_alive() for t in threads))
        pool = getattr(reactor, "threadpool", None)
        if pool is not None:
            self.assertFalse(set(threads) & set(pool.threads))
        for kind in KINDS:
            self.assertGreaterEqual(sample("kdns_kubernetes_last_sync_timestamp_seconds", {"kind": kind}),
                                    before)

    @defer.inlineCallbacks
    def test_namespaces_filtered_client_side_labels_server_side(self):
        """C{namespaces} drops other namespaces' objects; C{labels} goes to the server as labelSelector."""
        self.start_api()
        self.populate(services=6)
        self.api.create("services", service("tagged", "default", cluster_ip="10.5.0.1",
                                             labels={"app": "x", "dns": "yes"}))
        cfg = self.config(namespaces={"default"}, labels="dns=yes")
        self.start_source(cfg, kinds=("namespaces", "services"))
        yield self.wait_ready()
        self.assertEqual(sorted(table(self.store, "namespaces")), ["default"])
        self.assertEqual(sorted(table(self.store, "services")), ["default/tagged"])
        self.assertIn("labelSelector=dns%3Dyes", self.list_requests("/api/v1/services")[0][1])
        self.assertNotIn("labelSelector", self.list_requests("/api/v1/namespaces")[0][1])

    @defer.inlineCallbacks
    def test_pods_use_phase_field_selector(self):
        """Pods are listed with CoreDNS's field selector, so finished pods never reach the store."""
        from tests.k8s_apiserver import pod
        self.start_api()
        self.api.load("pods", [pod("web-1", "10.2.0.1"), pod("done-1", "10.2.0.2", phase="Succeeded")])
        self.start_source(kinds=("pods",))
        yield self.wait_ready()
        self.assertEqual(sorted(table(self.store, "pods")), ["default/web-1"])
        self.assertIn("fieldSelector=status.phase", self.list_requests("/api/v1/pods")[0][1])


class EventTests(WatchHarness, unittest.TestCase):

    @defer.inlineCallbacks
    def setUp(self):
        self.start_api()
        self.populate(services=4)
        self.start_source()
        yield self.wait_ready()
        self.assertTrue(self.api.wait_for_watches(3))

    @defer.inlineCallbacks
    def test_added_modified_deleted(self):
        """Each watch event lands in the store within milliseconds; a deleted Service is gone."""
        t0 = time.time()
        self.api.create("services", service("fresh", "default", cluster_ip="10.9.0.1"))
        yield wait_for(lambda: "default/fresh" in self.store.services, 2.0, "the ADDED event")
        added = time.time() - t0
        self.assertEqual(self.store.services["default/fresh"].cluster_ips, ("10.9.0.1",))
        self.api.update("services", service("fresh", "default", cluster_ip="10.9.0.2"))
        yield wait_for(lambda: self.store.services["default/fresh"].cluster_ips == ("10.9.0.2",),
                       2.0, "the MODIFIED event")
        self.api.delete("services", "default", "fresh")
        yield wait_for(lambda: "default/fresh" not in self.store.services, 2.0, "the DELETED event")
        self.assertInSync()
        self.assertLess(added, 0.5)

    @defer.inlineCallbacks
    def test_dropped_watch_resumes_from_last_version(self):
        """An abruptly dropped watch is reopened from the last resourceVersion, without a re-list."""
        lists = len(self.list_requests("/api/v1/services"))
        restarts = sample("kdns_kubernetes_watch_restarts_total", {"kind": "services", "reason": "dropped"})
        created = self.api.create("services", service("a", "default", cluster_ip="10.9.1.1"))
        yield wait_for(lambda: "default/a" in self.store.services, 2.0, "the ADDED event")
        self.api.drop_watches()
        self.assertTrue(self.api.wait_for_watches(3))
        self.api.create("services", service("b", "default", cluster_ip="10.9.1.2"))
        yield wait_for(lambda: "default/b" in self.store.services, 2.0, "an event after reconnect")
        rv = created["metadata"]["resourceVersion"]
        watches = [r[1] for r in self.api.requests if r[1].startswith("/api/v1/services?") and "watch=true" in r[1]]
        self.assertIn("resourceVersion=%s&" % (rv,), watches[-1])
        self.assertEqual(len(self.list_requests("/api/v1/services")), lists)
        self.assertGreater(sample("kdns_kubernetes_watch_restarts_total",
                                  {"kind": "services", "reason": "dropped"}), restarts)
        self.assertInSync()

    @defer.inlineCallbacks
    def test_bookmark_advances_resource_version(self):
        """A BOOKMARK moves our resourceVersion on, so a compaction up to it causes no re-list."""
        self.api.create("namespaces", namespace("unrelated"))   # bumps the global version
        yield wait_for(lambda: "unrelated" in self.store.namespaces, 2.0, "the namespace")
        self.api.bookmark()
        current = str(self.api.rv)
        loop = self.source.loops["services"]
        yield wait_for(lambda: loop.rv == current, 2.0, "the bookmark")
        lists = len(self.list_requests("/api/v1/services"))
        self.api.compact()
        self.api.drop_watches()
        self.assertTrue(self.api.wait_for_watches(3))
        self.api.create("services", service("after", "default", cluster_ip="10.9.2.1"))
        yield wait_for(lambda: "default/after" in self.store.services, 2.0, "an event after the bookmark")
        self.assertEqual(len(self.list_requests("/api/v1/services")), lists)

    @defer.inlineCallbacks
    def test_programming_duration_observed(self):
        """An EndpointSlice event with a trigger time feeds the programming-duration histogram."""
        labels = {"service_kind": "headless_with_selector"}
        before = sample("coredns_kubernetes_dns_programming_duration_seconds_count", labels)
        trigger = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
        self.api.update("endpointslices", endpointslice("svc-0", ["10.1.0.9"], "default", name="svc-0-abcde",
                                                        trigger_time=trigger))
        yield wait_for(lambda: sample("coredns_kubernetes_dns_programming_duration_seconds_count",
                                      labels) > before, 2.0, "the histogram")
        self.assertGreater(sample("coredns_kubernetes_dns_programming_duration_seconds_sum", labels), 0.5)


class FaultTests(WatchHarness, unittest.TestCase):

    @defer.inlineCallbacks
    def test_outage_keeps_data_then_410_relist_is_exact(self):
        """
        While the API server is down the store keeps every object; after it
        returns with a compacted history the watcher re-lists (410) and ends
        with exactly the server's state: nothing lost, nothing stale.
        """
        self.start_api()
        self.populate(services=12)
        self.start_source()
        yield self.wait_ready()
        self.assertTrue(self.api.wait_for_watches(3))
        before = {k: table(self.store, k) for k in KINDS}
        gone = sample("kdns_kubernetes_relists_total", {"kind": "services", "reason": "gone"})

        self.api.stop()
        # Changes the watcher cannot see while the server is away.
        self.api.create("services", service("born", "default", cluster_ip="10.8.0.1"))
        self.api.update("services", service("svc-1", "other", cluster_ip="10.8.0.2"))
        self.api.delete("services", "default", "svc-2")
        self.api.delete("endpointslices", "default", "svc-2-abcde")
        self.api.create("namespaces", namespace("late"))
        self.api.compact()
        errors = sample("kdns_kubernetes_api_errors_total", {"kind": "services", "code": "connection"})
        yield wait_for(lambda: sample("kdns_kubernetes_api_errors_total",
                                      {"kind": "services", "code": "connection"}) >= errors + 2,
                       3.0, "failed reconnects")
        self.assertEqual({k: table(self.store, k) for k in KINDS}, before)
        self.assertTrue(self.store.ready())

        self.api.start()
        yield wait_for(lambda: self.in_sync(), 5.0, "the re-list after the outage")
        self.assertInSync()
        self.assertGreater(sample("kdns_kubernetes_relists_total", {"kind": "services", "reason": "gone"}), gone)
        self.assertNotIn("default/svc-2", self.store.services)
        self.assertEqual(self.store.services["other/svc-1"].cluster_ips, ("10.8.0.2",))

    @defer.inlineCallbacks
    def test_failures_logged_on_the_reactor_thread(self):
        """A failed request is logged once per attempt through twisted.logger, on the reactor thread."""
        from twisted.logger import globalLogPublisher
        seen = []

        def observer(event):
            if event.get("log_namespace") == "kdns.plugins.kubernetes" and "error" in event:
                seen.append((threading.current_thread() is threading.main_thread(), event))
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.start_api()
        self.populate(services=2)
        self.api.fail_next(1, 500)
        self.start_source(kinds=("services",))
        yield self.wait_ready()
        self.assertEqual(len(seen), 1)
        on_main, event = seen[0]
        self.assertTrue(on_main)
        self.assertEqual(event["kind"], "services")
        self.assertIn("HTTP 500", event["error"])
        self.assertEqual(event["log_level"].name, "warn")

    @defer.inlineCallbacks
    def test_reset_resource_version_relists(self):
        """An API server restored with a reset resourceVersion refuses our version; we re-list and match it."""
        self.start_api()
        self.populate(services=6)
        self.start_source()
        yield self.wait_ready()
        self.assertTrue(self.api.wait_for_watches(3))
        self.api.reset()
        self.api.create("services", service("post-reset", "default", cluster_ip="10.8.1.1"))
        yield wait_for(lambda: self.in_sync(), 5.0, "the re-list after the reset")
        self.assertInSync()

    @defer.inlineCallbacks
    def test_5xx_burst_retried_with_backoff(self):
        """A burst of 503s is retried with growing, jittered delays until the API answers again."""
        self.start_api()
        self.populate(services=3)
        self.api.fail_next(4, 503)
        self.start_source(kinds=("services",), backoff=(0.02, 0.2), rand=lambda: 1.0)
        t0 = time.time()
        yield self.wait_ready()
        elapsed = time.time() - t0
        failed = [r for r in self.api.requests if r[3] == 503]
        self.assertEqual(len(failed), 4)
        # 0.02 + 0.04 + 0.08 + 0.16 with rand() = 1.0
        self.assertGreater(elapsed, 0.29)
        self.assertInSync(kinds=("services",))

    @defer.inlineCallbacks
    def test_expired_continue_token_restarts_list(self):
        """A continue token the server no longer knows (410) restarts the LIST from the first page."""
        self.start_api()
        self.populate(services=10)
        self.api.expire_next_continue()
        self.start_source(kinds=("services",), page_size=4)
        yield self.wait_ready()
        self.assertInSync(kinds=("services",))
        pages = [r for r in self.list_requests("/api/v1/services")]
        self.assertEqual([r[3] for r in pages], [200, 410, 200, 200, 200])
        self.assertNotIn("continue=", pages[2][1])

    @defer.inlineCallbacks
    def test_stop_does_not_wait_for_a_parked_request(self):
        """stopService returns at once even while a request is stalled, and the thread then exits."""
        self.start_api()
        self.populate(services=2)
        self.api.stall()
        self.start_source(kinds=("services",))
        thread = self.source.loops["services"].thread
        yield wait_for(lambda: thread.is_alive(), 1.0)
        t0 = time.time()
        self.source.stopService()
        self.assertLess(time.time() - t0, 0.1)
        self.api.release()
        yield wait_for(lambda: not thread.is_alive(), 3.0, "the thread to exit")
        self.assertFalse(self.store.synced("services"))

    @defer.inlineCallbacks
    def test_stop_unblocks_an_open_watch(self):
        """A thread parked in a watch read leaves within moments of stopService."""
        self.start_api()
        self.populate(services=2)
        self.start_source(kinds=("services",))
        yield self.wait_ready()
        self.assertTrue(self.api.wait_for_watches(1))
        thread = self.source.loops["services"].thread
        self.source.stopService()
        yield wait_for(lambda: not thread.is_alive(), 2.0, "the watch thread to exit")


class FakeReactor(object):
    """Runs callFromThread calls on the reactor thread of this test (recorded)."""

    def __init__(self):
        self.calls = []

    def callFromThread(self, f, *a, **kw):
        self.calls.append((f, a, kw))
        reactor.callFromThread(f, *a, **kw)


class LoopUnitTests(unittest.SynchronousTestCase):

    def loop(self, backoff=(0.5, 30.0), rand=lambda: 1.0):
        class Cfg(object):
            labels = "a=b"
            namespace_labels = None
            namespaces = {"x"}
        source = ApiSource(Cfg(), ["services", "namespaces"], store=None, reactor=FakeReactor(),
                           client_factory=lambda: None, backoff=backoff, rand=rand)
        return KindLoop(source, "services", threading.Event())

    def test_backoff_doubles_and_caps(self):
        """Delays double from the first value and stop at the cap (rand() = 1: no jitter)."""
        loop = self.loop(backoff=(0.5, 4.0))
        delays = []
        for n in range(1, 7):
            loop.failures = n
            delays.append(loop.delay())
        self.assertEqual(delays, [0.5, 1.0, 2.0, 4.0, 4.0, 4.0])

    def test_backoff_jitter_between_half_and_full(self):
        """Jitter scales each delay into [d/2, d]."""
        loop = self.loop(backoff=(1.0, 30.0), rand=lambda: 0.0)
        loop.failures = 3
        self.assertEqual(loop.delay(), 2.0)

    def test_selectors_and_filter(self):
        """The label selector is passed to the server; the namespace filter is applied to raw objects."""
        loop = self.loop()
        self.assertEqual(loop.selectors, {"labelSelector": "a=b"})
        self.assertTrue(loop.wanted({"metadata": {"namespace": "x"}}))
        self.assertFalse(loop.wanted({"metadata": {"namespace": "y"}}))

    def test_error_event_410_is_gone(self):
        """An ERROR event carrying a 410 Status raises Gone; other codes raise WatchError."""
        loop = self.loop()
        gone = b'{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}}'
        self.assertRaises(watch.Gone, loop._events, [gone], lambda k, r: None)
        other = b'{"type":"ERROR","object":{"kind":"Status","code":500,"message":"boom"}}'
        self.assertRaises(watch.WatchError, loop._events, [other], lambda k, r: None)

    def test_unknown_kind_rejected(self):
        """Only the four supported kinds can be watched."""
        self.assertRaises(ValueError, ApiSource, None, ["deployments"], None, None, client_factory=object)

    def test_helpers(self):
        """Trigger times parse as RFC 3339 (UTC); service kinds follow CoreDNS's labels."""
        self.assertEqual(parse_time("1970-01-01T00:01:40Z"), 100.0)
        self.assertEqual(parse_time("1970-01-01T00:01:40.250Z"), 100.25)
        self.assertIsNone(parse_time("yesterday"))
        self.assertEqual(service_kind({"spec": {"clusterIP": "10.0.0.1"}}), "cluster_ip")
        self.assertEqual(service_kind({"spec": {"clusterIP": "None", "selector": {"a": "b"}}}),
                         "headless_with_selector")
        self.assertEqual(service_kind({"spec": {"clusterIP": "None"}}), "headless_without_selector")
