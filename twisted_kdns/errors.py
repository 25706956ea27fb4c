# -*- test-case-name: tests.test_chain -*-
"""
The exception contract between resolvers, the fallthrough chain and the server.

Twisted's stock contract uses C{DomainError} for everything ("not mine",
upstream SERVFAIL, REFUSED), which the stock server turns into NXDOMAIN.  We
keep C{DomainError} for exactly one meaning, "this name is not mine, ask the
next resolver", and give every other outcome its own class that carries the
full L{Response} to send.
"""

from twisted.names import dns
from twisted.names.error import AuthoritativeDomainError, DomainError

from twisted_kdns.response import Response


class PassToNext(DomainError):
    """
    The resolver does not answer this name (outside its zones, or its
    C{fallthrough} covers a miss): the chain tries the next resolver.
    """


class DNSRcode(Exception):
    """
    A final answer with a non-NOERROR rcode.  It carries the L{Response} so
    that an upstream's authority section (the SOA of an NXDOMAIN) survives.

    @ivar response: what the client receives.
    @ivar reason: text for the errors plugin; empty when the rcode is an
        ordinary answer (NXDOMAIN) rather than a failure.
    """

    rcode = dns.ESERVER

    def __init__(self, reason="", response=None):
        Exception.__init__(self, reason)
        self.reason = reason
        if response is None:
            response = Response(rcode=self.rcode)
        self.response = response

    @property
    def code(self):
        return self.response.rcode


class NXDomain(DNSRcode, AuthoritativeDomainError):
    """Authoritative "name does not exist"; never falls through by itself."""

    rcode = dns.ENAME

    def __init__(self, authority=(), additional=(), aa=True, reason="", response=None):
        if response is None:
            response = Response((), authority, additional, rcode=dns.ENAME, aa=aa)
        DNSRcode.__init__(self, reason, response)


class ServFail(DNSRcode):
    """SERVFAIL: a local or upstream failure.  Never turned into NXDOMAIN."""

    rcode = dns.ESERVER


class Refused(DNSRcode):
    """REFUSED: policy (acl, max_concurrent) or no zone matched."""

    rcode = dns.EREFUSED


class NotImp(DNSRcode):
    """NOTIMP: an opcode or feature we do not implement."""

    rcode = dns.ENOTIMP


class FormErr(DNSRcode):
    """FORMERR: the request was readable but malformed."""

    rcode = dns.EFORMAT


class Drop(Exception):
    """Send no reply at all (acl drop, loop probes, QR=1 packets)."""


class ConfigError(Exception):
    """
    A Corefile problem.  C{str()} gives CoreDNS's shape,
    C{FILE:LINE - Error during parsing: MESSAGE}, prefixed with
    C{plugin/NAME: } when a plugin's parser raised it.
    """

    def __init__(self, message, file=None, line=None, plugin=None):
        Exception.__init__(self, message)
        self.message = message
        self.file = file
        self.line = line
        self.plugin = plugin

    def __str__(self):
        where = ""
        if self.file is not None:
            where = "%s:%s - " % (self.file, self.line if self.line is not None else "?")
        prefix = "plugin/%s: " % (self.plugin,) if self.plugin else ""
        return "%s%sError during parsing: %s" % (prefix, where, self.message)


class ConfigErrors(ConfigError):
    """Several configuration errors found in one pass (C{kdns check})."""

    def __init__(self, errors):
        self.errors = list(errors)
        ConfigError.__init__(self, "; ".join(str(e) for e in self.errors))

    def __str__(self):
        return "\n".join(str(e) for e in self.errors)
