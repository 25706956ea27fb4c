"""cache over real sockets, in front of hosts: hits, AA, TTL countdown, DO keying, serve_stale."""

import os
import shutil
import tempfile

from prometheus_client import REGISTRY
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.helpers import query, start_server


def ips(reply):
    return sorted(rd.to_text() for rrset in reply.answer for rd in rrset)


def ttls(reply):
    return [rrset.ttl for rrset in reply.answer]


class CacheSocketTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kdns-cache-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.hosts = os.path.join(self.dir, "hosts")
        self.write("10.1.0.1 www.example.org\n10.1.0.2 www.example.org\n")

    def write(self, text):
        with open(self.hosts, "w") as f:
            f.write(text)
        st = os.stat(self.hosts)
        os.utime(self.hosts, ns=(st.st_atime_ns, st.st_mtime_ns + 1000000))

    def start(self, cache, ttl=3600):
        service, port = start_server(self, ".:0 {\n bind 127.0.0.1\n %s\n hosts %s {\n  ttl %d\n  reload 0\n }\n}\n"
                                     % (cache, self.hosts, ttl))
        block = service.generation.blocks[0]
        return block.plugins["cache"], block.plugins["hosts"], port

    @defer.inlineCallbacks
    def test_cachedAnswerOutlivesUpstreamChange(self):
        """C{cache 30}: a changed hosts file is not seen until the entry expires; TTLs are capped at 30 and AA is set."""
        cache, hosts, port = self.start("cache 30")
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual((ips(reply), ttls(reply)), (["10.1.0.1", "10.1.0.2"], [30]))
        self.write("10.1.0.9 www.example.org\n")
        hosts.reload()
        reply = yield query(port, "www.example.org", "A", tcp=True)
        self.assertEqual(ips(reply), ["10.1.0.1", "10.1.0.2"])
        self.assertTrue(reply.flags & 0x0400)
        self.assertLessEqual(ttls(reply)[0], 30)
        self.assertEqual(len(cache.success), 1)

    @defer.inlineCallbacks
    def test_doBitIsPartOfKey(self):
        """A query with DO set does not get the entry stored for a query without it."""
        cache, hosts, port = self.start("cache 30")
        yield query(port, "www.example.org", "A")
        self.write("10.1.0.9 www.example.org\n")
        hosts.reload()
        reply = yield query(port, "www.example.org", "A", want_dnssec=True)
        self.assertEqual(ips(reply), ["10.1.0.9"])
        self.assertEqual(len(cache.success), 2)

    @defer.inlineCallbacks
    def test_serveStaleWhileUpstreamDown(self):
        """With C{serve_stale}, an expired entry still answers (TTL 0) while the upstream fails."""
        labels = {"server": "dns://127.0.0.1:0", "zones": ".", "view": ""}
        before = REGISTRY.get_sample_value("coredns_cache_served_stale_total", labels) or 0.0
        cache, hosts, port = self.start("cache {\n  success 1024 1 0\n  serve_stale 1h\n }", ttl=1)
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(ttls(reply), [1])
        self.write("10.1.0.3 other.example.org\n")  # the name is gone: hosts answers SERVFAIL
        hosts.reload()
        yield task.deferLater(reactor, 2.05, lambda: None)  # TTL 1 - 2 s < 0: stale
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual((reply.rcode(), ips(reply), ttls(reply)), (0, ["10.1.0.1", "10.1.0.2"], [0]))
        self.assertEqual(REGISTRY.get_sample_value("coredns_cache_served_stale_total", labels) - before, 1.0)
