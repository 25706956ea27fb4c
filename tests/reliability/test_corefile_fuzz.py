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

CASES = 4000
SEED = 9


class CorefileFuzzTests(unittest.SynchronousTestCase):

    def test_every_failure_is_a_config_error_with_a_line(self):
        """4,000 mutated and random Corefiles: each either builds or fails with ConfigError(s) naming file:line within the text."""
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


class CorefileRegressionTests(unittest.SynchronousTestCase):
    """Inputs bench/fuzz_long.py found raising something other than ConfigError."""

    def assertConfigError(self, text, line):
        with self.assertRaises(ConfigError) as cm:
            load(text=text, dns_port=0)
        errors = getattr(cm.exception, "errors", [cm.exception])
        self.assertEqual([e.line for e in errors][:1], [line], str(cm.exception))
        return str(cm.exception)

    def test_nul_byte(self):
        """A NUL byte anywhere (it made hosts' os.stat and autopath's open raise ValueError) is a ConfigError at its line."""
        self.assertIn("NUL byte", self.assertConfigError(
            "example.org {\n    hosts /etc/kdns/example.hosts\x00 example.org\n}\n", 2))

    def test_idna_zone_with_empty_label(self):
        """A non-ASCII zone with an empty label (the IDNA codec raised UnicodeError) is a ConfigError."""
        self.assertIn("not a valid domain", self.assertConfigError("\u00e9t\u00e9.example.. {\n    whoami\n}\n", 1))

    def test_plugin_argument_the_parser_did_not_foresee(self):
        """A plugin parser raising ValueError (log's name with an empty IDNA label) becomes a ConfigError at the directive."""
        text = ".:53 {\n    log \u00e9t\u00e9.example.. {combined}\n}\n"
        self.assertIn("plugin/log", self.assertConfigError(text, 2))

    def test_corefile_not_utf8(self):
        """A Corefile or an imported file that is not UTF-8 is a ConfigError, not UnicodeDecodeError."""
        directory = tempfile.mkdtemp(prefix="kdns-fuzz-")
        self.addCleanup(__import__("shutil").rmtree, directory, True)
        bad = os.path.join(directory, "bad")
        with open(bad, "wb") as f:
            f.write(b".:53 {\n    whoami \xff\xfe\n}\n")
        with self.assertRaises(ConfigError):
            load(path=bad, dns_port=0)
        main = os.path.join(directory, "Corefile")
        with open(main, "w") as f:
            f.write("import bad\n")
        with self.assertRaises(ConfigError) as cm:
            load(path=main, dns_port=0)
        self.assertIn("could not read imported file", str(cm.exception))
