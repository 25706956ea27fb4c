"""
cache in front of forward, over real sockets: a second kdns with hosts is
the upstream.  Shows hits surviving an upstream outage, serve_stale while
the upstream is down, and prefetch refreshing a popular name before expiry.
"""

import os
import shutil
import tempfile

from prometheus_client import REGISTRY
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.helpers import query, start_server


def ips(reply):
    return sorted(rd.to_text() for rrset in reply.answer for rd in rrset if rrset.rdtype in (1, 28))


def ttls(reply):
    return [rrset.ttl for rrset in reply.answer]


class CacheForwardTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kdns-cache-fwd-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.hosts = os.path.join(self.dir, "hosts")

    def write(self, text):
        with open(self.hosts, "w") as f:
            f.write(text)
        st = os.stat(self.hosts)
        os.utime(self.hosts, ns=(st.st_atime_ns, st.st_mtime_ns + 1000000))

    def upstream(self, ttl):
        self.write("10.2.0.1 www.example.org\n")
        service, port = start_server(self, ".:0 {\n bind 127.0.0.1\n hosts %s {\n  ttl %d\n  reload 0\n }\n}\n"
                                     % (self.hosts, ttl))
        return service, service.generation.blocks[0].plugins["hosts"], port

    def front(self, cache, upstream_port):
        service, port = start_server(self, ".:0 {\n bind 127.0.0.1\n %s\n forward . 127.0.0.1:%d\n}\n"
                                     % (cache, upstream_port))
        return service, port

    @defer.inlineCallbacks
    def test_hitsSurviveUpstreamOutage(self):
        """Once cached, the answer is served with AA and a counted-down TTL even after the upstream stops."""
        up, _, up_port = self.upstream(3600)
        _, port = self.front("cache 300", up_port)
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual((ips(reply), ttls(reply)), (["10.2.0.1"], [300]))
        yield up.stopService()
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(ips(reply), ["10.2.0.1"])
        self.assertTrue(reply.flags & 0x0400)
        self.assertLessEqual(ttls(reply)[0], 300)

    @defer.inlineCallbacks
    def test_serveStaleWhileUpstreamDown(self):
        """C{serve_stale}: after expiry, with the upstream stopped, the stale answer is served at once with TTL 0."""
        up, _, up_port = self.upstream(1)
        service, port = self.front("cache {\n  success 1024 1 0\n  serve_stale 1h\n }", up_port)
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(ttls(reply), [1])
        yield up.stopService()
        yield task.deferLater(reactor, 2.05, lambda: None)  # TTL 1 - 2 s < 0: stale
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual((reply.rcode(), ips(reply), ttls(reply)), (0, ["10.2.0.1"], [0]))
        label = {"server": "dns://127.0.0.1:0", "zones": ".", "view": ""}
        self.assertGreaterEqual(REGISTRY.get_sample_value("coredns_cache_served_stale_total", label), 1.0)
        cache = service.generation.blocks[0].plugins["cache"]
        entry = list(cache.success.items.values())[0]
        for _ in range(100):  # let the background refresh fail before the servers stop
            if not entry.busy:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)

    @defer.inlineCallbacks
    def test_prefetchRefreshesPopularName(self):
        """A popular name is refreshed in the background before it expires: the next client sees the new data at once."""
        up, hosts, up_port = self.upstream(2)
        service, port = self.front("cache {\n  success 1024 2 0\n  prefetch 2 10s 50%\n }", up_port)
        cache = service.generation.blocks[0].plugins["cache"]
        yield query(port, "www.example.org", "A")
        yield query(port, "www.example.org", "A")  # popular now, TTL 2 > 1: no prefetch yet
        self.write("10.2.0.99 www.example.org\n")
        hosts.reload()
        yield task.deferLater(reactor, 1.05, lambda: None)
        reply = yield query(port, "www.example.org", "A")  # TTL 1 <= 50% of 2: prefetch starts
        self.assertEqual(ips(reply), ["10.2.0.1"])
        for _ in range(40):
            entry = list(cache.success.items.values())[0]
            if not entry.busy:
                break
            yield task.deferLater(reactor, 0.025, lambda: None)
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual((ips(reply), ttls(reply)), (["10.2.0.99"], [2]))
