# -*- test-case-name: tests.plugins.kubernetes.test_manifests -*-
"""
Our extension to the kubernetes plugin: C{manifests PATH...} serves a
cluster described by files instead of an API server (clusterless VMs,
demos, tests, C{make run}).

Files and folders are read as C{kubectl apply -f} reads them: YAML (several
documents per file) or JSON, a C{List} (or C{ServiceList}, ...) expands to
its items, a folder means its C{.yaml}, C{.yml} and C{.json} files (not
recursive, like kubectl without C{-R}).  Namespace, Service, EndpointSlice
and Pod objects are kept; other kinds are ignored.  An object without a
namespace goes to C{default}.  The namespaces a real cluster always has
(default, kube-system, kube-public, kube-node-lease) exist implicitly.

The files are checked every second (mtime and size); on a change they are
parsed again in a thread and the whole set replaces the store's content
per kind (the store diffs it, so only what changed is purged from caches).
A file that fails to parse keeps the last good state and the error names
the file and line.  The C{labels} and C{namespace_labels} selectors are
applied here, as the API server would apply them.
"""

import json
import os

import yaml
from twisted.application.service import Service
from twisted.internet import defer, threads
from twisted.logger import Logger

from twisted_kdns.plugins.kubernetes.objects import convert
from twisted_kdns.plugins.kubernetes.selectors import Selector

log = Logger(namespace="kdns.plugins.kubernetes")

try:  # libyaml is ten times faster when present
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader

EXTENSIONS = (".yaml", ".yml", ".json")
KIND_OF = {"Namespace": "namespaces", "Service": "services", "EndpointSlice": "endpointslices",
           "Pod": "pods"}
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class ManifestError(Exception):
    """A manifest file could not be read; C{str()} names C{file:line}."""

    def __init__(self, path, line, message):
        Exception.__init__(self, "%s:%s - %s" % (path, line if line is not None else "?", message))
        self.path = path
        self.line = line


def manifest_files(paths):
    """The files C{paths} stand for, in a stable order."""
    out = []
    for path in paths:
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                if name.endswith(EXTENSIONS) and os.path.isfile(full):
                    out.append(full)
        else:
            out.append(path)
    return out


def _documents(path):
    """C{(line, document)} for every document of a YAML/JSON file."""
    with open(path, "rb") as f:
        data = f.read()
    text = data.decode("utf-8-sig", "replace")
    if path.endswith(".json"):
        try:
            return [(1, json.loads(text))]
        except ValueError as e:
            line = getattr(e, "lineno", None)
            raise ManifestError(path, line, "invalid JSON: %s" % (e,))
    docs = []
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            docs.append((node.start_mark.line + 1, loader.construct_document(node)))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ManifestError(path, line, "invalid YAML: %s" % (getattr(e, "problem", None) or e,))
    finally:
        loader.dispose()
    return docs


def _objects(doc, path, line):
    """Expand C{List} documents; yield C{(line, object)}."""
    if doc is None:
        return
    if not isinstance(doc, dict):
        raise ManifestError(path, line, "a manifest must be an object, not %s" % (type(doc).__name__,))
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        for item in doc["items"]:
            for sub in _objects(item, path, line):
                yield sub
        return
    if not isinstance(kind, str) or not kind:
        raise ManifestError(path, line, "object has no kind")
    yield line, doc


def load_objects(paths, kinds):
    """
    Read every manifest: C{{kind: [raw dict, ...]}} for the wanted kinds.
    Runs in a thread.

    @raise ManifestError: a file is missing or malformed.
    """
    found = {k: [] for k in kinds}
    for path in manifest_files(paths):
        try:
            docs = _documents(path)
        except OSError as e:
            raise ManifestError(path, None, e.strerror or str(e))
        for line, doc in docs:
            for oline, obj in _objects(doc, path, line):
                kind = KIND_OF.get(obj["kind"])
                if kind is None or kind not in found:
                    continue
                meta = obj.get("metadata")
                if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
                    raise ManifestError(path, oline, "%s has no metadata.name" % (obj["kind"],))
                found[kind].append((path, oline, obj))
    return found


class ManifestSource(Service):
    """
    Feeds a L{Store} from manifest files; an IService that polls for
    changes with the injected reactor.

    @ivar interval: seconds between change checks.
    @ivar errors: the last load error text, or C{None}.
    """

    interval = 1.0

    def __init__(self, paths, kinds, store, reactor, labels=None, namespace_labels=None,
                 interval=None, threaded=True):
        self.paths = list(paths)
        self.kinds = list(kinds)
        self.store = store
        self.reactor = reactor
        self.labels = Selector(labels) if labels else None
        self.namespace_labels = Selector(namespace_labels) if namespace_labels else None
        if interval is not None:
            self.interval = interval
        self.threaded = threaded
        self.stamp = None
        self.error = None
        self.loads = 0
        self._call = None
        self._loading = None

    # -- IService -------------------------------------------------------------

    def startService(self):
        Service.startService(self)
        self.check()

    def stopService(self):
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        return Service.stopService(self)

    # -- change detection ---------------------------------------------------------

    def _stamp(self):
        stamp = []
        for path in self.paths:
            try:
                st = os.stat(path)
                stamp.append((path, st.st_mtime_ns, st.st_size))
            except OSError:
                stamp.append((path, None, None))
        for path in manifest_files([p for p in self.paths if os.path.isdir(p)]):
            try:
                st = os.stat(path)
                stamp.append((path, st.st_mtime_ns, st.st_size))
            except OSError:
                stamp.append((path, None, None))
        return tuple(stamp)

    def _schedule(self):
        if self.running and (self._call is None or not self._call.active()):
            self._call = self.reactor.callLater(self.interval, self.check)

    def check(self):
        """Reload if any file changed; returns a Deferred firing when done."""
        self._call = None
        stamp = self._stamp()
        if stamp == self.stamp:
            self._schedule()
            return defer.succeed(False)
        return self.reload(stamp)

    def reload(self, stamp=None):
        """Read all files now (in a thread) and replace the store's content."""
        if self._loading is not None:
            return self._loading
        if stamp is None:
            stamp = self._stamp()
        if self.threaded:
            d = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                          load_objects, self.paths, self.kinds)
        else:
            d = defer.maybeDeferred(load_objects, self.paths, self.kinds)
        self._loading = d

        def done(found):
            self._loading = None
            self.stamp = stamp
            self._apply(found)
            self._schedule()
            return True

        def failed(failure):
            self._loading = None
            self.stamp = stamp  # do not retry until the files change again
            self.error = str(failure.value)
            if failure.check(ManifestError):
                log.error("plugin/kubernetes: manifests: {error}", error=self.error)
            else:
                log.failure("plugin/kubernetes: manifests: loading failed", failure)
            self._schedule()
            return False
        return d.addCallbacks(done, failed)

    # -- store update ---------------------------------------------------------------

    def _selected(self, kind, obj):
        labels = obj["metadata"].get("labels")
        if kind == "namespaces":
            return self.namespace_labels is None or self.namespace_labels.matches(labels)
        return self.labels is None or self.labels.matches(labels)

    def _apply(self, found):
        self.error = None
        self.loads += 1
        for kind in self.kinds:
            raws = found.get(kind, [])
            if kind == "namespaces":
                named = {o["metadata"]["name"] for _, _, o in raws}
                raws = [(None, None, {"kind": "Namespace", "metadata": {"name": n}})
                        for n in BUILTIN_NAMESPACES if n not in named] + raws
            records = []
            for path, line, obj in raws:
                if kind == "namespaces":
                    obj = dict(obj, metadata=dict(obj["metadata"], labels=dict(
                        obj["metadata"].get("labels") or {},
                        **{"kubernetes.io/metadata.name": obj["metadata"]["name"]})))
                if not self._selected(kind, obj):
                    continue
                record = convert(kind, obj)
                if record is None:
                    log.warn("plugin/kubernetes: manifests: {path}:{line} - unusable {kind} ignored",
                             path=path, line=line, kind=obj.get("kind"))
                    continue
                records.append(record)
            self.store.replace(kind, records)
