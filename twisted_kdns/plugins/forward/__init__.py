# -*- test-case-name: tests.plugins.test_forward -*-
"""
forward: send queries to upstream resolvers, as CoreDNS's forward plugin.

Modules: L{options} (Corefile parsing), L{transport} (UDP sockets, TCP/TLS
connection pools, reply matching), L{upstream} (one server and its health
probe), L{policy} (upstream order), L{resolver} (the per-query walk and the
per-block router), L{resolvconf} (self-pointing check and file watch),
L{metrics}.

Beyond CoreDNS: several C{forward} directives may share a server block, each
for its own FROM zone (the longest matching zone wins; CoreDNS refuses
this); resolv.conf upstreams are re-read when the file changes; a
resolv.conf nameserver that is this server itself is reported at startup
and left out instead of being found by C{loop} as a crash loop.
"""

from twisted_kdns.plugins.forward.options import parse
from twisted_kdns.plugins.forward.resolvconf import ForwardService
from twisted_kdns.plugins.forward.resolver import Forward, ForwardRouter
from twisted_kdns.plugins.forward.transport import tls_context

KIND = "terminal"
ONCE = False


def setup(configs, ctx, next):
    forwards = []
    for cfg in configs:
        ctx_tls = None
        if cfg.has_tls():
            try:
                ctx_tls = tls_context(cfg.tls_args, cfg.tls_servername)
            except (OSError, ValueError) as e:
                from twisted_kdns.errors import ConfigError
                raise ConfigError("tls: %s" % (e,), cfg.file, cfg.line, "forward")
        forwards.append(Forward(cfg, ctx.reactor, ctx_tls))
    ctx.add_service(ForwardService(forwards, ctx))
    return ForwardRouter(forwards)


__all__ = ["KIND", "ONCE", "parse", "setup", "Forward", "ForwardRouter"]
