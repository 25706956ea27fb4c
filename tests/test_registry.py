"""The plugin registry: CoreDNS's plugin.cfg order, lazy loading, unknown vs unavailable."""

from twisted.trial import unittest

from twisted_kdns import registry


class RegistryTests(unittest.SynchronousTestCase):
    def test_orderIsPluginCfg(self):
        """The in-scope plugins sort in CoreDNS's plugin.cfg order, whatever the input order."""
        names = ["forward", "loop", "kubernetes", "hosts", "cache", "autopath", "rewrite",
                 "loadbalance", "log", "errors", "prometheus", "health", "ready", "bind", "reload"]
        self.assertEqual(registry.ordered(names),
                         ["reload", "bind", "ready", "health", "prometheus", "errors", "log",
                          "loadbalance", "rewrite", "autopath", "cache", "hosts", "kubernetes",
                          "loop", "forward"])
        self.assertEqual(registry.ordered(["whoami", "hosts", "log", "errors"]),
                         ["errors", "log", "hosts", "whoami"])

    def test_loadKnown(self):
        """The foundation plugins load, each with a valid KIND and parse/setup."""
        for name, kind in (("hosts", "terminal"), ("whoami", "terminal"), ("errors", "wrapper"),
                           ("log", "wrapper"), ("bind", "server")):
            module = registry.load(name)
            self.assertEqual(module.KIND, kind)
            self.assertTrue(callable(module.parse) and callable(module.setup))
            self.assertIs(registry.load(name), module)

    def test_unknown(self):
        """A name CoreDNS does not have raises UnknownPlugin."""
        self.assertRaises(registry.UnknownPlugin, registry.load, "nosuchplugin")
        self.assertFalse(registry.available("nosuchplugin"))

    def test_unavailable(self):
        """A CoreDNS plugin with no module here raises UnavailablePlugin."""
        self.assertRaises(registry.UnavailablePlugin, registry.load, "etcd")
        self.assertFalse(registry.available("etcd"))

    def test_implemented(self):
        """implemented() lists available plugins in chain order, the foundation ones included."""
        names = registry.implemented()
        for name in ("bind", "errors", "log", "hosts", "whoami"):
            self.assertIn(name, names)
        self.assertEqual(names, registry.ordered(names))
