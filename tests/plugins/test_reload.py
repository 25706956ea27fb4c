"""
reload: Corefile syntax, and L{twisted_kdns.reloader.Reloader} against a
real server: polling driven by a C{Clock} with an injected random, SIGHUP,
a broken Corefile, web sockets kept or moved, and no query lost while
reloading.
"""

import os
import shutil
import signal
import tempfile

import dns.message
import dns.query
from prometheus_client import REGISTRY
from twisted.internet import defer, reactor, task, threads
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from tests.helpers import query, rrset_values, start_server
from tests.plugins.test_prometheus import parse, parse_error
from tests.test_web import http_get
from twisted_kdns.reloader import Reloader, corefile_digest, file_digest
from twisted_kdns.corefile import parse_text

TEMPLATE = """\
.:0 {
    bind 127.0.0.1
    %s
    health 127.0.0.1:0
    hosts {
        %s
    }
}
"""
FIRST = TEMPLATE % ("reload 2s 1s", "10.1.2.3 a.example.org")
SECOND = TEMPLATE % ("reload 2s 1s", "10.1.2.3 a.example.org\n        10.4.5.6 b.example.org")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def failed():
    return REGISTRY.get_sample_value("coredns_reload_failed_total")


class ParseTests(unittest.SynchronousTestCase):
    def test_defaults(self):
        """Without arguments the period is 30s with 15s jitter."""
        cfg = parse(" reload", "reload")
        self.assertEqual((cfg.interval, cfg.jitter), (30.0, 15.0))

    def test_jitterCapped(self):
        """JITTER is capped to INTERVAL/2, and 0 turns jitter off."""
        cfg = parse(" reload 10s", "reload")
        self.assertEqual((cfg.interval, cfg.jitter), (10.0, 5.0))
        cfg = parse(" reload 1m 0", "reload")
        self.assertEqual((cfg.interval, cfg.jitter), (60.0, 0.0))

    def test_errors(self):
        """INTERVAL under 2s, JITTER under 1s, bare numbers, three arguments and blocks are errors."""
        self.assertIn("Corefile:2 - Error during parsing: interval value must be greater or equal to 2s",
                      parse_error(self, " reload 1s"))
        self.assertIn("jitter value must be greater or equal to 1s", parse_error(self, " reload 10s 500ms"))
        self.assertIn("invalid interval '10'", parse_error(self, " reload 10"))
        self.assertIn("Wrong argument count", parse_error(self, " reload 10s 2s 3s"))
        self.assertIn("takes no block", parse_error(self, " reload {\n }"))




class DigestTests(unittest.SynchronousTestCase):
    def test_commentsAndSpacingIgnored(self):
        """The checksum covers tokens, not comments or whitespace; a changed token changes it."""
        a = corefile_digest(parse_text(FIRST))
        b = corefile_digest(parse_text("# header\n" + FIRST.replace("    bind", "  bind")))
        c = corefile_digest(parse_text(FIRST.replace("10.1.2.3", "10.1.2.4")))
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)
        self.assertEqual(len(a), 128)

    def test_importedFilesCount(self):
        """Edits in an imported file change the checksum of the importing Corefile."""
        d = tempfile.mkdtemp(prefix="kdns-reload-")
        self.addCleanup(shutil.rmtree, d, True)
        write(os.path.join(d, "hosts.conf"), "hosts {\n 10.0.0.1 x.example.org\n}\n")
        write(os.path.join(d, "Corefile"), ".:53 {\n import hosts.conf\n}\n")
        before, _ = file_digest(os.path.join(d, "Corefile"))
        write(os.path.join(d, "hosts.conf"), "hosts {\n 10.0.0.2 x.example.org\n}\n")
        after, _ = file_digest(os.path.join(d, "Corefile"))
        self.assertNotEqual(before, after)


class ReloaderTests(unittest.TestCase):
    def setUp(self):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def logged(self):
        return "\n".join(formatEvent(e) or "" for e in self.events)

    def start(self, text, random=lambda: 0.5):
        """A server plus a L{Reloader} polling on a C{Clock} (the built-in one is stopped)."""
        svc, port = start_server(self, text)
        svc.reloader.stop()
        self.clock = Clock()
        reloader = Reloader(svc, svc.corefile_path, reactor, clock=self.clock, random=random)
        reloader.start()
        self.addCleanup(reloader.stop)
        svc.reloader = reloader
        return svc, port, reloader

    @defer.inlineCallbacks
    def test_pollAppliesChange(self):
        """A changed Corefile is applied at the next poll: the new hosts entry answers."""
        svc, port, _ = self.start(FIRST)
        reply = yield query(port, "b.example.org.", "A")
        self.assertEqual(rrset_values(reply), [])
        write(svc.corefile_path, SECOND)
        self.clock.advance(1.9)
        reply = yield query(port, "b.example.org.", "A")
        self.assertEqual(rrset_values(reply), [])
        self.clock.advance(0.1)
        reply = yield query(port, "b.example.org.", "A")
        self.assertEqual(rrset_values(reply), ["10.4.5.6"])
        digest = corefile_digest(parse_text(SECOND))
        self.assertEqual(REGISTRY.get_sample_value("coredns_reload_version_info",
                                                   {"hash": "sha512", "value": digest}), 1.0)
        self.assertIn("Reloading complete", self.logged())

    def test_unchangedDoesNothing(self):
        """A poll that finds only comment edits keeps the running generation and polls again."""
        svc, _, _ = self.start(FIRST)
        generation = svc.generation
        write(svc.corefile_path, FIRST + "# just a comment\n")
        self.clock.advance(2.0)
        self.assertIs(svc.generation, generation)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_jitter(self):
        """The period is INTERVAL + (random - 0.5) * JITTER, drawn each time."""
        self.start(FIRST, random=lambda: 0.0)
        self.assertEqual(self.clock.getDelayedCalls()[0].getTime(), 1.5)
        self.clock.advance(1.5)
        self.assertEqual(self.clock.getDelayedCalls()[0].getTime(), 3.0)

    def test_noReloadNoPolling(self):
        """Without the reload plugin nothing is scheduled; a reload that removes it stops polling."""
        svc, _, reloader = self.start(FIRST)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        write(svc.corefile_path, TEMPLATE % ("", "10.1.2.3 a.example.org"))
        self.clock.advance(2.0)
        self.assertIsNone(svc.generation.options.reload)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_brokenCorefileKeepsOld(self):
        """A broken Corefile is logged with file:line, counted once, and the old configuration keeps answering."""
        svc, port, _ = self.start(FIRST)
        generation = svc.generation
        before = failed()
        write(svc.corefile_path, FIRST.replace("    health", "    bogus\n    health"))
        self.clock.advance(2.0)
        self.assertEqual(failed(), before + 1)
        self.assertIs(svc.generation, generation)
        self.assertIn("Corefile changed but reload failed", self.logged())
        self.assertIn("%s:4 - Error during parsing: Unknown directive 'bogus'" % (svc.corefile_path,),
                      self.logged())
        reply = yield query(port, "a.example.org.", "A")
        self.assertEqual(rrset_values(reply), ["10.1.2.3"])
        self.clock.advance(2.0)
        self.assertEqual(failed(), before + 1)  # same broken file: not retried
        write(svc.corefile_path, SECOND)
        self.clock.advance(2.0)
        reply = yield query(port, "b.example.org.", "A")
        self.assertEqual(rrset_values(reply), ["10.4.5.6"])

    def test_syntaxErrorCounted(self):
        """A file that does not even parse (unclosed brace) also fails the reload and is counted."""
        svc, _, reloader = self.start(FIRST)
        before = failed()
        write(svc.corefile_path, ".:0 {\n hosts {\n")
        self.assertFalse(reloader.reload_now())
        self.assertEqual(failed(), before + 1)
        self.assertIn("Unexpected EOF", self.logged())

    @defer.inlineCallbacks
    def test_healthAddressKeepsSocket(self):
        """A reload that keeps the health address keeps the very same listening port."""
        svc, _, reloader = self.start(FIRST)
        port = svc.web_port("health")
        sockets = [site.ports[0] for site in svc.web.sites.values()]
        write(svc.corefile_path, SECOND)
        self.assertTrue(reloader.reload_now())
        self.assertEqual(svc.web_port("health"), port)
        self.assertEqual([site.ports[0] for site in svc.web.sites.values()], sockets)
        status, _, _ = yield http_get(port, "/health")
        self.assertEqual(status, 200)

    @defer.inlineCallbacks
    def test_healthAddressMoves(self):
        """A reload that changes the health address serves on the new one and closes the old one."""
        svc, _, reloader = self.start(FIRST)
        old = svc.web_port("health")
        write(svc.corefile_path, SECOND.replace("health 127.0.0.1:0", "health localhost:0"))
        self.assertTrue(reloader.reload_now())
        new = svc.web_port("health")
        self.assertNotEqual(new, old)
        status, _, _ = yield http_get(new, "/health")
        self.assertEqual(status, 200)
        yield task.deferLater(reactor, 0.01, lambda: None)
        status, _, _ = yield http_get(old, "/health")
        self.assertIsNone(status)

    @defer.inlineCallbacks
    def test_busyHealthPortKeepsOld(self):
        """When the new health address is busy the reload fails, is counted, and the old sites stay."""
        import socket
        blocker = socket.socket()
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        svc, port, reloader = self.start(FIRST)
        old = svc.web_port("health")
        generation = svc.generation
        before = failed()
        write(svc.corefile_path, SECOND.replace("health 127.0.0.1:0",
                                                "health 127.0.0.1:%d" % blocker.getsockname()[1]))
        self.assertFalse(reloader.reload_now())
        self.assertEqual(failed(), before + 1)
        self.assertIs(svc.generation, generation)
        status, _, _ = yield http_get(old, "/health")
        self.assertEqual(status, 200)
        reply = yield query(port, "a.example.org.", "A")
        self.assertEqual(rrset_values(reply), ["10.1.2.3"])

    @defer.inlineCallbacks
    def test_sighup(self):
        """SIGHUP reloads at once, without waiting for the poll."""
        svc, port = start_server(self, TEMPLATE % ("", "10.1.2.3 a.example.org"))
        svc.reloader.install_sighup()
        write(svc.corefile_path, SECOND)
        generation = svc.generation
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(100):
            if svc.generation is not generation:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        reply = yield query(port, "b.example.org.", "A")
        self.assertEqual(rrset_values(reply), ["10.4.5.6"])

    @defer.inlineCallbacks
    def test_noQueryLostDuringReloads(self):
        """A steady stream of 300 queries while the configuration is reloaded every 10 ms: all answered."""
        svc, port, reloader = self.start(FIRST)
        texts = [FIRST, SECOND]
        reloads = []

        def flip():
            write(svc.corefile_path, texts[len(reloads) % 2])
            reloads.append(reloader.reload_now())
        loop = task.LoopingCall(flip)
        loop.start(0.01)

        def client(count=300):
            answered = 0
            for i in range(count):
                q = dns.message.make_query("a.example.org.", "A")
                try:
                    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=1.0)
                except Exception:
                    continue
                if [rd.to_text() for rrset in r.answer for rd in rrset] == ["10.1.2.3"]:
                    answered += 1
            return answered
        try:
            answered = yield threads.deferToThread(client)
        finally:
            loop.stop()
        self.assertEqual(answered, 300)
        self.assertGreater(len(reloads), 3)
        self.assertTrue(all(reloads))


class StoppingTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_noReloadWhileStopping(self):
        """A reload requested during shutdown (lameduck) does nothing: no listener is reopened."""
        text = (TEMPLATE % ("", "10.1.2.3 a.example.org")).replace(
            "health 127.0.0.1:0", "health 127.0.0.1:0 {\n        lameduck 200ms\n    }")
        svc, _ = start_server(self, text)
        reloader = svc.reloader
        stopped = svc.stopService()
        write(svc.corefile_path, SECOND)
        self.assertFalse(reloader._reload(None))
        yield stopped
        self.assertEqual((svc.listeners, svc.web.sites), ({}, {}))
