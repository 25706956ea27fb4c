# -*- test-case-name: tests.test_tap -*-
"""
The twistd/twist plugin body: C{twistd -n kdns --corefile FILE}.

The Corefile is parsed and checked in C{postOptions}, before anything binds,
so a bad file fails the command with C{FILE:LINE - ...} and a non-zero exit.
"""

import os

from twisted.python import usage

from twisted_kdns.defaults import DEFAULT_COREFILE
from twisted_kdns.errors import ConfigError


class Options(usage.Options):
    synopsis = "[--corefile FILE] [--dns-port PORT]"
    longdesc = "A CoreDNS-compatible DNS server for Kubernetes."
    optParameters = [
        ["corefile", "c", None, "Corefile to load (default: ./Corefile, else the built-in config)."],
        ["dns-port", "p", None, "Default port for server blocks without one (CoreDNS -dns.port).", int],
    ]

    def postOptions(self):
        from twisted_kdns.config import load
        path = self["corefile"]
        port = self["dns-port"] if self["dns-port"] is not None else 53
        try:
            if path is None and os.path.exists("Corefile"):
                path = "Corefile"
            if path is None:
                self.plan = load(text=DEFAULT_COREFILE, path="<built-in Corefile>", dns_port=port)
            else:
                self.plan = load(path=path, dns_port=port)
        except ConfigError as e:
            # Not a UsageError: Debian's twistd (22.4) exits 0 on those.
            # SystemExit with a message prints it to stderr and exits 1
            # under twistd and twist alike.
            raise SystemExit(str(e))
        self.path = path
        self.port = port


def makeService(options, reactor=None):
    from twisted_kdns.service import KdnsService
    if reactor is None:
        from twisted.internet import reactor
    kdns = KdnsService(options.plan, reactor, options.port, options.path)
    kdns.handle_signals = True  # SIGHUP -> immediate reload (reloader.py)
    return kdns
