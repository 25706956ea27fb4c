"""
The documentation is tested like CoreDNS's test/readme_test.go: every
C{~~~ corefile} example in docs/ and every C{```corefile} example in the
README loads and builds, every plugin page has the required sections, and
every implemented plugin is documented in both places.
"""

import glob
import os
import re

from twisted.internet.task import Clock
from twisted.trial import unittest

from twisted_kdns import config, registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
TILDE = re.compile(r"~~~ *corefile\n(.*?)~~~", re.S)
BACKTICK = re.compile(r"```corefile\n(.*?)```", re.S)
SECTIONS = ("## Name", "## Description", "## Syntax", "## Examples")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def examples():
    """C{(source, text)} for every Corefile example in the docs and README."""
    found = []
    for page in sorted(glob.glob(os.path.join(DOCS, "**", "*.md"), recursive=True)):
        found.extend((os.path.relpath(page, ROOT), text) for text in TILDE.findall(read(page)))
    found.extend(("README.md", text) for text in BACKTICK.findall(read(os.path.join(ROOT, "README.md"))))
    return found


class DocExampleTests(unittest.SynchronousTestCase):
    def test_everyExampleBuilds(self):
        """Each Corefile example parses, passes every plugin's parse and sets up."""
        found = examples()
        self.assertGreater(len(found), 40)
        for source, text in found:
            try:
                config.build(config.load(text=text, path=source), Clock())
            except Exception as e:
                self.fail("%s example failed: %s\n%s" % (source, e, text))

    def test_readmeHasExamples(self):
        """The README's plugin examples are fenced as corefile so they are checked."""
        self.assertGreaterEqual(len(BACKTICK.findall(read(os.path.join(ROOT, "README.md")))), 15)


class DocPageTests(unittest.SynchronousTestCase):
    def test_everyPluginDocumented(self):
        """Each implemented plugin has a page with CoreDNS's sections and a README section."""
        readme = read(os.path.join(ROOT, "README.md"))
        for name in registry.implemented():
            page = os.path.join(DOCS, "plugins", name + ".md")
            self.assertTrue(os.path.exists(page), "no docs/plugins/%s.md" % (name,))
            text = read(page)
            for section in SECTIONS:
                self.assertIn(section, text, "%s.md lacks %s" % (name, section))
            self.assertTrue(TILDE.search(text), "%s.md has no corefile example" % (name,))
            self.assertIn("(docs/plugins/%s.md)" % (name,), readme, "README does not link %s" % (name,))
