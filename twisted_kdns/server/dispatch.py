# -*- test-case-name: tests.server.test_dispatch -*-
"""
From request bytes to reply bytes: validation, routing to a server block,
the plugin chain, and mapping outcomes to rcodes and header bits.

Routing follows CoreDNS: the listener's blocks are searched by longest zone
suffix, REFUSED when none matches.  The reply copies the client's question
(so 0x20 case survives), RD and CD; AA/RA/AD come from the L{Response}.
Nothing raised here may escape: a bug becomes SERVFAIL and a log line.
"""

import time

from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import dns
from twisted.python.failure import Failure

from twisted_kdns.errors import DNSRcode, Drop
from twisted_kdns.names import match_zone
from twisted_kdns.query import KdnsQuery
from twisted_kdns.response import Response, as_response
from twisted_kdns.server import wire

log = Logger(namespace="kdns.server")
TYPE_DS = 43  # not among twisted.names.dns constants


def _parent_zone(zone, zones):
    """
    For DS queries CoreDNS keeps walking up and uses the shortest matching
    non-root zone: the DS record lives in the parent, which may be served
    by another block of this listener.
    """
    best = zone
    name = zone
    while name:
        dot = name.find(b".")
        name = b"" if dot < 0 else name[dot + 1:]
        if name and name in zones:
            best = name
    return best


class Dispatcher(object):
    """
    Answers requests for one listener.

    @ivar routes: a zero-argument callable returning C{{zone: BlockRuntime}}
        for this listener in the current generation (a reload swaps it).
    @ivar label: the listener's metrics label, e.g. C{"dns://:53"}.
    """

    def __init__(self, routes, label, local, clock=time.monotonic):
        self.routes = routes
        self.label = label
        self.local = local
        self.clock = clock
        self.observers = []  # callables(kquery or None, reply_message, wire, transport)

    def handle(self, data, client, transport):
        """
        @return: reply C{bytes}, C{None} to send nothing, or a Deferred
            firing with one of those.  Never raises.
        """
        try:
            return self._handle(data, client, transport)
        except Exception:
            log.failure("internal error handling a request from {client}", client=client)
            header = wire.read_header(data)
            if header is None:
                return None
            m = dns.Message(id=header[0], answer=1, rCode=dns.ESERVER)
            return m.toStr()

    def _handle(self, data, client, transport):
        header = wire.read_header(data)
        if header is None or header[1] & 0x80:
            return None  # no header, or a response: never reflect
        try:
            message = wire.decode(data, header)
        except wire.Malformed as e:
            return wire.formerr(e)
        limit = wire.TCP_MAX if transport == "tcp" else 512
        if message.opCode != dns.OP_QUERY:
            return self._bare(message, dns.ENOTIMP, None, limit)
        if len(message.queries) != 1:
            return self._bare(message, dns.EFORMAT, None, limit, question=False)
        try:
            edns = wire.find_edns(message)
        except ValueError:
            return self._bare(message, dns.EFORMAT, None, limit)
        if transport == "udp":
            limit = wire.udp_limit(edns)
        if edns is not None and edns.version > 0:
            return self._bare(message, 0, edns, limit, ext_rcode=wire.BADVERS >> 4)
        q = message.queries[0]
        qname = q.name.name.lower().rstrip(b".")
        zones = self.routes()
        zone = match_zone(qname, zones) if zones else None
        if zone is None:
            return self._bare(message, dns.EREFUSED, edns, limit)
        if q.type == TYPE_DS and zone:
            zone = _parent_zone(zone, zones)
        runtime = zones[zone]
        if runtime.root is None or (q.cls != dns.IN and not runtime.any_class):
            return self._bare(message, dns.EREFUSED, edns, limit)
        kq = KdnsQuery(q.name.name, q.type, q.cls, client=client, transport=transport, edns=edns,
                       zone=zone, server=self.label, local=self.local, message=message,
                       size=len(data), qname=qname)
        kq.started = self.clock()
        try:
            d = runtime.root.query(kq)
        except Exception:
            d = defer.fail(Failure())
        if d.called and not d.paused:
            out = []
            d.addBoth(out.append)
            return self._finish(out[0], kq, message, edns, limit)
        return d.addBoth(self._finish, kq, message, edns, limit)

    def _finish(self, outcome, kq, message, edns, limit):
        try:
            if isinstance(outcome, Failure):
                exc = outcome.value
                if isinstance(exc, Drop):
                    return None
                if isinstance(exc, DNSRcode):
                    response = exc.response
                else:
                    if not isinstance(exc, defer.TimeoutError):
                        log.failure("plugin error for {name} {qtype}", failure=outcome,
                                    name=kq.name, qtype=dns.QUERY_TYPES.get(kq.type, kq.type))
                    response = Response(rcode=dns.ESERVER, aa=False)
                kq.error = outcome
            else:
                response = as_response(outcome)
            # A response that writes its own reply (forward's, from the upstream
            # bytes: plugins/forward/reply.py) gives (reply, bytes) or None.
            encoded = getattr(response, "encoded", None)
            encoded = encoded(kq, message, edns, limit) if encoded is not None else None
            if encoded is not None:
                reply, data = encoded
            else:
                reply = wire.reply_message(
                    message.id, message.opCode, message.recDes, message.checkingDisabled,
                    response.rcode, message.queries, response.answers, response.authority,
                    response.additional, aa=response.aa and response.rcode in (0, 3),
                    ra=response.ra, ad=response.ad and (kq.do or message.authenticData),
                    edns=edns, ext_rcode=response.rcode >> 4)
                data = wire.encode(reply, limit)
            kq.response = response
            for hook in kq.hooks:
                hook(kq, reply, data)
            for observer in self.observers:
                observer(kq, reply, data)
            return data
        except Exception:
            log.failure("internal error encoding the reply for {name}", name=kq.name)
            return wire.reply_message(message.id, message.opCode, message.recDes,
                                      message.checkingDisabled, dns.ESERVER,
                                      message.queries).toStr()

    def _bare(self, message, rcode, edns, limit, ext_rcode=0, question=True):
        """An answer with no records (REFUSED, NOTIMP, FORMERR, BADVERS)."""
        reply = wire.reply_message(message.id, message.opCode, message.recDes,
                                   message.checkingDisabled, rcode,
                                   message.queries if question else (), edns=edns,
                                   ext_rcode=ext_rcode)
        data = wire.encode(reply, limit)
        for observer in self.observers:
            observer(None, reply, data)
        return data
