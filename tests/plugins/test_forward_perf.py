"""
forward's fast reply path (plugins/forward/reply.py) against the full path:
the client's bytes, the reply message hooks see, the records plugins read,
and which upstream replies are rejected, must all be the same.

The full path is the one kdns used before: C{wire.decode_reply} into
Twisted records, C{resolver.to_response}, then the dispatcher's
C{server.wire.reply_message} + C{server.wire.encode}.  Upstream replies are
built with dnspython, whose name compression differs from Twisted's (it
ignores case), so the re-encoding is really exercised.
"""

import random

import dns.flags
import dns.message
import dns.renderer
import dns.rrset
from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest

from tests.helpers import raw_udp, start_server
from twisted_kdns.plugins.forward import reply as fast
from twisted_kdns.plugins.forward import wire
from twisted_kdns.plugins.forward.resolver import MAX_UDP_OFFER, to_response
from twisted_kdns.plugins.forward.transport import parse_reply, question_key, question_wire
from twisted_kdns.query import KdnsQuery
from twisted_kdns.server import wire as server_wire


def rrset(name, ttl, rdtype, *texts):
    return dns.rrset.from_text(name, ttl, "IN", rdtype, *texts)


# name -> (rcode, flags to set, answer, authority, additional); names are asked with 0x20 case.
def _cases():
    soa = rrset("example.org.", 300, "SOA", "ns1.example.org. hostmaster.Example.org. 7 3600 600 86400 60")
    return {
        "a": (0, dns.flags.AA, [rrset("a.example.org.", 30, "A", "192.0.2.1")], [], []),
        "multi": (0, 0, [rrset("multi.example.org.", 30, "A", "192.0.2.1", "192.0.2.2", "192.0.2.3")], [], []),
        "aaaa": (0, 0, [rrset("aaaa.example.org.", 30, "AAAA", "2001:db8::1")], [], []),
        "cname": (0, dns.flags.AD, [rrset("cname.example.org.", 30, "CNAME", "Web.Example.org."),
                                    rrset("Web.Example.org.", 30, "CNAME", "web.example.net."),
                                    rrset("web.example.net.", 30, "A", "192.0.2.9")], [], []),
        "mx": (0, 0, [rrset("mx.example.org.", 30, "MX", "10 mail.example.org.", "20 MAIL.example.org.")],
               [rrset("example.org.", 300, "NS", "ns1.example.org.", "ns2.other.test.")],
               [rrset("mail.example.org.", 30, "A", "192.0.2.25"),
                rrset("ns1.example.org.", 30, "AAAA", "2001:db8::53")]),
        "srv": (0, 0, [rrset("srv.example.org.", 30, "SRV", "1 2 5060 sip.srv.example.org.")], [], []),
        "txt": (0, 0, [rrset("txt.example.org.", 30, "TXT", '"hello world" "x"', '""')], [], []),
        "ptr": (0, 0, [rrset("ptr.example.org.", 30, "PTR", "host.example.org.")], [], []),
        "dname": (0, 0, [rrset("dname.example.org.", 30, "DNAME", "example.net.")], [], []),
        "caa": (0, 0, [rrset("caa.example.org.", 30, "CAA", '0 issue "letsencrypt.org"')], [], []),
        "unknown": (0, 0, [rrset("unknown.example.org.", 30, "TYPE65280", r"\# 3 010203")], [], []),
        "rp": (0, 0, [rrset("rp.example.org.", 30, "RP", "admin.example.org. info.example.org.")], [], []),
        "nxdomain": (3, dns.flags.AA, [], [soa], []),
        "nodata": (0, 0, [], [soa], []),
        "servfail": (2, 0, [], [], []),
        "refused": (5, 0, [], [], []),
        "badvers": (16, 0, [], [], []),
        "bigsoa": (3, 0, [], [rrset("example.org.", 300, "SOA", "a.example.org. b.example.org. 1 3000000000 1 1 1")],
                   []),
        "topttl": (0, 0, [rrset("topttl.example.org.", 2 ** 31 + 5, "A", "192.0.2.7")], [], []),
        "big": (0, 0, [rrset("big.example.org.", 30, "TXT", *['"%s%d"' % ("x" * 200, i) for i in range(6)])], [], []),
    }


CASES = _cases()
FAST_NAMES = sorted(set(CASES) - {"rp", "bigsoa"})  # what the fast path must take (with room)


def client_request(name, rdtype="A", edns=True, do=False, cd=False, ad=False, payload=1232):
    """The client's request as the dispatcher decodes it, and its KdnsQuery."""
    q = dns.message.make_query(name, rdtype, use_edns=0 if edns else False, payload=payload,
                               want_dnssec=do)
    if cd:
        q.flags |= dns.flags.CD
    if ad:
        q.flags |= dns.flags.AD
    data = q.to_wire()
    message = server_wire.decode(data, server_wire.read_header(data))
    found = server_wire.find_edns(message)
    qq = message.queries[0]
    kq = KdnsQuery(qq.name.name, qq.type, qq.cls, edns=found, message=message, size=len(data))
    return message, found, kq


def upstream_request(kq):
    payload = None if kq.edns is None else max(512, min(kq.edns.payload, MAX_UDP_OFFER))
    return wire.build_request(kq.name.name, kq.type, kq.cls, rd=bool(kq.message.recDes), cd=kq.cd,
                              payload=payload, do=kq.do, msg_id=4242)


def upstream_reply(request, case):
    """What an upstream (dnspython's encoder) answers for C{case}."""
    rcode, flags, answer, authority, additional = CASES[case]
    q = dns.message.from_wire(request)
    r = dns.message.make_response(q)
    r.flags |= flags | dns.flags.RA
    r.set_rcode(rcode)
    # Rendered by hand: dnspython's Message.to_wire shuffles the records of an rrset.
    out = dns.renderer.Renderer(r.id, r.flags, 65535)
    question = q.question[0]
    out.add_question(question.name, question.rdtype, question.rdclass)
    for section, rrsets in ((dns.renderer.ANSWER, answer), (dns.renderer.AUTHORITY, authority),
                            (dns.renderer.ADDITIONAL, additional)):
        for rs in rrsets:
            out.add_rrset(section, rs, want_shuffle=False)
    if r.edns >= 0:
        out.add_edns(r.edns, r.ednsflags, r.payload)
    out.write_header()
    return out.get_wire()


def full_path(data, kq, message, edns, limit):
    """Before the fast path: eager decode, then the dispatcher's reply message and encoding."""
    response = to_response(wire.decode_reply(data))
    reply = server_wire.reply_message(
        message.id, message.opCode, message.recDes, message.checkingDisabled, response.rcode,
        message.queries, response.answers, response.authority, response.additional,
        aa=response.aa and response.rcode in (0, 3), ra=response.ra,
        ad=response.ad and (kq.do or message.authenticData), edns=edns, ext_rcode=response.rcode >> 4)
    return response, reply, server_wire.encode(reply, limit)


def fast_response(data, kq):
    request = upstream_request(kq)
    got = parse_reply(data, question_key(kq.name.name, kq.type, kq.cls), question_wire(request))
    return to_response(got, kq, fast.question_template(kq.name.name, kq.type, kq.cls))


def name_for(case, variant):
    """0x20-style case changes, so the client's question differs in case from the records."""
    name = "%s.example.org." % (case,)
    return name.upper() if variant % 2 else name.capitalize()


VARIANTS = [dict(edns=True), dict(edns=False), dict(edns=True, do=True), dict(edns=True, cd=True, ad=True),
            dict(edns=True, do=True, payload=4096), dict(edns=True, payload=600)]


class SameBytes(unittest.SynchronousTestCase):

    def check(self, case, variant, kw, expect_fast=None):
        message, edns, kq = client_request(name_for(case, variant), "A", **kw)
        data = upstream_reply(upstream_request(kq), case)
        limit = server_wire.udp_limit(edns)
        try:
            full_response, full_reply, full_bytes = full_path(data, kq, message, edns, limit)
        except Exception:
            # Twisted cannot encode it (an SOA timer over 2^31): the dispatcher answers SERVFAIL.
            full_response, full_reply, full_bytes = to_response(wire.decode_reply(data)), None, None
        response = fast_response(data, kq)
        got = response.encoded(kq, message, edns, limit) if hasattr(response, "encoded") else None
        if expect_fast is not None:
            self.assertEqual(got is not None, expect_fast, (case, kw))
        if full_bytes is None:
            self.assertIsNone(got)
        if got is not None:
            reply, wire_bytes = got
            self.assertEqual(wire_bytes, full_bytes, (case, kw))
            # The message hooks see: header now, sections on first read.
            for attr in ("id", "answer", "opCode", "auth", "trunc", "recDes", "recAv", "rCode",
                         "authenticData", "checkingDisabled", "maxSize"):
                self.assertEqual(getattr(reply, attr), getattr(full_reply, attr), (case, attr))
            self.assertEqual(len(reply.additional), len(full_reply.additional))
            self.assertEqual(reply.toStr(), full_reply.toStr(), case)
            self.assertEqual(reply, full_reply)
        # Records read lazily are the eager ones; once read, the fast path steps aside.
        for section in ("answers", "authority", "additional"):
            self.assertEqual(getattr(response, section), getattr(full_response, section), (case, section))
        self.assertEqual((response.rcode, response.aa, response.ra, response.ad, response.plugin),
                         (full_response.rcode, full_response.aa, full_response.ra, full_response.ad,
                          full_response.plugin))
        if hasattr(response, "encoded"):
            self.assertIsNone(response.encoded(kq, message, edns, limit))
        return got

    def test_onceAndNoCycle(self):
        """The reply is written once; afterwards the response no longer refers to its query (no GC cycle)."""
        import gc
        import weakref
        message, edns, kq = client_request("a.example.org.")
        response = fast_response(upstream_reply(upstream_request(kq), "a"), kq)
        self.assertIsNotNone(response.encoded(kq, message, edns, 1232))
        self.assertIsNone(response.encoded(kq, message, edns, 1232))
        kq.response = response  # what the dispatcher does next
        ref = weakref.ref(kq)
        gc.disable()
        try:
            del kq, message, response
            self.assertIsNone(ref())  # freed by reference counting alone
        finally:
            gc.enable()

    def test_everyRecordType(self):
        """Each record type, rcode and client flag mix gives the full path's bytes, header and records."""
        for case in sorted(CASES):
            for variant, kw in enumerate(VARIANTS):
                limit = server_wire.udp_limit(client_request("x.", **kw)[1])
                big = case == "big" and limit < 1300
                self.check(case, variant, kw, expect_fast=(case in FAST_NAMES and not big))

    def test_derivedQueryTakesFullPath(self):
        """A query derived by a wrapper (rewrite, autopath) never gets the upstream's bytes."""
        message, edns, kq = client_request("A.example.org.")
        response = fast_response(upstream_reply(upstream_request(kq), "a"), kq)
        self.assertIsNone(response.encoded(kq.derive(name=b"other.example.org"), message, edns, 1232))
        self.assertIsNotNone(response.encoded(kq, message, edns, 1232))

    def test_replaceGivesPlainResponse(self):
        """A wrapper's replace() copy carries the records and cannot write the upstream's bytes."""
        message, edns, kq = client_request("multi.example.org.")
        response = fast_response(upstream_reply(upstream_request(kq), "multi"), kq)
        copy = response.replace(answers=list(reversed(response.answers)))
        self.assertFalse(hasattr(copy, "encoded"))
        self.assertEqual(len(copy.answers), 3)
        self.assertEqual(response.ancount, 3)


class SameRejections(unittest.SynchronousTestCase):

    def outcomes(self, data, kq):
        """(old, new): None when ignored, else the client's bytes by each path."""
        request = upstream_request(kq)
        key = question_key(kq.name.name, kq.type, kq.cls)
        message, edns = kq.message, kq.edns
        old = None
        if len(data) >= 12 and data[2] & 0x80:
            try:
                _id, name, qtype, qcls, _ = wire.question(data)
                if (name.lower(), qtype, qcls) == key:
                    old = full_path(data, kq, message, edns, 65535)[2]
            except (wire.BadMessage, ValueError, IndexError):
                old = None
            except Exception:
                old = "error"  # the full path would have failed encoding: compare only acceptance
        got = parse_reply(data, key, question_wire(request))
        if got is None:
            return old, None
        response = to_response(got, kq)
        enc = response.encoded(kq, message, edns, 65535) if hasattr(response, "encoded") else None
        if enc is None:
            try:
                new = server_wire.encode(server_wire.reply_message(
                    message.id, message.opCode, message.recDes, message.checkingDisabled, response.rcode,
                    message.queries, response.answers, response.authority, response.additional,
                    aa=response.aa and response.rcode in (0, 3), ra=response.ra,
                    ad=response.ad and (kq.do or message.authenticData), edns=edns,
                    ext_rcode=response.rcode >> 4), 65535)
            except Exception:
                new = "error"
        else:
            new = enc[1]
        return old, new

    def test_cutAndMutatedReplies(self):
        """Cut at every length, and 1,500 random byte changes: same accept/ignore decision, same bytes."""
        rng = random.Random(8)
        accepted = 0
        for case in ("mx", "cname", "nxdomain", "txt", "srv"):
            message, edns, kq = client_request(name_for(case, 0), edns=True)
            data = upstream_reply(upstream_request(kq), case)
            samples = [data[:n] for n in range(len(data))]
            for _ in range(300):
                b = bytearray(data)
                for _k in range(rng.randint(1, 3)):
                    pos = rng.randrange(2, len(b))
                    b[pos] = rng.choice((0, 0xC0, 0x3F, 0x40, rng.randrange(256)))
                samples.append(bytes(b))
            tc = bytearray(data)
            tc[2] |= 0x02
            samples += [bytes(tc[:n]) for n in range(12, len(tc))]
            for sample in samples:
                old, new = self.outcomes(sample, kq)
                self.assertEqual(old, new, (case, sample.hex()))
                accepted += old is not None
        self.assertGreater(accepted, 500)


class CannedUpstream(protocol.DatagramProtocol):
    """Answers every query with the reply of the case named by its first label."""

    def datagramReceived(self, data, addr):
        case = dns.message.from_wire(data).question[0].name.labels[0].decode().lower()
        self.transport.write(upstream_reply(data, case if case in CASES else "a"), addr)


class EndToEnd(unittest.TestCase):
    timeout = 20

    @defer.inlineCallbacks
    def test_sameBytesOverSockets(self):
        """Through a real server, the fast path's reply equals the full path's (switched off) but for the ID."""
        port = reactor.listenUDP(0, CannedUpstream(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        _, kport = start_server(self, ".:0 {\n bind 127.0.0.1\n forward . 127.0.0.1:%d\n}\n"
                                % (port.getHost().port,))
        compared = 0
        cases = sorted(set(CASES) - {"bigsoa"})  # Twisted cannot encode it either way (SERVFAIL, logged)
        for case in cases:
            for variant, kw in enumerate(VARIANTS[:4]):
                q = dns.message.make_query(name_for(case, variant), "A", use_edns=0 if kw["edns"] else False,
                                           want_dnssec=kw.get("do", False))
                got = {}
                for enabled in (True, False):
                    fast.ENABLED = enabled
                    try:
                        got[enabled] = yield raw_udp(kport, q.to_wire())
                    finally:
                        fast.ENABLED = True
                self.assertIsNotNone(got[True], case)
                self.assertEqual(got[True][2:], got[False][2:], (case, kw))
                self.assertEqual(got[True][:2], q.to_wire()[:2])
                compared += 1
        self.assertEqual(compared, len(cases) * 4)


class Timeouts(unittest.SynchronousTestCase):
    """The per-socket timer (one callLater for all queries) fails each query at its own deadline."""

    def test_eachAtItsDeadline(self):
        """Mixed timeouts (later queries with shorter ones, as forward's last attempt and probes) expire on time."""
        from twisted.internet.task import Clock
        from twisted_kdns.plugins.forward.transport import UpstreamTimeout, _Outstanding
        clock = Clock()
        out = _Outstanding(clock)
        failed, answered = [], []
        ids = {}
        for name, timeout in (("a", 2.0), ("b", 2.0), ("c", 1.0), ("d", 2.0), ("e", 0.5), ("f", 3.0)):
            ids[name] = out.expect(answered.append, lambda exc, n=name: failed.append((n, clock.seconds(), exc)),
                                   None, None, timeout)
            clock.advance(0.1)
        # "b" is answered before its deadline: it never fails.
        self.assertIsNotNone(out._forget(ids["b"]))
        clock.advance(0.4)  # t=1.0: "e" (sent at 0.4 with 0.5 s) is due at 0.9
        self.assertEqual([(n, round(t, 2)) for n, t, _ in failed], [("e", 1.0)])
        for t in (1.2, 2.0, 2.3, 3.5):
            clock.advance(t - clock.seconds())
        self.assertEqual([n for n, _, _ in failed], ["e", "c", "a", "d", "f"])
        self.assertTrue(all(isinstance(exc, UpstreamTimeout) for _, _, exc in failed))
        self.assertEqual(out.pending, {})
        self.assertEqual(clock.getDelayedCalls(), [])
        times = {n: round(t, 2) for n, t, _ in failed}
        self.assertEqual(times, {"e": 1.0, "c": 1.2, "a": 2.0, "d": 2.3, "f": 3.5})

    def test_exactDeadlines(self):
        """With a clock stepping in small increments, no query fails before or later than its deadline."""
        from twisted.internet.task import Clock
        from twisted_kdns.plugins.forward.transport import _Outstanding
        clock = Clock()
        out = _Outstanding(clock)
        rng = random.Random(3)
        due = {}
        failed = {}
        for i in range(200):
            timeout = rng.choice((2.0, 2.0, 2.0, 1.0, 0.25, rng.uniform(0.01, 3)))
            msg_id = out.expect(None, lambda exc, i=i: failed.__setitem__(i, clock.seconds()), None, None, timeout)
            due[i] = clock.seconds() + timeout
            if rng.random() < 0.3:
                out._forget(msg_id)
                del due[i]
            clock.advance(rng.uniform(0, 0.01))
        while clock.getDelayedCalls():
            clock.advance(0.01)
        self.assertEqual(set(failed), set(due))
        for i, t in failed.items():
            self.assertGreaterEqual(t + 1e-9, due[i])
            self.assertLess(t, due[i] + 0.0101)
