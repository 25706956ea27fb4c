# -*- test-case-name: tests.plugins.kubernetes.test_store -*-
"""
The in-memory cluster state the kubernetes resolver answers from.

Sources (the API watcher, the manifests loader) feed it with L{Store.replace}
(a full LIST) and L{Store.apply} (one watch event); both run on the reactor
thread only, so the indexes need no locks and a query always sees one
consistent state.  After every change the subscribers (the cache plugin)
get the names whose answers may have changed, so cached cluster answers are
dropped the moment an event lands.
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


class Store(object):
    """
    Namespaces, Services, EndpointSlices and Pods, indexed for DNS.

    @ivar kinds: the kinds that must be synced for L{ready}.
    @ivar zones: forward zones (normalised bytes) used to name changes for
        subscribers; the resolver sets them.
    @ivar modified: reactor time of the last change (the SOA serial).
    """

    def __init__(self, reactor, kinds=DEFAULT_KINDS, zones=()):
        self.reactor = reactor
        self.kinds = tuple(kinds)
        self.zones = tuple(zones)
        self.namespaces = {}        # name -> Namespace
        self.services = {}          # "ns/name" -> Service
        self.slices = {}            # "ns/name" -> EndpointSlice
        self.pods = {}              # "ns/name" -> Pod
        self.service_slices = {}    # service key -> {slice key: EndpointSlice}
        self.cluster_ips = {}       # ip -> [service key, ...]
        self.endpoint_ips = {}      # ip -> {slice key: None}
        self.pod_ips = {}           # ip -> {pod key: None}
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

    def slices_of(self, service_key):
        """The EndpointSlices of a service (possibly several, e.g. one per family)."""
        found = self.service_slices.get(service_key)
        return list(found.values()) if found else []

    def services_by_cluster_ip(self, ip):
        return self.cluster_ips.get(ip, ())

    def slices_by_ip(self, ip):
        found = self.endpoint_ips.get(ip)
        return [self.slices[k] for k in found] if found else []

    def pods_by_ip(self, ip):
        found = self.pod_ips.get(ip)
        return [self.pods[k] for k in found] if found else []

    def pod_namespace(self, ip):
        """The namespace of a pod with address C{ip} (autopath C{pods verified}), or C{None}."""
        found = self.pod_ips.get(ip)
        if not found:
            return None
        return self.pods[next(iter(found))].namespace

    # -- updates ------------------------------------------------------------

    def _table(self, kind):
        if kind == "namespaces":
            return self.namespaces
        if kind == "services":
            return self.services
        if kind == "endpointslices":
            return self.slices
        if kind == "pods":
            return self.pods
        raise ValueError("unknown kind %r" % (kind,))

    def replace(self, kind, records):
        """
        Store a full LIST result of C{kind}: objects missing from it are
        removed.  Marks C{kind} synced.
        """
        table = self._table(kind)
        names = []
        fresh = {}
        for record in records:
            if record is not None:
                fresh[record.key] = record
        # A terminating pod listed again keeps its last state (see objects.Pod).
        keep = {k for k, r in fresh.items() if getattr(r, "terminating", False) and k in table}
        for key in [k for k in table if k not in fresh and k not in keep]:
            names.extend(self._remove(kind, table, key))
        for key, record in fresh.items():
            old = table.get(key)
            if getattr(record, "terminating", False):
                continue  # CoreDNS skips terminating pods on add/update
            if old is None or old != record:
                names.extend(self._put(kind, table, record, old))
            else:
                table[key] = record  # same content, newer resourceVersion
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
        table = self._table(kind)
        key = record.key
        old = table.get(key)
        if event_type == "DELETED":
            if old is None:
                return
            names = self._remove(kind, table, key)
        else:
            if getattr(record, "terminating", False):
                return  # CoreDNS skips terminating pods on add/update
            if old is not None and old == record:
                table[key] = record
                return
            names = self._put(kind, table, record, old)
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

    def _remove(self, kind, table, key):
        old = table.pop(key)
        self._unindex(kind, old)
        return self._names(kind, old)

    def _put(self, kind, table, record, old):
        names = []
        if old is not None:
            self._unindex(kind, old)
            names.extend(self._names(kind, old))
        table[record.key] = record
        self._index(kind, record)
        names.extend(self._names(kind, record))
        return names

    def _index(self, kind, record):
        key = record.key
        if kind == "services":
            for ip in record.cluster_ips:
                self.cluster_ips.setdefault(ip, []).append(key)
        elif kind == "endpointslices":
            if record.service is not None:
                self.service_slices.setdefault(record.service_key, {})[key] = record
            for ip in record.addresses():
                self.endpoint_ips.setdefault(ip, {})[key] = None
        elif kind == "pods":
            if record.ip is not None:
                self.pod_ips.setdefault(record.ip, {})[key] = None

    def _unindex(self, kind, record):
        key = record.key
        if kind == "services":
            for ip in record.cluster_ips:
                keys = self.cluster_ips.get(ip)
                if keys and key in keys:
                    keys.remove(key)
                    if not keys:
                        del self.cluster_ips[ip]
        elif kind == "endpointslices":
            if record.service is not None:
                group = self.service_slices.get(record.service_key)
                if group is not None:
                    group.pop(key, None)
                    if not group:
                        del self.service_slices[record.service_key]
            for ip in record.addresses():
                _drop(self.endpoint_ips, ip, key)
        elif kind == "pods":
            if record.ip is not None:
                _drop(self.pod_ips, record.ip, key)

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


def _drop(index, ip, key):
    keys = index.get(ip)
    if keys is not None:
        keys.pop(key, None)
        if not keys:
            del index[ip]


__all__ = ["Store", "KINDS", "DEFAULT_KINDS", "EVENTS", "dashed_ip"]
