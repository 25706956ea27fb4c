"""
The long reliability scripts stay runnable: bench/fuzz_long.py for one
second per fuzzer (and crash-free), the others' --help (they need dnsperf
and unbound and run for minutes: `make soak`).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

from twisted.internet import threads
from twisted.trial import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(args, timeout=60):
    return subprocess.run([sys.executable] + args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


class BenchScriptTests(unittest.TestCase):
    timeout = 90

    def test_fuzz_long_one_second_each(self):
        """fuzz_long.py with 1 s per fuzzer exits 0 and reports inputs and zero crashes for each."""
        out = tempfile.mkdtemp(prefix="kdns-fuzz-out-")
        self.addCleanup(shutil.rmtree, out, True)

        def check(proc):
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            with open(os.path.join(out, "fuzz.json")) as f:
                result = json.load(f)
            for name in ("wire", "corefile", "kubernetes_objects"):
                self.assertGreater(result[name]["tried"], 50, name)
                self.assertEqual(result[name]["crash_count"], 0, name)
            self.assertTrue(os.path.exists(os.path.join(out, "fuzz.md")))
        d = threads.deferToThread(run, ["bench/fuzz_long.py", "--seconds", "0.5", "--out", out])
        return d.addCallback(check)

    def test_soak_and_faults_parse_their_options(self):
        """soak.py and faults.py import and describe their options."""
        for script in ("bench/soak.py", "bench/faults.py"):
            proc = run([script, "--help"])
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertIn("--out", proc.stdout)
