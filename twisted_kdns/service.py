# -*- test-case-name: tests.test_service -*-
"""
L{KdnsService}: the process.  It owns the listeners and the current
generation (built configuration), and swaps generations on reload.

Listeners look up their routes in the current generation on every query,
so a swap is a single assignment on the reactor thread: no query is lost
and the sockets of addresses that stay in use are kept.
"""

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from twisted_kdns import __version__, metrics
from twisted_kdns.config import build
from twisted_kdns.server.dispatch import Dispatcher
from twisted_kdns.server.listen import open_pair, wildcard_addresses
from twisted_kdns.server.tcp import DNSStreamFactory
from twisted_kdns.server.udp import DNSDatagramProtocol
from twisted_kdns.web import HealthResource, MetricsResource, Monitor, ReadyResource, WebSites, wanted_sites
from twisted_kdns.systemd import SystemdNotifier

log = Logger(namespace="kdns")


def label_for(address, port):
    """CoreDNS's C{server} label: C{dns://ADDRESS:PORT} (empty address = all)."""
    host = "[%s]" % (address,) if ":" in address else address
    return "dns://%s:%d" % (host, port)


class Listener(object):
    """The sockets of one (address, port) route key."""

    def __init__(self, key, dispatcher, ports, actual_port):
        self.key = key
        self.dispatcher = dispatcher
        self.ports = ports
        self.port = actual_port

    def close(self):
        return defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in self.ports])


class KdnsService(service.MultiService):
    """
    @ivar generation: the running L{Generation}.
    @ivar listeners: C{{(address, port): Listener}}.
    @ivar observers: callables added to every dispatcher (metrics, logs).
    """

    def __init__(self, plan, reactor, dns_port=53, corefile_path=None):
        service.MultiService.__init__(self)
        self.reactor = reactor
        self.dns_port = dns_port
        self.corefile_path = corefile_path
        self.generation = build(plan, reactor, dns_port)
        self.listeners = {}
        self.observers = []
        self.generation_services = None
        self.stopping = False
        self.notifier = SystemdNotifier(reactor, lambda: self.generation.options.readiness)
        # Web sites (health/ready/metrics), reload and lameduck: see web.py, reloader.py.
        self.handle_signals = False  # tap.makeService: SIGHUP -> reload
        self.reloader = None
        self.web = WebSites(reactor)
        self.web_resources = {"health": HealthResource(), "ready": ReadyResource(self),
                              "metrics": MetricsResource()}
        self.monitor = Monitor(reactor, lambda: self.web.address_of("health"))
        self.observers.append(metrics.count_panics)
        self._stopped = None

    def web_port(self, kind):
        """The actual port of the first C{health}, C{ready} or C{metrics} site."""
        return self.web.port_of(kind)

    def _web_commit(self, generation):
        wanted, kinds = wanted_sites(generation.options, self.web_resources)
        self.web.commit(wanted, kinds)
        metrics.publish_plugins(generation)
        metrics.GENERATION_INFO.inc()

    def routes_for(self, key):
        def routes():
            return self.generation.routes.get(key)
        return routes

    def port_of(self, key=None):
        """The actual port of a listener (the first one when C{key} is C{None})."""
        if key is None:
            key = sorted(self.listeners)[0]
        return self.listeners[key].port

    def _open(self, key):
        address, port = key
        addresses = [address] if address else wildcard_addresses()
        dispatcher = Dispatcher(self.routes_for(key), label_for(address, port), key)
        dispatcher.observers = self.observers
        ports = []
        actual = port
        for i, addr in enumerate(addresses):
            try:
                up, tp, actual = open_pair(self.reactor, addr, actual, DNSDatagramProtocol(dispatcher),
                                           DNSStreamFactory(dispatcher))
            except OSError as e:
                if i > 0:  # the IPv6 half of the wildcard is optional
                    log.warn("not listening on [{addr}]:{port}: {err}", addr=addr, port=actual, err=e)
                    continue
                for p in ports:
                    p.stopListening()
                raise
            ports.extend([up, tp])
        self.listeners[key] = Listener(key, dispatcher, ports, actual)
        log.info("{label} ({actual})", label=label_for(address, port), actual=actual)

    def _start_generation(self, generation):
        group = service.MultiService()
        for svc in generation.options.services:
            svc.setServiceParent(group)
        group.startService()
        return group

    def startService(self):
        service.MultiService.startService(self)
        for key in self.generation.listeners:
            self._open(key)
        self.web.prepare(wanted_sites(self.generation.options, self.web_resources)[0])
        self._web_commit(self.generation)
        self.monitor.start()
        self.generation_services = self._start_generation(self.generation)
        if self.corefile_path is not None:
            from twisted_kdns.reloader import Reloader
            self.reloader = Reloader(self, self.corefile_path, self.reactor, dns_port=self.dns_port)
            self.reloader.start()
            if self.handle_signals:
                self.reloader.install_sighup()
        elif self.handle_signals:
            import signal
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # built-in Corefile: nothing to re-read
        for runtime in self.generation.blocks:
            for key in runtime.plan.block.keys:
                log.info("{key}", key=key)
        log.info("kdns-{version}", version=__version__)
        self.notifier.start()  # sd_notify READY=1 once plugins are ready (no-op without NOTIFY_SOCKET)

    def swap(self, generation):
        """
        Make C{generation} current: open its new listeners first, switch
        routes in one assignment, then close listeners no longer used and
        stop the old generation's background work.

        @raise OSError: a new listener could not be opened (nothing changed).
        """
        opened = []
        try:
            for key in generation.listeners:
                if key not in self.listeners:
                    self._open(key)
                    opened.append(key)
        except OSError:
            for key in opened:
                self.listeners.pop(key).close()
            raise
        try:
            web_opened = self.web.prepare(wanted_sites(generation.options, self.web_resources)[0])
        except Exception:
            for key in opened:
                self.listeners.pop(key).close()
            raise
        self.notifier.reloading()
        old, old_services = self.generation, self.generation_services
        try:
            self.generation_services = self._start_generation(generation)
        except Exception:
            self.generation_services = old_services
            self.web.rollback(web_opened)
            for key in opened:
                self.listeners.pop(key).close()
            self.notifier.reloaded()
            raise
        self.generation = generation
        self._web_commit(generation)
        for key in list(self.listeners):
            if key not in generation.routes:
                self.listeners.pop(key).close()
        self.notifier.reloaded()
        return defer.maybeDeferred(old_services.stopService) if old_services else defer.succeed(None)

    def stopService(self):
        """
        Stop serving.  With C{health { lameduck D }}, C{/ready} answers 503
        at once while DNS keeps answering for D seconds; the returned
        Deferred fires when everything is closed (twistd waits for it: this
        runs as a "before shutdown" system event trigger).
        """
        if self._stopped is not None:
            return self._stopped
        self.stopping = True
        self.notifier.stop()
        self.monitor.stop()
        if self.reloader is not None:
            self.reloader.stop()
        lameduck = self.generation.options.lameduck if self.running else 0
        if lameduck > 0:
            log.info("Going into lameduck mode for {seconds}s", seconds=lameduck)
            self._stopped = task.deferLater(self.reactor, lameduck, self._stop_now)
        else:
            self._stopped = self._stop_now()
        return self._stopped

    def _stop_now(self):
        ds = [defer.maybeDeferred(service.MultiService.stopService, self)]
        if self.generation_services is not None:
            ds.append(defer.maybeDeferred(self.generation_services.stopService))
        for listener in self.listeners.values():
            ds.append(listener.close())
        self.listeners = {}
        ds.append(self.web.close_all())
        return defer.gatherResults(ds, consumeErrors=True)
