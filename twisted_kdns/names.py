# -*- test-case-name: tests.test_names -*-
"""
Name helpers shared by the parser and every plugin.

Internally a name is lower-case C{bytes} without the trailing dot; the root is
C{b""}.  C{dns.Name} compares case-insensitively but hashes by case, so it is
never used as a key.
"""

import ipaddress


def normalize(name):
    """Lower-case bytes without trailing dot, from C{str}, C{bytes} or C{dns.Name}."""
    if hasattr(name, "name"):
        name = name.name
    if isinstance(name, str):
        name = name.encode("idna") if not name.isascii() else name.encode("ascii")
    return name.lower().rstrip(b".")


def fqdn(name):
    """C{str} with a trailing dot, for messages and logs (C{"."} for the root)."""
    text = normalize(name).decode("ascii", "replace")
    return text + "."  if text else "."


def is_subdomain(name, zone):
    """C{True} when normalised C{name} equals or lies under normalised C{zone}."""
    if not zone:
        return True
    return name == zone or name.endswith(b"." + zone)


def match_zone(name, zones):
    """
    The longest of C{zones} (a set or dict of normalised names) that contains
    C{name}, or C{None}.  Walks the suffixes of the name, so the cost is the
    number of labels, not the number of zones.
    """
    while True:
        if name in zones:
            return name
        if not name:
            return None
        dot = name.find(b".")
        name = b"" if dot < 0 else name[dot + 1:]


def valid_domain(text):
    """A loose RFC 1035 check used for zone keys: length and label sizes."""
    name = text.rstrip(".")
    if len(name) > 253:
        return False
    if not name:
        return True
    for label in name.split("."):
        if not label or len(label) > 63:
            return False
        if any(c.isspace() or c in "{}()\"\\;@/" for c in label):
            return False
    return True


def reverse_zones(cidr):
    """
    The reverse zones (normalised bytes) covering C{cidr}, split on octet
    (IPv4) or nibble (IPv6) boundaries as CoreDNS does: C{10.0.0.0/15} gives
    C{0.10.in-addr.arpa} and C{1.10.in-addr.arpa}.

    @raise ValueError: not a CIDR.
    """
    net = ipaddress.ip_network(cidr, strict=False)
    step = 8 if net.version == 4 else 4
    boundary = -(-net.prefixlen // step) * step
    zones = []
    for sub in net.subnets(new_prefix=boundary) if boundary > net.prefixlen else [net]:
        labels = sub.network_address.reverse_pointer.split(".")
        # reverse_pointer lists every octet/nibble; keep only the prefix ones.
        keep = boundary // step
        total = 4 if net.version == 4 else 32
        zones.append(".".join(labels[total - keep:]).encode("ascii"))
    return zones


def ptr_to_ip(name):
    """
    The address a PTR name stands for, or C{None} if the name is not a full
    in-addr.arpa / ip6.arpa name.
    """
    if name.endswith(b".in-addr.arpa"):
        parts = name[:-len(b".in-addr.arpa")].split(b".")
        if len(parts) != 4:
            return None
        try:
            return str(ipaddress.IPv4Address(".".join(p.decode() for p in reversed(parts))))
        except ValueError:
            return None
    if name.endswith(b".ip6.arpa"):
        parts = name[:-len(b".ip6.arpa")].split(b".")
        if len(parts) != 32 or any(len(p) != 1 for p in parts):
            return None
        hexdigits = "".join(p.decode() for p in reversed(parts))
        try:
            return str(ipaddress.IPv6Address(int(hexdigits, 16)))
        except ValueError:
            return None
    return None


def ip_to_ptr(ip):
    """The PTR owner name (normalised bytes) of an address string."""
    return ipaddress.ip_address(ip).reverse_pointer.encode("ascii")


class Fallthrough(object):
    """
    CoreDNS's C{fallthrough [ZONES...]}: no option means never, the bare
    option means every name, zones restrict it to names under them.
    """

    __slots__ = ("zones",)

    def __init__(self, zones=None):
        self.zones = zones  # None: never; (): always; tuple: those zones

    @classmethod
    def never(cls):
        return cls(None)

    @classmethod
    def from_args(cls, args):
        """From the option's arguments (zone texts, CIDR shorthand allowed)."""
        zones = []
        for arg in args:
            zones.extend(zone_names(arg))
        return cls(tuple(zones))

    def through(self, name):
        if self.zones is None:
            return False
        if not self.zones:
            return True
        return any(is_subdomain(name, z) for z in self.zones)

    def __repr__(self):
        return "Fallthrough(%r)" % (self.zones,)


def zone_names(text):
    """
    Zone argument(s) inside a plugin (not a server key): a name or a CIDR,
    normalised.  @raise ValueError: not a valid zone.
    """
    if "/" in text:
        return reverse_zones(text)
    if not valid_domain(text):
        raise ValueError("zone is not a valid domain name: %s" % (text,))
    return [normalize(text)]
