"""The corefile examples of the middleware plugin pages (cache, loadbalance, rewrite, autopath, acl, any) load and build."""

import os
import re

from twisted.internet.task import Clock
from twisted.trial import unittest

from twisted_kdns import config

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "plugins")
PAGES = ("cache", "loadbalance", "rewrite", "autopath", "acl", "any")


def doc_examples(name):
    with open(os.path.join(DOCS, name + ".md")) as f:
        text = f.read()
    return re.findall(r"~~~ corefile\n(.*?)~~~", text, re.S)


class DocExampleTests(unittest.SynchronousTestCase):
    def test_examplesBuild(self):
        """Every C{~~~ corefile} example of the six pages parses and sets up."""
        for page in PAGES:
            examples = doc_examples(page)
            self.assertTrue(examples, page)
            for text in examples:
                try:
                    config.build(config.load(text=text), Clock())
                except Exception as e:
                    self.fail("%s.md example failed: %s\n%s" % (page, e, text))

    def test_pagesHaveSections(self):
        """Each page has CoreDNS's Name, Description, Syntax, Examples and Metrics sections."""
        for page in PAGES:
            with open(os.path.join(DOCS, page + ".md")) as f:
                text = f.read()
            for section in ("## Name", "## Description", "## Syntax", "## Examples", "## Metrics"):
                self.assertIn(section, text, page)
