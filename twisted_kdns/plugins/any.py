# -*- test-case-name: tests.plugins.test_any -*-
"""
any: answer every ANY query with the minimal HINFO of RFC 8482
(C{"ANY obsoleted" "See RFC 8482"}, TTL 8482), as CoreDNS does, so the
server cannot be used to amplify traffic with ANY.  Other types pass on.
"""

from twisted.internet import defer
from twisted.names import dns

from twisted_kdns.plugin import Wrapper, once
from twisted_kdns.plugins._middleware import call_next
from twisted_kdns.response import Response

KIND = "wrapper"
ONCE = True
TTL = 8482


class AnyConfig(object):
    pass


def parse(directives):
    args = once(directives, "any")
    args.count(0, 0)
    args.no_block()
    return AnyConfig()


class AnyResolver(Wrapper):
    name = "any"

    def query(self, kq, timeout=None):
        if kq.type != dns.ALL_RECORDS:
            return call_next(self.next, kq)
        hinfo = dns.RRHeader(kq.name.name, dns.HINFO, dns.IN, TTL,
                             dns.Record_HINFO(b"ANY obsoleted", b"See RFC 8482", TTL))
        # CoreDNS builds this with SetReply: AA is not set.
        return defer.succeed(Response([hinfo], aa=False, plugin="any"))


def setup(config, ctx, next):
    return AnyResolver(next)
