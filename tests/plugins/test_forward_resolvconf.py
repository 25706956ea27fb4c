"""
resolv.conf upstreams: a nameserver that is this server is reported at
startup with the fix and left out; the watch re-reads changed files.
"""

import os

from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial import unittest

from tests.helpers import write_corefile
from twisted_kdns.config import build, load
from twisted_kdns.plugins.forward.options import UpstreamSpec
from twisted_kdns.plugins.forward.resolvconf import ForwardService, points_at_us


def built(testcase, corefile, resolv):
    directory = os.path.dirname(write_corefile(testcase, resolv, name="resolv.conf"))
    path = write_corefile(testcase, corefile, directory=directory)
    clock = Clock()
    generation = build(load(path=path), clock)
    service = [s for s in generation.options.services if isinstance(s, ForwardService)][0]
    return clock, service, os.path.join(directory, "resolv.conf")


def logs(testcase):
    events = []
    globalLogPublisher.addObserver(events.append)
    testcase.addCleanup(globalLogPublisher.removeObserver, events.append)
    return events


class SelfPointing(unittest.SynchronousTestCase):

    def test_pointsAtUs(self):
        """Loopback on our port with a wildcard listener, or our exact address, is us; other ports are not."""
        spec = UpstreamSpec("127.0.0.53", 53)
        self.assertTrue(points_at_us(spec, {("", 53)}))
        self.assertFalse(points_at_us(spec, {("", 1053)}))
        self.assertFalse(points_at_us(spec, {("127.0.0.1", 53)}))
        self.assertTrue(points_at_us(UpstreamSpec("10.0.0.5", 53), {("10.0.0.5", 53)}))
        self.assertFalse(points_at_us(UpstreamSpec("10.0.0.5", 53), {("", 53)}))
        self.assertTrue(points_at_us(UpstreamSpec("::1", 53), {("", 53)}))

    def test_systemdStubReportedAndSkipped(self):
        """127.0.0.53 in resolv.conf while we listen on :53 is named with the fix and left out."""
        events = logs(self)
        clock, service, resolv = built(self, ".:53 {\n forward . resolv.conf\n}\n",
                                       "nameserver 127.0.0.53\nnameserver 10.0.0.1\n")
        service.startService()
        self.addCleanup(service.stopService)
        fwd = service.forwards[0]
        self.assertEqual([u.label for u in fwd.upstreams], ["10.0.0.1:53"])
        errors = [formatEvent(e) for e in events if e.get("log_level") == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertIn("nameserver 127.0.0.53 in %s points back at this server" % resolv, errors[0])
        self.assertIn("Corefile:2", errors[0])
        self.assertIn("/run/systemd/resolve/resolv.conf", errors[0])

    def test_boundElsewhereIsNotUs(self):
        """With bind 127.0.0.1 the stub at 127.0.0.53 is another server and stays."""
        clock, service, _ = built(self, ".:53 {\n bind 127.0.0.1\n forward . resolv.conf\n}\n",
                                  "nameserver 127.0.0.53\n")
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual([u.label for u in service.forwards[0].upstreams], ["127.0.0.53:53"])

    def test_onlySelfLeftIsAnError(self):
        """A file naming only ourselves leaves no upstream: logged as an error, queries SERVFAIL."""
        events = logs(self)
        clock, service, _ = built(self, ".:53 {\n forward . resolv.conf\n}\n", "nameserver 127.0.0.1\n")
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(service.forwards[0].upstreams, [])
        errors = [formatEvent(e) for e in events if e.get("log_level") == LogLevel.error]
        self.assertTrue(any("no usable upstream left" in e for e in errors))


class Watch(unittest.SynchronousTestCase):

    def test_rereadOnChange(self):
        """The file is polled every 2 s: a change replaces the upstreams, unchanged ones keep their state."""
        clock, service, resolv = built(self, ".:1053 {\n forward . resolv.conf 10.9.9.9\n}\n",
                                       "nameserver 10.0.0.1\nnameserver 10.0.0.2\n")
        service.startService()
        self.addCleanup(service.stopService)
        fwd = service.forwards[0]
        kept = fwd.upstreams[1]
        self.assertEqual([u.label for u in fwd.upstreams], ["10.9.9.9:53", "10.0.0.1:53", "10.0.0.2:53"])
        with open(resolv, "w") as f:
            f.write("nameserver 10.0.0.1\nnameserver 10.0.0.3\n")
        clock.advance(2)
        self.assertEqual([u.label for u in fwd.upstreams], ["10.9.9.9:53", "10.0.0.1:53", "10.0.0.3:53"])
        self.assertIs(fwd.upstreams[1], kept)
        os.unlink(resolv)
        clock.advance(2)
        self.assertEqual(len(fwd.upstreams), 3)  # a vanished file keeps the last upstreams
