# -*- test-case-name: tests.plugins.test_bind -*-
"""
bind: the addresses (or interfaces) a server block listens on.

C{bind ADDRESS|IFACE... { except ADDRESS|IFACE... }}, repeatable; interface
names expand to their addresses when the configuration is parsed.
"""

import fcntl
import ipaddress
import socket
import struct

from twisted_kdns.plugin import Args

KIND = "server"
ONCE = False


class BindConfig(object):
    def __init__(self, addresses):
        self.addresses = addresses


def interface_addresses(name):
    """IPv4 and IPv6 addresses of interface C{name} (empty when none or unknown)."""
    found = []
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
        found.append(socket.inet_ntoa(packed[20:24]))
    except OSError:
        pass
    finally:
        s.close()
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 6 and fields[5] == name:
                    addr = str(ipaddress.IPv6Address(int(fields[0], 16)))
                    if addr.startswith("fe80"):
                        addr += "%" + name
                    found.append(addr)
    except OSError:
        pass
    return found


def _expand(args, text):
    try:
        return [str(ipaddress.ip_address(text.split("%")[0])) + (("%" + text.split("%")[1]) if "%" in text else "")]
    except ValueError:
        pass
    if text in [n for _, n in socket.if_nameindex()]:
        return interface_addresses(text)
    raise args.error("not a valid IP address or interface name: %s" % (text,))


def parse(directives):
    addresses = []
    for d in directives:
        args = Args(d, "bind")
        values = args.count(1)
        these = []
        for text in values:
            these.extend(_expand(args, text))
        excluded = set()
        for sub in args.block():
            if sub.name != "except":
                raise sub.unknown()
            for text in sub.count(1):
                excluded.update(_expand(sub, text))
        addresses.extend(a for a in these if a not in excluded and a not in addresses)
    return BindConfig(addresses)


def setup(config, ctx, next):
    ctx.bind = list(config.addresses)
    return None
