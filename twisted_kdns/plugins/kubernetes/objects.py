# -*- test-case-name: tests.plugins.kubernetes.test_objects -*-
"""
Slim records of the Kubernetes objects DNS needs, and L{convert} from the
API's JSON to them.

Why: a cluster of 10,000 Services and 50,000 Pods must fit in about 114 MB
of process memory, so we never keep the client's model objects (or the raw
dicts): each record has C{__slots__} and holds only the fields CoreDNS keeps
(reference d.2).  Repeated strings (namespace and service names) are
interned.  L{convert} never raises: a malformed object gives C{None}, a bad
address or port is dropped.

Both sources (the API watcher and the manifests loader) call L{convert} on
the JSON dict of an object - a LIST item or a watch event's C{object}.
"""

import ipaddress
import sys

KINDS = ("namespaces", "services", "endpointslices", "pods")

_intern = sys.intern


def _str(value):
    return value if isinstance(value, str) and value else None


def _meta(raw):
    """C{(name, namespace, resourceVersion)} or C{None} without a name."""
    meta = raw.get("metadata")
    if not isinstance(meta, dict):
        return None
    name = _str(meta.get("name"))
    if name is None:
        return None
    namespace = _str(meta.get("namespace")) or "default"
    rv = meta.get("resourceVersion")
    rv = str(rv) if isinstance(rv, (str, int)) else ""
    return name.lower(), _intern(namespace.lower()), rv


def canonical_ip(text):
    """The canonical text form of an address, or C{None} if it is not one."""
    if not isinstance(text, str) or not text or "%" in text:
        return None  # a scoped IPv6 ("fe80::1%eth0") is no address to Go's ParseIP either
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _ports(raw_ports, missing=None):
    """
    C{((name, PROTOCOL, port), ...)}: names lower-cased, unnamed -> C{""}.
    An entry without a port is dropped, or kept with port C{missing} (-1
    for EndpointSlices, as CoreDNS keeps them: they count in SRV weights).
    """
    out = []
    if not isinstance(raw_ports, list):
        return ()
    for p in raw_ports:
        if not isinstance(p, dict):
            continue
        port = p.get("port")
        if port is None and missing is not None:
            port = missing
        elif isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            continue
        name = p.get("name")
        name = _intern(name.lower()) if isinstance(name, str) else ""
        proto = p.get("protocol")
        proto = _intern(proto.upper()) if isinstance(proto, str) and proto else "TCP"
        out.append((name, proto, port))
    return tuple(out)


class _Record(object):
    __slots__ = ()

    @property
    def key(self):
        return self.namespace + "/" + self.name

    def _fields(self):
        """What DNS sees: every field but the resourceVersion."""
        return tuple(getattr(self, s) for s in self.__slots__ if s != "resource_version")

    def __eq__(self, other):
        return type(self) is type(other) and self._fields() == other._fields()

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = None

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, ", ".join(
            "%s=%r" % (s, getattr(self, s)) for s in self.__slots__))


class Namespace(_Record):
    """A namespace: it "exists" for DNS only while it is in the store."""

    __slots__ = ("name", "resource_version")

    def __init__(self, name, resource_version=""):
        self.name = name
        self.resource_version = resource_version

    @property
    def key(self):
        return self.name


class Service(_Record):
    """
    @ivar type: C{spec.type} (C{ClusterIP}, C{NodePort}, C{LoadBalancer},
        C{ExternalName}).
    @ivar cluster_ips: canonical addresses (dual stack: both families);
        empty for headless and ExternalName services.
    @ivar headless: C{clusterIP: None}.
    @ivar external_name: lower-case target of an ExternalName service,
        without trailing dot; C{None} otherwise or when it is an IP literal
        (CoreDNS ignores such services).
    @ivar ports: C{((name, PROTOCOL, port), ...)} (service ports).
    @ivar publish_not_ready: C{spec.publishNotReadyAddresses}.
    """

    __slots__ = ("name", "namespace", "resource_version", "type", "cluster_ips", "headless",
                 "external_name", "ports", "publish_not_ready")

    def __init__(self, name, namespace, resource_version="", type="ClusterIP", cluster_ips=(),
                 headless=False, external_name=None, ports=(), publish_not_ready=False):
        self.name = name
        self.namespace = namespace
        self.resource_version = resource_version
        self.type = type
        self.cluster_ips = tuple(cluster_ips)
        self.headless = headless
        self.external_name = external_name
        self.ports = tuple(ports)
        self.publish_not_ready = publish_not_ready

    @property
    def is_external(self):
        return self.type == "ExternalName"


class Endpoint(object):
    """
    One endpoint of a slice.

    @ivar addresses: canonical IPs.
    @ivar ready: C{conditions.ready} (absent counts as ready).
    @ivar hostname: C{hostname} or C{None}.
    @ivar target: the targetRef Pod's name when shorter than 64 characters.
    @ivar node: C{nodeName} or C{None}.
    """

    __slots__ = ("addresses", "ready", "hostname", "target", "node")

    def __init__(self, addresses, ready=True, hostname=None, target=None, node=None):
        self.addresses = tuple(addresses)
        self.ready = ready
        self.hostname = hostname
        self.target = target
        self.node = node

    def _fields(self):
        return (self.addresses, self.ready, self.hostname, self.target, self.node)

    def __eq__(self, other):
        return type(self) is type(other) and self._fields() == other._fields()

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = None

    def __repr__(self):
        return "<Endpoint %r ready=%s hostname=%r target=%r>" % (
            self.addresses, self.ready, self.hostname, self.target)


class EndpointSlice(_Record):
    """
    @ivar service: the C{kubernetes.io/service-name} label (C{None}: the
        slice belongs to no service and is never served).
    @ivar ports: C{((name, PROTOCOL, port), ...)} (target ports).
    @ivar endpoints: tuple of L{Endpoint}.
    """

    __slots__ = ("name", "namespace", "resource_version", "service", "ports", "endpoints")

    def __init__(self, name, namespace, resource_version="", service=None, ports=(), endpoints=()):
        self.name = name
        self.namespace = namespace
        self.resource_version = resource_version
        self.service = service
        self.ports = tuple(ports)
        self.endpoints = tuple(endpoints)

    @property
    def service_key(self):
        return None if self.service is None else self.namespace + "/" + self.service

    def addresses(self):
        """Every address of the slice (ready or not)."""
        return [a for e in self.endpoints for a in e.addresses]


class Pod(_Record):
    """
    @ivar ip: canonical C{status.podIP}; C{None} while it has none or once
        its phase is Succeeded, Failed or Unknown (CoreDNS's field selector
        excludes those) - such a pod answers nothing.
    @ivar terminating: C{metadata.deletionTimestamp} is set.  CoreDNS skips
        such add/update events (the pod keeps its last state until it is
        deleted); the store does the same.
    """

    __slots__ = ("name", "namespace", "resource_version", "ip", "terminating")

    def __init__(self, name, namespace, resource_version="", ip=None, terminating=False):
        self.name = name
        self.namespace = namespace
        self.resource_version = resource_version
        self.ip = ip
        self.terminating = terminating


_DEAD_PHASES = ("Succeeded", "Failed", "Unknown")


def _namespace(raw):
    meta = raw.get("metadata")
    if not isinstance(meta, dict) or not _str(meta.get("name")):
        return None
    rv = meta.get("resourceVersion")
    return Namespace(_intern(meta["name"].lower()), str(rv) if isinstance(rv, (str, int)) else "")


def _service(raw):
    meta = _meta(raw)
    if meta is None:
        return None
    name, namespace, rv = meta
    spec = raw.get("spec")
    if not isinstance(spec, dict):
        spec = {}
    stype = spec.get("type") if isinstance(spec.get("type"), str) else "ClusterIP"
    ips = spec.get("clusterIPs")
    if not isinstance(ips, list) or not ips:
        ips = [spec.get("clusterIP")]
    headless = any(ip == "None" for ip in ips)
    cluster_ips = ()
    if not headless and stype != "ExternalName":
        seen = []
        for ip in ips:
            ip = canonical_ip(ip)
            if ip is not None and ip not in seen:
                seen.append(ip)
        cluster_ips = tuple(seen)
    external = None
    if stype == "ExternalName":
        target = spec.get("externalName")
        if isinstance(target, str) and target.strip(".") and canonical_ip(target) is None:
            external = target.strip().rstrip(".").lower()
    return Service(_intern(name), namespace, rv, _intern(stype), cluster_ips,
                   headless and stype != "ExternalName", external,
                   _ports(spec.get("ports")), bool(spec.get("publishNotReadyAddresses")))


def _endpoint(raw):
    if not isinstance(raw, dict):
        return None
    addresses = []
    for a in raw.get("addresses") or ():
        ip = canonical_ip(a)
        if ip is not None and ip not in addresses:
            addresses.append(ip)
    if not addresses:
        return None
    cond = raw.get("conditions")
    ready = True
    if isinstance(cond, dict) and cond.get("ready") is not None:
        ready = cond.get("ready") is True
    hostname = _str(raw.get("hostname"))
    hostname = hostname.lower() if hostname else None
    target = None
    ref = raw.get("targetRef")
    if isinstance(ref, dict) and ref.get("kind", "Pod") == "Pod":
        tname = _str(ref.get("name"))
        if tname is not None and len(tname) < 64:
            target = tname.lower()
    node = _str(raw.get("nodeName"))
    return Endpoint(addresses, ready, hostname, target, _intern(node) if node else None)


def _endpointslice(raw):
    meta = _meta(raw)
    if meta is None:
        return None
    name, namespace, rv = meta
    labels = raw["metadata"].get("labels")
    service = None
    if isinstance(labels, dict):
        service = _str(labels.get("kubernetes.io/service-name"))
        service = _intern(service.lower()) if service else None
    endpoints = []
    raw_eps = raw.get("endpoints")
    if isinstance(raw_eps, list):
        for e in raw_eps:
            ep = _endpoint(e)
            if ep is not None:
                endpoints.append(ep)
    return EndpointSlice(name, namespace, rv, service, _ports(raw.get("ports"), -1), endpoints)


def _pod(raw):
    meta = _meta(raw)
    if meta is None:
        return None
    name, namespace, rv = meta
    status = raw.get("status")
    ip = None
    if isinstance(status, dict) and status.get("phase") not in _DEAD_PHASES:
        ip = canonical_ip(status.get("podIP"))
    terminating = bool(raw["metadata"].get("deletionTimestamp"))
    return Pod(name, namespace, rv, ip, terminating)


_CONVERTERS = {
    "namespaces": _namespace,
    "services": _service,
    "endpointslices": _endpointslice,
    "pods": _pod,
}


def convert(kind, raw):
    """
    The slim record of API object C{raw} (a JSON dict) of C{kind} (one of
    L{KINDS}), or C{None} when it is unusable.  Never raises.
    """
    fn = _CONVERTERS.get(kind)
    if fn is None or not isinstance(raw, dict):
        return None
    try:
        return fn(raw)
    except (AttributeError, TypeError, ValueError, KeyError):
        return None
