# -*- test-case-name: tests.test_server -*-
"""
L{KdnsQuery}: a C{dns.Query} that remembers who asked and how.

Twisted's C{ResolverChain} and C{ResolverBase.query} rebuild or drop the query
object, so plugins that need the client address (autopath, acl, log), the
transport, EDNS (forward, cache) or the matched zone lost them.  Our chain
passes this object through unchanged; wrappers that need another name or type
(rewrite, autopath) derive a new one with L{KdnsQuery.derive}.
"""

from twisted.names import dns


class Edns(object):
    """The request's OPT record, decoded."""

    __slots__ = ("payload", "do", "version", "options", "raw_flags")

    def __init__(self, payload=512, do=False, version=0, options=b"", raw_flags=0):
        self.payload = payload
        self.do = do
        self.version = version
        self.options = options
        self.raw_flags = raw_flags

    def __repr__(self):
        return "<Edns payload=%d do=%s version=%d>" % (self.payload, self.do, self.version)


class KdnsQuery(dns.Query):
    """
    A question plus its request context.

    @ivar qname: lower-cased question name as C{bytes}, without trailing dot;
        every internal map is keyed on this (C{dns.Name} hashes by case).
    @ivar client: C{(host, port)} of the client.
    @ivar local: C{(host, port)} of the listener that received it.
    @ivar transport: C{"udp"} or C{"tcp"}.
    @ivar edns: an L{Edns} or C{None}.
    @ivar zone: the server block zone that matched, lower-case, no trailing dot
        (C{b""} for the root).
    @ivar server: the listener label used in metrics, e.g. C{"dns://:53"}.
    @ivar message: the request C{dns.Message} (ID, RD and CD bits, opcode).
    @ivar size: the request size in bytes.
    """

    def __init__(self, name=b"", type=dns.A, cls=dns.IN, client=("", 0),
                 transport="udp", edns=None, zone=b"", server="", local=("", 0),
                 message=None, size=0, qname=None):
        dns.Query.__init__(self, name, type, cls)
        # The dispatcher already normalised the name for routing: pass it in.
        self.qname = self.name.name.lower().rstrip(b".") if qname is None else qname
        self.client = client
        self.local = local
        self.transport = transport
        self.edns = edns
        self.zone = zone
        self.server = server
        self.message = message
        self.size = size

    hooks = ()
    started = 0.0
    error = None
    response = None

    def add_hook(self, hook):
        """
        Call C{hook(kquery, reply_message, wire)} once the reply is encoded
        (log and metrics need the rcode, flags and size that only the
        server knows).  Hooks added by a wrapper see derived queries' hooks
        too, because derived queries share the list.
        """
        if not self.hooks:
            self.hooks = []
        self.hooks.append(hook)

    @property
    def do(self):
        """The DNSSEC OK bit of the request."""
        return self.edns is not None and self.edns.do

    @property
    def cd(self):
        """The Checking Disabled bit of the request."""
        return bool(self.message is not None and self.message.checkingDisabled)

    def derive(self, name=None, type=None, cls=None):
        """
        A copy asking another name, type or class with the same context.
        """
        new = KdnsQuery.__new__(KdnsQuery)
        new.__dict__.update(self.__dict__)
        if name is not None:
            new.name = dns.Name(name)
            new.qname = new.name.name.lower().rstrip(b".")
        if type is not None:
            new.type = type
        if cls is not None:
            new.cls = cls
        return new

    def __repr__(self):
        return "<KdnsQuery %s %s from %s/%s>" % (
            self.name, dns.QUERY_TYPES.get(self.type, self.type), self.client, self.transport)
