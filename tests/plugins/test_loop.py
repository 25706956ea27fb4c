"""
loop: a Corefile that forwards to itself stops the process with a message
naming the upstream and the fix; a non-looping one starts and stays up.
"""

import random

from twisted.internet import defer, reactor, task
from twisted.logger import globalLogPublisher
from twisted.names import dns
from twisted.trial import unittest

from tests.helpers import query, rrset_values, start_server, write_corefile
from tests.helpers import free_port
from tests.upstreams import start_dnsmasq
from twisted_kdns.config import load
from twisted_kdns.errors import ConfigErrors
from twisted_kdns.plugins import loop as loop_plugin


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class Exits(object):
    """Stands in for os._exit: records the codes instead of dying."""

    def __init__(self):
        self.codes = []

    def __call__(self, code):
        self.codes.append(code)


def capture_logs(testcase):
    events = []
    globalLogPublisher.addObserver(events.append)
    testcase.addCleanup(globalLogPublisher.removeObserver, events.append)
    return events


def critical_texts(events):
    from twisted.logger import LogLevel, formatEvent
    return [formatEvent(e) for e in events if e.get("log_level") == LogLevel.critical]


class LoopDetection(unittest.TestCase):
    timeout = 20

    @defer.inlineCallbacks
    def test_forwardToSelfStops(self):
        """forward to our own listener: the probe comes back, critical log naming it, exit(1)."""
        exits = Exits()
        self.patch(loop_plugin, "exit_process", exits)
        events = capture_logs(self)
        port = free_port()
        service, _ = start_server(self, ".:%d {\n bind 127.0.0.1\n loop\n forward . 127.0.0.1:%d {\n"
                                        "  read_timeout 300ms\n }\n}\n" % (port, port))
        for _ in range(100):
            if exits.codes:
                break
            yield sleep(0.02)
        self.assertEqual(exits.codes, [1])
        # In production the process is gone now; here stop the server before the
        # looping queries (health probes included) turn into a storm.
        yield service.stopService()
        texts = critical_texts(events)
        self.assertEqual(len(texts), 1)
        self.assertIn('Loop (127.0.0.1:', texts[0])
        self.assertIn('detected for zone "."', texts[0])
        self.assertIn("forward sends it to 127.0.0.1:%d" % port, texts[0])
        self.assertIn("Query: \"HINFO ", texts[0])
        self.assertIn("/run/systemd/resolve/resolv.conf", texts[0])
        self.assertEqual(exits.codes, [1])

    @defer.inlineCallbacks
    def test_selfInResolvConfLeftOut(self):
        """A resolv.conf naming our own listener: forward leaves it out at startup, so no loop, no exit."""
        exits = Exits()
        self.patch(loop_plugin, "exit_process", exits)
        events = capture_logs(self)
        up = yield start_dnsmasq(self, [("192.0.2.10", "www.a.test")])
        port = free_port()
        path = write_corefile(self, "nameserver [127.0.0.1]:%d\nnameserver [127.0.0.1]:%d\n" % (port, up.port),
                              name="resolv.conf")
        service, _ = start_server(self, ".:%d {\n bind 127.0.0.1\n loop\n forward . %s\n}\n" % (port, path))
        loop = service.generation.blocks[0].plugins["loop"]
        for _ in range(100):
            if loop.disabled:
                break
            yield sleep(0.02)
        self.assertTrue(loop.disabled)
        self.assertEqual(exits.codes, [])
        from twisted.logger import LogLevel, formatEvent
        errors = [formatEvent(e) for e in events if e.get("log_level") == LogLevel.error]
        self.assertTrue(any("nameserver 127.0.0.1 in %s points back at this server" % path in e for e in errors))
        reply = yield query(port, "www.a.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.10"])

    @defer.inlineCallbacks
    def test_nonLoopingStarts(self):
        """forward to a real upstream: the probe gets an answer once, loop steps aside, no exit."""
        exits = Exits()
        self.patch(loop_plugin, "exit_process", exits)
        up = yield start_dnsmasq(self, [("192.0.2.10", "www.a.test")])
        service, port = start_server(self, ".:0 {\n bind 127.0.0.1\n loop\n forward . %s\n}\n" % up.address)
        loop = service.generation.blocks[0].plugins["loop"]
        for _ in range(100):
            if loop.disabled:
                break
            yield sleep(0.02)
        self.assertTrue(loop.disabled)
        self.assertEqual(loop.seen, 0)  # the probe went to dnsmasq and never came back
        reply = yield query(port, "www.a.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.10"])
        self.assertEqual(exits.codes, [])


class LoopUnit(unittest.SynchronousTestCase):

    def test_probeName(self):
        """The probe is <n>.<n>.<zone> with two random 62-bit numbers."""
        name = loop_plugin.probe_name(b"cluster.local", random.Random(7))
        a, b, rest = name.split(b".", 2)
        self.assertEqual(rest, b"cluster.local")
        self.assertTrue(0 <= int(a) < 2 ** 62 and 0 <= int(b) < 2 ** 62)
        self.assertEqual(loop_plugin.probe_name(b"", random.Random(7)).count(b"."), 1)

    def test_countsOnlyTheProbe(self):
        """Only HINFO queries for the probe name count; the third sighting exits, later ones are dropped."""
        from twisted.internet.task import Clock
        from twisted_kdns.errors import Drop
        from twisted_kdns.query import KdnsQuery

        class Answer(object):
            def query(self, kq, timeout=None):
                return defer.succeed(((), (), ()))

        exits = Exits()
        self.patch(loop_plugin, "exit_process", exits)
        loop = loop_plugin.Loop(Answer(), b"", Clock(), rng=random.Random(1))
        other = KdnsQuery(loop.probe, dns.A)
        for _ in range(5):
            self.successResultOf(loop.query(other))
        probe = KdnsQuery(loop.probe, dns.HINFO, client=("127.0.0.1", 5353))
        self.successResultOf(loop.query(probe))
        self.successResultOf(loop.query(probe))
        self.assertEqual(exits.codes, [])
        self.failureResultOf(loop.query(probe), Drop)
        self.assertEqual(exits.codes, [1])
        self.failureResultOf(loop.query(probe), Drop)
        self.assertEqual(exits.codes, [1])

    def test_probeAnswerDisables(self):
        """Once the startup probe gets any answer, probe-named queries pass untouched."""
        from twisted.internet.task import Clock
        from twisted_kdns.errors import NXDomain
        from twisted_kdns.query import KdnsQuery

        class NX(object):
            def query(self, kq, timeout=None):
                return defer.fail(NXDomain())

        exits = Exits()
        self.patch(loop_plugin, "exit_process", exits)
        clock = Clock()
        loop = loop_plugin.Loop(NX(), b"example.org", clock, rng=random.Random(2))
        loop.start()
        clock.advance(0)
        self.assertTrue(loop.disabled)
        probe = KdnsQuery(loop.probe, dns.HINFO)
        for _ in range(4):
            self.failureResultOf(loop.query(probe), NXDomain)
        self.assertEqual(exits.codes, [])

    def test_failedProbeRetries(self):
        """A probe exchange that fails without an answer resets the count and retries every second."""
        from twisted.internet.task import Clock
        from twisted_kdns.errors import Drop

        class Silent(object):
            calls = 0

            def query(self, kq, timeout=None):
                self.calls += 1
                return defer.fail(Drop())

        silent = Silent()
        clock = Clock()
        loop = loop_plugin.Loop(silent, b"", clock, rng=random.Random(3))
        loop.start()
        clock.advance(0)
        clock.advance(1)
        clock.advance(1)
        self.assertEqual(silent.calls, 3)
        self.assertFalse(loop.disabled)
        clock.advance(30)
        clock.pump([1] * 3)
        self.assertTrue(loop.disabled)
        loop.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_parse(self):
        """loop takes no arguments and may appear once per block."""
        path = write_corefile(self, ".:53 {\n loop extra\n forward . 127.0.0.1\n}\n")
        err = self.assertRaises(ConfigErrors, load, path=path)
        self.assertIn("plugin/loop: %s:2 - Error during parsing" % path, str(err))
        path = write_corefile(self, ".:53 {\n loop\n loop\n forward . 127.0.0.1\n}\n")
        err = self.assertRaises(ConfigErrors, load, path=path)
        self.assertIn("only be used once", str(err))
