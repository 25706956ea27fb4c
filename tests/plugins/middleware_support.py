"""
Test-side helpers for the middleware plugin tests: a scripted upstream
terminal (stands in for an authoritative server or forward target whose
answers a test changes over time) and a way to build one plugin in front of
it with a real L{BlockContext}.
"""

import itertools

from twisted.internet import defer
from twisted.names import dns
from twisted.python.failure import Failure

from twisted_kdns import registry
from twisted_kdns.corefile import parse_text
from twisted_kdns.errors import NXDomain, PassToNext
from twisted_kdns.plugin import BlockContext, ServerOptions
from twisted_kdns.query import KdnsQuery, Edns
from twisted_kdns.response import Response

_servers = itertools.count()


def server_label():
    """A fresh metrics C{server} label so each test reads its own counters."""
    return "dns://test-%d:53" % (next(_servers),)


def a(name, ip, ttl=300):
    return dns.RRHeader(name, dns.A, dns.IN, ttl, dns.Record_A(ip, ttl), auth=False)


def aaaa(name, ip, ttl=300):
    return dns.RRHeader(name, dns.AAAA, dns.IN, ttl, dns.Record_AAAA(ip, ttl), auth=False)


def cname(name, target, ttl=300):
    return dns.RRHeader(name, dns.CNAME, dns.IN, ttl, dns.Record_CNAME(target, ttl), auth=False)


def mx(name, pref, target, ttl=300):
    return dns.RRHeader(name, dns.MX, dns.IN, ttl, dns.Record_MX(pref, target, ttl), auth=False)


def soa(zone, ttl=60, minimum=30):
    return dns.RRHeader(zone, dns.SOA, dns.IN, ttl,
                        dns.Record_SOA(b"ns." + zone, b"admin." + zone, 1, 7200, 1800, 86400, minimum, ttl),
                        auth=True)


class Upstream(object):
    """
    A terminal whose answer is whatever C{self.answer} says now: a
    L{Response}, an exception instance to fail with, a callable
    C{kq -> either}, or C{None} to leave the Deferred unfired (a hung
    upstream).  Every query is recorded in C{self.asked}.
    """

    name = "upstream"

    def __init__(self, answer=None):
        self.answer = answer
        self.asked = []
        self.pending = []

    def query(self, kq, timeout=None):
        self.asked.append(kq)
        answer = self.answer
        if callable(answer) and not isinstance(answer, Response):
            answer = answer(kq)
        if answer is None:
            d = defer.Deferred()
            self.pending.append(d)
            return d
        if isinstance(answer, BaseException):
            return defer.fail(Failure(answer))
        return defer.succeed(answer)


def by_name(table):
    """An answer function: C{table[(qname, qtype)]} as a NOERROR answer, else NXDOMAIN with SOA."""
    def answer(kq):
        records = table.get((kq.qname, kq.type))
        if records is None:
            return NXDomain(authority=[soa(b"example.org")])
        return Response(list(records), aa=False, ra=True)
    return answer


def build(testcase, plugin, text, next, zones=".", reactor=None, plugins=None):
    """
    Parse C{plugin}'s directive(s) from C{text} (the inside of a server
    block) and set it up in front of C{next}.
    """
    corefile = parse_text("%s {\n%s\n}\n" % (zones, text), "Corefile", 53, {})
    block = corefile.blocks[0]
    module = registry.load(plugin)
    config = module.parse(block.by_name()[plugin])
    ctx = BlockContext(reactor, block, ServerOptions())
    ctx.plugins.update(plugins or {})
    return module.setup(config, ctx, next)


def kquery(name, qtype=dns.A, server="", client=("127.0.0.1", 5353), do=False, cd=False,
           cls=dns.IN, transport="udp"):
    message = dns.Message()
    message.checkingDisabled = int(cd)
    edns = Edns(payload=1232, do=True) if do else None
    return KdnsQuery(name, qtype, cls, client=client, transport=transport, edns=edns,
                     server=server, message=message)


def values(response):
    """Sorted text of the answer records' data."""
    out = []
    for rr in response.answers:
        payload = rr.payload
        if rr.type in (dns.A, dns.AAAA):
            out.append(payload.dottedQuad() if rr.type == dns.A else payload._address)
        else:
            out.append(str(payload.name) if hasattr(payload, "name") else repr(payload))
    return sorted(out)


__all__ = ["PassToNext"]
