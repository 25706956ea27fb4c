"""
Limits that protect the server: a slowloris client holding 1,000 TCP
connections does not stop UDP or new TCP clients; forward's max_concurrent
bounds pending upstream queries; the cache stays within its capacity under
a flood of distinct names; errors' consolidate bounds the log rate of a
repeated failure; UDP replies of large RRsets stay within 512 bytes
(amplification) and acl stops open recursion before forward is asked.
"""

import socket
import threading
import time

import dns.rcode
from prometheus_client import REGISTRY
from twisted.internet import defer, reactor, task, threads
from twisted.trial import unittest

from tests.helpers import query, rrset_values, start_server
from tests.plugins.logcapture import capture
from tests.reliability.faulty import FaultyUpstream
from tests.reliability.test_upstream_faults import timed_burst
from tests.reliability.test_wire_fuzz import udp_exchange
from tests.reliability.wiregen import header, question

SLOWLORIS = 1000


class Slowloris(object):
    """A thread holding C{count} TCP connections, each with an unfinished frame."""

    def __init__(self, port, count):
        self.port = port
        self.count = count
        self.socks = []
        self.opened = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        try:
            for _ in range(self.count):
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                s.sendall(b"\x01")  # a 257-byte frame that never completes
                self.socks.append(s)
            self.opened.set()
            self.release.wait(30)
        finally:
            for s in self.socks:
                s.close()
            self.opened.set()

    def closed_by_server(self):
        """How many of our connections the server has closed (EOF or reset)."""
        closed = 0
        for s in self.socks:
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        return closed


class LimitTests(unittest.TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_slowloris_does_not_lock_out_other_clients(self):
        """1,000 held TCP connections (the cap) with unfinished frames: UDP and 20 new TCP clients are still answered, each within a second, and the server never holds more than the cap."""
        service, port = start_server(self, """\
.:0 {
    bind 127.0.0.1
    hosts {
        10.0.0.1 www.example.org
    }
}
""")
        factory = None
        for listener in service.listeners.values():
            for p in listener.ports:
                f = getattr(p, "factory", None)
                if f is not None and hasattr(f, "connections"):
                    factory = f
        self.assertIsNotNone(factory)
        loris = Slowloris(port, SLOWLORIS)
        loris.thread.start()

        @defer.inlineCallbacks
        def finish():
            loris.release.set()
            yield threads.deferToThread(loris.thread.join, 10)
            deadline = time.monotonic() + 10
            while factory.connections and time.monotonic() < deadline:
                yield task.deferLater(reactor, 0.01, lambda: None)  # the server sees every EOF
        self.addCleanup(finish)
        yield threads.deferToThread(loris.opened.wait, 30)
        self.assertEqual(len(loris.socks), SLOWLORIS)
        deadline = time.monotonic() + 10
        while len(factory.connections) < SLOWLORIS and time.monotonic() < deadline:
            yield task.deferLater(reactor, 0.01, lambda: None)  # the reactor accepts the backlog
        self.assertEqual(len(factory.connections), SLOWLORIS)
        self.assertLessEqual(len(factory.connections), factory.max_connections)
        for i in range(20):
            t0 = time.monotonic()
            reply = yield query(port, "www.example.org.", "A", tcp=True)
            self.assertEqual(rrset_values(reply), ["10.0.0.1"])
            reply = yield query(port, "www.example.org.", "A")
            self.assertEqual(rrset_values(reply), ["10.0.0.1"])
            self.assertLess(time.monotonic() - t0, 1.0)
        self.assertLessEqual(len(factory.connections), factory.max_connections)
        closed = yield threads.deferToThread(loris.closed_by_server)
        # The first new client evicted the longest-idle held connection; the
        # later ones found the slot it left when it closed.
        self.assertGreaterEqual(closed, 1)

    @defer.inlineCallbacks
    def test_max_concurrent_bounds_pending_forward_queries(self):
        """With max_concurrent 50 and a silent upstream, 300 simultaneous queries: the ones beyond 50 are REFUSED at once."""
        u = FaultyUpstream("silent").start()
        self.addCleanup(u.stop)
        _, port = start_server(self, """\
.:0 {
    bind 127.0.0.1
    forward . 127.0.0.1:%d {
        max_concurrent 50
    }
}
""" % (u.port,))
        results = yield timed_burst(port, 300, timeout=0.5)
        refused = [t for t, r in results if r is not None and r.rcode() == dns.rcode.REFUSED]
        self.assertGreaterEqual(len(refused), 250)
        self.assertLess(max(refused), 0.5)
        self.assertLessEqual(u.queries, 50 + 5)  # the upstream saw only the admitted ones (and probes)

    def test_cache_stays_within_capacity(self):
        """20,000 distinct names through 'cache { success 1024 }': the success cache holds at most its real capacity."""
        service, port = start_server(self, """\
.:0 {
    bind 127.0.0.1
    cache 30 {
        success 1024
    }
    whoami
}
""")
        dispatcher = service.listeners[list(service.listeners)[0]].dispatcher
        for i in range(20000):
            dispatcher.handle(header(i & 0xFFFF, 0x0100) + question(b"n%d.example.org" % (i,)),
                              ("127.0.0.1", 1), "udp")
        entries = REGISTRY.get_sample_value("coredns_cache_entries", {
            "server": dispatcher.label, "type": "success", "zones": ".", "view": ""})
        self.assertIsNotNone(entries)
        self.assertGreater(entries, 500)
        self.assertLessEqual(entries, 1024)

    @defer.inlineCallbacks
    def test_consolidate_bounds_repeated_error_logs(self):
        """300 SERVFAILs from a failing upstream with 'errors { consolidate 5s .* }': at most a couple of error lines, not one per query."""
        u = FaultyUpstream("servfail").start()
        self.addCleanup(u.stop)
        lines = capture(self, "kdns.plugins.errors")
        _, port = start_server(self, """\
.:0 {
    bind 127.0.0.1
    errors {
        consolidate 5s .*
    }
    forward . 127.0.0.1:%d {
        failover SERVFAIL
    }
}
""" % (u.port,))
        results = yield timed_burst(port, 300, timeout=6.0)
        self.assertEqual({r.rcode() for _, r in results if r is not None}, {dns.rcode.SERVFAIL})
        self.assertLessEqual(len(lines), 2)

    @defer.inlineCallbacks
    def test_large_rrset_udp_reply_bounded_and_acl_stops_recursion(self):
        """200 A records for one name: the UDP reply without EDNS is at most 512 bytes with TC set (TCP has them all); a blocked client is REFUSED without the upstream being asked."""
        hosts = "".join("        10.1.%d.%d big.example.org\n" % (i // 250, i % 250 + 1) for i in range(200))
        _, port = start_server(self, ".:0 {\n    bind 127.0.0.1\n    hosts {\n%s    }\n}\n" % (hosts,))
        request = header(77, 0x0100) + question(b"big.example.org")
        wire = yield threads.deferToThread(udp_exchange, port, request)
        self.assertLessEqual(len(wire), 512)
        self.assertTrue(wire[2] & 0x02, "TC set")
        reply = yield query(port, "big.example.org.", "A", tcp=True)
        self.assertEqual(len(rrset_values(reply)), 200)
        u = FaultyUpstream("good").start()
        self.addCleanup(u.stop)
        _, port = start_server(self, """\
.:0 {
    bind 127.0.0.1
    acl {
        allow net 10.0.0.0/8
        block
    }
    forward . 127.0.0.1:%d
}
""" % (u.port,))
        for name in ("example.com.", "www.example.net."):
            reply = yield query(port, name, "A")
            self.assertEqual(reply.rcode(), dns.rcode.REFUSED)
        self.assertEqual(u.queries, 0)
