"""
The CPython + Twisted floor: a C{DatagramProtocol} answering A queries from a
dict of pre-encoded replies, patching only the ID and echoing the question
(so 0x20 case survives).  No EDNS, no plugin chain, no metrics: it is not a
DNS server, it is the cost of receiving and sending a datagram through
Twisted's reactor, i.e. the ceiling any kdns fast path could reach.

  python bench/lib/floor_server.py HOSTS_FILE PORT
"""

import socket
import struct
import sys


def encode_name(name):
    return b"".join(bytes([len(p)]) + p for p in name.split(b".") if p) + b"\x00"


def build(hosts_path, ttl=30):
    """C{{lower-case question bytes: reply bytes after the question}}."""
    table = {}
    with open(hosts_path, "rb") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 2:
                continue
            ip = socket.inet_aton(fields[0].decode())
            for name in fields[1:]:
                question = encode_name(name.lower()) + struct.pack("!HH", 1, 1)
                answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, ttl, 4) + ip
                table[question] = answer
    return table


def main(argv):
    from twisted.internet import reactor
    from twisted.internet.protocol import DatagramProtocol

    table = build(argv[0])

    class Floor(DatagramProtocol):
        noisy = False

        def datagramReceived(self, data, addr):
            question = data[12:]
            answer = table.get(question.lower())
            if answer is None:
                flags, an = b"\x81\x83", b"\x00\x00"  # NXDOMAIN
                answer = b""
            else:
                flags, an = b"\x85\x80", b"\x00\x01"  # QR AA RD RA
            self.transport.write(data[:2] + flags + b"\x00\x01" + an + b"\x00\x00\x00\x00"
                                 + question + answer, addr)

    reactor.listenUDP(int(argv[1]), Floor(), interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
