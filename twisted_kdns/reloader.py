# -*- test-case-name: tests.plugins.test_reload -*-
"""
Reload: re-read the Corefile, build the new generation next to the running
one, and swap atomically; on any error keep serving the old one.

Two triggers: the C{reload} plugin's poll (every INTERVAL +/- JITTER/2,
drawn once per period from an injected C{random}), which acts only when the
SHA-512 of the parsed configuration changed, and SIGHUP, which reloads at
once.  Like CoreDNS the checksum covers the server blocks' keys and tokens
with imports expanded, so comment or whitespace edits do nothing; a file
that does not parse is hashed by its bytes, so a broken file is tried (and
counted in C{coredns_reload_failed_total}) once, not every period.

Everything runs on the reactor thread; the signal handler only schedules.
"""

import hashlib
import random as _random
import signal

from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from twisted_kdns import metrics
from twisted_kdns.config import build, check
from twisted_kdns.corefile import parse_file
from twisted_kdns.errors import ConfigError

log = Logger(namespace="kdns.plugins.reload")


def _serialise(directives, out):
    for d in directives:
        out.append("%s %s" % (d.name, " ".join(a.text for a in d.args)))
        if d.block is not None:
            out.append("{")
            _serialise(d.block, out)
            out.append("}")


def corefile_digest(corefile):
    """SHA-512 (hex) of the parsed server blocks: keys and directive tokens."""
    out = []
    for block in corefile.blocks:
        out.append(" ".join(k.text for k in block.keys) + " {")
        _serialise(block.directives, out)
        out.append("}")
    return hashlib.sha512("\n".join(out).encode("utf-8")).hexdigest()


def file_digest(path, dns_port=53):
    """
    The configuration checksum of the Corefile at C{path}.

    @return: C{(hex, corefile or None)}; for a file that does not parse,
        the hash of its bytes (or of the error, if unreadable).
    """
    try:
        corefile = parse_file(path, dns_port)
    except ConfigError as e:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            data = str(e).encode("utf-8")
        return "raw:" + hashlib.sha512(data).hexdigest(), None
    return corefile_digest(corefile), corefile


class Reloader(object):
    """
    @param service: the L{KdnsService}: C{generation}, C{swap(generation)}.
    @param clock: schedules the poll (a C{Clock} in tests).
    @param random: returns a float in [0, 1) (injected for tests).
    """

    def __init__(self, service, path, reactor, clock=None, random=_random.random, dns_port=53):
        self.service = service
        self.path = path
        self.reactor = reactor
        self.clock = clock or reactor
        self.random = random
        self.dns_port = dns_port
        self.digest = None
        self._call = None
        self._previous_handler = None

    def start(self):
        """Remember the running checksum and start polling if C{reload} is on."""
        self.digest, _ = file_digest(self.path, self.dns_port)
        self._publish(self.digest)
        self.schedule()

    def stop(self):
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._previous_handler is not None:
            signal.signal(signal.SIGHUP, self._previous_handler)
            self._previous_handler = None

    def install_sighup(self):
        """SIGHUP -> L{reload_now} on the reactor thread."""
        def handler(signum, frame):
            self.reactor.callFromThread(self.reload_now)
        self._previous_handler = signal.signal(signal.SIGHUP, handler) or signal.SIG_DFL

    def period(self):
        """INTERVAL + uniform [-JITTER/2, +JITTER/2), or C{None} without C{reload}."""
        settings = self.service.generation.options.reload
        if settings is None:
            return None
        interval, jitter = settings
        return interval + (self.random() - 0.5) * jitter

    def schedule(self):
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        delay = self.period()
        if delay is not None:
            self._call = self.clock.callLater(delay, self.poll)

    def poll(self):
        """One poll: reload when the checksum changed, then schedule the next."""
        self._call = None
        digest, corefile = file_digest(self.path, self.dns_port)
        if digest != self.digest:
            self.digest = digest  # a broken file is not retried until it changes again
            self._reload(corefile)
        else:
            self.schedule()

    def reload_now(self):
        """SIGHUP: re-read and rebuild now, changed or not."""
        digest, corefile = file_digest(self.path, self.dns_port)
        self.digest = digest
        return self._reload(corefile)

    def _publish(self, digest):
        if digest.startswith("raw:"):
            return
        metrics.RELOAD_VERSION.clear()
        metrics.RELOAD_VERSION.labels("sha512", digest).set(1)
        log.info("plugin/reload: Running configuration SHA512 = {digest}", digest=digest)

    def _fail(self, error):
        metrics.RELOAD_FAILED.inc()
        metrics.RELOADS.labels("failed").inc()
        log.error("plugin/reload: Corefile changed but reload failed: {error}", error=error)
        self.schedule()
        return False

    def _reload(self, corefile):
        """
        Build and swap.  @return: C{True} when the new generation runs.
        """
        if self.service.stopping:
            return False  # shutting down (lameduck): do not reopen anything
        log.info("Reloading")
        try:
            if corefile is None:
                corefile = parse_file(self.path, self.dns_port)  # raises with file:line
            generation = build(check(corefile), self.reactor, self.dns_port)
        except ConfigError as e:
            return self._fail(str(e))
        except Exception as e:
            log.failure("building the new configuration failed")
            return self._fail("%s: %s" % (type(e).__name__, e))
        try:
            self.service.swap(generation)
        except (OSError, CannotListenError) as e:
            return self._fail("cannot listen: %s" % (e,))
        except Exception as e:
            log.failure("starting the new configuration failed")
            return self._fail("%s: %s" % (type(e).__name__, e))
        metrics.RELOADS.labels("ok").inc()
        self._publish(self.digest)
        log.info("Reloading complete")
        self.schedule()
        return True
