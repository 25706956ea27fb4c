"""
The Corefile parser and every plugin's parse step, fuzzed with mutated
real Corefiles and random token streams (tests/reliability/corefilegen.py):
every rejection is a L{ConfigError} naming a file and a line inside it,
never another exception; what is accepted also builds.
"""

import os
import tempfile

from twisted.internet import task
from twisted.trial import unittest

from tests.reliability.corefilegen import CorefileFuzzer
from twisted_kdns.config import build, load
from twisted_kdns.errors import ConfigError

CASES = 6000
SEED = 9


class CorefileFuzzTests(unittest.SynchronousTestCase):

    def test_every_failure_is_a_config_error_with_a_line(self):
        """6,000 mutated and random Corefiles: each either builds or fails with ConfigError(s) naming file:line within the text."""
        fuzzer = CorefileFuzzer(SEED)
        self.assertGreater(len(fuzzer.texts), 20, "the docs' Corefile examples were found")
        directory = tempfile.mkdtemp(prefix="kdns-fuzz-")
        self.addCleanup(os.rmdir, directory)
        cwd = os.getcwd()
        os.chdir(directory)  # relative paths in the examples resolve to nothing of ours
        self.addCleanup(os.chdir, cwd)
        outcomes = {"rejected": 0, "built": 0}
        for kind, text in fuzzer.cases(CASES):
            try:
                plan = load(text=text, dns_port=0, environ={"HOME": directory})
                build(plan, task.Clock(), 0)
            except ConfigError as e:
                for err in getattr(e, "errors", [e]):
                    self.assertIsNotNone(err.file, "%s\n---\n%s" % (err, text))
                    self.assertIsNotNone(err.line, "%s\n---\n%s" % (err, text))
                    self.assertIn(":%s - " % (err.line,), str(err))
                    if err.file == "Corefile":
                        self.assertTrue(1 <= err.line <= text.count("\n") + 1, "%s\n---\n%s" % (err, text))
                outcomes["rejected"] += 1
            else:
                outcomes["built"] += 1
        # Both outcomes are exercised: the mutations are neither all fatal nor all harmless.
        self.assertGreater(outcomes["built"], CASES // 50, outcomes)
        self.assertGreater(outcomes["rejected"], CASES // 2, outcomes)
