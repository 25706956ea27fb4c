"""
A tiny stdlib DNS client, used to know when a server is up and to check that
it gives the expected answer before it is measured (a fast wrong answer is
not a result).
"""

import random
import socket
import struct
import time

TYPES = {"A": 1, "AAAA": 28, "PTR": 12, "SRV": 33, "TXT": 16, "HINFO": 13}


def build_query(name, qtype="A", msg_id=None):
    """Wire bytes of a recursive query for C{name}."""
    if msg_id is None:
        msg_id = random.randint(0, 0xFFFF)
    header = struct.pack("!HHHHHH", msg_id, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.strip(".").split(".") if p)
    return header + labels + b"\x00" + struct.pack("!HH", TYPES[qtype], 1)


def _skip_name(data, off):
    while True:
        n = data[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += n + 1


def parse_reply(data):
    """C{(id, rcode, [A/AAAA addresses as text], ancount)} of a reply."""
    msg_id, flags, qd, an, _ns, _ar = struct.unpack_from("!HHHHHH", data)
    off = 12
    for _ in range(qd):
        off = _skip_name(data, off) + 4
    addrs = []
    for _ in range(an):
        off = _skip_name(data, off)
        rtype, _cls, _ttl, rdlen = struct.unpack_from("!HHIH", data, off)
        off += 10
        rdata = data[off:off + rdlen]
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif rtype == 28 and rdlen == 16:
            addrs.append(socket.inet_ntop(socket.AF_INET6, rdata))
        off += rdlen
    return msg_id, flags & 0xF, addrs, an


RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def ask(port, name, qtype="A", timeout=1.0, host="127.0.0.1"):
    """
    One UDP query.  @return: C{(rcode_text, addresses)} or C{None} on timeout.
    """
    query = build_query(name, qtype)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(query, (host, port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = s.recv(65535)
            if len(data) >= 12 and data[:2] == query[:2]:
                _id, rcode, addrs, _an = parse_reply(data)
                return RCODES.get(rcode, str(rcode)), addrs
        return None
    except (socket.timeout, OSError):
        return None
    finally:
        s.close()


def wait_for(port, name, qtype="A", timeout=30.0, alive=lambda: True):
    """
    Query until the server answers anything (or C{timeout}); C{alive()}
    returning false (the process died) stops early.  @return: the answer or None.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        answer = ask(port, name, qtype, timeout=0.5)
        if answer is not None and answer[0] not in ("REFUSED", "SERVFAIL"):
            return answer
        time.sleep(0.1)
    return ask(port, name, qtype, timeout=0.5) if alive() else None
