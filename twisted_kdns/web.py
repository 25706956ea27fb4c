# -*- test-case-name: tests.test_web -*-
"""
The HTTP side: C{/health}, C{/ready} and C{/metrics}, one L{QuietSite} per
distinct address (several plugins or blocks may share one), kept across
reloads.

CoreDNS closes and re-opens these listeners on every reload, which has lost
them when a port was busy (coredns#1604, #1722).  L{WebSites} instead
compares the addresses wanted by the new configuration with the open ones:
an address that stays keeps its socket (only the paths it serves are
updated), a new one is opened I{before} the swap (so a busy port fails the
reload and the old configuration keeps serving), and one no longer wanted
is closed after the swap.

Everything here runs on the reactor thread, C{/metrics} included: we call
C{generate_latest} directly rather than C{prometheus_client.twisted}, which
renders in the thread pool and imports the global reactor at import time.
"""

import socket

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from twisted.internet import defer, protocol
from twisted.internet.error import CannotListenError
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

try:
    from twisted.web.pages import notFound as _not_found  # Twisted >= 22.10
except ImportError:  # Debian 12's Twisted 22.4
    from twisted.web.resource import NoResource as _not_found

from twisted_kdns import metrics

log = Logger(namespace="kdns.web")

PATHS = {"health": b"health", "ready": b"ready", "metrics": b"metrics"}


def split_address(text, default_port=None):
    """
    C{HOST:PORT} (C{[V6]:PORT}, C{:PORT}) as C{(host, port)}.

    @raise ValueError: not of that form, or a bad port.
    """
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError("missing port in address %s" % (text,))
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("too many colons in address %s" % (text,))
    if not port.isdigit() or int(port) > 65535:
        raise ValueError("invalid port in address %s" % (text,))
    return host, int(port)


def interfaces_for(host):
    """What to bind for a configured host: the empty host means every address."""
    if host == "":
        return ["::", "0.0.0.0"] if socket.has_ipv6 else ["0.0.0.0"]
    if host == "localhost":
        return ["127.0.0.1"]
    return [host]


class QuietSite(Site):
    """
    A C{Site} without access logs: the stock one writes a line per probe
    to the global log (C{logPath=None} falls back to C{log.logfile}).
    """

    noisy = False
    timeOut = 10  # probes and scrapes are short; do not keep idle connections for hours

    def log(self, request):
        pass


class _Root(Resource):
    """The root of one site; its C{routes} are replaced on reload."""

    def __init__(self):
        Resource.__init__(self)
        self.routes = {}

    def getChild(self, path, request):
        return self.routes.get(path) or _not_found()


def _text(request, code, body):
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    return body


class HealthResource(Resource):
    """C{/health}: 200 C{OK} whenever the process serves (lameduck included)."""

    isLeaf = True

    def render_GET(self, request):
        return _text(request, 200, b"OK")


class ReadyResource(Resource):
    """
    C{/ready}: 200 C{OK} when every readiness provider of the running
    generation is ready, else 503 with the sorted, comma-joined names of
    those that are not; 503 C{Shutting down} once shutdown (lameduck) began.

    Until-ready semantics (CoreDNS's default C{monitor until-ready}): a
    provider that has reported ready once is not asked again, so a later API
    disconnect does not pull every replica out of the Service.  With
    C{monitor continuously} each request asks every provider.

    @ivar service: anything with C{generation} and C{stopping}.
    """

    isLeaf = True

    def __init__(self, service):
        Resource.__init__(self)
        self.service = service
        self._generation = None
        self._done = {}

    def not_ready(self):
        generation = self.service.generation
        if generation is not self._generation:
            self._generation = generation
            self._done = {}
        continuously = generation.options.extras.get("ready.monitor") == "continuously"
        names = set()
        for name, provider in generation.options.readiness:
            if id(provider) in self._done:
                continue
            try:
                ok = bool(provider.ready())
            except Exception:
                log.failure("readiness check of {name} failed", name=name)
                ok = False
            if not ok:
                names.add(name)
            elif not continuously:
                self._done[id(provider)] = provider
        return sorted(names)

    def render_GET(self, request):
        if self.service.stopping:
            return _text(request, 503, b"Shutting down")
        names = self.not_ready()
        if names:
            log.info("Plugins not ready: {names}", names=", ".join('"%s"' % n for n in names))
            return _text(request, 503, ",".join(names).encode("utf-8"))
        return _text(request, 200, b"OK")


class MetricsResource(Resource):
    """C{/metrics}: the text exposition of the registry, rendered in place."""

    isLeaf = True

    def __init__(self, registry=REGISTRY):
        Resource.__init__(self)
        self.registry = registry

    def render_GET(self, request):
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self.registry)


class OpenSite(object):
    """One listening site: its ports (one per interface) and root."""

    def __init__(self, key, ports, root):
        self.key = key
        self.ports = ports
        self.root = root

    @property
    def port(self):
        return self.ports[0].getHost().port

    def close(self):
        return defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in self.ports],
                                   consumeErrors=True)


class WebSites(object):
    """
    The open HTTP sites, by configured address C{(host, port)}.

    L{prepare} opens what a new configuration adds; L{commit} points every
    site at its new paths and closes the sites no longer wanted; L{rollback}
    undoes a L{prepare} when the reload fails later.
    """

    def __init__(self, reactor):
        self.reactor = reactor
        self.sites = {}
        self.kinds = {}

    def _listen(self, key):
        host, port = key
        root = _Root()
        site = QuietSite(root)
        ports = []
        error = None
        for interface in interfaces_for(host):
            try:
                ports.append(self.reactor.listenTCP(port, site, interface=interface))
                break  # "::" is dual-stack on Linux; 0.0.0.0 is only the fallback
            except CannotListenError as e:
                error = e
        if not ports:
            raise error
        log.info("{what} listening on {host}:{port}", what="http", host=host or "*",
                 port=ports[0].getHost().port)
        return OpenSite(key, ports, root)

    def prepare(self, wanted):
        """
        Open the addresses of C{wanted} (C{{(host, port): {path: resource}}})
        that are not open yet.

        @return: the keys opened (for L{rollback}).
        @raise CannotListenError: one could not be opened; none stay open.
        """
        opened = []
        try:
            for key in wanted:
                if key not in self.sites:
                    self.sites[key] = self._listen(key)
                    opened.append(key)
        except CannotListenError:
            self.rollback(opened)
            raise
        return opened

    def rollback(self, opened):
        for key in opened:
            self.sites.pop(key).close()

    def commit(self, wanted, kinds):
        """
        Serve C{wanted}'s paths and close sites not in it.

        @param kinds: C{{kind: [key...]}} so that L{port_of} can answer.
        """
        closing = []
        for key in list(self.sites):
            if key in wanted:
                self.sites[key].root.routes = dict(wanted[key])
            else:
                closing.append(self.sites.pop(key).close())
        self.kinds = kinds
        return defer.gatherResults(closing, consumeErrors=True)

    def close_all(self):
        return self.commit({}, {})

    def port_of(self, kind):
        """The actual port of the first address serving C{kind} (C{None} if none)."""
        for key in self.kinds.get(kind, ()):
            if key in self.sites:
                return self.sites[key].port
        return None

    def address_of(self, kind):
        """C{(host, actual port)} to reach the first site serving C{kind}."""
        for key in self.kinds.get(kind, ()):
            if key in self.sites:
                host = key[0]
                if host in ("", "::", "0.0.0.0", "localhost"):
                    host = "127.0.0.1"
                return host, self.sites[key].port
        return None


def wanted_sites(options, resources):
    """
    From a generation's C{options.web} (C{{kind: [address...]}}) to the
    sites it needs: C{({(host, port): {path: resource}}, {kind: [key...]})}.
    """
    wanted = {}
    kinds = {}
    for kind, path in PATHS.items():
        for address in options.web.get(kind, ()):
            key = split_address(address)
            wanted.setdefault(key, {})[path] = resources[kind]
            kinds.setdefault(kind, []).append(key)
    return wanted, kinds


class _Probe(protocol.Protocol):
    def __init__(self, host):
        self.host = host
        self.data = []
        self.done = defer.Deferred()

    def connectionMade(self):
        self.transport.write(b"GET /health HTTP/1.0\r\nHost: " + self.host.encode("ascii", "replace")
                             + b"\r\n\r\n")

    def dataReceived(self, data):
        self.data.append(data)

    def connectionLost(self, reason):
        if not self.done.called:
            self.done.callback(b"".join(self.data))


class _ProbeFactory(protocol.ClientFactory):
    """Quiet (no "Starting factory" line every second)."""

    noisy = False

    def __init__(self, probe):
        self.probe = probe

    def buildProtocol(self, addr):
        return self.probe

    def clientConnectionFailed(self, connector, reason):
        if not self.probe.done.called:
            self.probe.done.errback(reason)


class Monitor(object):
    """
    Once a second: how late the tick fired (C{kdns_reactor_lag_seconds}),
    and, when C{health} is configured, a GET of our own C{/health} timed into
    C{coredns_health_request_duration_seconds} as CoreDNS does (failures in
    C{coredns_health_request_failures_total}, a warning when slower than 1 s).

    @param target: callable returning C{(host, port)} of a health site or C{None}.
    """

    timeout = 5.0

    def __init__(self, reactor, target, interval=1.0):
        self.reactor = reactor
        self.target = target
        self.interval = interval
        self._loop = None
        self._last = None
        self._connector = None
        self._stopped = False

    def start(self):
        self._stopped = False
        self._last = self.reactor.seconds()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False)

    def stop(self):
        self._stopped = True
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._connector is not None:
            self._connector.disconnect()

    def _tick(self):
        now = self.reactor.seconds()
        metrics.REACTOR_LAG.set(max(0.0, now - self._last - self.interval))
        self._last = now
        target = self.target()
        if target is not None and self._connector is None:
            self.probe(*target)

    def probe(self, host, port):
        """GET /health once; the Deferred fires with C{True} when it answered 200."""
        started = self.reactor.seconds()
        probe = _Probe(host)
        connector = self._connector = self.reactor.connectTCP(host, port, _ProbeFactory(probe),
                                                              timeout=self.timeout)
        timer = self.reactor.callLater(self.timeout, connector.disconnect)

        def done(result):
            self._connector = None
            if timer.active():
                timer.cancel()
            if self._stopped and not isinstance(result, bytes):
                return False  # stopped while probing: not a health failure
            elapsed = self.reactor.seconds() - started
            ok = isinstance(result, bytes) and result[:12] in (b"HTTP/1.1 200", b"HTTP/1.0 200")
            if ok:
                metrics.HEALTH_DURATION.observe(elapsed)
                if elapsed > 1.0:
                    log.warn("Local health request to {host}:{port} took more than 1s: {s:.3f}s",
                             host=host, port=port, s=elapsed)
            else:
                metrics.HEALTH_FAILURES.inc()
                log.warn("Local health request to {host}:{port} failed", host=host, port=port)
            return ok
        return probe.done.addBoth(done)
