# -*- test-case-name: tests.plugins.test_cache -*-
"""
Helpers shared by the wrapping plugins (cache, loadbalance, rewrite, autopath,
acl, any): they all look at the outcome of C{next.query(kq)} - a L{Response},
a Twisted 3-tuple, or a failure carrying a L{DNSRcode} - and some of them hand
back a changed copy.  Doing that in one place keeps the "never mutate a
shared response" rule (the cache shares its stored records) easy to keep.

Not a plugin: the leading underscore keeps it out of the registry.
"""

from twisted.internet import defer
from twisted.names import dns
from twisted.python.failure import Failure

from twisted_kdns.errors import DNSRcode, FormErr, NotImp, NXDomain, Refused, ServFail
from twisted_kdns.response import Response, as_response

_BY_RCODE = {dns.ENAME: NXDomain, dns.ESERVER: ServFail, dns.EREFUSED: Refused,
             dns.ENOTIMP: NotImp, dns.EFORMAT: FormErr}


def settle(outcome):
    """
    The L{Response} behind a chain outcome: a result is normalised, a
    L{DNSRcode} failure gives its C{response}.  C{None} for any other failure
    (an internal error or L{Drop}), which callers pass on untouched.
    """
    if isinstance(outcome, Failure):
        if isinstance(outcome.value, DNSRcode):
            return outcome.value.response
        return None
    return as_response(outcome)


def deliver(response, reason=""):
    """
    Turn a L{Response} back into a chain outcome: NOERROR is a result, any
    other rcode the matching L{DNSRcode} (so that the errors and log plugins
    and the server see what a terminal would have produced).
    """
    if response.rcode == dns.OK:
        return response
    cls = _BY_RCODE.get(response.rcode)
    if cls is None:
        exc = DNSRcode(reason, response)
    else:
        exc = cls.__new__(cls)
        DNSRcode.__init__(exc, reason, response)
    return Failure(exc)


def as_deferred(outcome):
    """A fired Deferred for a result or a Failure."""
    if isinstance(outcome, Failure):
        return defer.fail(outcome)
    return defer.succeed(outcome)


def call_next(resolver, kq):
    """C{resolver.query(kq)} with synchronous exceptions turned into a failed Deferred."""
    try:
        return resolver.query(kq)
    except Exception:
        return defer.fail(Failure())


def copy_rr(rr, name=None, ttl=None, payload=None):
    """A new C{RRHeader} like C{rr} with some fields changed (C{rr} is never touched)."""
    return dns.RRHeader(rr.name.name if name is None else name, rr.type, rr.cls,
                        rr.ttl if ttl is None else ttl,
                        rr.payload if payload is None else payload, rr.auth)


def qtype_value(text):
    """A query type number from its mnemonic (C{A}, C{AAAA}, C{ANY}, C{TYPE65}) or C{None}."""
    text = text.upper()
    if text == "ANY":
        return dns.ALL_RECORDS
    if text in dns.REV_TYPES:
        return dns.REV_TYPES[text]
    for number, name in dns.QUERY_TYPES.items():
        if name == text:
            return number
    if text.startswith("TYPE") and text[4:].isdigit():
        return int(text[4:])
    return None


def rcode_value(text):
    """An rcode number from a name (C{NXDOMAIN}) or digits, or C{None}."""
    names = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4,
             "REFUSED": 5, "YXDOMAIN": 6, "YXRRSET": 7, "NXRRSET": 8, "NOTAUTH": 9, "NOTZONE": 10}
    text = text.upper()
    if text in names:
        return names[text]
    if text.isdigit() and int(text) < 4096:
        return int(text)
    return None


__all__ = ["settle", "deliver", "as_deferred", "call_next", "copy_rr", "qtype_value",
           "rcode_value", "Response"]
