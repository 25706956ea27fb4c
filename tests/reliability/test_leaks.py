"""
Nothing outlives its query: after thousands of queries of every outcome
(kubernetes answers and NXDOMAIN, hosts, cache hits, whoami, REFUSED,
FORMERR) no query object, request message or Failure is still alive.

Regression: the kubernetes resolver re-raised one shared exception
instance for every missing name; each raise chained its traceback onto the
instance, keeping every NXDOMAIN query's frames alive (about 20 kB a query,
1 GB in a minute at 2,500 q/s - found by bench/soak.py).
"""

import gc

from twisted.internet import defer, reactor, task
from twisted.names import dns
from twisted.trial import unittest

from tests.helpers import start_server
from tests.plugins.kubernetes.support import write_manifests
from tests.reliability.wiregen import header, question
from twisted_kdns.query import KdnsQuery

COREFILE = """\
.:0 {
    bind 127.0.0.1
    cache 30
    hosts {
        10.0.0.1 www.example.org
        fallthrough
    }
    kubernetes cluster.local {
        manifests %s
    }
    whoami
}
other.test:0 {
    bind 127.0.0.1
}
"""


def live(cls):
    return sum(1 for o in gc.get_objects() if isinstance(o, cls))


class LeakTests(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_no_query_outlives_its_reply(self):
        """3,000 queries (kubernetes hits and NXDOMAIN, hosts, cache, whoami, REFUSED, FORMERR): afterwards no KdnsQuery, request Message or traceback of theirs is alive."""
        folder = write_manifests(self)
        service, port = start_server(self, COREFILE % (folder,))
        dispatcher = service.listeners[list(service.listeners)[0]].dispatcher
        probe = header(1, 0x0100) + question(b"svc1.ns1.svc.cluster.local")
        for _ in range(500):  # the manifests are read in a thread: wait for the store
            if isinstance(dispatcher.handle(probe, ("127.0.0.1", 1), "udp"), bytes):
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        names = [b"svc1.ns1.svc.cluster.local", b"missing%d.ns1.svc.cluster.local",
                 b"nope%d.nsx.svc.cluster.local", b"www.example.org", b"host%d.example.org",
                 b"x%d.other.test", b"www.example.org"]
        gc.collect()
        queries, messages = live(KdnsQuery), live(dns.Message)
        replies = []
        for i in range(3000):
            name = names[i % len(names)]
            packet = header(i, 0x0100) + question(name % (i,) if b"%d" in name else name)
            if i % 50 == 0:
                packet = packet[:-3]  # truncated: FORMERR
            replies.append(dispatcher.handle(packet, ("127.0.0.1", 1), "udp"))
        self.assertEqual([r for r in replies if not isinstance(r, bytes)], [])
        self.assertEqual({r[3] & 0xF for r in replies}, {0, 1, 3, 5})
        del replies
        gc.collect()
        self.assertLessEqual(live(KdnsQuery), queries + 5)
        self.assertLessEqual(live(dns.Message), messages + 5)
