# -*- test-case-name: tests.test_registry -*-
"""
Which plugins exist and in which order they run.

The order is CoreDNS's plugin.cfg, never the Corefile's.  A plugin is a
module C{twisted_kdns.plugins.<name>} (a module or a package) defining:

  - C{KIND}: C{"terminal"} (answers or falls through; joins the fallthrough
    chain), C{"wrapper"} (wraps everything after it) or C{"server"}
    (process-wide settings such as C{bind} or C{health}; not in the query path);
  - C{ONCE}: C{True} when it may appear only once per server block;
  - C{parse(directives)}: pure; the block's occurrences -> a config object;
  - C{setup(config, ctx, next)}: build it for one server block.

Adding a plugin is adding that module; nothing here or elsewhere changes,
except that a name CoreDNS does not know also needs a place in L{ORDER}.
Modules are imported only when a Corefile names them, so a VM that does not
use C{kubernetes} never imports the kubernetes client.
"""

import importlib
import importlib.util

# CoreDNS plugin.cfg (HEAD), outermost first.
ORDER = (
    "root", "metadata", "geoip", "cancel", "proxyproto", "quic", "grpc_server", "https",
    "https3", "timeouts", "multisocket", "reload", "nsid", "bufsize", "bind", "debug", "trace",
    "ready", "health", "pprof", "shed", "prometheus", "errors", "log", "dnstap", "local",
    "dns64", "any", "chaos", "loadbalance", "tsig", "rewrite", "autopath", "acl", "cache",
    "header", "dnssec", "tls", "minimal", "template", "transfer", "hosts", "route53", "azure",
    "clouddns", "k8s_external", "kubernetes", "file", "auto", "secondary", "etcd", "loop",
    "forward", "grpc", "erratic", "whoami", "on", "sign", "view", "nomad",
)
RANK = {name: i for i, name in enumerate(ORDER)}
KINDS = ("terminal", "wrapper", "server")


class UnknownPlugin(Exception):
    """Not a CoreDNS plugin name at all."""


class UnavailablePlugin(Exception):
    """A CoreDNS plugin that this version does not implement."""


_cache = {}


def available(name):
    """C{True} when a module implements plugin C{name}."""
    if name not in RANK:
        return False
    try:
        return importlib.util.find_spec("twisted_kdns.plugins." + name) is not None
    except (ImportError, ValueError):
        return False


def load(name):
    """
    The plugin module for C{name}.

    @raise UnknownPlugin: CoreDNS has no such plugin.
    @raise UnavailablePlugin: CoreDNS has it, we do not (yet).
    """
    module = _cache.get(name)
    if module is not None:
        return module
    if name not in RANK:
        raise UnknownPlugin(name)
    if not available(name):
        raise UnavailablePlugin(name)
    module = importlib.import_module("twisted_kdns.plugins." + name)
    if getattr(module, "KIND", None) not in KINDS:
        raise TypeError("plugin module %s has no valid KIND" % (module.__name__,))
    _cache[name] = module
    return module


def ordered(names):
    """C{names} sorted in plugin.cfg order (outermost first)."""
    return sorted(names, key=RANK.__getitem__)


def implemented():
    """Every plugin name this version implements, in chain order."""
    return [n for n in ORDER if available(n)]
