"""
Real upstream DNS servers on loopback for the forward and loop tests:
Debian's dnsmasq, a second kdns, tiny misbehaving UDP servers (wrong ID,
silent, recording) and a TLS relay in front of a TCP upstream.

dnsmasq runs with --keep-in-foreground, not --no-daemon: the latter is
debug mode, where TCP connections are served inline and block UDP while
one is open.
"""

import os
import shutil
import socket
import socketserver
import ssl
import struct
import subprocess
import tempfile
import threading
import time

from twisted.internet import protocol, reactor, threads
from twisted.names import dns

from tests.helpers import free_port, require_tool, start_server

DNSMASQ = "/usr/sbin/dnsmasq"


def _probe(port, deadline):
    """Block (in a thread) until something answers DNS on 127.0.0.1:port."""
    q = dns.Message(id=4242, recDes=1)
    q.queries = [dns.Query(b"probe.invalid", dns.A)]
    data = q.toStr()
    while time.monotonic() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.1)
        try:
            s.sendto(data, ("127.0.0.1", port))
            s.recvfrom(4096)
            return True
        except OSError:
            time.sleep(0.02)
        finally:
            s.close()
    raise RuntimeError("upstream on port %d did not start" % (port,))


class Dnsmasq(object):
    """A dnsmasq process answering from a hosts file; C{stop()} kills it."""

    def __init__(self, port, proc, hosts_path):
        self.port = port
        self.proc = proc
        self.hosts_path = hosts_path
        self.address = "127.0.0.1:%d" % (port,)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_dnsmasq(testcase, hosts, extra=(), port=None):
    """
    Start dnsmasq on 127.0.0.1 answering C{hosts} (C{[(ip, name), ...]});
    names under C{test} that are not listed get NXDOMAIN (C{--local}).
    Returns a Deferred firing with a L{Dnsmasq} once it answers.
    """
    require_tool(testcase, "dnsmasq")
    directory = tempfile.mkdtemp(prefix="kdns-dnsmasq-")
    testcase.addCleanup(shutil.rmtree, directory, True)
    hosts_path = os.path.join(directory, "hosts")
    with open(hosts_path, "w") as f:
        for ip, name in hosts:
            f.write("%s %s\n" % (ip, name))
    port = port or free_port()
    cmd = [DNSMASQ, "--keep-in-foreground", "--port=%d" % (port,), "--listen-address=127.0.0.1",
           "--bind-interfaces", "--no-resolv", "--no-hosts", "--addn-hosts=" + hosts_path,
           "--local=/test/", "--user=root", "--group=root", "--pid-file=",
           "--cache-size=0", "--log-facility=" + os.path.join(directory, "log")] + list(extra)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = Dnsmasq(port, proc, hosts_path)
    testcase.addCleanup(server.stop)
    d = threads.deferToThread(_probe, port, time.monotonic() + 5)
    d.addCallback(lambda _: server)
    return d


def start_kdns_upstream(testcase, hosts):
    """A second kdns serving C{hosts} (C{[(ip, name)]}) on a free port; returns the port."""
    lines = "\n".join("  %s %s" % (ip, name) for ip, name in hosts)
    _, port = start_server(testcase, ".:0 {\n bind 127.0.0.1\n hosts {\n%s\n }\n}\n" % (lines,))
    return port


def answer_for(message, ip, msg_id=None, name=None):
    """A reply to C{message} with one A record (optionally another ID or question name)."""
    q = message.queries[0]
    r = dns.Message(id=message.id if msg_id is None else msg_id, answer=1, recDes=message.recDes,
                    recAv=1)
    qname = q.name.name if name is None else name
    r.queries = [dns.Query(qname, q.type, q.cls)]
    r.answers = [dns.RRHeader(qname, dns.A, dns.IN, 60, dns.Record_A(ip, 60))]
    return r.toStr()


class TrickyUDPServer(protocol.DatagramProtocol):
    """
    For every query: first a reply with a wrong ID, then one with the right
    ID but another question (both carrying C{bad_ip}), then the real one.
    """

    def __init__(self, good_ip="192.0.2.1", bad_ip="203.0.113.66"):
        self.good_ip = good_ip
        self.bad_ip = bad_ip
        self.queries = 0

    def datagramReceived(self, data, addr):
        m = dns.Message()
        m.fromStr(data)
        self.queries += 1
        self.transport.write(answer_for(m, self.bad_ip, msg_id=(m.id + 1) & 0xFFFF), addr)
        self.transport.write(answer_for(m, self.bad_ip, name=b"evil.example"), addr)
        self.transport.write(answer_for(m, self.good_ip), addr)


class SilentUDPServer(protocol.DatagramProtocol):
    """Reads queries and never answers (a black hole upstream)."""

    def __init__(self):
        self.queries = 0
        self.names = []

    def datagramReceived(self, data, addr):
        self.queries += 1
        m = dns.Message()
        m.fromStr(data)
        self.names.append(m.queries[0].name.name.decode().lower())


def listen_udp(testcase, proto):
    port = reactor.listenUDP(0, proto, interface="127.0.0.1")
    testcase.addCleanup(port.stopListening)
    return port.getHost().port


def make_cert(testcase, name="dns.test"):
    """A self-signed certificate for C{name} (and 127.0.0.1) via the openssl CLI: C{(cert, key)}."""
    require_tool(testcase, "openssl")
    directory = tempfile.mkdtemp(prefix="kdns-tls-")
    testcase.addCleanup(shutil.rmtree, directory, True)
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=" + name, "-keyout", key, "-out", cert,
                    "-addext", "subjectAltName=DNS:%s,IP:127.0.0.1" % (name,)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


class _Relay(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def start_tls_relay(testcase, cert, key, upstream_port):
    """
    A DNS-over-TLS relay on 127.0.0.1 (threads, stdlib ssl): each framed
    query is passed to 127.0.0.1:upstream_port over TCP.  Returns C{(port, stats)}
    where C{stats["connections"]} counts accepted TLS connections.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    stats = {"connections": 0, "queries": 0}

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            stats["connections"] += 1
            try:
                conn = ctx.wrap_socket(self.request, server_side=True)
            except (ssl.SSLError, OSError):
                return
            conn.settimeout(5)
            try:
                while True:
                    head = _recv_exact(conn, 2)
                    if not head:
                        return
                    body = _recv_exact(conn, struct.unpack("!H", head)[0])
                    stats["queries"] += 1
                    with socket.create_connection(("127.0.0.1", upstream_port), timeout=5) as up:
                        up.sendall(head + body)
                        rhead = _recv_exact(up, 2)
                        rbody = _recv_exact(up, struct.unpack("!H", rhead)[0])
                    conn.sendall(rhead + rbody)
            except (OSError, ssl.SSLError, struct.error, TypeError):
                return
            finally:
                try:
                    conn.close()
                except OSError:
                    pass

    server = _Relay(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def stop():
        server.shutdown()
        server.server_close()
    testcase.addCleanup(stop)
    return server.server_address[1], stats


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class RecordingUDPServer(protocol.DatagramProtocol):
    """Answers every A query with C{ip} and keeps the decoded requests."""

    def __init__(self, ip="192.0.2.7"):
        self.ip = ip
        self.requests = []

    def datagramReceived(self, data, addr):
        m = dns.Message()
        m.fromStr(data)
        self.requests.append(m)
        self.transport.write(answer_for(m, self.ip), addr)


__all__ = ["free_port", "start_dnsmasq", "start_kdns_upstream", "TrickyUDPServer", "SilentUDPServer",
           "RecordingUDPServer", "listen_udp", "make_cert", "start_tls_relay"]
