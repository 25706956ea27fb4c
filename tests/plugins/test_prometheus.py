"""prometheus: its Corefile syntax, what setup declares, and its doc examples."""


from twisted.internet import reactor
from twisted.trial import unittest

from twisted_kdns import config
from twisted_kdns.errors import ConfigErrors
from twisted_kdns.plugins import prometheus



def parse(body, name="prometheus"):
    plan = config.load(text=".:53 {\n%s\n whoami\n}\n" % (body,))
    return plan.blocks[0].configs[name]


def parse_error(testcase, body):
    return str(testcase.assertRaises(ConfigErrors, parse, body))




class ParseTests(unittest.SynchronousTestCase):
    def test_default(self):
        """Without an argument the endpoint is CoreDNS's localhost:9153."""
        self.assertEqual(parse(" prometheus").address, "localhost:9153")

    def test_address(self):
        """An explicit HOST:PORT or :PORT is kept as given."""
        self.assertEqual(parse(" prometheus :9253").address, ":9253")
        self.assertEqual(parse(" prometheus [::1]:9153").address, "[::1]:9153")

    def test_errors(self):
        """A bad address, two arguments, a second prometheus, tls and unknown properties are file:line errors."""
        self.assertIn("Corefile:2 - Error during parsing: missing port", parse_error(self, " prometheus localhost"))
        self.assertIn("Wrong argument count", parse_error(self, " prometheus :1 :2"))
        self.assertIn("Corefile:3 - Error during parsing: this plugin can only be used once",
                      parse_error(self, " prometheus\n prometheus :9000"))
        self.assertIn("tls is not supported", parse_error(self, " prometheus {\n  tls x.yaml\n }"))
        self.assertIn("unknown property 'bogus'", parse_error(self, " prometheus {\n  bogus\n }"))

    def test_runtimeMetricsAccepted(self):
        """C{runtime_metrics} is accepted (Python's process collector is always on)."""
        self.assertEqual(parse(" prometheus :9153 {\n  runtime_metrics\n }").address, ":9153")

    def test_setupDeclaresEndpointOnce(self):
        """Blocks naming the same address declare one metrics endpoint; a different one adds a second."""
        text = ("a.test:53 {\n prometheus :9153\n whoami\n}\nb.test:53 {\n prometheus :9153\n whoami\n}\n"
                "c.test:53 {\n prometheus 127.0.0.1:9999\n whoami\n}\n")
        generation = config.build(config.load(text=text), reactor)
        self.assertEqual(generation.options.web["metrics"], [":9153", "127.0.0.1:9999"])

    def test_wrapperAddsOneHook(self):
        """The wrapper's per-query cost is one hook on the query, then the rest of the chain."""
        generation = config.build(config.load(text=".:53 {\n prometheus\n whoami\n}\n"), reactor)
        wrapper = generation.blocks[0].root
        self.assertIsInstance(wrapper, prometheus.MetricsWrapper)
        from twisted_kdns.query import KdnsQuery
        kq = KdnsQuery(b"example.org", client=("127.0.0.1", 5353))
        self.successResultOf(wrapper.query(kq))
        self.assertEqual(kq.hooks, [prometheus.RECORDER.record])

