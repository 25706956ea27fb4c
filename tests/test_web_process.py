"""
The operations path in a real C{kdns} process, as systemd or kubelet drive
it: SIGHUP reloads a changed Corefile (the health/ready socket stays), and
SIGTERM with a lameduck keeps DNS answering while C{/ready} is 503, then
the process exits.
"""

import re
import signal
import sys
import time

from twisted.internet import defer, reactor, task, threads
from twisted.trial import unittest

from tests.helpers import query, raw_udp, rrset_values, spawn, write_corefile
from tests.test_web import http_get

COREFILE = """\
.:0 {
    bind 127.0.0.1
    health 127.0.0.1:0 {
        lameduck 1s
    }
    ready 127.0.0.1:0
    hosts {
        10.1.2.3 a.example.org
%s    }
}
"""
DNS_LINE = re.compile(r"dns://127\.0\.0\.1:0 \((\d+)\)")
HTTP_LINE = re.compile(r"http listening on 127\.0\.0\.1:(\d+)")
QUESTION = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
            b"\x01a\x07example\x03org\x00\x00\x01\x00\x01")


class ProcessTests(unittest.TestCase):
    timeout = 40

    def start(self, path):
        proc = spawn(self, [sys.executable, "-m", "twisted_kdns", "--corefile", path], text=True)
        self.output = []

        def ports():
            dns_port = http_port = None
            deadline = time.monotonic() + 20
            while (dns_port is None or http_port is None) and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                self.output.append(line)
                m = DNS_LINE.search(line)
                dns_port = int(m.group(1)) if m else dns_port
                m = HTTP_LINE.search(line)
                http_port = int(m.group(1)) if m else http_port
            return dns_port, http_port
        return proc, threads.deferToThread(ports)

    @defer.inlineCallbacks
    def test_sighupThenSigtermWithLameduck(self):
        """SIGHUP applies a new hosts entry on the same sockets; SIGTERM answers through lameduck, then exits."""
        path = write_corefile(self, COREFILE % "")
        proc, d = self.start(path)
        dns_port, http_port = yield d
        self.assertIsNotNone(dns_port, "".join(self.output))
        self.assertIsNotNone(http_port, "".join(self.output))
        reply = yield query(dns_port, "a.example.org.", "A")
        self.assertEqual(rrset_values(reply), ["10.1.2.3"])

        with open(path, "w") as f:
            f.write(COREFILE % "        10.7.7.7 b.example.org\n")
        proc.send_signal(signal.SIGHUP)
        for _ in range(200):
            reply = yield query(dns_port, "b.example.org.", "A")
            if rrset_values(reply):
                break
            yield task.deferLater(reactor, 0.025, lambda: None)
        self.assertEqual(rrset_values(reply), ["10.7.7.7"])
        status, body, _ = yield http_get(http_port, "/ready")
        self.assertEqual((status, body), (200, b"OK"))

        proc.send_signal(signal.SIGTERM)
        yield task.deferLater(reactor, 0.2, lambda: None)
        self.assertIsNone(proc.poll())
        reply = yield query(dns_port, "b.example.org.", "A")
        self.assertEqual(rrset_values(reply), ["10.7.7.7"])
        status, body, _ = yield http_get(http_port, "/ready")
        self.assertEqual((status, body), (503, b"Shutting down"))
        status, body, _ = yield http_get(http_port, "/health")
        self.assertEqual((status, body), (200, b"OK"))
        yield threads.deferToThread(proc.wait, 10)
        self.assertIsNone((yield raw_udp(dns_port, QUESTION, timeout=0.3)))
