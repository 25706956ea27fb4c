# -*- test-case-name: tests.plugins.kubernetes.test_watch -*-
"""
The API-server source of the kubernetes plugin: one list-then-watch loop per
resource kind, each in its own daemon thread.

Why threads, and why these: the kubernetes client blocks, and a watch parks
its thread in a socket read for minutes.  The reactor's thread pool is
small, shared and *joined* at shutdown, so a parked watch there would hang
C{systemctl stop}; daemon threads of our own are not joined (STYLE.md 2.5).

What a loop does (all blocking work, JSON parsing and conversion to slim
records happens in the thread; the store is only touched on the reactor
thread, through C{reactor.callFromThread}):

  1. LIST the kind in pages (C{limit}/C{continue}) through the official
     client's configured urllib3 pool with C{preload_content=False} (what
     C{_preload_content=False} does in the generated methods, see L{Http})
     and parse the raw JSON ourselves: no model objects, so the same code
     runs on client 22.6 (Debian) and 37 (pydantic), and memory stays small.
     Hand the converted records over with C{store.replace(kind, records)}.
  2. WATCH from the list's resourceVersion with bookmarks, reading the
     chunked event lines ourselves.  resourceVersion is tracked from every
     raw object, bookmarks included (client 22.6's C{Watch} ignores them).
     The events of one chunk go to the reactor in one call, each as
     C{store.apply(kind, type, record)}.
  3. A watch the server ends normally (C{timeout_seconds}) is reopened at once
     from the last resourceVersion; 410 Gone (HTTP status or an ERROR event)
     means re-LIST; any other failure (connection refused, dropped stream,
     5xx, 401) waits a capped, jittered exponential backoff and resumes.  The
     store is never cleared on failure: answers keep coming from the last
     known data while the API server is away.

C{stopService} sets a stop event, shuts the open watch sockets down so the
blocked reads return, and does not join.
"""

import calendar
import json
import random
import socket
import threading
import time
from urllib.parse import urlencode

from twisted.application import service
from twisted.logger import Logger

from twisted_kdns.plugins.kubernetes import metrics

log = Logger(namespace="kdns.plugins.kubernetes")

#: kind -> (collection path, config attribute holding its label selector, field selector)
KINDS = {
    "namespaces": ("/api/v1/namespaces", "namespace_labels", None),
    "services": ("/api/v1/services", "labels", None),
    "endpointslices": ("/apis/discovery.k8s.io/v1/endpointslices", "labels", None),
    "pods": ("/api/v1/pods", "labels",
             "status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown"),
}

TRIGGER_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class HttpError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status, reason, body=b""):
        Exception.__init__(self, "HTTP %s %s" % (status, reason))
        self.status = status
        self.reason = reason
        self.body = body


class Http(object):
    """
    GET requests through the official client's HTTP layer: the urllib3 pool
    its C{RESTClientObject} built from the configuration (TLS, CA, proxy)
    and the headers of its C{auth_settings()} (which runs the token
    refresh hook first).  C{api_client} is an L{apiclient.Connection} or a
    C{kubernetes.client.ApiClient} (both have C{configuration},
    C{rest_client} and C{user_agent}).

    Why not the generated C{CoreV1Api.list_*} methods: on client 37 the
    first call of each builds pydantic validators worth ~20 MB of memory
    for arguments we pass as plain strings anyway, and the two versions'
    C{call_api} signatures differ.  The collection paths and query
    parameters are the stable API.
    """

    def __init__(self, api_client):
        import urllib3
        self._urllib3 = urllib3
        self.configuration = api_client.configuration
        self.pool = api_client.rest_client.pool_manager
        self.host = self.configuration.host.rstrip("/")
        self.user_agent = api_client.user_agent

    def get(self, path, query, timeout):
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        for auth in self.configuration.auth_settings().values():
            if auth.get("in") == "header" and auth.get("value"):
                headers[auth["key"]] = auth["value"]
        url = self.host + path
        query = sorted((k, v) for k, v in query.items() if v is not None)
        if query:
            url += "?" + urlencode(query)
        # retries=False: the watch loop owns retries (with backoff and one
        # log line), rather than urllib3 retrying at once and logging each.
        resp = self.pool.request("GET", url, headers=headers, preload_content=False, retries=False,
                                 timeout=self._urllib3.Timeout(connect=timeout[0], read=timeout[1]))
        if not 200 <= resp.status <= 299:
            try:
                body = resp.data
            finally:
                resp.release_conn()
            raise HttpError(resp.status, resp.reason, body)
        return resp


class Gone(Exception):
    """The server no longer has our resourceVersion (410): re-list."""


class WatchError(Exception):
    """An ERROR event other than 410 in a watch stream."""

    def __init__(self, code, message):
        Exception.__init__(self, "watch error %s: %s" % (code, message))
        self.code = code


def parse_time(text):
    """Unix time of an RFC 3339 timestamp as the API server writes them, or C{None}."""
    if not text:
        return None
    try:
        main, _, frac = text.rstrip("Z").partition(".")
        seconds = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
        return seconds + (float("0." + frac) if frac else 0.0)
    except ValueError:
        return None


def service_kind(raw):
    """CoreDNS's C{service_kind} label for a raw Service dict."""
    spec = raw.get("spec") or {}
    if spec.get("clusterIP") != "None":
        return "cluster_ip"
    return "headless_with_selector" if spec.get("selector") else "headless_without_selector"


def _converter():
    from twisted_kdns.plugins.kubernetes.objects import convert
    return convert


class ApiSource(service.Service):
    """
    Feeds a store from the Kubernetes API: one daemon thread per kind.

    @param config: the plugin's parsed options (C{endpoint}, C{tls},
        C{kubeconfig}, C{namespaces}, C{labels}, C{namespace_labels}).
    @param kinds: the kinds to watch, a subset of L{KINDS}.
    @param store: C{replace(kind, records)} and C{apply(kind, type, record)},
        called on the reactor thread only.
    @param client_factory: makes a fresh L{apiclient.Connection} (default: from
        C{config}, see L{apiclient.ClientFactory}).
    @param backoff: C{(first, cap)} delays in seconds after failures.
    @param rand: C{() -> [0, 1)}, the jitter source.
    @param page_size: LIST C{limit}.
    @param watch_timeout: C{timeout_seconds} asked of each watch (the server
        ends it then, and we reopen it); stretched by up to 2x with jitter so
        the kinds do not all reconnect together.
    @param convert: C{convert(kind, raw_dict) -> record or None}.
    """

    name = "kubernetes-api"

    def __init__(self, config, kinds, store, reactor, client_factory=None, backoff=(0.5, 30.0),
                 rand=random.random, page_size=500, watch_timeout=300, connect_timeout=5.0,
                 convert=None, clock=time.time):
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError("unknown kinds: %s" % (sorted(unknown),))
        self.config = config
        self.kinds = tuple(k for k in KINDS if k in kinds)
        self.store = store
        self.reactor = reactor
        if client_factory is None:
            from twisted_kdns.plugins.kubernetes.apiclient import ClientFactory
            client_factory = ClientFactory(config)
        self.client_factory = client_factory
        self.backoff = backoff
        self.rand = rand
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.connect_timeout = connect_timeout
        self.convert = convert
        self.clock = clock
        self.loops = {}
        self._stop = None
        # Reactor-thread state: headless services by "ns/name" -> service_kind,
        # to label the programming-duration histogram (cluster_ip otherwise).
        self._headless = {}
        self._synced = set()

    # -- IService ---------------------------------------------------------

    def startService(self):
        service.Service.startService(self)
        self._stop = threading.Event()
        self._synced = set()
        for kind in self.kinds:
            loop = KindLoop(self, kind, self._stop)
            self.loops[kind] = loop
            thread = threading.Thread(target=loop.run, name="kdns-watch-" + kind)
            thread.daemon = True
            loop.thread = thread
            thread.start()

    def stopService(self):
        service.Service.stopService(self)
        if self._stop is not None:
            self._stop.set()
        for loop in self.loops.values():
            loop.interrupt()
        self.loops = {}

    # -- reactor-thread side ------------------------------------------------

    def _replace(self, kind, stop, records, extra):
        if stop.is_set():
            return
        if kind == "services":
            self._headless = extra
        self.store.replace(kind, records)
        self._synced.add(kind)
        metrics.LAST_SYNC.labels(kind).set(self.clock())

    def _apply(self, kind, stop, batch):
        if stop.is_set():
            return
        apply = self.store.apply
        for event_type, record, extra in batch:
            apply(kind, event_type, record)
            if extra is None:
                continue
            if kind == "services":
                key, skind = extra
                if skind == "cluster_ip" or event_type == "DELETED":
                    self._headless.pop(key, None)
                else:
                    self._headless[key] = skind
            elif kind == "endpointslices":
                key, trigger = extra
                skind = self._headless.get(key, "cluster_ip")
                metrics.DNS_PROGRAMMING_DURATION.labels(skind).observe(max(0.0, self.clock() - trigger))

    def synced(self):
        """The kinds whose first LIST reached the store (reactor thread)."""
        return frozenset(self._synced)


def _close_response(resp):
    """Unblock a thread reading C{resp} from another thread: shut its socket down."""
    try:
        conn = getattr(resp, "connection", None) or getattr(resp, "_connection", None)
        sock = getattr(conn, "sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except Exception:
        pass


class KindLoop(object):
    """
    The list-then-watch loop of one kind; C{run} is the thread body.

    Only C{rv}, C{failures} and C{response} live here, all owned by the
    thread; C{interrupt} is the one method another thread calls.
    """

    def __init__(self, source, kind, stop):
        self.source = source
        self.kind = kind
        self.stop = stop
        self.rv = None
        self.failures = 0
        self.response = None
        self.thread = None
        self.path, selector_attr, field_selector = KINDS[kind]
        config = source.config
        self.selectors = {}
        label_selector = getattr(config, selector_attr, None)
        if label_selector:
            self.selectors["labelSelector"] = label_selector
        if field_selector:
            self.selectors["fieldSelector"] = field_selector
        namespaces = getattr(config, "namespaces", None)
        self.namespaces = frozenset(namespaces) if namespaces else None

    # -- helpers ------------------------------------------------------------

    def _call(self, fn, *args, **kw):
        if not self.stop.is_set():
            self.source.reactor.callFromThread(fn, *args, **kw)

    def _log(self, level, fmt, **kw):
        self._call(getattr(log, level), fmt, kind=self.kind, **kw)

    def interrupt(self):
        resp = self.response
        if resp is not None:
            _close_response(resp)

    def wanted(self, raw):
        """Client-side C{namespaces} filter."""
        if self.namespaces is None:
            return True
        meta = raw.get("metadata") or {}
        ns = meta.get("name") if self.kind == "namespaces" else meta.get("namespace")
        return ns in self.namespaces

    def extra(self, raw, event_type=None):
        """Side data for the reactor thread: service kinds, programming triggers."""
        if self.kind == "services":
            meta = raw.get("metadata") or {}
            return ("%s/%s" % (meta.get("namespace"), meta.get("name")), service_kind(raw))
        if self.kind == "endpointslices" and event_type in ("ADDED", "MODIFIED"):
            meta = raw.get("metadata") or {}
            trigger = parse_time((meta.get("annotations") or {}).get(TRIGGER_ANNOTATION))
            svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
            if trigger is not None and svc:
                return ("%s/%s" % (meta.get("namespace"), svc), trigger)
        return None

    def delay(self):
        first, cap = self.source.backoff
        d = min(cap, first * (2 ** min(self.failures - 1, 30)))
        return d * (0.5 + 0.5 * self.source.rand())

    # -- the loop -----------------------------------------------------------

    def run(self):
        convert = self.source.convert or _converter()
        http = None
        reason = "initial"
        while not self.stop.is_set():
            try:
                if http is None:
                    http = Http(self.source.client_factory())
                if self.rv is None:
                    metrics.RELISTS.labels(self.kind, reason).inc()
                    self.list(http, convert)
                    if self.stop.is_set():  # stopped mid-list
                        return
                    if self.failures:
                        self._log("info", "kubernetes {kind}: API reachable again, re-listed")
                    self.failures = 0
                self.watch(http, convert)
                metrics.WATCH_RESTARTS.labels(self.kind, "expired").inc()
            except Gone:
                self.rv = None
                reason = "gone"
                self.failures += 1
                if self.failures > 1 and self.stop.wait(self.delay()):
                    return
            except Exception as e:
                if self.stop.is_set():
                    return
                status = e.status if isinstance(e, HttpError) else None
                code = str(status) if status else "connection"
                if isinstance(e, WatchError):
                    code = str(e.code)
                metrics.API_ERRORS.labels(self.kind, code).inc()
                if status == 410:
                    self.rv = None
                    reason = "gone"
                    self.failures += 1
                    if self.failures > 1 and self.stop.wait(self.delay()):
                        return
                    continue
                if status == 401:
                    unauthorized = getattr(self.source.client_factory, "unauthorized", None)
                    if unauthorized is not None:
                        unauthorized()
                if self.rv is None:
                    reason = "error"
                dropped = self.response is not None
                metrics.WATCH_RESTARTS.labels(self.kind, "dropped" if dropped else "error").inc()
                self.failures += 1
                wait = self.delay()
                self._log("warn", "kubernetes {kind}: {error}; retrying in {delay:.2f}s "
                                  "(serving the last known data)",
                          error=_describe(e), delay=wait)
                http = None  # fresh client: re-reads kubeconfig/token, drops a broken pool
                if self.stop.wait(wait):
                    return
            finally:
                self.response = None
                metrics.CONNECTED.labels(self.kind).set(0)

    def list(self, http, convert):
        """LIST every page; hand the records to the store in one call."""
        records = []
        extras = {}
        token = None
        started = time.time()
        host = http.host
        while True:
            query = dict(self.selectors, limit=str(self.source.page_size))
            if token:
                query["continue"] = token
            t0 = time.time()
            try:
                resp = http.get(self.path, query, (self.source.connect_timeout, 60))
            except Exception as e:
                metrics.REST_REQUESTS.labels(str(getattr(e, "status", None) or "<error>"), "GET", host).inc()
                raise
            try:
                body = resp.data
            finally:
                resp.release_conn()
            metrics.REST_REQUESTS.labels(str(resp.status), "GET", host).inc()
            metrics.REST_REQUEST_DURATION.labels("GET", host).observe(time.time() - t0)
            page = json.loads(body)
            del body
            for raw in page.get("items") or ():
                if not self.wanted(raw):
                    continue
                record = convert(self.kind, raw)
                if record is None:
                    continue
                records.append(record)
                if self.kind == "services":
                    key, skind = self.extra(raw)
                    if skind != "cluster_ip":
                        extras[key] = skind
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            rv = meta.get("resourceVersion")
            del page
            if not token:
                break
            if self.stop.is_set():
                return
        self.rv = rv
        self._call(self.source._replace, self.kind, self.stop, records, extras)
        self._log("debug", "kubernetes {kind}: listed {count} in {seconds:.3f}s at resourceVersion {rv}",
                  count=len(records), seconds=time.time() - started, rv=rv)

    def watch(self, http, convert):
        """One WATCH request; returns when the server ends it normally."""
        timeout = max(1, int(self.source.watch_timeout * (1 + self.source.rand())))
        query = dict(self.selectors, watch="true", resourceVersion=self.rv, allowWatchBookmarks="true",
                     timeoutSeconds=str(timeout))
        try:
            resp = http.get(self.path, query, (self.source.connect_timeout, timeout + 30))
        except Exception as e:
            metrics.REST_REQUESTS.labels(str(getattr(e, "status", None) or "<error>"), "GET", http.host).inc()
            raise
        self.response = resp
        metrics.REST_REQUESTS.labels(str(resp.status), "GET", http.host).inc()
        metrics.CONNECTED.labels(self.kind).set(1)
        if self.stop.is_set():
            return
        buf = b""
        try:
            for chunk in resp.stream(None, decode_content=True):
                if self.stop.is_set():
                    return
                buf += chunk
                if b"\n" not in chunk:
                    continue
                lines = buf.split(b"\n")
                buf = lines.pop()
                self._events(lines, convert)
                self.failures = 0
            if buf.strip() and not self.stop.is_set():
                self._events([buf], convert)
        finally:
            resp.release_conn()

    def _events(self, lines, convert):
        """
        Apply the events of one read.  The resourceVersion advances line by
        line, so whatever ends the read (an ERROR event, a broken stream),
        the events already read are applied before it propagates: the next
        watch resumes after them.  An object that cannot be read is skipped
        with a warning, never taking its neighbours down with it.
        """
        batch = []
        kind = self.kind
        try:
            for line in lines:
                if not line.strip():
                    continue
                event = json.loads(line)
                event_type = event.get("type")
                raw = event.get("object") or {}
                metrics.WATCH_EVENTS.labels(kind, event_type or "?").inc()
                if event_type == "ERROR":
                    if raw.get("code") == 410:
                        raise Gone(raw.get("message"))
                    raise WatchError(raw.get("code"), raw.get("message"))
                rv = (raw.get("metadata") or {}).get("resourceVersion")
                if rv:
                    self.rv = rv
                if event_type == "BOOKMARK":
                    continue
                try:
                    if not self.wanted(raw):
                        continue
                    record = convert(kind, raw)
                    if record is None:
                        continue
                    batch.append((event_type, record, self.extra(raw, event_type)))
                except (AttributeError, TypeError, ValueError, KeyError) as e:
                    self._log("warn", "skipping a malformed {kind} watch event at resourceVersion {rv}: {err}",
                              rv=rv, err=_describe(e))
        finally:
            metrics.LAST_EVENT.labels(kind).set(time.time())
            if batch:
                self._call(self.source._apply, kind, self.stop, batch)


def _describe(e):
    status = getattr(e, "status", None)
    if status:
        return "HTTP %s %s" % (status, (getattr(e, "reason", "") or "").strip())
    text = str(e)
    if len(text) > 200:
        text = text[:200] + "..."
    return "%s: %s" % (type(e).__name__, text)
