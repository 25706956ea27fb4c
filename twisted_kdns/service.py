# -*- test-case-name: tests.test_service -*-
"""
L{KdnsService}: the process.  It owns the listeners and the current
generation (built configuration), and swaps generations on reload.

Listeners look up their routes in the current generation on every query,
so a swap is a single assignment on the reactor thread: no query is lost
and the sockets of addresses that stay in use are kept.
"""

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from twisted_kdns import __version__
from twisted_kdns.config import build
from twisted_kdns.server.dispatch import Dispatcher
from twisted_kdns.server.listen import open_pair, wildcard_addresses
from twisted_kdns.server.tcp import DNSStreamFactory
from twisted_kdns.server.udp import DNSDatagramProtocol
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
        self.generation_services = self._start_generation(self.generation)
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
        self.notifier.reloading()
        old, old_services = self.generation, self.generation_services
        self.generation_services = self._start_generation(generation)
        self.generation = generation
        for key in list(self.listeners):
            if key not in generation.routes:
                self.listeners.pop(key).close()
        self.notifier.reloaded()
        return defer.maybeDeferred(old_services.stopService) if old_services else defer.succeed(None)

    def stopService(self):
        self.stopping = True
        self.notifier.stop()
        ds = [defer.maybeDeferred(service.MultiService.stopService, self)]
        if self.generation_services is not None:
            ds.append(defer.maybeDeferred(self.generation_services.stopService))
        for listener in self.listeners.values():
            ds.append(listener.close())
        self.listeners = {}
        return defer.gatherResults(ds, consumeErrors=True)
