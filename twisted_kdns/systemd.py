# -*- test-case-name: tests.test_systemd -*-
"""
systemd's notify protocol (sd_notify(3)) in the standard library, so that a
C{Type=notify} unit only counts kdns as started once it really answers.

Twisted has no sd_notify and libsystemd's Python binding is not a
dependency we want, and the protocol is one datagram: C{KEY=VALUE} lines
sent to the C{AF_UNIX}/C{SOCK_DGRAM} socket named by C{$NOTIFY_SOCKET} (a
leading C{@} means the abstract namespace).  Without that variable every
call is a no-op, so the same code runs under a shell, twistd, containers
and tests.

L{SystemdNotifier} sends:

  - C{READY=1} once the listeners are bound (the caller starts it after
    that) and every readiness provider of the running generation says
    ready, or C{startup_timeout} seconds have passed (5 s, or longer when a
    provider such as kubernetes is configured with a longer
    C{startup_timeout}; then serving what we have beats being killed by
    C{TimeoutStartSec});
  - C{WATCHDOG=1} every half C{WatchdogSec} from the reactor, so a blocked
    reactor thread makes systemd restart us;
  - C{RELOADING=1} / C{READY=1} around a reload and C{STOPPING=1} at shutdown.
"""

import os
import socket

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger(namespace="kdns.systemd")

#: Send READY=1 after this long even if a plugin is not ready yet (CoreDNS's
#: kubernetes C{startup_timeout} default is 5 s).
STARTUP_TIMEOUT = 5.0
#: How often readiness is polled before READY=1.
POLL_INTERVAL = 0.1


def socket_address(environ=None):
    """
    The notify socket address from C{$NOTIFY_SOCKET} (C{None} when unset):
    a filesystem path, or an abstract name as a string starting with NUL.
    """
    environ = os.environ if environ is None else environ
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return None
    if address.startswith("@"):
        return "\0" + address[1:]
    if not address.startswith("/"):
        return None  # vsock and other forms are not for us
    return address


def notify(state, environ=None):
    """
    Send C{state} (e.g. C{"READY=1\\nSTATUS=serving"}) to systemd.

    Never raises: a notify failure must not take DNS down.
    @return: C{True} when a datagram was sent.
    """
    address = socket_address(environ)
    if address is None:
        return False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        sock.setblocking(False)
        sock.sendto(state.encode("utf-8"), address)
        return True
    except OSError as e:
        log.warn("sd_notify {state!r} to {address!r} failed: {err}", state=state, address=address, err=e)
        return False
    finally:
        sock.close()


def watchdog_interval(environ=None, pid=None):
    """
    Seconds between C{WATCHDOG=1} pings (half of C{WatchdogSec}), or
    C{None} when the watchdog is off or meant for another process.
    """
    environ = os.environ if environ is None else environ
    pid = os.getpid() if pid is None else pid
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner and owner.strip() != str(pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    return value / 2e6


def provider_timeout(provider):
    """
    How long a provider asks to be waited for: its own C{startup_timeout}
    (or its config's, as the kubernetes plugin's C{startup_timeout} option).
    """
    for obj in (provider, getattr(provider, "config", None)):
        value = getattr(obj, "startup_timeout", None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return 0.0


def providers_ready(readiness):
    """C{(all ready, [names not ready])} for C{(name, provider)} pairs."""
    waiting = []
    for name, provider in readiness:
        try:
            ok = provider.ready()
        except Exception:
            log.failure("readiness of {name} failed", name=name)
            ok = False
        if not ok:
            waiting.append(name)
    return not waiting, waiting


class SystemdNotifier(object):
    """
    Tells systemd how kdns is doing; inert without C{$NOTIFY_SOCKET}.

    @param readiness: a callable returning the current C{(name, provider)}
        readiness pairs (it is re-read on every poll so a reload during
        start-up is honoured).
    """

    def __init__(self, reactor, readiness, startup_timeout=STARTUP_TIMEOUT, environ=None,
                 poll_interval=POLL_INTERVAL):
        self.reactor = reactor
        self.readiness = readiness
        self.startup_timeout = startup_timeout
        self.environ = os.environ if environ is None else environ
        self.poll_interval = poll_interval
        self.ready_sent = False
        self._started = None
        self._poll = None
        self._watchdog = None

    @property
    def active(self):
        return socket_address(self.environ) is not None

    def start(self):
        """Call once listeners are bound: READY=1 now or when plugins are ready."""
        if not self.active:
            return
        self._started = self.reactor.seconds()
        interval = watchdog_interval(self.environ)
        if interval is not None:
            self._watchdog = LoopingCall(notify, "WATCHDOG=1", self.environ)
            self._watchdog.clock = self.reactor
            self._watchdog.start(interval, now=True)
        self._check()

    def _check(self):
        self._poll = None
        readiness = self.readiness()
        ready, waiting = providers_ready(readiness)
        elapsed = self.reactor.seconds() - self._started
        timeout = max([self.startup_timeout] + [provider_timeout(p) for _, p in readiness])
        if ready:
            self._ready("serving")
        elif elapsed >= timeout:
            log.warn("not ready after {t}s (waiting for {names}); telling systemd READY=1 anyway",
                     t=timeout, names=", ".join(waiting))
            self._ready("serving; not ready: " + ", ".join(waiting))
        else:
            self._poll = self.reactor.callLater(self.poll_interval, self._check)

    def _ready(self, status):
        self.ready_sent = True
        notify("READY=1\nSTATUS=" + status, self.environ)

    def reloading(self):
        """A new configuration is being applied (systemd shows 'reloading')."""
        if self.active:
            notify("RELOADING=1", self.environ)

    def reloaded(self):
        """The reload is done (or failed and the old one kept serving)."""
        if self.active and self.ready_sent:
            notify("READY=1\nSTATUS=serving (reloaded)", self.environ)

    def stop(self):
        """Shutdown has begun: STOPPING=1, and stop every timer."""
        if self._poll is not None and self._poll.active():
            self._poll.cancel()
        self._poll = None
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()
        self._watchdog = None
        if self.active:
            notify("STOPPING=1", self.environ)
