# -*- test-case-name: tests.plugins.kubernetes.test_store -*-
"""
The in-memory cluster state the kubernetes resolver answers from.

Sources (the API watcher, the manifests loader) feed it with L{Store.replace}
(a full LIST) and L{Store.apply} (one watch event); both run on the reactor
thread only, so the indexes need no locks and a query always sees one
consistent state.  After every change the subscribers (the cache plugin)
get the names whose answers may have changed, so cached cluster answers are
dropped the moment an event lands.

Memory is the constraint (10,000 Services with their EndpointSlices plus
50,000 Pods within CoreDNS's 114 MB): tables are nested per namespace so
that no "namespace/name" key strings are kept, and the IP indexes hold the
record itself - or a tuple of records in the rare case of several - rather
than a dict per address.
"""

from twisted.logger import Logger

from twisted_kdns.names import ip_to_ptr

from twisted_kdns.plugins.kubernetes.objects import KINDS

log = Logger(namespace="kdns.plugins.kubernetes")

DEFAULT_KINDS = ("namespaces", "services", "endpointslices")
EVENTS = ("ADDED", "MODIFIED", "DELETED")


def dashed_ip(ip):
    """The label form of an address: C{10-0-0-1}, C{fd00--1} (C{fd00::} -> C{fd00--0})."""
    label = ip.replace(".", "-").replace(":", "-")
    if label.endswith("-"):
        label += "0"
    return label


# -- multi-valued index entries: a record, or a tuple of records ----------------

def _add(index, key, record):
    found = index.get(key)
    if found is None:
        index[key] = record
    elif isinstance(found, tuple):
        if not any(r is record for r in found):
            index[key] = found + (record,)
    elif found is not record:
        index[key] = (found, record)


def _discard(index, key, record):
    found = index.get(key)
    if found is None:
        return
    if isinstance(found, tuple):
        rest = tuple(r for r in found if r is not record)
        if not rest:
            del index[key]
        else:
            index[key] = rest[0] if len(rest) == 1 else rest
    elif found is record:
        del index[key]


def _values(found):
    if found is None:
        return ()
    if isinstance(found, tuple):
        return found
    return (found,)


class Table(object):
    """
    Records of one namespaced kind, C{{namespace: {name: record}}}, seen as
    a read-only mapping keyed C{"namespace/name"} (the records' C{.key}).
    """

    __slots__ = ("by_ns",)

    def __init__(self):
        self.by_ns = {}

    def lookup(self, namespace, name):
        group = self.by_ns.get(namespace)
        return None if group is None else group.get(name)

    def put(self, record):
        self.by_ns.setdefault(record.namespace, {})[record.name] = record

    def pop(self, namespace, name):
        group = self.by_ns.get(namespace)
        if group is None:
            return None
        record = group.pop(name, None)
        if not group:
            del self.by_ns[namespace]
        return record

    def get(self, key, default=None):
        namespace, _, name = key.partition("/")
        record = self.lookup(namespace, name)
        return default if record is None else record

    def __getitem__(self, key):
        record = self.get(key)
        if record is None:
            raise KeyError(key)
        return record

    def __contains__(self, key):
        return self.get(key) is not None

    def __iter__(self):
        for namespace, group in self.by_ns.items():
            for name in group:
                yield namespace + "/" + name

    def __len__(self):
        return sum(len(g) for g in self.by_ns.values())

    def values(self):
        for group in self.by_ns.values():
            for record in group.values():
                yield record

    def keys(self):
        return list(self)

    def items(self):
        return [(r.key, r) for r in self.values()]


class Store(object):
    """
    Namespaces, Services, EndpointSlices and Pods, indexed for DNS.

    @ivar kinds: the kinds that must be synced for L{ready}.
    @ivar zones: forward zones (normalised bytes) used to name changes for
        subscribers; the resolver sets them.
    @ivar modified: reactor time of the last change (the SOA serial).
    @ivar namespaces: C{{name: Namespace}}.
    @ivar services, slices, pods: L{Table}s (mappings keyed C{"ns/name"}).
    """

    def __init__(self, reactor, kinds=DEFAULT_KINDS, zones=()):
        self.reactor = reactor
        self.kinds = tuple(kinds)
        self.zones = tuple(zones)
        self.namespaces = {}
        self.services = Table()
        self.slices = Table()
        self.pods = Table()
        self.service_slices = {}    # (namespace, service) -> slice | (slice, ...)
        self.cluster_ips = {}       # ip -> Service | (Service, ...)
        self.endpoint_ips = {}      # ip -> EndpointSlice | (EndpointSlice, ...)
        self.pod_ips = {}           # ip -> Pod | (Pod, ...)
        self._synced = set()
        self._subscribers = []
        self.modified = int(reactor.seconds())

    # -- state --------------------------------------------------------------

    def synced(self, kind):
        """C{True} once a full LIST of C{kind} was stored."""
        return kind in self._synced

    def ready(self):
        """All required kinds synced (what the ready plugin reports)."""
        return all(k in self._synced for k in self.kinds)

    def subscribe(self, callback):
        """Call C{callback(names)} after every change (see module docstring)."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback):
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    # -- queries ------------------------------------------------------------

    def service(self, namespace, name):
        return self.services.lookup(namespace, name)

    def slices_of(self, namespace, service):
        """The EndpointSlices of a service (possibly several, e.g. one per family)."""
        return _values(self.service_slices.get((namespace, service)))

    def services_by_cluster_ip(self, ip):
        return _values(self.cluster_ips.get(ip))

    def slices_by_ip(self, ip):
        return _values(self.endpoint_ips.get(ip))

    def pods_by_ip(self, ip):
        return _values(self.pod_ips.get(ip))

    def pod_namespace(self, ip):
        """The namespace of a pod with address C{ip} (autopath C{pods verified}), or C{None}."""
        found = _values(self.pod_ips.get(ip))
        return found[0].namespace if found else None

    # -- updates ------------------------------------------------------------

    def _lookup(self, kind, record):
        if kind == "namespaces":
            return self.namespaces.get(record.name)
        return self._table(kind).lookup(record.namespace, record.name)

    def table(self, kind):
        """The records of C{kind} as a mapping keyed like their C{.key}."""
        return self._table(kind)

    def _table(self, kind):
        if kind == "services":
            return self.services
        if kind == "endpointslices":
            return self.slices
        if kind == "pods":
            return self.pods
        if kind == "namespaces":
            return self.namespaces
        raise ValueError("unknown kind %r" % (kind,))

    def replace(self, kind, records):
        """
        Store a full LIST result of C{kind}: objects missing from it are
        removed.  Marks C{kind} synced.
        """
        self._table(kind)
        names = []
        fresh = {}
        for record in records:
            if record is not None:
                fresh[(getattr(record, "namespace", None), record.name)] = record
        current = list(self._table(kind).values())
        for old in current:
            if (getattr(old, "namespace", None), old.name) not in fresh:
                names.extend(self._remove(kind, old))
        for record in fresh.values():
            old = self._lookup(kind, record)
            if getattr(record, "terminating", False):
                continue  # CoreDNS skips terminating pods on add/update: the last state stays
            if old is not None and old == record:
                old.resource_version = record.resource_version
                continue
            names.extend(self._put(kind, record, old))
        first = kind not in self._synced
        self._synced.add(kind)
        if names or first:
            self._changed(names)

    def apply(self, kind, event_type, record):
        """One watch event: C{ADDED}, C{MODIFIED} or C{DELETED}."""
        if record is None:
            return
        if event_type not in EVENTS:
            raise ValueError("unknown event type %r" % (event_type,))
        self._table(kind)
        old = self._lookup(kind, record)
        if event_type == "DELETED":
            if old is None:
                return
            names = self._remove(kind, old)
        else:
            if getattr(record, "terminating", False):
                return  # CoreDNS skips terminating pods on add/update
            if old is not None and old == record:
                old.resource_version = record.resource_version
                return
            names = self._put(kind, record, old)
        self._changed(names)

    def _changed(self, names):
        self.modified = int(self.reactor.seconds())
        if not self._subscribers:
            return
        unique = list(dict.fromkeys(names))
        for callback in list(self._subscribers):
            try:
                callback(unique)
            except Exception:
                log.failure("kubernetes store subscriber failed")

    def _remove(self, kind, old):
        if kind == "namespaces":
            del self.namespaces[old.name]
        else:
            self._table(kind).pop(old.namespace, old.name)
        self._unindex(kind, old)
        return self._names(kind, old)

    def _put(self, kind, record, old):
        names = []
        if old is not None:
            self._unindex(kind, old)
            names.extend(self._names(kind, old))
        if kind == "namespaces":
            self.namespaces[record.name] = record
        else:
            self._table(kind).put(record)
        self._index(kind, record)
        names.extend(self._names(kind, record))
        return names

    def _index(self, kind, record):
        if kind == "services":
            for ip in record.cluster_ips:
                _add(self.cluster_ips, ip, record)
        elif kind == "endpointslices":
            if record.service is not None:
                _add(self.service_slices, (record.namespace, record.service), record)
            for ip in record.addresses():
                _add(self.endpoint_ips, ip, record)
        elif kind == "pods":
            if record.ip is not None:
                _add(self.pod_ips, record.ip, record)

    def _unindex(self, kind, record):
        if kind == "services":
            for ip in record.cluster_ips:
                _discard(self.cluster_ips, ip, record)
        elif kind == "endpointslices":
            if record.service is not None:
                _discard(self.service_slices, (record.namespace, record.service), record)
            for ip in record.addresses():
                _discard(self.endpoint_ips, ip, record)
        elif kind == "pods":
            if record.ip is not None:
                _discard(self.pod_ips, record.ip, record)

    def _names(self, kind, record):
        """Normalised names whose answers depend on C{record}."""
        out = []
        if kind == "namespaces":
            ns = record.name.encode("ascii", "replace")
            for zone in self.zones:
                out.append(ns + b".svc." + zone)
                out.append(ns + b".pod." + zone)
        elif kind == "services":
            out.extend(self._service_names(record.namespace, record.name))
            out.extend(ip_to_ptr(ip) for ip in record.cluster_ips)
        elif kind == "endpointslices":
            if record.service is not None:
                out.extend(self._service_names(record.namespace, record.service))
            out.extend(ip_to_ptr(ip) for ip in record.addresses())
        elif kind == "pods":
            if record.ip is not None:
                label = dashed_ip(record.ip).encode("ascii")
                ns = record.namespace.encode("ascii", "replace")
                out.extend(label + b"." + ns + b".pod." + zone for zone in self.zones)
        return out

    def _service_names(self, namespace, name):
        base = ("%s.%s.svc" % (name, namespace)).encode("ascii", "replace")
        return [base + b"." + zone for zone in self.zones]


__all__ = ["Store", "Table", "KINDS", "DEFAULT_KINDS", "EVENTS", "dashed_ip"]
