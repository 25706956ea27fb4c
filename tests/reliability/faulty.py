"""
Misbehaving upstream resolvers for the forward fault tests and
bench/faults.py: plain sockets in daemon threads (no reactor), so they also
serve a kdns running in another process.

Modes: C{good} (one A record), C{silent} (reads, never answers), C{slow}
(answers after C{delay} seconds), C{servfail}, C{wrongid} (only replies
with a wrong ID), C{truncate} (TC=1 and no records, over UDP and TCP).
L{dead_port} gives a port where nothing listens (ICMP port unreachable).
"""

import random
import select
import socket
import struct
import threading

A_IP = b"\xc0\x00\x02\x01"  # 192.0.2.1


def dead_port():
    """
    A UDP/TCP port on 127.0.0.1 where nothing listens, chosen below the
    kernel's ephemeral range: a kernel-chosen port could later become the
    source port of forward's own connected socket to it, which would then
    talk to itself.
    """
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError):
        pass
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port below the ephemeral range")


def _question_end(data):
    i = 12
    while i < len(data) and data[i]:
        if data[i] & 0xC0:
            return i + 2 + 4
        i += data[i] + 1
    return i + 1 + 4


def reply(data, mode, tcp=False):
    """The reply bytes this mode sends for query C{data}, or C{None}."""
    if len(data) < 12 or mode == "silent":
        return None
    end = _question_end(data)
    qid = data[:2]
    if mode == "wrongid":
        qid = struct.pack("!H", (struct.unpack("!H", qid)[0] + 1) & 0xFFFF)
    rd = data[2] & 0x01
    if mode == "servfail":
        return qid + bytes([0x80 | rd, 0x82]) + b"\x00\x01\x00\x00\x00\x00\x00\x00" + data[12:end]
    if mode == "truncate":
        return qid + bytes([0x82 | rd, 0x80]) + b"\x00\x01\x00\x00\x00\x00\x00\x00" + data[12:end]
    answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + A_IP
    qtype = data[end - 4:end - 2]
    count = 1 if qtype == b"\x00\x01" else 0
    return qid + bytes([0x80 | rd, 0x80]) + struct.pack("!HHHH", 1, count, 0, 0) + data[12:end] \
        + (answer if count else b"")


class FaultyUpstream(object):
    def __init__(self, mode, delay=2.0):
        self.mode = mode
        self.delay = delay
        self.queries = 0
        for attempt in range(100):  # a port free for both UDP and TCP
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        self.tcp.listen(64)
        self._stop = threading.Event()
        self._timers = []
        self._thread = threading.Thread(target=self._run, daemon=True, name="faulty-%s" % (mode,))

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        for t in self._timers:
            t.cancel()
        self.udp.close()
        self.tcp.close()

    def _send_udp(self, data, addr):
        try:
            self.udp.sendto(data, addr)
        except OSError:
            pass

    def _run(self):
        conns = []
        while not self._stop.is_set():
            ready, _, _ = select.select([self.udp, self.tcp] + conns, [], [], 0.05)
            for s in ready:
                if s is self.udp:
                    data, addr = self.udp.recvfrom(65535)
                    self.queries += 1
                    out = reply(data, self.mode)
                    if out is None:
                        continue
                    if self.mode == "slow":
                        t = threading.Timer(self.delay, self._send_udp, (out, addr))
                        t.daemon = True
                        self._timers = [x for x in self._timers if x.is_alive()] + [t]
                        t.start()
                    else:
                        self._send_udp(out, addr)
                elif s is self.tcp:
                    c, _ = self.tcp.accept()
                    conns.append(c)
                else:
                    try:
                        head = s.recv(2)
                        data = s.recv(struct.unpack("!H", head)[0]) if len(head) == 2 else b""
                    except OSError:
                        data = b""
                    if not data:
                        conns.remove(s)
                        s.close()
                        continue
                    self.queries += 1
                    out = reply(data, self.mode, tcp=True)
                    if out is not None and self.mode != "slow":
                        try:
                            s.sendall(struct.pack("!H", len(out)) + out)
                        except OSError:
                            pass
        for c in conns:
            c.close()
