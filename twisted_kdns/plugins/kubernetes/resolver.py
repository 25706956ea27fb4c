# -*- test-case-name: tests.plugins.kubernetes.test_records -*-
"""
The records of the kubernetes plugin: the Kubernetes DNS specification as
CoreDNS's plugin/kubernetes answers it (reference section d).

The structure follows CoreDNS's so that its corner cases come out the same:
L{KubernetesResolver._records} parses the name (parse.go) and finds
services, endpoints or pods (kubernetes.go C{Records}); L{_services} adds
the special names (C{dns-version}, C{ns.dns}); one function per query type
then turns those entries into RRs as plugin/backend_lookup.go does (CNAME
chasing, SRV weights, the additional section).  A name error
(L{_NameError}) becomes NXDOMAIN with the SOA, SERVFAIL before the first
sync, or the next plugin under C{fallthrough}; an empty result is NODATA
with the SOA.

Everything here runs on the reactor thread and reads the L{Store}
directly, so an answer reflects a watch event as soon as it was applied.
"""

import errno
import fcntl
import ipaddress
import math
import socket
import struct

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import dns

from twisted_kdns.errors import DNSRcode, NXDomain, PassToNext, Refused, ServFail
from twisted_kdns.names import is_subdomain, match_zone, ptr_to_ip
from twisted_kdns.response import Response

from twisted_kdns.plugins.kubernetes.store import dashed_ip

log = Logger(namespace="kdns.plugins.kubernetes")

DNS_SCHEMA_VERSION = b"1.1.0"
DNS_VERSION_TTL = 28800
MAX_CNAME_CHAIN = 10
SENTINEL_PORTS = (("", "", -1),)  # CoreDNS's "no ports" placeholder

_A, _AAAA, _CNAME = dns.A, dns.AAAA, dns.CNAME


class _NameError(Exception):
    """
    CoreDNS's errNoItems / errNsNotExposed / errInvalidRequest: the name does
    not exist.  Raise a new instance each time: re-raising one shared
    instance chains every raise's traceback onto it, keeping each query's
    frames (and their locals) alive - about 20 kB leaked per NXDOMAIN.
    """


class Entry(object):
    """
    CoreDNS's msg.Service, reduced: an address (or a CNAME target) with a
    port and the name it lives at.

    @ivar host: canonical IP text, or a target name (C{str}) for CNAMEs.
    @ivar rtype: C{dns.A}, C{dns.AAAA} or C{dns.CNAME}; when not given,
        C{host} is a canonical address from the store and its family is
        told by the colon (no parsing on the query path).
    @ivar key: the owner name relative to the zone (C{bytes}), or C{None}
        for the question's own name.
    """

    __slots__ = ("host", "port", "key", "rtype")

    def __init__(self, host, port, key, rtype=None):
        self.host = host
        self.port = port
        self.key = key
        if rtype is None:
            rtype = _AAAA if ":" in host else _A
        self.rtype = rtype


def host_type(host):
    """Go's C{net.ParseIP(...)}: A, AAAA, or CNAME when it is not an address."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return _CNAME
    if ip.version == 4 or ip.ipv4_mapped is not None:
        return _A
    return _AAAA


class _Upstream(object):
    """An ExternalName target outside the zone: resolved after the fact."""

    __slots__ = ("cname", "target")

    def __init__(self, cname, target):
        self.cname = cname
        self.target = target


def _join(left, zone):
    return left + b"." + zone if zone else left


def _label(raw):
    """A label of the question as text for comparison with API names."""
    return raw.decode("latin-1")


def _strip_underscore(label):
    return label[1:] if label.startswith("_") else label


def _match(a, b):
    return a == b or a.lower() == b.lower()


def _match_port(want_port, port_name, want_proto, proto):
    return (not want_port or _match(want_port, port_name)) and \
        (not want_proto or _match(want_proto, proto))


def interface_ips():
    """
    Non-loopback addresses of this host (CoreDNS C{boundIPs} without
    C{bind}): IPv4 through SIOCGIFADDR per interface, IPv6 from
    /proc/net/if_inet6.  Linux only; elsewhere, none.
    """
    out = []
    try:
        names = [n for _, n in socket.if_nameindex()]
    except OSError:
        names = []
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for name in names:
            try:
                raw = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
            except OSError as e:
                if e.errno not in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.EINVAL):
                    log.debug("SIOCGIFADDR {name}: {err}", name=name, err=e)
                continue
            out.append(socket.inet_ntoa(raw[20:24]))
    finally:
        s.close()
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                hexaddr = line.split()[0]
                out.append(str(ipaddress.IPv6Address(int(hexaddr, 16))))
    except (OSError, ValueError, IndexError):
        pass
    return local_ips(out)


def local_ips(addresses):
    """Canonical, non-loopback, deduplicated (CoreDNS drops loopback)."""
    out = []
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text.split("%")[0])
        except ValueError:
            continue
        if ip.is_loopback or ip.is_unspecified:
            continue
        if str(ip) not in out:
            out.append(str(ip))
    return out


class _Request(object):
    """One question: lower-case name, its spelling, the zone in both forms."""

    __slots__ = ("name", "owner", "zone", "zcase", "qtype", "kquery")

    def __init__(self, kquery, zone):
        self.kquery = kquery
        self.name = kquery.qname
        owner = kquery.name.name.rstrip(b".")
        self.owner = owner
        self.zone = zone
        self.zcase = owner[len(owner) - len(zone):] if zone else b""
        self.qtype = kquery.type


class KubernetesResolver(object):
    """
    The kubernetes terminal resolver for one server block.

    @ivar local_ips: the addresses NS answers are built from (CoreDNS's
        C{localIPs}: the C{bind} addresses, else the interfaces', loopback
        excluded).
    @ivar next: the chain after this plugin, used to resolve ExternalName
        targets outside our zones.
    """

    name = "kubernetes"

    def __init__(self, config, zones, store, reactor, next=None, local=None):
        self.config = config
        self.zones = {z: True for z in zones}
        self.zone_list = list(zones)
        from twisted_kdns.plugins.kubernetes import is_reverse
        self.primary = [z for z in zones if not is_reverse(z)][0]
        self.store = store
        self.reactor = reactor
        self.next = next
        self.ttl = config.ttl
        self.fallthrough = config.fallthrough
        self.namespaces = set(config.namespaces)
        self.pods = config.pods
        self.endpoint_pod_names = config.endpoint_pod_names
        self.ignore_empty = config.ignore_empty_service
        self.local_ips = local_ips(local) if local is not None else []
        self.source = None
        self.bind_context = None
        self._waiting = None  # queries held until the first sync (startup)

    # -- readiness and startup ----------------------------------------------

    def ready(self):
        """Ready once every watched kind has synced (the ready plugin asks)."""
        return self.store.ready()

    def startup_service(self):
        """The IService that holds queries until sync or C{startup_timeout}."""
        return StartupGate(self, self.config.startup_timeout, self.reactor)

    def pod_namespace(self, ip):
        """Namespace of the pod with address C{ip} (autopath), or C{None}."""
        return self.store.pod_namespace(ip)

    def find_local_ips(self):
        """
        CoreDNS's C{boundIPs}: the interfaces' non-loopback addresses, but
        none at all under C{bind} (CoreDNS parses the bind addresses as
        CIDRs, which fails - reference c.14 QUIRK), so NS is NODATA then.
        """
        if self.bind_context is not None and self.bind_context.bind:
            self.local_ips = []
        else:
            self.local_ips = interface_ips()

    def _hold(self):
        self._waiting = []

    def _release(self):
        waiting, self._waiting = self._waiting, None
        for d, kquery, zone in waiting or ():
            self._answer(kquery, zone).chainDeferred(d)

    # -- entry point ----------------------------------------------------------

    def query(self, kquery, timeout=None):
        zone = match_zone(kquery.qname, self.zones)
        if zone is None:
            raise PassToNext(kquery.qname)
        if self._waiting is not None:
            d = defer.Deferred()
            self._waiting.append((d, kquery, zone))
            return d
        return self._answer(kquery, zone)

    def _answer(self, kquery, zone):
        req = _Request(kquery, zone)
        try:
            result = self._lookup(req)
        except _NameError:
            return self._name_error(req)
        except DNSRcode:
            return defer.fail()
        if isinstance(result, defer.Deferred):
            return result.addCallback(self._respond, req)
        return defer.succeed(self._respond(result, req))

    def _respond(self, result, req):
        answers, additional = result
        if not answers:
            return Response((), [self._soa(req)], aa=True, plugin="kubernetes")
        return Response(answers, (), additional, aa=True, plugin="kubernetes")

    def _name_error(self, req):
        if self.fallthrough.through(req.name):
            return defer.fail(PassToNext(req.name))
        soa = [self._soa(req)]
        if not self.store.ready():
            return defer.fail(ServFail(response=Response((), soa, rcode=dns.ESERVER, aa=True,
                                                          plugin="kubernetes")))
        return defer.fail(NXDomain(authority=soa))

    # -- RR builders ----------------------------------------------------------

    def _rr(self, owner, rtype, payload, ttl=None):
        ttl = self.ttl if ttl is None else ttl
        payload.ttl = ttl
        return dns.RRHeader(owner, rtype, dns.IN, ttl, payload, auth=True)

    def _address_rr(self, owner, entry, ttl=None):
        if entry.rtype == _A:
            return self._rr(owner, _A, dns.Record_A(_v4(entry.host)), ttl)
        return self._rr(owner, _AAAA, dns.Record_AAAA(entry.host), ttl)

    def _soa(self, req):
        zone = req.zcase
        ttl = min(self.ttl, 300)
        soa = dns.Record_SOA(mname=_join(b"ns.dns", zone), rname=_join(b"hostmaster", zone),
                             serial=self.store.modified & 0xFFFFFFFF, refresh=7200, retry=1800,
                             expire=86400, minimum=self.ttl, ttl=ttl)
        return dns.RRHeader(zone, dns.SOA, dns.IN, ttl, soa, auth=True)

    # -- per type (backend_lookup.go) ---------------------------------------------

    def _lookup(self, req):
        qtype = req.qtype
        if qtype in (_A, _AAAA):
            items = self._address(req, req.name, req.owner, qtype, ())
            if any(isinstance(i, _Upstream) for i in items):
                return self._upstream(req, items)
            return items, ()
        if qtype == dns.TXT:
            return self._txt(req), ()
        if qtype == _CNAME:
            entries = self._services(req, req.name, _CNAME)
            if entries and entries[0].rtype == _CNAME:
                target = entries[0].host.encode("ascii", "replace")
                return [self._rr(req.owner, _CNAME, dns.Record_CNAME(target))], ()
            return (), ()
        if qtype == dns.PTR:
            return self._ptr(req), ()
        if qtype == dns.SRV:
            return self._srv(req)
        if qtype == dns.SOA:
            if req.name == req.zone:
                return [self._soa(req)], ()
            return (), ()
        if qtype in (dns.AXFR, dns.IXFR):
            raise Refused()
        if qtype == dns.NS and req.name == req.zone:
            return self._ns(req)
        # MX, NS below the apex and every other type: an A lookup decides
        # between NODATA and NXDOMAIN (MX entries are never "mail" here).
        self._services(req, req.name, _A)
        return (), ()

    def _address(self, req, name, owner, qtype, previous):
        """plugin.A / plugin.AAAA: records (and pending upstream CNAMEs)."""
        entries = self._services(req, name, qtype)
        out = []
        seen = set()
        for e in entries:
            if e.rtype == _CNAME:
                target = e.host
                target_b = target.encode("ascii", "replace")
                if target_b.lower() == name:
                    continue  # x CNAME x
                if len(previous) > MAX_CNAME_CHAIN:
                    continue
                pair = (owner.lower(), target_b.lower())
                if pair in previous:
                    continue
                cname = self._rr(owner, _CNAME, dns.Record_CNAME(target_b))
                if is_subdomain(target_b.lower(), req.zone):
                    try:
                        more = self._address(req, target_b.lower(), target_b, qtype, previous + (pair,))
                    except _NameError:
                        more = None
                    if more:
                        out.append(cname)
                        out.extend(more)
                    continue
                out.append(_Upstream(cname, target_b))
            elif e.rtype == qtype and e.host not in seen:
                seen.add(e.host)
                out.append(self._address_rr(owner, e))
        return out

    def _upstream(self, req, items):
        """Resolve out-of-zone CNAME targets: through our other zones, else the next plugins."""
        pending = []
        for item in items:
            if isinstance(item, _Upstream):
                pending.append(self._lookup_elsewhere(req, item))
            else:
                pending.append(defer.succeed([item]))

        def assemble(results):
            answers = []
            for ok, value in results:
                answers.extend(value if ok else ())
            return answers, ()
        return defer.DeferredList(pending, consumeErrors=True).addCallback(assemble)

    def _lookup_elsewhere(self, req, item):
        target = item.target.lower()
        derived = req.kquery.derive(name=item.target, type=req.qtype)
        if match_zone(target, self.zones) is not None:
            d = self.query(derived)
        elif self.next is not None:
            try:
                d = self.next.query(derived)
            except Exception:
                d = defer.fail()
        else:
            return defer.succeed([item.cname])

        def ok(result):
            answers = result[0] if isinstance(result, tuple) else result.answers
            return [item.cname] + list(answers)

        def failed(failure):
            # An NXDOMAIN or SERVFAIL upstream still leaves the CNAME (CoreDNS
            # gets a reply message back and keeps the CNAME).
            return [item.cname]
        return d.addCallbacks(ok, failed)

    def _txt(self, req):
        rel = self._relative(req.name, req.zone)
        if rel == b"dns-version":
            return [self._rr(req.owner, dns.TXT, dns.Record_TXT(DNS_SCHEMA_VERSION), DNS_VERSION_TTL)]
        try:
            found = self._records(req, req.name)
        except _NameError:
            found = None
        if found:
            return ()
        raise _NameError()

    def _srv(self, req):
        entries = self._services(req, req.name, dns.SRV)
        if not entries:
            return (), ()
        # Every entry weighs 100 at priority 0: weight = floor(100 / N), min 1;
        # duplicates dropped afterwards without recomputing (CoreDNS).
        weight = int(math.floor(100.0 / float(100 * len(entries)) * 100))
        weight = max(weight, 1)
        records, extra = [], []
        seen_srv, seen_addr = set(), set()
        for e in entries:
            if e.port == -1 or e.rtype == _CNAME:
                continue
            target = _join(e.key, req.zcase) if e.key is not None else req.owner
            low = target.lower()
            if (low, e.port) not in seen_srv:
                seen_srv.add((low, e.port))
                records.append(self._rr(req.owner, dns.SRV, dns.Record_SRV(0, weight, e.port, target)))
            if (low, e.host) not in seen_addr:
                seen_addr.add((low, e.host))
                extra.append(self._address_rr(target, e))
        return records, extra

    def _ptr(self, req):
        ip = ptr_to_ip(req.name)
        if ip is None:
            self._records(req, req.name)
            return ()
        targets = self._reverse(ip)
        if not targets:
            raise _NameError()
        out, seen = [], set()
        for t in targets:
            if t not in seen:
                seen.add(t)
                out.append(self._rr(req.owner, dns.PTR, dns.Record_PTR(t)))
        return out

    def _ns(self, req):
        records, extra, seen = [], [], set()
        for name, ip in self._ns_addrs(req.zcase):
            entry = Entry(ip, 0, None)
            extra.append(self._address_rr(name, entry))
            if name.lower() not in seen:
                seen.add(name.lower())
                records.append(self._rr(req.owner, dns.NS, dns.Record_NS(name)))
        return records, extra

    # -- Services / Records (kubernetes.go) -----------------------------------

    def _services(self, req, name, qtype):
        """Kubernetes.Services: the entries for C{name}; raises L{_NameError}."""
        if qtype == dns.TXT:
            return self._txt(req)
        zone = req.zone
        if name == _join(b"ns.dns", zone):
            out = []
            for _, ip in self._ns_addrs(req.zcase):
                e = Entry(ip, 0, None)
                if e.rtype == qtype:
                    out.append(e)
            return out
        entries = self._records(req, name)
        if qtype == dns.SRV:
            entries = [e for e in entries if e.rtype != _CNAME]
        return entries

    @staticmethod
    def _relative(name, zone):
        if name == zone:
            return b""
        return name[:len(name) - len(zone) - 1] if zone else name

    def _records(self, req, name):
        """parseRequest + Records: raises L{_NameError} for names that do not exist."""
        base = self._relative(name, req.zone)
        if base in (b"", b"svc", b"pod"):
            return []
        segs = base.split(b".")
        kind = segs[-1]
        if kind not in (b"svc", b"pod"):
            raise _NameError()
        namespace = _label(segs[-2])
        service = _label(segs[-3]) if len(segs) > 2 else ""
        rest = segs[:-3]
        endpoint = port = protocol = ""
        if len(rest) == 1:
            endpoint = _label(rest[0])
        elif len(rest) == 2:
            port = _strip_underscore(_label(rest[0]))
            protocol = _strip_underscore(_label(rest[1]))
        elif len(rest) > 2:
            raise _NameError()
        if name.endswith(b"in-addr.arpa") or name.endswith(b"ip6.arpa"):
            raise _NameError()
        if not self._exposed(namespace):
            raise _NameError()
        if kind == b"pod":
            return self._find_pods(namespace, service)
        return self._find_services(namespace, service, endpoint, port, protocol)

    def _exposed(self, namespace):
        if self.namespaces and namespace not in self.namespaces:
            return False
        return namespace in self.store.namespaces

    def _endpoint_name(self, endpoint, address):
        if endpoint.hostname:
            return endpoint.hostname
        if self.endpoint_pod_names and endpoint.target:
            return endpoint.target
        return dashed_ip(address)

    def _serving(self, endpoint, service):
        return endpoint.ready or (service is not None and service.publish_not_ready)

    def _find_pods(self, namespace, podname):
        if self.pods == "disabled":
            raise _NameError()
        if not podname:
            return []
        if podname.count("-") == 3 and "--" not in podname:
            ip = podname.replace("-", ".")
        else:
            ip = podname.replace("-", ":")
        key = ("%s.%s.pod" % (podname, namespace)).encode("latin-1")
        if self.pods == "insecure":
            rtype = host_type(ip)
            if rtype == _CNAME:
                raise _NameError()
            return [Entry(ip, 0, key, rtype)]
        found = [Entry(ip, 0, key) for p in self.store.pods_by_ip(ip)
                 if p.ip == ip and p.namespace == namespace.lower()]
        if not found:
            raise _NameError()
        return found

    def _find_services(self, namespace, name, endpoint, port, protocol):
        if not name:
            return []
        svc = self.store.service(namespace.lower(), name.lower())
        if svc is None:
            raise _NameError()
        slices = self.store.slices_of(svc.namespace, svc.name)
        if self.ignore_empty and not svc.is_external and not svc.headless:
            if not any(self._serving(ep, svc) for s in slices for ep in s.endpoints):
                raise _NameError()
        base = "%s.%s.svc" % (svc.name, svc.namespace)
        if svc.is_external:
            if endpoint or port or protocol or svc.external_name is None:
                raise _NameError()
            return [Entry(svc.external_name, 0, base.encode("latin-1"), _CNAME)]
        found = False
        out = []
        if svc.headless or endpoint:
            for s in slices:
                ports = s.ports or SENTINEL_PORTS
                for ep in s.endpoints:
                    if not self._serving(ep, svc):
                        continue
                    for addr in ep.addresses:
                        epname = self._endpoint_name(ep, addr)
                        if endpoint and not _match(endpoint, epname):
                            continue
                        key = ("%s.%s" % (epname, base)).encode("latin-1")
                        for pname, pproto, pport in ports:
                            if not _match_port(port, pname, protocol, pproto):
                                continue
                            found = True
                            out.append(Entry(addr, pport, key))
            if not found:
                raise _NameError()
            return out
        key = base.encode("latin-1")
        for pname, pproto, pport in svc.ports or SENTINEL_PORTS:
            if not _match_port(port, pname, protocol, pproto):
                continue
            found = True
            for ip in svc.cluster_ips:
                out.append(Entry(ip, pport, key))
        if not found:
            raise _NameError()
        return out

    # -- reverse and NS (reverse.go, ns.go) -------------------------------------

    def _reverse(self, ip):
        """PTR targets for C{ip}: its service (ClusterIP) or its ready endpoints."""
        store = self.store
        primary = self.primary
        for svc in store.services_by_cluster_ip(ip):
            if self.namespaces and not self._exposed(svc.namespace):
                continue
            return [_join(("%s.%s.svc" % (svc.name, svc.namespace)).encode("latin-1"), primary)]
        out = []
        for s in store.slices_by_ip(ip):
            if s.service is None:
                continue
            if self.namespaces and not self._exposed(s.namespace):
                continue
            svc = store.service(s.namespace, s.service)
            for ep in s.endpoints:
                if not self._serving(ep, svc):
                    continue
                for addr in ep.addresses:
                    if addr == ip:
                        name = "%s.%s.%s.svc" % (self._endpoint_name(ep, addr), s.service, s.namespace)
                        out.append(_join(name.encode("latin-1"), primary))
        return out

    def _ns_addrs(self, zcase):
        """C{(name, ip)} pairs for the NS answer and C{ns.dns.<zone>} (CoreDNS nsAddrs)."""
        store = self.store
        pairs = []
        found = False
        for lip in self.local_ips:
            for s in store.slices_by_ip(lip):
                svc_for = store.service(s.namespace, s.service) if s.service is not None else None
                if not any(lip in ep.addresses and self._serving(ep, svc_for) for ep in s.endpoints):
                    continue
                found = True
                if svc_for is None:
                    continue
                base = ("%s.%s.svc" % (svc_for.name, svc_for.namespace)).encode("latin-1")
                if svc_for.headless:
                    for ep in s.endpoints:
                        if not self._serving(ep, svc_for):
                            continue
                        for addr in ep.addresses:
                            label = self._endpoint_name(ep, addr).encode("latin-1")
                            pairs.append((_join(label + b"." + base, zcase), addr))
                else:
                    for cip in svc_for.cluster_ips:
                        pairs.append((_join(base, zcase), cip))
        if not found:
            pairs = [(_join(b"ns.dns", zcase), ip) for ip in self.local_ips]
        return pairs


def _v4(host):
    if ":" not in host:
        return host
    return str(ipaddress.ip_address(host).ipv4_mapped)  # ::ffff:a.b.c.d asked as a pod name


class StartupGate(Service):
    """
    CoreDNS does not open its ports until the informers synced or
    C{startup_timeout} passed.  We cannot hold the listeners of a shared
    process, so we hold this plugin's queries instead, for the same time,
    and log as CoreDNS does; afterwards an unsynced store answers SERVFAIL
    where it would say NXDOMAIN.
    """

    POLL = 0.1
    LOG_EVERY = 0.5

    def __init__(self, resolver, timeout, reactor):
        self.resolver = resolver
        self.timeout = timeout
        self.reactor = reactor
        self._call = None
        self._started = None
        self._logged = None

    def startService(self):
        Service.startService(self)
        self.resolver.find_local_ips()
        if self.resolver.ready() or self.timeout <= 0:
            return
        self._started = self._logged = self.reactor.seconds()
        self.resolver._hold()
        self.resolver.store.subscribe(self._changed)
        self._call = self.reactor.callLater(self.POLL, self._tick)

    def _changed(self, names):
        if self.resolver.ready():
            self._finish()

    def _tick(self):
        self._call = None
        now = self.reactor.seconds()
        if self.resolver.ready():
            self._finish()
            return
        if now - self._started >= self.timeout:
            log.warn("plugin/kubernetes: starting server with unsynced Kubernetes API")
            self._finish()
            return
        if now - self._logged >= self.LOG_EVERY:
            self._logged = now
            log.info("plugin/kubernetes: waiting for Kubernetes API before starting server")
        self._call = self.reactor.callLater(self.POLL, self._tick)

    def _finish(self):
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self.resolver.store.unsubscribe(self._changed)
        if self.resolver._waiting is not None:
            self.resolver._release()

    def stopService(self):
        self._finish()
        return Service.stopService(self)
