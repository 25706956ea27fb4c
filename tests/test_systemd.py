"""
sd_notify: datagrams on a real AF_UNIX socket standing in for systemd's
NOTIFY_SOCKET (path and abstract forms), readiness gating with a Clock, the
watchdog, and a real C{kdns} process telling "systemd" it is ready.
"""

import os
import shutil
import signal
import socket
import sys
import tempfile
import time

from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater
from twisted.trial import unittest

from tests.helpers import free_port, query, rrset_values, spawn, start_server, write_corefile
from twisted_kdns import systemd


class FakeSystemd(object):
    """A bound AF_UNIX datagram socket and the NOTIFY_SOCKET value naming it."""

    def __init__(self, testcase, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        testcase.addCleanup(self.sock.close)
        if abstract:
            name = "kdns-test-%d-%d" % (os.getpid(), id(self))
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            directory = tempfile.mkdtemp(prefix="kdns-notify-")
            testcase.addCleanup(shutil.rmtree, directory, True)
            path = os.path.join(directory, "notify")
            self.sock.bind(path)
            self.env_value = path
        self.sock.setblocking(False)
        self.environ = {"NOTIFY_SOCKET": self.env_value}

    def messages(self):
        """Every datagram received so far, decoded."""
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode("utf-8"))
            except BlockingIOError:
                return out

    def wait_for(self, text, timeout):
        """Blocking: the datagrams received until one contains C{text} (or timeout)."""
        self.sock.settimeout(0.2)
        got = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    got.append(self.sock.recv(4096).decode("utf-8"))
                except socket.timeout:
                    continue
                if text in got[-1]:
                    break
        finally:
            self.sock.setblocking(False)
        return got


class Flag(object):
    def __init__(self, value=False):
        self.value = value

    def ready(self):
        return self.value


class NotifyTests(unittest.SynchronousTestCase):
    def test_pathSocket(self):
        """A filesystem NOTIFY_SOCKET gets the state string as one datagram."""
        fake = FakeSystemd(self)
        self.assertTrue(systemd.notify("READY=1\nSTATUS=x", fake.environ))
        self.assertEqual(fake.messages(), ["READY=1\nSTATUS=x"])

    def test_abstractSocket(self):
        """A NOTIFY_SOCKET starting with '@' names the abstract namespace."""
        fake = FakeSystemd(self, abstract=True)
        self.assertTrue(systemd.notify("STOPPING=1", fake.environ))
        self.assertEqual(fake.messages(), ["STOPPING=1"])

    def test_noSocketIsNoop(self):
        """Without NOTIFY_SOCKET (or with a non-unix form) nothing is sent."""
        self.assertFalse(systemd.notify("READY=1", {}))
        self.assertFalse(systemd.notify("READY=1", {"NOTIFY_SOCKET": "vsock:2:1234"}))

    def test_deadSocketDoesNotRaise(self):
        """A NOTIFY_SOCKET nobody listens on logs a warning and returns False."""
        directory = tempfile.mkdtemp(prefix="kdns-notify-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.assertFalse(systemd.notify("READY=1", {"NOTIFY_SOCKET": os.path.join(directory, "gone")}))
        self.flushLoggedErrors()

    def test_watchdogInterval(self):
        """WatchdogSec arrives as WATCHDOG_USEC; we ping at half of it, only for our pid."""
        self.assertEqual(systemd.watchdog_interval({"WATCHDOG_USEC": "30000000"}, pid=7), 15.0)
        self.assertEqual(systemd.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, pid=7), 15.0)
        self.assertIsNone(systemd.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, pid=7))
        self.assertIsNone(systemd.watchdog_interval({}, pid=7))
        self.assertIsNone(systemd.watchdog_interval({"WATCHDOG_USEC": "junk"}, pid=7))


class NotifierTests(unittest.SynchronousTestCase):
    def make(self, providers, environ_extra=None, timeout=5.0):
        fake = FakeSystemd(self)
        environ = dict(fake.environ, **(environ_extra or {}))
        clock = Clock()
        notifier = systemd.SystemdNotifier(clock, lambda: providers, startup_timeout=timeout, environ=environ)
        self.addCleanup(notifier.stop)
        return fake, clock, notifier

    def test_readyAtOnceWithoutProviders(self):
        """With no readiness providers READY=1 goes out as soon as start() is called."""
        fake, clock, notifier = self.make([])
        notifier.start()
        msgs = fake.messages()
        self.assertEqual(len(msgs), 1)
        self.assertTrue(msgs[0].startswith("READY=1\nSTATUS=serving"))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_waitsForProviders(self):
        """READY=1 is held back until every provider is ready, polled on the reactor."""
        flag = Flag(False)
        fake, clock, notifier = self.make([("kubernetes", flag), ("hosts", Flag(True))])
        notifier.start()
        clock.advance(1.0)
        self.assertEqual(fake.messages(), [])
        flag.value = True
        clock.advance(systemd.POLL_INTERVAL)
        msgs = fake.messages()
        self.assertEqual(len(msgs), 1)
        self.assertIn("READY=1", msgs[0])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_startupTimeout(self):
        """A provider that never gets ready does not block READY=1 past startup_timeout."""
        fake, clock, notifier = self.make([("kubernetes", Flag(False))], timeout=2.0)
        notifier.start()
        clock.advance(1.9)
        self.assertEqual(fake.messages(), [])
        clock.advance(0.2)
        msgs = fake.messages()
        self.assertEqual(len(msgs), 1)
        self.assertIn("READY=1", msgs[0])
        self.assertIn("not ready: kubernetes", msgs[0])
        self.flushLoggedErrors()

    def test_providerStartupTimeout(self):
        """A provider configured with a longer startup_timeout (kubernetes) extends the wait for READY=1."""
        class Config(object):
            startup_timeout = 8.0
        slow = Flag(False)
        slow.config = Config()
        fake, clock, notifier = self.make([("kubernetes", slow)], timeout=2.0)
        notifier.start()
        clock.advance(7.9)
        self.assertEqual(fake.messages(), [])
        clock.advance(0.2)
        msgs = fake.messages()
        self.assertEqual(len(msgs), 1)
        self.assertIn("not ready: kubernetes", msgs[0])
        self.flushLoggedErrors()

    def test_watchdog(self):
        """With WATCHDOG_USEC the reactor pings WATCHDOG=1 every half period until stop()."""
        fake, clock, notifier = self.make([], {"WATCHDOG_USEC": "2000000"})
        notifier.start()
        self.assertEqual(fake.messages(), ["WATCHDOG=1", "READY=1\nSTATUS=serving"])
        clock.advance(1.0)
        clock.advance(1.0)
        self.assertEqual(fake.messages(), ["WATCHDOG=1", "WATCHDOG=1"])
        notifier.stop()
        self.assertEqual(fake.messages(), ["STOPPING=1"])
        clock.advance(5.0)
        self.assertEqual(fake.messages(), [])

    def test_reloadAndStop(self):
        """A reload is framed by RELOADING=1 and READY=1; stop() sends STOPPING=1 and cancels polling."""
        fake, clock, notifier = self.make([])
        notifier.start()
        fake.messages()
        notifier.reloading()
        notifier.reloaded()
        notifier.stop()
        self.assertEqual(fake.messages(), ["RELOADING=1", "READY=1\nSTATUS=serving (reloaded)", "STOPPING=1"])

    def test_inactiveWithoutSocket(self):
        """Without NOTIFY_SOCKET start() schedules nothing at all."""
        clock = Clock()
        notifier = systemd.SystemdNotifier(clock, lambda: [("k", Flag(False))], environ={})
        notifier.start()
        self.assertEqual(clock.getDelayedCalls(), [])
        notifier.stop()


class ServiceNotifyTests(unittest.TestCase):
    def test_serviceSendsReadyAfterBindAndStopping(self):
        """KdnsService sends READY=1 only after its sockets answer, and STOPPING=1 when stopped."""
        fake = FakeSystemd(self, abstract=True)
        old = os.environ.get("NOTIFY_SOCKET")
        os.environ["NOTIFY_SOCKET"] = fake.env_value
        self.addCleanup(lambda: os.environ.pop("NOTIFY_SOCKET") if old is None
                        else os.environ.__setitem__("NOTIFY_SOCKET", old))
        service, port = start_server(self, ".:0 {\n bind 127.0.0.1\n hosts {\n  10.9.8.7 sd.example.org\n }\n}\n")
        msgs = fake.messages()
        self.assertEqual(len(msgs), 1)
        self.assertTrue(msgs[0].startswith("READY=1"))

        def answered(reply):
            self.assertEqual(rrset_values(reply), ["10.9.8.7"])
            d = service.stopService()
            d.addCallback(lambda _: self.assertEqual(fake.messages(), ["STOPPING=1"]))
            return d
        return query(port, "sd.example.org.", "A").addCallback(answered)


class KubernetesReadyTests(unittest.TestCase):
    timeout = 30

    def test_readyWaitsForTheKubernetesSync(self):
        """With the kubernetes plugin, READY=1 comes only once its first LIST is done, then names answer."""
        from tests.plugins.kubernetes.test_watch_harness import WatchHarness, wait_for
        harness = WatchHarness()
        harness.addCleanup = self.addCleanup
        api = harness.start_api()
        harness.populate(services=3)
        api.stall()
        self.addCleanup(api.release)
        fake = FakeSystemd(self)
        old = os.environ.get("NOTIFY_SOCKET")
        os.environ["NOTIFY_SOCKET"] = fake.env_value
        self.addCleanup(lambda: os.environ.pop("NOTIFY_SOCKET") if old is None
                        else os.environ.__setitem__("NOTIFY_SOCKET", old))
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n kubernetes cluster.local {\n"
                                     "  endpoint %s\n  startup_timeout 20s\n }\n}\n" % (api.url,))
        received = []

        def collect():
            received.extend(fake.messages())
            return any("READY=1" in m for m in received)

        d = deferLater(reactor, 0.5, lambda: None)
        d.addCallback(lambda _: self.assertFalse(collect(), "READY=1 before the API answered"))
        d.addCallback(lambda _: api.release())
        d.addCallback(lambda _: wait_for(collect, timeout=10, what="READY=1 after the sync"))
        d.addCallback(lambda _: self.assertEqual([m for m in received if "READY" in m], ["READY=1\nSTATUS=serving"]))
        d.addCallback(lambda _: query(port, "svc-1.other.svc.cluster.local.", "A"))
        d.addCallback(lambda reply: self.assertEqual(rrset_values(reply), ["10.0.0.2"]))
        return d


class ProcessNotifyTests(unittest.TestCase):
    timeout = 30

    def test_kdnsProcessReadyAndStopping(self):
        """The kdns command (the unit's ExecStart) sends READY=1 when it answers, STOPPING=1 on SIGTERM."""
        fake = FakeSystemd(self)
        port = free_port()
        path = write_corefile(self, ".:%d {\n bind 127.0.0.1\n hosts {\n  10.4.4.4 proc.example.org\n }\n}\n" % port)
        env = dict(os.environ, NOTIFY_SOCKET=fake.env_value, PYTHONDONTWRITEBYTECODE="1")
        proc = spawn(self, [sys.executable, "-m", "twisted_kdns", "--corefile", path], env=env)

        got = fake.wait_for("READY=1", 15)
        if not (got and "READY=1" in got[-1]):
            if proc.poll() is None:
                proc.kill()
            self.fail("no READY=1; got %r, exit %r, output:\n%s" % (got, proc.wait(), proc.stdout.read().decode()))

        def answered(reply):
            self.assertEqual(rrset_values(reply), ["10.4.4.4"])
            proc.send_signal(signal.SIGTERM)
            return deferLater(reactor, 0, lambda: None)

        def stopped(_):
            got = fake.wait_for("STOPPING=1", 10)
            self.assertIn("STOPPING=1", got)
            # Newer Twisted re-raises the signal on exit (as systemd expects of a
            # clean SIGTERM stop); Twisted 22.4 exits 0.
            self.assertIn(proc.wait(10), (0, -signal.SIGTERM))
        d = query(port, "proc.example.org.", "A")
        d.addCallback(answered)
        d.addCallback(stopped)
        return d
