"""
The commands operators run, as real processes: twistd, twist (python -m
twisted), kdns and kdns check.  A bad Corefile exits non-zero with file:line;
a good one serves queries until SIGTERM.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import dns.message
import dns.query
from twisted.trial import unittest

from tests.helpers import free_port
from twisted_kdns import __version__

BIN = os.path.dirname(sys.executable)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALLED = os.path.exists(os.path.join(BIN, "kdns"))


def kdns():
    """The kdns console script, or the module when running from a checkout (Debian stack)."""
    return [os.path.join(BIN, "kdns")] if INSTALLED else [sys.executable, "-m", "twisted_kdns"]


def twistd():
    """twistd next to the interpreter, else Debian's twistd3."""
    path = os.path.join(BIN, "twistd")
    return [path] if os.path.exists(path) else [shutil.which("twistd3") or "twistd3"]
GOOD = """\
.:%(port)d {
    bind 127.0.0.1
    hosts {
        10.0.0.7 entry.example.org
    }
}
"""
BAD = """\
. {
    bind 127.0.0.1
    whoami extra
    etcd
}
"""


class EntryPointTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kdns-entry-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.env.pop("PYTHONPATH", None)
        if not INSTALLED:
            self.env["PYTHONPATH"] = ROOT

    def write(self, text, name="Corefile"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_cmd(self, argv, timeout=60):
        return subprocess.run(argv, cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=timeout)

    def serve(self, argv, port, name="entry.example.org."):
        """Start a server process, query it over UDP and TCP, stop it with SIGTERM."""
        proc = subprocess.Popen(argv, cwd=self.dir, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            reply = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=0.5)
                    break
                except (dns.exception.Timeout, ConnectionRefusedError, OSError):
                    time.sleep(0.1)
            self.assertIsNotNone(reply, "server did not answer; exit=%r" % (proc.poll(),))
            self.assertEqual([rd.to_text() for rrset in reply.answer for rd in rrset], ["10.0.0.7"])
            reply = dns.query.tcp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=2)
            self.assertEqual([rd.to_text() for rrset in reply.answer for rd in rrset], ["10.0.0.7"])
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                output, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
        # Twisted >= 23 re-raises the terminating signal after a clean shutdown
        # so supervisors see it; older versions exit 0.
        self.assertIn(proc.returncode, (0, -signal.SIGTERM), output)
        self.assertIn("Main loop terminated", output)
        return output

    def assertBadCorefile(self, result, path):
        output = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0, output)
        self.assertIn("%s:3 - Error during parsing: Wrong argument count" % (path,), output)

    def test_twistdBad(self):
        """twistd -n kdns --corefile BAD exits non-zero with the file:line message."""
        path = self.write(BAD)
        self.assertBadCorefile(self.run_cmd(twistd() + ["-n", "--pidfile=", "kdns",
                                             "--corefile", path]), path)

    def test_twistdServes(self):
        """twistd -n kdns --corefile GOOD serves until SIGTERM, then exits 0."""
        port = free_port()
        path = self.write(GOOD % {"port": port})
        self.serve(twistd() + ["-n", "--pidfile=", "kdns", "--corefile", path], port)

    def test_twistBad(self):
        """python -m twisted kdns --corefile BAD (twist) exits non-zero with file:line."""
        path = self.write(BAD)
        self.assertBadCorefile(self.run_cmd([sys.executable, "-m", "twisted", "kdns", "--corefile", path]), path)

    def test_twistServes(self):
        """python -m twisted kdns --corefile GOOD serves until SIGTERM."""
        port = free_port()
        path = self.write(GOOD % {"port": port})
        self.serve([sys.executable, "-m", "twisted", "--log-format=text", "kdns", "--corefile", path], port)

    def test_kdnsVersion(self):
        """kdns --version prints the version and exits 0."""
        result = self.run_cmd(kdns() + ["--version"])
        self.assertEqual((result.returncode, result.stdout.strip()), (0, "kdns-%s" % (__version__,)))

    def test_kdnsServesWithDnsPort(self):
        """kdns --dns-port P gives keys without a port that port; text logs name the zone."""
        port = free_port()
        path = self.write(GOOD.replace(".:%(port)d", "."))
        output = self.serve(kdns() + ["--corefile", path, "--dns-port", str(port)], port)
        self.assertIn("dns://.:%d" % (port,), output)

    def test_kdnsBad(self):
        """kdns --corefile BAD exits 1 with every error, one per line."""
        path = self.write(BAD)
        result = self.run_cmd(kdns() + ["--corefile", path])
        self.assertEqual(result.returncode, 1)
        self.assertEqual(len(result.stderr.strip().splitlines()), 2, result.stderr)

    def test_check(self):
        """kdns check: exit 0 on a good file, exit 1 listing every error one per line, binding nothing."""
        good = self.write(GOOD % {"port": 53}, "Good")
        result = self.run_cmd(kdns() + ["check", good])
        self.assertEqual(result.returncode, 0, result.stderr)
        bad = self.write(BAD + "example.org {\n nosuch\n hosts {\n  ttl -1\n }\n}\n")
        result = self.run_cmd(kdns() + ["check", bad])
        self.assertEqual(result.returncode, 1)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 4, lines)
        self.assertEqual([l.split(" - ")[0].split(": ")[-1] for l in lines],
                         ["%s:%d" % (bad, n) for n in (3, 4, 7, 9)])
        self.assertIn("not available in this version", lines[1])
        self.assertIn("Unknown directive 'nosuch'", lines[2])

    def test_checkSyntaxError(self):
        """kdns check reports a syntax error with file:line and exits 1."""
        bad = self.write(". {\n whoami\n")
        result = self.run_cmd(kdns() + ["check", bad])
        self.assertEqual(result.returncode, 1)
        self.assertIn("%s:1 - Error during parsing: Unexpected EOF" % (bad,), result.stderr)
