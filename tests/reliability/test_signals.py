"""
Signals under load, in a real C{kdns} process: SIGTERM with a lameduck
loses no query before the listener closes (every query is answered until
the first refused one, and answers continue for the lameduck period); a
SIGHUP storm (10 a second) keeps answering with no file-descriptor,
thread or memory growth.  bench/faults.py runs the 10 s storm.
"""

import signal
import time

from twisted.internet import defer, reactor, task, threads
from twisted.trial import unittest

from tests.helpers import write_corefile
from tests.reliability.faulty import FaultyUpstream
from tests.reliability.process import ClosedLoopClient, KdnsProcess

COREFILE = """\
.:0 {
    bind 127.0.0.1
    health 127.0.0.1:0 {
        lameduck %s
    }
    errors
    cache 30
    hosts {
        10.1.2.3 a.example.org
        fallthrough
    }
    forward . 127.0.0.1:%d
}
"""


def pause(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class SignalTests(unittest.TestCase):
    timeout = 60

    def start(self, lameduck="1s"):
        up = FaultyUpstream("good").start()
        self.addCleanup(up.stop)
        path = write_corefile(self, COREFILE % (lameduck, up.port))
        kdns = KdnsProcess(path)
        self.addCleanup(kdns.stop)
        return kdns, path

    @defer.inlineCallbacks
    def test_sigterm_under_load_loses_nothing_before_close(self):
        """Four closed-loop clients; SIGTERM with a 1 s lameduck: every query is answered until the listener closes (no timeout or refusal before the last answer), answers continue for at least 0.9 s, then the process exits cleanly."""
        kdns, _ = self.start("1s")
        port = yield threads.deferToThread(kdns.wait_port)
        self.assertIsNotNone(port, "".join(kdns.output))
        clients = [ClosedLoopClient(port).start() for _ in range(4)]
        yield pause(0.5)
        t_term = time.monotonic()
        kdns.signal(signal.SIGTERM)
        code = yield threads.deferToThread(kdns.proc.wait, 15)
        yield pause(0.3)
        for c in clients:
            outcomes = c.stop()
            kinds = [k for _, k, _ in outcomes]
            self.assertIn("answered", kinds)
            last_answer = max(i for i, k in enumerate(kinds) if k == "answered")
            self.assertEqual(set(kinds[:last_answer + 1]), {"answered"},
                             "a query failed before the listener closed")
            self.assertGreater(outcomes[last_answer][0] - t_term, 0.9)
            self.assertGreater(len(outcomes), 100)
        # Twisted's runner re-raises the signal after a clean shutdown (so the
        # exit status says SIGTERM, which systemd counts as a clean stop).
        self.assertIn(code, (0, -signal.SIGTERM), "".join(kdns.output[-20:]))
        self.assertIn("Main loop terminated", "".join(kdns.output))

    @defer.inlineCallbacks
    def test_sighup_storm_still_answering_no_leak(self):
        """20 SIGHUPs at 10 a second (after 5 to warm up) while a client asks (hosts, cache and forward answers): every query answered (one 0.5 s miss tolerated), and file descriptors, threads and RSS back to their level after a first storm."""
        kdns, _ = self.start("0s")
        port = yield threads.deferToThread(kdns.wait_port)
        self.assertIsNotNone(port, "".join(kdns.output))
        forwarded = ClosedLoopClient(port, question=(
            b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01"))
        clients = [ClosedLoopClient(port).start(), forwarded.start()]

        @defer.inlineCallbacks
        def storm(count):
            for _ in range(count):
                kdns.signal(signal.SIGHUP)
                yield pause(0.1)
            yield pause(0.5)

        yield storm(5)  # warm-up: the first reloads allocate what every later one reuses
        fds, threads_, rss = kdns.fds(), kdns.threads(), kdns.rss_kb()
        yield storm(20)
        reloads = sum("Reloading complete" in line for line in kdns.output)
        for c in clients:
            outcomes = c.stop()
            kinds = [k for _, k, _ in outcomes]
            # bench/faults.py saw 1 client timeout in 364,485 queries over 109 reloads
            # (docs/reliability.md); allow that one, not a pattern.
            self.assertLessEqual(len([k for k in kinds if k != "answered"]), 1,
                                 [o for o in outcomes if o[1] != "answered"][:5])
            self.assertGreater(len(kinds), 200)
        self.assertGreaterEqual(reloads, 23, "".join(kdns.output[-10:]))
        self.assertLessEqual(kdns.fds(), fds + 2)
        self.assertLessEqual(kdns.threads(), threads_ + 1)
        self.assertLess(kdns.rss_kb() - rss, 8 * 1024, "RSS grew more than 8 MB over 20 reloads")
