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


_RTM_NEWADDR, _RTM_GETADDR, _NLMSG_DONE, _NLMSG_ERROR = 20, 22, 3, 2
_IFA_ADDRESS, _IFA_LOCAL = 1, 2


def _netlink_ipv4(index):
    """
    Every IPv4 address of interface C{index} from an RTM_GETADDR dump
    (secondary addresses included, which SIOCGIFADDR does not show).

    @raise OSError: netlink is not available.
    """
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    try:
        s.settimeout(2)
        s.send(struct.pack("=IHHII", 24, _RTM_GETADDR, 0x301, 1, 0)  # NLM_F_REQUEST | NLM_F_DUMP
               + struct.pack("=BBBBI", socket.AF_INET, 0, 0, 0, 0))
        found = []
        while True:
            data = s.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if length < 16 or kind == _NLMSG_DONE:
                    return found
                if kind == _NLMSG_ERROR:
                    raise OSError("netlink error")
                if kind == _RTM_NEWADDR:
                    family, _, _, _, ifindex = struct.unpack_from("=BBBBI", data, offset + 16)
                    attrs, local, address = offset + 24, None, None
                    while attrs + 4 <= offset + length:
                        alen, atype = struct.unpack_from("=HH", data, attrs)
                        if alen < 4:
                            break
                        if atype in (_IFA_LOCAL, _IFA_ADDRESS) and alen == 8:
                            text = socket.inet_ntoa(data[attrs + 4:attrs + 8])
                            if atype == _IFA_LOCAL:
                                local = text
                            else:
                                address = text
                        attrs += (alen + 3) & ~3
                    if family == socket.AF_INET and ifindex == index and (local or address):
                        found.append(local or address)
                offset += (length + 3) & ~3
    finally:
        s.close()


def interface_addresses(name):
    """IPv4 and IPv6 addresses of interface C{name} (empty when none or unknown)."""
    found = []
    try:
        found.extend(_netlink_ipv4(socket.if_nametoindex(name)))
    except OSError:
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
