"""
An HTTP stand-in for the Kubernetes API server, for tests and benchmarks.

It is a real HTTP/1.1 server on 127.0.0.1 (port 0 by default), run by
C{http.server.ThreadingHTTPServer} in its own daemon thread, so the official
client, C{kubectl} and our watcher talk to it over real sockets exactly as
they talk to an API server:

  - resources: C{namespaces}, C{services}, C{pods} (core/v1) and
    C{endpointslices} (discovery.k8s.io/v1), cluster-wide and namespaced
    collection paths, single objects;
  - discovery for kubectl: C{/version}, C{/api}, C{/apis}, C{/api/v1},
    C{/apis/discovery.k8s.io}, C{/apis/discovery.k8s.io/v1};
  - LIST with C{resourceVersion} in C{metadata}, C{limit} and opaque
    C{continue} tokens over a consistent snapshot, label selectors
    (C{=}, C{==}, C{!=}, C{in}, C{notin}, C{key}, C{!key}) and field
    selectors (C{=}, C{!=} on dotted paths);
  - WATCH (C{watch=true}) as chunked JSON event lines from a
    C{resourceVersion}, C{timeoutSeconds}, C{BOOKMARK} events when
    C{allowWatchBookmarks=true}, and an C{ERROR} event with a 410 Status
    when the version was compacted away (or is newer than the server's
    after a L{reset}), as a real API server's watch cache does;
  - a single global resourceVersion counter, as etcd's revision.

Fault controls the tests drive: L{drop_watches} (abrupt socket close
mid-stream), L{fail_next} (a burst of 5xx answers), L{stall} (requests hang
until released), L{set_token} (401 for any other bearer token),
L{compact} (older versions give 410), L{reset} (an API server restored with
a reset resourceVersion: watches drop and old versions are refused),
L{stop}/L{start} (an outage: the port closes and later reopens).
Objects are changed with L{create}, L{update}, L{delete}.

It is deliberately small, not a full API server: no admission, no
defaulting beyond metadata, no POST/PUT over HTTP.
"""

import base64
import copy
import json
import re
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

#: kind -> (group path, version, Kind, namespaced, short names)
RESOURCES = {
    "namespaces": ("/api/v1", "v1", "Namespace", False, ["ns"]),
    "services": ("/api/v1", "v1", "Service", True, ["svc"]),
    "pods": ("/api/v1", "v1", "Pod", True, ["po"]),
    "endpointslices": ("/apis/discovery.k8s.io/v1", "discovery.k8s.io/v1", "EndpointSlice", True, []),
}

_PATH = re.compile(
    r"^(?P<base>/api/v1|/apis/discovery\.k8s\.io/v1)"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>[a-z]+)(?:/(?P<name>[^/]+))?/?$")


def _status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class _Selector(object):
    """A small label-selector matcher (the stand-in's own, independent of the plugin's)."""

    _SET = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")

    def __init__(self, text):
        self.reqs = []
        parts, depth, cur = [], 0, ""
        for ch in text or "":
            depth += ch == "("
            depth -= ch == ")"
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
        for part in parts:
            part = part.strip()
            if not part:
                continue
            m = self._SET.match(part)
            if m:
                values = {v.strip() for v in m.group(3).split(",")}
                self.reqs.append((m.group(2), m.group(1), values))
            elif "!=" in part:
                k, v = part.split("!=", 1)
                self.reqs.append(("!=", k.strip(), v.strip()))
            elif "=" in part:
                k, v = part.replace("==", "=").split("=", 1)
                self.reqs.append(("=", k.strip(), v.strip()))
            elif part.startswith("!"):
                self.reqs.append(("!", part[1:].strip(), None))
            else:
                self.reqs.append(("exists", part, None))

    def matches(self, labels):
        labels = labels or {}
        for op, k, v in self.reqs:
            have = labels.get(k)
            if op == "=" and have != v:
                return False
            if op == "!=" and have == v:
                return False
            if op == "in" and have not in v:
                return False
            if op == "notin" and have in v:
                return False
            if op == "exists" and k not in labels:
                return False
            if op == "!" and k in labels:
                return False
        return True


class _FieldSelector(object):
    def __init__(self, text):
        self.reqs = []
        for part in (text or "").split(","):
            part = part.strip()
            if not part:
                continue
            if "!=" in part:
                k, v = part.split("!=", 1)
                self.reqs.append((False, k.split("."), v))
            else:
                k, v = part.replace("==", "=").split("=", 1)
                self.reqs.append((True, k.split("."), v))

    def matches(self, obj):
        for equal, path, value in self.reqs:
            cur = obj
            for p in path:
                cur = cur.get(p) if isinstance(cur, dict) else None
            have = "" if cur is None else str(cur)
            if (have == value) != equal:
                return False
        return True


class _Watcher(object):
    """One open watch: a queue of encoded event lines and the socket to drop."""

    def __init__(self, res, ns, labels, fields, bookmarks, connection):
        self.res = res
        self.ns = ns
        self.labels = labels
        self.fields = fields
        self.bookmarks = bookmarks
        self.connection = connection
        self.pending = []
        self.closed = False


class FakeApiServer(object):
    """
    The stand-in.  Thread-safe: the test thread mutates objects while the
    server threads answer; one condition variable guards all state.

    @ivar requests: C{[method, path+query, authorization header, status]}
        for every request, in arrival order (status C{None} until answered).
    @ivar token: the bearer token required (C{None}: no authentication).
    """

    def __init__(self, token=None, tls=None, host="127.0.0.1", version="1.30"):
        self.host = host
        self.token = token
        self.tls = tls  # (cert, key, client CA or None)
        self.version = version
        self.port = 0
        self.objects = {res: {} for res in RESOURCES}
        self.rv = 1
        self.events = []            # (rv, res, type, obj)
        self.compacted = 0          # watches from rv < compacted get 410
        self.watchers = []
        self.requests = []
        self._fail = []             # statuses for the next requests
        self._stall = None          # threading.Event while stalled
        self._snapshots = {}
        self._cond = threading.Condition()
        self._httpd = None
        self._thread = None
        self._serial = 0
        self._expire_continue = False

    # -- lifecycle ----------------------------------------------------------

    def start(self, port=None):
        """Serve (again) on C{port} (default: the previous one, or a free one)."""
        if port is None:
            port = self.port
        handler = type("Handler", (_Handler,), {"api": self})
        httpd = ThreadingHTTPServer((self.host, port), handler)
        httpd.daemon_threads = True
        if self.tls is not None:
            cert, key, client_ca = self.tls
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            if client_ca:
                ctx.load_verify_locations(client_ca)
                ctx.verify_mode = ssl.CERT_REQUIRED
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="k8s-apiserver-%d" % (self.port,))
        self._thread.daemon = True
        self._thread.start()
        return self.port

    def stop(self):
        """Close the listening socket and every open watch (an outage)."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        self.drop_watches()
        self.release()

    @property
    def url(self):
        return "%s://%s:%d" % ("https" if self.tls else "http", self.host, self.port)

    def kubeconfig(self, path, token=None, context="standin"):
        """Write a kubeconfig for this server (JSON is valid YAML)."""
        user = {"token": token} if token else {}
        data = {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
            "users": [{"name": "standin", "user": user}],
            "contexts": [{"name": context, "context": {"cluster": "standin", "user": "standin"}}],
        }
        with open(path, "w") as f:
            json.dump(data, f)
        return path

    # -- objects ------------------------------------------------------------

    def _key(self, res, obj):
        meta = obj["metadata"]
        return (meta.get("namespace") if RESOURCES[res][3] else None, meta["name"])

    def _emit(self, res, event_type, obj):
        self.events.append((self.rv, res, event_type, obj))
        line = None
        for w in self.watchers:
            if w.res == res and self._visible(w, obj):
                if line is None:
                    line = _event_line(event_type, obj)
                w.pending.append(line)
        self._cond.notify_all()

    def _stamp(self, res, obj):
        self.rv += 1
        group, version, kind, namespaced, _ = RESOURCES[res]
        obj = copy.deepcopy(obj)
        obj.setdefault("apiVersion", version)
        obj.setdefault("kind", kind)
        meta = obj.setdefault("metadata", {})
        if namespaced:
            meta.setdefault("namespace", "default")
        else:
            meta.pop("namespace", None)
        meta["resourceVersion"] = str(self.rv)
        meta.setdefault("uid", "uid-%s-%d" % (res, self.rv))
        meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        return obj

    def create(self, res, obj, record_event=True):
        """Add an object (ADDED); returns the stored copy."""
        with self._cond:
            obj = self._stamp(res, obj)
            key = self._key(res, obj)
            if key in self.objects[res]:
                raise KeyError("%s %s exists" % (res, key))
            self.objects[res][key] = obj
            if record_event:
                self._emit(res, "ADDED", obj)
            return obj

    def load(self, res, objs):
        """Bulk-create without watch events (a cluster that existed before anyone watched)."""
        with self._cond:
            for obj in objs:
                obj = self._stamp(res, obj)
                self.objects[res][self._key(res, obj)] = obj
            self.compacted = self.rv

    def update(self, res, obj):
        """Replace an existing object (MODIFIED)."""
        with self._cond:
            obj = self._stamp(res, obj)
            key = self._key(res, obj)
            if key not in self.objects[res]:
                raise KeyError("%s %s not found" % (res, key))
            self.objects[res][key] = obj
            self._emit(res, "MODIFIED", obj)
            return obj

    def delete(self, res, namespace, name):
        """Remove an object (DELETED, carrying its last state)."""
        with self._cond:
            key = (namespace if RESOURCES[res][3] else None, name)
            old = self.objects[res].pop(key)
            self.rv += 1
            old = copy.deepcopy(old)
            old["metadata"]["resourceVersion"] = str(self.rv)
            self._emit(res, "DELETED", old)
            return old

    def get(self, res, namespace, name):
        with self._cond:
            return copy.deepcopy(self.objects[res].get((namespace if RESOURCES[res][3] else None, name)))

    def items(self, res):
        with self._cond:
            return [copy.deepcopy(o) for o in self.objects[res].values()]

    # -- faults ---------------------------------------------------------------

    def drop_watches(self):
        """Abruptly close every open watch connection (no final chunk)."""
        with self._cond:
            for w in self.watchers:
                w.closed = True
                try:
                    w.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._cond.notify_all()

    def fail_next(self, count, status=503):
        """Answer the next C{count} API requests with C{status}."""
        with self._cond:
            self._fail.extend([status] * count)

    def stall(self):
        """Hold every new request until L{release}."""
        with self._cond:
            if self._stall is None:
                self._stall = threading.Event()

    def release(self):
        with self._cond:
            ev, self._stall = self._stall, None
        if ev is not None:
            ev.set()

    def expire_next_continue(self):
        """The next request with a continue token gets 410 (its snapshot expired mid-list)."""
        with self._cond:
            self._expire_continue = True

    def set_token(self, token):
        with self._cond:
            self.token = token

    def compact(self):
        """Forget history: a watch from any older resourceVersion gets 410 Gone."""
        with self._cond:
            self.compacted = self.rv
            self.events = []
            self._snapshots.clear()

    def reset(self, rv=1):
        """
        Restart with a reset resourceVersion (a restored etcd): open watches
        drop, objects keep their content but get new, smaller versions, and
        a watch from any version the clients knew is refused with 410.
        """
        with self._cond:
            self.rv = rv
            for res, objs in self.objects.items():
                for key, obj in list(objs.items()):
                    self.rv += 1
                    obj = copy.deepcopy(obj)
                    obj["metadata"]["resourceVersion"] = str(self.rv)
                    objs[key] = obj
            self.events = []
            self._snapshots.clear()
            self.compacted = self.rv
        self.drop_watches()

    def bookmark(self):
        """Send a BOOKMARK at the current version to every watch that asked for them."""
        with self._cond:
            for w in self.watchers:
                if w.bookmarks:
                    _, version, kind, _, _ = RESOURCES[w.res]
                    w.pending.append(_event_line("BOOKMARK", {
                        "kind": kind, "apiVersion": version,
                        "metadata": {"resourceVersion": str(self.rv)}}))
            self._cond.notify_all()

    def open_watches(self, res=None):
        with self._cond:
            return sum(1 for w in self.watchers if not w.closed and (res is None or w.res == res))

    def wait_for_watches(self, count, res=None, timeout=5.0):
        """Block (a test thread) until C{count} watches are open."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.open_watches(res) >= count:
                return True
            time.sleep(0.005)
        return False

    # -- request handling (server threads) -------------------------------------

    def _visible(self, w, obj):
        meta = obj.get("metadata") or {}
        if w.ns is not None and meta.get("namespace") != w.ns:
            return False
        return w.labels.matches(meta.get("labels")) and w.fields.matches(obj)

    def _list(self, res, ns, query):
        labels = _Selector(query.get("labelSelector"))
        fields = _FieldSelector(query.get("fieldSelector"))
        limit = int(query.get("limit") or 0)
        token = query.get("continue")
        with self._cond:
            if token and self._expire_continue:
                self._expire_continue = False
                self._snapshots.clear()
            if token:
                try:
                    sid, start = json.loads(base64.urlsafe_b64decode(token.encode()))
                    snap_rv, items = self._snapshots[sid]
                except (ValueError, KeyError, TypeError):
                    return 410, _status(410, "Expired",
                                        "The provided continue parameter is too old to display a "
                                        "consistent list result. You can start a new list without "
                                        "the continue parameter.")
            else:
                items = [o for (ons, _), o in sorted(self.objects[res].items(), key=_sort_key)
                         if (ns is None or ons == ns)
                         and labels.matches(o["metadata"].get("labels")) and fields.matches(o)]
                snap_rv, start, sid = self.rv, 0, None
            end = len(items) if not limit else min(len(items), start + limit)
            page = items[start:end]
            meta = {"resourceVersion": str(snap_rv)}
            if end < len(items):
                if sid is None:
                    self._serial += 1
                    sid = self._serial
                    self._snapshots[sid] = (snap_rv, items)
                meta["continue"] = base64.urlsafe_b64encode(json.dumps([sid, end]).encode()).decode()
                meta["remainingItemCount"] = len(items) - end
            elif sid is not None:
                self._snapshots.pop(sid, None)
        _, version, kind, _, _ = RESOURCES[res]
        head = json.dumps({"kind": kind + "List", "apiVersion": version, "metadata": meta},
                          separators=(",", ":")).encode()
        # Items are encoded once per object version and cached (a 50,000-Pod
        # LIST would otherwise be bound by json.dumps in this process).
        return 200, head[:-1] + b',"items":[' + b",".join(_encoded(o) for o in page) + b"]}"


    def _watch_setup(self, res, ns, query, connection):
        """Register a watcher and queue the replay; C{(watcher, None)} or C{(None, error event line)}."""
        w = _Watcher(res, ns, _Selector(query.get("labelSelector")),
                     _FieldSelector(query.get("fieldSelector")),
                     _bool(query.get("allowWatchBookmarks")), connection)
        rv = query.get("resourceVersion")
        with self._cond:
            if rv in (None, "", "0"):
                # "Start at the current state": synthetic ADDED for every object.
                for (ons, _), o in sorted(self.objects[res].items(), key=_sort_key):
                    if self._visible(w, o):
                        w.pending.append(_event_line("ADDED", o))
            else:
                try:
                    since = int(rv)
                except ValueError:
                    return None, _event_line("ERROR", _status(400, "BadRequest", "invalid resourceVersion"))
                if since < self.compacted or since > self.rv:
                    return None, _event_line("ERROR", _status(
                        410, "Expired", "too old resource version: %s (%s)" % (since, self.compacted)))
                for erv, eres, etype, obj in self.events:
                    if erv > since and eres == res and self._visible(w, obj):
                        w.pending.append(_event_line(etype, obj))
            self.watchers.append(w)
        return w, None

    def _gate(self, handler):
        """Auth, injected failures and stalls: an error C{(status, body)} or C{None}."""
        with self._cond:
            stall = self._stall
        if stall is not None:
            stall.wait(30)
        auth = handler.headers.get("Authorization")
        with self._cond:
            token = self.token
            fail = self._fail.pop(0) if self._fail else None
        if token is not None and auth != "Bearer " + token:
            return 401, _status(401, "Unauthorized", "Unauthorized")
        if fail is not None:
            return fail, _status(fail, "ServiceUnavailable" if fail == 503 else "InternalError",
                                 "injected failure")
        return None


def _bool(text):
    """Go's strconv.ParseBool truths, as the API server parses query booleans (client 22.6 sends 'True')."""
    return text in ("1", "t", "T", "true", "TRUE", "True")


def _sort_key(item):
    (ns, name), _ = item
    return (ns or "", name)


_ENCODED = {}  # id(obj) -> (obj, bytes); objects are replaced, never mutated, once stored


def _encoded(obj):
    """A LIST item's JSON: no kind/apiVersion, as in a real LIST."""
    hit = _ENCODED.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    out = dict(obj)
    out.pop("kind", None)
    out.pop("apiVersion", None)
    data = json.dumps(out, separators=(",", ":")).encode()
    if len(_ENCODED) > 200000:
        _ENCODED.clear()
    _ENCODED[id(obj)] = (obj, data)
    return data


def _event_line(event_type, obj):
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api = None  # set per server

    def log_message(self, fmt, *args):
        pass

    def _send_json(self, status, body):
        data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        api = self.api
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        # Logged when the request arrives (a watch may stay open); status filled in later.
        status_box = ["GET", self.path, self.headers.get("Authorization"), None]
        with api._cond:
            api.requests.append(status_box)
        try:
            err = api._gate(self)
            if err is not None:
                status_box[3] = err[0]
                return self._send_json(*err)
            status, body = self._route(url.path, query, status_box)
            if status is not None:
                status_box[3] = status
                self._send_json(status, body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    def _route(self, path, query, status_box):
        api = self.api
        if path == "/version":
            major, minor = api.version.split(".")
            return 200, {"major": major, "minor": minor, "gitVersion": "v%s.0-kdns-standin" % (api.version,),
                         "platform": "linux/amd64", "goVersion": "go1.22.0", "compiler": "gc"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                         "serverAddress": "%s:%d" % (api.host, api.port)}]}
        if path == "/apis":
            gv = {"groupVersion": "discovery.k8s.io/v1", "version": "v1"}
            return 200, {"kind": "APIGroupList", "apiVersion": "v1",
                         "groups": [{"name": "discovery.k8s.io", "versions": [gv], "preferredVersion": gv}]}
        if path == "/apis/discovery.k8s.io":
            gv = {"groupVersion": "discovery.k8s.io/v1", "version": "v1"}
            return 200, {"kind": "APIGroup", "apiVersion": "v1", "name": "discovery.k8s.io",
                         "versions": [gv], "preferredVersion": gv}
        if path in ("/api/v1", "/apis/discovery.k8s.io/v1"):
            gv = "v1" if path == "/api/v1" else "discovery.k8s.io/v1"
            resources = []
            for res, (base, _, kind, namespaced, short) in sorted(RESOURCES.items()):
                if base == path:
                    resources.append({"name": res, "singularName": kind.lower(), "namespaced": namespaced,
                                      "kind": kind, "shortNames": short,
                                      "verbs": ["get", "list", "watch"]})
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                         "resources": resources}
        m = _PATH.match(path)
        if not m or m.group("res") not in RESOURCES or RESOURCES[m.group("res")][0] != m.group("base"):
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        res, ns, name = m.group("res"), m.group("ns"), m.group("name")
        if ns is not None and not RESOURCES[res][3]:
            return 404, _status(404, "NotFound", "%s is not namespaced" % (res,))
        if name is not None:
            obj = api.get(res, ns, name)
            if obj is None:
                return 404, _status(404, "NotFound", '%s "%s" not found' % (res, name))
            return 200, obj
        if _bool(query.get("watch")):
            status_box[3] = 200
            self._serve_watch(res, ns, query)
            return None, None
        return api._list(res, ns, query)

    def _serve_watch(self, res, ns, query):
        api = self.api
        watcher, error = api._watch_setup(res, ns, query, self.connection)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if watcher is None:
            self._chunk(error)
            self._chunk(b"")
            return
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.time() + timeout
        try:
            while True:
                with api._cond:
                    while not watcher.pending and not watcher.closed and time.time() < deadline:
                        api._cond.wait(min(0.5, max(0.0, deadline - time.time())))
                    lines, watcher.pending = watcher.pending, []
                    closed = watcher.closed
                if closed:
                    self.close_connection = True
                    return
                if lines:
                    self._chunk(b"".join(lines))
                elif time.time() >= deadline:
                    self._chunk(b"")
                    return
        finally:
            with api._cond:
                if watcher in api.watchers:
                    api.watchers.remove(watcher)

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


def service(name, namespace="default", cluster_ip="10.0.0.1", ports=(("http", 80),), headless=False,
            selector=True, labels=None, external_name=None, cluster_ips=None):
    """A Service object as the API server stores it."""
    spec = {"ports": [{"name": n, "port": p, "protocol": "TCP", "targetPort": p} for n, p in ports]}
    if external_name:
        spec.update(type="ExternalName", externalName=external_name)
    else:
        spec["type"] = "ClusterIP"
        ip = "None" if headless else cluster_ip
        spec["clusterIP"] = ip
        spec["clusterIPs"] = list(cluster_ips) if cluster_ips else [ip]
    if selector:
        spec["selector"] = {"app": name}
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": name}},
            "spec": spec}


def endpointslice(service_name, addresses, namespace="default", name=None, ports=(("http", 80),),
                  hostnames=None, ready=None, trigger_time=None):
    """An EndpointSlice for C{service_name} with one endpoint per address."""
    endpoints = []
    for i, ip in enumerate(addresses):
        ep = {"addresses": [ip], "conditions": {"ready": True if ready is None else ready[i]},
              "targetRef": {"kind": "Pod", "namespace": namespace, "name": "%s-%d" % (service_name, i)}}
        if hostnames:
            ep["hostname"] = hostnames[i]
        endpoints.append(ep)
    meta = {"name": name or service_name + "-abcde", "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service_name,
                       "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}}
    if trigger_time:
        meta["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": trigger_time}
    return {"metadata": meta, "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]}


def namespace(name, labels=None):
    return {"metadata": {"name": name, "labels": dict(labels or {}, **{"kubernetes.io/metadata.name": name})}}


def pod(name, ip, namespace="default", phase="Running"):
    return {"metadata": {"name": name, "namespace": namespace, "labels": {"app": name.rsplit("-", 1)[0]}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]}}
