"""
forward against real upstreams on loopback: dnsmasq processes, a second
kdns, and small misbehaving UDP servers started by the tests.
"""

import os
import time

from prometheus_client import REGISTRY
from twisted.internet import defer, reactor, task
from twisted.names import dns
from twisted.trial import unittest

from tests.helpers import query, rrset_values, start_server, write_corefile
from tests.reliability.faulty import dead_port
from tests.upstreams import (RecordingUDPServer, SilentUDPServer, TrickyUDPServer, answer_for, free_port,
                             listen_udp, make_cert, start_dnsmasq, start_kdns_upstream,
                             start_tls_relay)
from twisted_kdns.plugins.forward import resolvconf, resolver, transport, wire


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def block(upstreams, options="", extra=""):
    return (".:0 {\n bind 127.0.0.1\n forward . %s {\n%s\n }\n%s}\n"
            % (" ".join(upstreams), options, extra))


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class ForwardBasics(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_answersAndRcodesRelayed(self):
        """An upstream's answer, its AA/RA bits and its NXDOMAIN reach the client unchanged."""
        up = yield start_dnsmasq(self, [("192.0.2.10", "www.a.test")])
        _, port = start_server(self, block([up.address]))
        before = sample("coredns_forward_requests_total", to=up.address)
        reply = yield query(port, "www.a.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.10"])
        self.assertTrue(reply.flags & 0x0080)  # RA from dnsmasq
        self.assertTrue(reply.flags & 0x0400)  # AA: dnsmasq is authoritative for its hosts
        reply = yield query(port, "missing.a.test.", "A", tcp=True)
        self.assertEqual(reply.rcode(), 3)
        self.assertEqual(sample("coredns_forward_requests_total", to=up.address) - before, 2)
        self.assertGreaterEqual(sample("coredns_forward_responses_total", to=up.address, rcode="NXDOMAIN"), 1)
        self.assertGreaterEqual(sample("coredns_proxy_request_duration_seconds_count", proxy_name="forward",
                                       to=up.address, rcode="NOERROR"), 1)

    @defer.inlineCallbacks
    def test_secondKdnsAsUpstream(self):
        """A second kdns serving a hosts zone answers through forward over UDP and TCP."""
        upport = start_kdns_upstream(self, [("10.9.8.7", "db.internal.company.com")])
        _, port = start_server(self, block(["127.0.0.1:%d" % upport]))
        for tcp in (False, True):
            reply = yield query(port, "db.internal.company.com.", "A", tcp=tcp)
            self.assertEqual(rrset_values(reply), ["10.9.8.7"])

    @defer.inlineCallbacks
    def test_udpSocketsReused(self):
        """Many queries share a few long-lived UDP sockets (never a new port per query)."""
        rec = RecordingUDPServer()
        upport = listen_udp(self, rec)
        service, port = start_server(self, block(["127.0.0.1:%d" % upport]))
        yield defer.gatherResults([query(port, "n%d.example." % i, "A") for i in range(30)])
        upstream = service.generation.blocks[0].plugins["forward"].forwards[0].upstreams[0]
        ports = upstream.local_ports()
        self.assertLessEqual(len(ports), 4)
        self.assertGreaterEqual(len(ports), 1)
        self.assertEqual(len(rec.requests), 30)
        self.assertGreater(len({m.id for m in rec.requests}), 20)  # random IDs

    @defer.inlineCallbacks
    def test_preferUdpForTcpClients(self):
        """prefer_udp asks over UDP even for TCP clients (the upstream here only speaks UDP)."""
        rec = RecordingUDPServer("192.0.2.8")
        upport = listen_udp(self, rec)
        _, port = start_server(self, block(["127.0.0.1:%d" % upport], "prefer_udp\n read_timeout 300ms"))
        reply = yield query(port, "p.example.", "A", tcp=True)
        self.assertEqual(rrset_values(reply), ["192.0.2.8"])
        self.assertEqual(len(rec.requests), 1)

    @defer.inlineCallbacks
    def test_ipv6Upstream(self):
        """An [IPv6]:port upstream (a second kdns on ::1) answers over UDP and TCP."""
        _, upport = start_server(self, ".:0 {\n bind ::1\n hosts {\n  10.6.6.6 v6.example.org\n }\n}\n")
        _, port = start_server(self, block(["[::1]:%d" % upport]))
        for tcp in (False, True):
            reply = yield query(port, "v6.example.org.", "A", tcp=tcp)
            self.assertEqual(rrset_values(reply), ["10.6.6.6"])

    @defer.inlineCallbacks
    def test_ednsAndDoPassedUpstream(self):
        """The client's EDNS (as our payload size) and DO bit are passed upstream; no EDNS stays no EDNS."""
        rec = RecordingUDPServer()
        upport = listen_udp(self, rec)
        _, port = start_server(self, block(["127.0.0.1:%d" % upport]))
        yield query(port, "x.example.", "A", use_edns=0, payload=4096, want_dnssec=True)
        yield query(port, "y.example.", "A")
        with_opt, without = rec.requests
        opts = [rr for rr in with_opt.additional if rr.type == 41]
        self.assertEqual(len(opts), 1)
        self.assertTrue(opts[0].ttl & 0x8000)
        self.assertEqual(opts[0].cls, 1232)
        self.assertEqual([rr for rr in without.additional if rr.type == 41], [])
        self.assertNotEqual(with_opt.id, without.id or -1)

    @defer.inlineCallbacks
    def test_mismatchedRepliesIgnored(self):
        """Replies with a wrong ID or another question are ignored; the matching reply is used."""
        tricky = TrickyUDPServer(good_ip="192.0.2.1", bad_ip="203.0.113.66")
        upport = listen_udp(self, tricky)
        _, port = start_server(self, block(["127.0.0.1:%d" % upport]))
        for name in ("a.example.", "b.example.", "c.example."):
            reply = yield query(port, name, "A")
            self.assertEqual(rrset_values(reply), ["192.0.2.1"])
        self.assertEqual(tricky.queries, 3)

    @defer.inlineCallbacks
    def test_truncatedReplyRetriedOverTcp(self):
        """A truncated UDP reply is asked again over TCP; the client gets real records."""
        hosts = [("10.0.%d.%d" % (i // 250, i % 250 + 1), "big.a.test") for i in range(120)]
        up = yield start_dnsmasq(self, hosts)
        _, port = start_server(self, block([up.address]))
        misses = sample("coredns_forward_conn_cache_misses_total", to=up.address, proto="tcp")
        reply = yield query(port, "big.a.test.", "A", tcp=True)
        self.assertEqual(len(rrset_values(reply)), 120)
        self.assertEqual(sample("coredns_forward_conn_cache_misses_total", to=up.address, proto="tcp") - misses, 1)
        reply = yield query(port, "big.a.test.", "A", use_edns=0, payload=1232)
        # dnsmasq's own UDP reply was truncated empty; ours holds what fits in 1232 bytes.
        self.assertTrue(reply.flags & 0x0200)
        self.assertGreater(len(rrset_values(reply)), 50)

    @defer.inlineCallbacks
    def test_forceTcpReusesConnection(self):
        """force_tcp sends UDP clients' queries over one reused TCP connection."""
        up = yield start_dnsmasq(self, [("192.0.2.20", "t.a.test")])
        _, port = start_server(self, block([up.address], "force_tcp"))
        labels = dict(proxy_name="forward", to=up.address, proto="tcp")
        misses = sample("coredns_proxy_conn_cache_misses_total", **labels)
        hits = sample("coredns_proxy_conn_cache_hits_total", **labels)
        for _ in range(3):
            reply = yield query(port, "t.a.test.", "A")
            self.assertEqual(rrset_values(reply), ["192.0.2.20"])
        self.assertEqual(sample("coredns_proxy_conn_cache_misses_total", **labels) - misses, 1)
        self.assertEqual(sample("coredns_proxy_conn_cache_hits_total", **labels) - hits, 2)

    @defer.inlineCallbacks
    def test_idleConnectionsExpire(self):
        """A pooled TCP connection idle longer than expire is closed; the next query dials anew."""
        self.patch(resolvconf, "SWEEP_INTERVAL", 0.05)
        up = yield start_dnsmasq(self, [("192.0.2.21", "e.a.test")])
        service, port = start_server(self, block([up.address], "force_tcp\n expire 100ms"))
        labels = dict(proxy_name="forward", to=up.address, proto="tcp")
        misses = sample("coredns_proxy_conn_cache_misses_total", **labels)
        yield query(port, "e.a.test.", "A")
        pool = service.generation.blocks[0].plugins["forward"].forwards[0].upstreams[0].stream
        self.assertEqual(len(pool.idle), 1)
        yield sleep(0.3)
        self.assertEqual(pool.idle, [])
        reply = yield query(port, "e.a.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.21"])
        self.assertEqual(sample("coredns_proxy_conn_cache_misses_total", **labels) - misses, 2)

    @defer.inlineCallbacks
    def test_exceptPassesToNextPlugin(self):
        """Names under an except zone go to the next plugin (whoami); FROM itself is still forwarded."""
        up = yield start_dnsmasq(self, [("192.0.2.30", "skip.test"), ("192.0.2.31", "x.skip.test")])
        _, port = start_server(self, block([up.address], "except skip.test", extra=" whoami\n"))
        reply = yield query(port, "x.skip.test.", "A")
        self.assertEqual(rrset_values(reply), [])  # whoami: empty answer, address in additional
        self.assertIn("127.0.0.1", " ".join(rrset_values(reply, "additional")))
        reply = yield query(port, "skip.test.", "A")  # the except name itself is excepted too
        self.assertEqual(rrset_values(reply), [])
        self.assertIn("127.0.0.1", " ".join(rrset_values(reply, "additional")))
        reply = yield query(port, "other.skip2.test.", "A")  # a sibling is still forwarded
        self.assertEqual(reply.rcode(), 3)

    @defer.inlineCallbacks
    def test_nextRcodeFallsThrough(self):
        """next NXDOMAIN hands upstream NXDOMAIN answers to the next plugin."""
        up = yield start_dnsmasq(self, [("192.0.2.40", "n.a.test")])
        _, port = start_server(self, block([up.address], "next NXDOMAIN", extra=" whoami\n"))
        reply = yield query(port, "gone.a.test.", "A")
        self.assertEqual(reply.rcode(), 0)
        self.assertIn("127.0.0.1", " ".join(rrset_values(reply, "additional")))
        reply = yield query(port, "n.a.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.40"])


class Policies(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def two(self, policy):
        a = yield start_dnsmasq(self, [("192.0.2.1", "p.a.test")])
        b = yield start_dnsmasq(self, [("192.0.2.2", "p.a.test")])
        _, port = start_server(self, block([a.address, b.address], "policy %s" % policy))
        seen = []
        for _ in range(8 if policy != "random" else 40):
            reply = yield query(port, "p.a.test.", "A")
            seen.extend(rrset_values(reply))
        return seen

    @defer.inlineCallbacks
    def test_sequential(self):
        """policy sequential: the first healthy upstream answers every query."""
        seen = yield self.two("sequential")
        self.assertEqual(set(seen), {"192.0.2.1"})

    @defer.inlineCallbacks
    def test_roundRobin(self):
        """policy round_robin: queries alternate between the upstreams."""
        seen = yield self.two("round_robin")
        self.assertEqual(seen[:4], ["192.0.2.1", "192.0.2.2", "192.0.2.1", "192.0.2.2"])
        self.assertEqual(seen.count("192.0.2.1"), 4)

    @defer.inlineCallbacks
    def test_random(self):
        """policy random (the default): both upstreams get queries (40 tries)."""
        seen = yield self.two("random")
        self.assertEqual(set(seen), {"192.0.2.1", "192.0.2.2"})


class Failures(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_failoverWhenUpstreamDies(self):
        """When the first upstream dies answers continue from the second, and it is marked down."""
        a = yield start_dnsmasq(self, [("192.0.2.1", "f.a.test")])
        b = yield start_dnsmasq(self, [("192.0.2.2", "f.a.test")])
        service, port = start_server(self, block([a.address, b.address],
                                                 "policy sequential\n health_check 100ms"))
        reply = yield query(port, "f.a.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.1"])
        failures = sample("coredns_forward_healthcheck_failures_total", to=a.address)
        a.stop()
        started = time.monotonic()
        reply = yield query(port, "f.a.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.2"])
        self.assertLess(time.monotonic() - started, 1.0)
        yield sleep(0.5)  # a few 100 ms health probes
        self.assertGreaterEqual(sample("coredns_forward_healthcheck_failures_total", to=a.address) - failures, 3)
        fwd = service.generation.blocks[0].plugins["forward"].forwards[0]
        self.assertEqual([u.down() for u in fwd.upstreams], [True, False])
        reply = yield query(port, "f.a.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.2"])

    @defer.inlineCallbacks
    def test_recoveredUpstreamUsedAgain(self):
        """A dead upstream that comes back passes its next health probe and answers again."""
        a = yield start_dnsmasq(self, [("192.0.2.1", "f.a.test")])
        b = yield start_dnsmasq(self, [("192.0.2.2", "f.a.test")])
        service, port = start_server(self, block([a.address, b.address],
                                                 "policy sequential\n health_check 50ms\n max_fails 1"))
        fwd = service.generation.blocks[0].plugins["forward"].forwards[0]
        a.stop()
        reply = yield query(port, "f.a.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.2"])
        yield sleep(0.3)
        self.assertTrue(fwd.upstreams[0].down())
        yield start_dnsmasq(self, [("192.0.2.1", "f.a.test")], port=a.port)
        for _ in range(40):
            if not fwd.upstreams[0].down():
                break
            yield sleep(0.05)
        self.assertEqual(fwd.upstreams[0].fails, 0)
        reply = yield query(port, "f.a.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.1"])

    @defer.inlineCallbacks
    def test_failoverRcode(self):
        """failover NXDOMAIN: an NXDOMAIN from one upstream sends the query to the next one."""
        a = yield start_dnsmasq(self, [("192.0.2.1", "only-a.a.test")])
        b = yield start_dnsmasq(self, [("192.0.2.2", "only-b.a.test")])
        _, port = start_server(self, block([a.address, b.address], "policy sequential\n failover NXDOMAIN"))
        reply = yield query(port, "only-b.a.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.2"])
        reply = yield query(port, "only-a.a.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.1"])
        reply = yield query(port, "neither.a.test.", "A")  # the last upstream's answer is kept
        self.assertEqual(reply.rcode(), 3)

    @defer.inlineCallbacks
    def test_silentUpstreamSkippedWithinTimeout(self):
        """A black-hole upstream costs one read timeout, then the next upstream answers."""
        silent = SilentUDPServer()
        sport = listen_udp(self, silent)
        b = yield start_dnsmasq(self, [("192.0.2.2", "s.a.test")])
        _, port = start_server(self, block(["127.0.0.1:%d" % sport, b.address],
                                           "policy sequential\n read_timeout 300ms"))
        started = time.monotonic()
        reply = yield query(port, "s.a.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.2"])
        self.assertLess(time.monotonic() - started, 1.5)
        self.assertEqual(silent.names.count("s.a.test"), 1)

    @defer.inlineCallbacks
    def test_allDeadServfail(self):
        """Every upstream dead (refusing or silent): SERVFAIL within the timeout budget, no hang."""
        self.patch(resolver, "DEADLINE", 1.0)  # CoreDNS's 5 s, shortened to keep the test fast
        silent = SilentUDPServer()
        sport = listen_udp(self, silent)
        dead = free_port()
        _, port = start_server(self, block(["127.0.0.1:%d" % dead, "127.0.0.1:%d" % sport],
                                           "read_timeout 200ms"))
        started = time.monotonic()
        reply = yield query(port, "d.example.", "A", timeout=3)
        self.assertEqual(reply.rcode(), 2)
        self.assertLess(time.monotonic() - started, 1.3)
        self.assertGreaterEqual(silent.names.count("d.example"), 2)  # a lost datagram is retried
        started = time.monotonic()
        reply = yield query(port, "d.example.", "A", tcp=True, timeout=3)
        self.assertEqual(reply.rcode(), 2)
        self.assertLess(time.monotonic() - started, 1.3)

    @defer.inlineCallbacks
    def test_failfastAllUnhealthy(self):
        """failfast_all_unhealthy_upstreams: once every upstream is down, SERVFAIL without trying."""
        dead = free_port()
        service, port = start_server(self, block(["127.0.0.1:%d" % dead],
                                                 "failfast_all_unhealthy_upstreams\n health_check 50ms\n max_fails 1"))
        reply = yield query(port, "d.example.", "A")
        self.assertEqual(reply.rcode(), 2)
        yield sleep(0.3)
        fwd = service.generation.blocks[0].plugins["forward"].forwards[0]
        self.assertTrue(fwd.upstreams[0].down())
        broken = sample("coredns_forward_healthcheck_broken_total")
        reply = yield query(port, "d.example.", "A")
        self.assertEqual(reply.rcode(), 2)
        self.assertEqual(sample("coredns_forward_healthcheck_broken_total") - broken, 1)

    @defer.inlineCallbacks
    def test_maxConcurrentRefused(self):
        """Beyond max_concurrent in-flight queries the answer is REFUSED, counted in metrics."""
        self.patch(resolver, "DEADLINE", 1.0)  # the slow queries give up after 1 s, not 5
        silent = SilentUDPServer()
        sport = listen_udp(self, silent)
        service, port = start_server(self, block(["127.0.0.1:%d" % sport], "max_concurrent 2\n read_timeout 300ms"))
        rejects = sample("coredns_forward_max_concurrent_rejects_total")
        slow = [query(port, "slow%d.example." % i, "A", timeout=6) for i in range(2)]
        while silent.queries < 2:
            yield sleep(0.02)
        reply = yield query(port, "third.example.", "A")
        self.assertEqual(reply.rcode(), 5)
        self.assertEqual(sample("coredns_forward_max_concurrent_rejects_total") - rejects, 1)
        replies = yield defer.gatherResults(slow)
        self.assertEqual([r.rcode() for r in replies], [2, 2])
        self.assertEqual(service.generation.blocks[0].plugins["forward"].forwards[0].inflight, 0)


class Tls(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_dnsOverTls(self):
        """tls:// upstreams speak DNS over TLS, verify the server name and reuse the connection."""
        up = yield start_dnsmasq(self, [("192.0.2.50", "tls.a.test")])
        cert, key = make_cert(self, "dns.test")
        rport, stats = start_tls_relay(self, cert, key, up.port)
        _, port = start_server(self, block(["tls://127.0.0.1:%d" % rport],
                                           "tls %s\n tls_servername dns.test" % cert))
        for _ in range(3):
            reply = yield query(port, "tls.a.test.", "A")
            self.assertEqual(rrset_values(reply), ["192.0.2.50"])
        self.assertEqual(stats["connections"], 1)
        self.assertEqual(stats["queries"], 3)

    @defer.inlineCallbacks
    def test_wrongServerNameFails(self):
        """A certificate that does not match tls_servername is refused: SERVFAIL, no answer."""
        up = yield start_dnsmasq(self, [("192.0.2.50", "tls.a.test")])
        cert, key = make_cert(self, "dns.test")
        rport, _ = start_tls_relay(self, cert, key, up.port)
        _, port = start_server(self, block(["tls://127.0.0.1:%d" % rport],
                                           "tls %s\n tls_servername other.test\n max_fails 0" % cert))
        reply = yield query(port, "tls.a.test.", "A", timeout=6)
        self.assertEqual(reply.rcode(), 2)


class PerZone(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_seedCorefilePerZoneForwards(self):
        """The seed's three forwards in one block: the longest FROM zone wins, '.' takes the rest."""
        consul = yield start_dnsmasq(self, [("10.0.0.53", "web.service.consul.local")])
        company = start_kdns_upstream(self, [("192.168.1.10", "wiki.internal.company.com")])
        general = yield start_dnsmasq(self, [("192.0.2.99", "www.example.test"),
                                             ("192.0.2.98", "web.service.consul.local")])
        resolv = write_corefile(self, "nameserver 127.0.0.1\n", name="resolv.conf")
        # resolv.conf has no ports: point "." at dnsmasq through a second forward file entry.
        text = (".:0 {\n bind 127.0.0.1\n hosts {\n  10.0.0.100 my-custom-service.local\n  fallthrough\n }\n"
                " forward consul.local %s\n forward internal.company.com 127.0.0.1:%d\n"
                " forward . %s %s\n}\n" % (consul.address, company, general.address, resolv))
        _, port = start_server(self, text)
        reply = yield query(port, "web.service.consul.local.", "A")
        self.assertEqual(rrset_values(reply), ["10.0.0.53"])
        reply = yield query(port, "wiki.internal.company.com.", "A")
        self.assertEqual(rrset_values(reply), ["192.168.1.10"])
        reply = yield query(port, "my-custom-service.local.", "A")
        self.assertEqual(rrset_values(reply), ["10.0.0.100"])
        reply = yield query(port, "www.example.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.99"])


    @defer.inlineCallbacks
    def test_nextFallsToShorterZone(self):
        """A zone forward's 'next NXDOMAIN' hands the name to the '.' forward of the same block."""
        zone = yield start_dnsmasq(self, [("192.0.2.61", "known.corp.test")])
        general = yield start_dnsmasq(self, [("192.0.2.62", "other.corp.test")])
        text = (".:0 {\n bind 127.0.0.1\n forward corp.test %s {\n  next NXDOMAIN\n }\n"
                " forward . %s\n}\n" % (zone.address, general.address))
        _, port = start_server(self, text)
        reply = yield query(port, "known.corp.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.61"])
        reply = yield query(port, "other.corp.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.62"])


class ResolvConfWatch(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_changePickedUp(self):
        """Rewriting the resolv.conf file switches the upstreams without a restart."""
        self.patch(resolvconf, "WATCH_INTERVAL", 0.1)
        a = yield start_dnsmasq(self, [("192.0.2.1", "r.a.test")])
        b = yield start_dnsmasq(self, [("192.0.2.2", "r.a.test")])
        directory = os.path.dirname(write_corefile(self, "", name="placeholder"))
        path = os.path.join(directory, "resolv.conf")
        # Real resolv.conf lines carry no port; ours also reads [IP]:PORT, which lets the
        # test point at dnsmasq on a free port.
        with open(path, "w") as f:
            f.write("nameserver [127.0.0.1]:%d\n" % a.port)
        _, port = start_server(self, block([path]))
        reply = yield query(port, "r.a.test.", "A")
        self.assertEqual(rrset_values(reply), ["192.0.2.1"])
        with open(path + ".new", "w") as f:
            f.write("# switched\nnameserver [127.0.0.1]:%d\n" % b.port)
        os.rename(path + ".new", path)
        deadline = time.monotonic() + 3
        while True:
            yield sleep(0.1)
            reply = yield query(port, "r.a.test.", "A")
            if rrset_values(reply) == ["192.0.2.2"] or time.monotonic() > deadline:
                break
        self.assertEqual(rrset_values(reply), ["192.0.2.2"])


class QueryEchoUDPServer(TrickyUDPServer):
    """For every query: first our answer with QR cleared (looks like a query), then the real one."""

    def datagramReceived(self, data, addr):
        m = dns.Message()
        m.fromStr(data)
        self.queries += 1
        forged = bytearray(answer_for(m, self.bad_ip))
        forged[2] &= 0x7F
        self.transport.write(bytes(forged), addr)
        self.transport.write(answer_for(m, self.good_ip), addr)


class ReplyMatching(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_qrZeroIgnored(self):
        """A datagram with the right ID and question but QR=0 is not taken as the reply; the real reply (QR=1) that follows is."""
        echo = QueryEchoUDPServer(good_ip="192.0.2.1", bad_ip="203.0.113.66")
        upport = listen_udp(self, echo)
        _, port = start_server(self, block(["127.0.0.1:%d" % upport]))
        for name in ("a.example.", "b.example."):
            reply = yield query(port, name, "A")
            self.assertEqual(rrset_values(reply), ["192.0.2.1"])
        self.assertEqual(echo.queries, 2)


class Refusals(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_everyQueryOnRefusedSocketsEnds(self):
        """300 queries at once to a closed port (ICMP port unreachable, sockets refused or closed by the reactor): every one fails with UpstreamError well before its timeout, none is left pending."""
        pool = transport.UDPPool(reactor, "127.0.0.1", dead_port())
        self.addCleanup(pool.close)
        key = transport.question_key(b"refused.example", dns.A, dns.IN)
        request = wire.build_request(b"refused.example", dns.A, dns.IN)
        started = reactor.seconds()
        results = yield defer.DeferredList([pool.query(request, key, 2.0) for _ in range(300)],
                                           consumeErrors=True)
        self.assertEqual([ok for ok, _ in results], [False] * 300)
        self.assertEqual({type(f.value) for _, f in results}, {transport.UpstreamError})
        self.assertLess(reactor.seconds() - started, 1.5)
        self.assertEqual([len(s.pending) for s in pool.sockets], [0] * len(pool.sockets))
