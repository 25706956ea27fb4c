# -*- test-case-name: tests.plugins.test_whoami -*-
"""
whoami: tell the client its own address and port, as CoreDNS does (the
answer section stays empty; A or AAAA and an SRV record go in additional).
"""

from twisted.internet import defer
from twisted.names import dns

from twisted_kdns.plugin import once
from twisted_kdns.response import Response

KIND = "terminal"
ONCE = True


class WhoamiConfig(object):
    pass


def parse(directives):
    args = once(directives, "whoami")
    args.count(0, 0)
    args.no_block()
    return WhoamiConfig()


class WhoamiResolver(object):
    name = "whoami"

    def query(self, query, timeout=None):
        host, port = query.client[0], query.client[1]
        owner = query.name.name
        if ":" in host:
            rr = dns.RRHeader(owner, dns.AAAA, dns.IN, 0, dns.Record_AAAA(host.split("%")[0], 0), auth=True)
        else:
            rr = dns.RRHeader(owner, dns.A, dns.IN, 0, dns.Record_A(host, 0), auth=True)
        srv_owner = b"_" + query.transport.encode() + b"." + owner.lstrip(b".")
        srv = dns.RRHeader(srv_owner, dns.SRV, dns.IN, 0, dns.Record_SRV(0, 0, port, b"", 0), auth=True)
        return defer.succeed(Response((), (), [rr, srv], aa=True, plugin="whoami"))


def setup(config, ctx, next):
    return WhoamiResolver()
