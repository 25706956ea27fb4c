"""Name helpers: normalisation, zone matching, reverse zones, PTR names, fallthrough."""

from twisted.names import dns
from twisted.trial import unittest

from twisted_kdns import names


class NamesTests(unittest.SynchronousTestCase):
    def test_normalize(self):
        """Names become lower-case bytes without the trailing dot, from str, bytes or dns.Name."""
        self.assertEqual(names.normalize("Example.ORG."), b"example.org")
        self.assertEqual(names.normalize(b"A.b"), b"a.b")
        self.assertEqual(names.normalize(dns.Name(b"WWW.x.")), b"www.x")
        self.assertEqual(names.normalize("."), b"")
        self.assertEqual(names.fqdn(b""), ".")
        self.assertEqual(names.fqdn(b"Ab.c"), "ab.c.")

    def test_matchZoneLongest(self):
        """The longest zone containing the name wins; the root matches everything."""
        zones = {b"": 1, b"example.org": 1, b"sub.example.org": 1}
        self.assertEqual(names.match_zone(b"a.sub.example.org", zones), b"sub.example.org")
        self.assertEqual(names.match_zone(b"example.org", zones), b"example.org")
        self.assertEqual(names.match_zone(b"notexample.org", zones), b"")
        self.assertIsNone(names.match_zone(b"x.net", {b"example.org": 1}))

    def test_isSubdomain(self):
        """Subdomain tests respect label boundaries."""
        self.assertTrue(names.is_subdomain(b"a.example.org", b"example.org"))
        self.assertFalse(names.is_subdomain(b"aexample.org", b"example.org"))
        self.assertTrue(names.is_subdomain(b"anything", b""))

    def test_reverseZones(self):
        """CIDRs give reverse zones split on octet/nibble boundaries."""
        self.assertEqual(names.reverse_zones("10.0.0.0/8"), [b"10.in-addr.arpa"])
        self.assertEqual(names.reverse_zones("192.168.0.0/23"),
                         [b"0.168.192.in-addr.arpa", b"1.168.192.in-addr.arpa"])
        self.assertEqual(names.reverse_zones("2001:db8::/34"),
                         [b"%d.8.b.d.0.1.0.0.2.ip6.arpa" % i for i in range(4)])
        self.assertRaises(ValueError, names.reverse_zones, "nonsense/8")

    def test_ptrNames(self):
        """PTR owner names and addresses convert both ways; partial names are not addresses."""
        self.assertEqual(names.ip_to_ptr("10.0.0.1"), b"1.0.0.10.in-addr.arpa")
        self.assertEqual(names.ptr_to_ip(b"1.0.0.10.in-addr.arpa"), "10.0.0.1")
        ptr6 = names.ip_to_ptr("fd00::101")
        self.assertEqual(names.ptr_to_ip(ptr6), "fd00::101")
        self.assertIsNone(names.ptr_to_ip(b"0.10.in-addr.arpa"))
        self.assertIsNone(names.ptr_to_ip(b"x.0.0.10.in-addr.arpa"))

    def test_fallthrough(self):
        """fallthrough: absent never, bare always, with zones only under them (CIDR allowed)."""
        self.assertFalse(names.Fallthrough.never().through(b"a.example"))
        self.assertTrue(names.Fallthrough.from_args([]).through(b"a.example"))
        ft = names.Fallthrough.from_args(["example.org", "10.0.0.0/8"])
        self.assertTrue(ft.through(b"a.example.org"))
        self.assertTrue(ft.through(b"1.2.3.10.in-addr.arpa"))
        self.assertFalse(ft.through(b"a.example.net"))

    def test_zoneNames(self):
        """Plugin zone arguments are validated."""
        self.assertEqual(names.zone_names("Example.org."), [b"example.org"])
        self.assertRaises(ValueError, names.zone_names, "bad zone")
