# -*- test-case-name: tests.plugins.test_loadbalance -*-
"""
loadbalance: shuffle address and MX records so clients that take the first
record spread over all of them (CoreDNS's round_robin), or pick the first
address by weight (C{weighted WEIGHTFILE}).

Each section of a NOERROR reply is rebuilt as CNAMEs first (so a chain keeps
its order), then other records, then A/AAAA shuffled, then MX shuffled;
C{prefer CIDR...} then moves addresses inside those networks to the front.
The reply may be a cached one shared with other clients, so the shuffle
works on new lists and a L{Response.replace} copy, never in place.
"""

import hashlib
import ipaddress
import os
import random

from twisted.application.internet import TimerService
from twisted.logger import Logger
from twisted.names import dns
from twisted.python.failure import Failure

from twisted_kdns.errors import ConfigError
from twisted_kdns.plugin import Wrapper, once
from twisted_kdns.plugins._middleware import call_next, settle
from twisted_kdns.response import as_response

KIND = "wrapper"
ONCE = True
SKIP_TYPES = frozenset([dns.AXFR, dns.IXFR])
WEIGHTED_TYPES = frozenset([dns.A, dns.AAAA, dns.SRV])
log = Logger(namespace="kdns.plugins.loadbalance")


class LoadbalanceConfig(object):
    def __init__(self):
        self.policy = "round_robin"
        self.weight_file = None
        self.reload = 30.0
        self.prefer = []
        self.file = None
        self.line = None


def parse(directives):
    args = once(directives, "loadbalance")
    cfg = LoadbalanceConfig()
    cfg.file, cfg.line = args.d.file, args.d.line
    values = args.count(0, 2)
    if values:
        if values[0] == "weighted":
            if len(values) < 2:
                raise args.error("missing weight file argument")
            cfg.policy = "weighted"
            cfg.weight_file = values[1]
            if not os.path.isabs(cfg.weight_file) and args.d.file and os.path.dirname(args.d.file):
                cfg.weight_file = os.path.join(os.path.dirname(os.path.abspath(args.d.file)), cfg.weight_file)
        elif values[0] != "round_robin":
            raise args.error("unknown policy: %s" % (values[0],))
        elif len(values) > 1:
            raise args.error("unknown property for %s" % (values[0],))
    for sub in args.block():
        if sub.name == "prefer":
            for text in sub.count(1):
                try:
                    cfg.prefer.append(ipaddress.ip_network(text, strict=False))
                except ValueError:
                    raise sub.error("invalid CIDR %s" % (text,))
        elif sub.name == "reload":
            if cfg.policy != "weighted":
                raise sub.error("reload applies only to the weighted policy")
            cfg.reload = sub.duration(sub.count(1, 1)[0], "reload duration", allow_bare_seconds=False)
        else:
            raise sub.unknown()
    return cfg


class WeightFileError(ValueError):
    """A bad weight file; C{str()} names the file and line."""


def parse_weights(text, path):
    """
    C{{owner FQDN text: {ip_address: weight}}} from a weight file: a domain
    name line, then C{IP WEIGHT} lines (weights 1-255); C{#} comments.
    """
    domains = {}
    current = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        where = "%s:%d" % (path, number)
        if len(fields) == 1:
            try:
                ipaddress.ip_address(fields[0])
            except ValueError:
                pass
            else:
                raise WeightFileError("%s - wrong domain name: %r (maybe a missing weight value?)" % (where, fields[0]))
            name = fields[0].lower()
            current = domains.setdefault(name if name.endswith(".") else name + ".", {})
        elif len(fields) == 2:
            try:
                ip = ipaddress.ip_address(fields[0])
            except ValueError:
                raise WeightFileError("%s - wrong IP address: %r" % (where, fields[0]))
            if not fields[1].isdigit() or not 1 <= int(fields[1]) <= 255:
                raise WeightFileError("%s - wrong weight value: %r" % (where, fields[1]))
            if current is None:
                raise WeightFileError("%s - missing domain name" % (where,))
            current[ip] = int(fields[1])
        else:
            raise WeightFileError("%s - could not parse weight line: %r" % (where, line))
    return domains


class Weights(object):
    """The weight file, re-read by a timer when its content (MD5) changed."""

    def __init__(self, path):
        self.path = path
        self.digest = None
        self.domains = {}

    def load(self):
        """Read the file; C{True} when it changed.  @raise OSError, WeightFileError."""
        with open(self.path, "rb") as f:
            data = f.read()
        digest = hashlib.md5(data).digest()
        if digest == self.digest:
            return False
        self.domains = parse_weights(data.decode("utf-8", "replace"), self.path)
        self.digest = digest
        return True

    def reload(self):
        try:
            if self.load():
                log.info("plugin/loadbalance: successfully reloaded weight file {path}", path=self.path)
        except (OSError, WeightFileError) as e:
            log.error("plugin/loadbalance: {error}", error=e)

    def weight(self, rr):
        table = self.domains.get(rr.name.name.decode("ascii", "replace").lower().rstrip(".") + ".")
        if not table:
            return 1
        return table.get(_address(rr), 1)


def _address(rr):
    payload = rr.payload
    if rr.type == dns.A:
        return ipaddress.ip_address(payload.dottedQuad())
    return ipaddress.ip_address(payload._address)


# reorder()'s order of kinds: CNAMEs, other records, addresses, MX.
_RANK = {dns.CNAME: 0, dns.A: 2, dns.AAAA: 2, dns.MX: 3}


def _section_types(response):
    """
    The record types of each section, read without decoding a forwarded
    reply's records (L{ForwardResponse} keeps them as offsets until read).
    """
    reply = getattr(response, "_reply", None)
    if reply is not None and getattr(response, "untouched", False):
        return [[record[1] for record in section] for section in reply.records]
    return [[rr.type for rr in section] for section in (response.answers, response.authority, response.additional)]


def _reorders(response):
    """
    True unless L{LoadbalanceResolver.reorder} would give every section back
    unchanged: at most one address and one MX record, kinds already in
    reorder's order.  A one-element shuffle draws no random number, so
    skipping it changes nothing, the random sequence included.
    """
    for types in _section_types(response):
        last = addresses = mxs = 0
        for rtype in types:
            rank = _RANK.get(rtype, 1)
            if rank < last:
                return True
            last = rank
            if rank == 2:
                addresses += 1
            elif rank == 3:
                mxs += 1
        if addresses > 1 or mxs > 1:
            return True
    return False


class LoadbalanceResolver(Wrapper):
    name = "loadbalance"

    def __init__(self, config, next, rng=None, weights=None):
        Wrapper.__init__(self, next)
        self.prefer = config.prefer
        self.rng = rng or random.Random()
        self.weights = weights

    def query(self, kq, timeout=None):
        d = call_next(self.next, kq)
        if kq.type in SKIP_TYPES:
            return d
        return d.addCallback(self._balance, kq.type)

    def _balance(self, result, qtype):
        response = settle(result)
        if response is None or response.rcode != dns.OK:
            return result
        if self.weights is not None:
            if qtype not in WEIGHTED_TYPES:
                return result
            return as_response(result).replace(
                answers=self._prefer(self.weighted(response.answers)),
                additional=self._prefer(self.weighted(response.additional)))
        if not _reorders(response):
            # Nothing to shuffle or move: no record is read or copied, so a
            # forwarded reply keeps its byte pass-through (issue 8).
            return result if isinstance(result, Failure) else response
        return as_response(result).replace(
            answers=self.reorder(response.answers),
            authority=self.reorder(response.authority),
            additional=self.reorder(response.additional))

    def weighted(self, records):
        """
        A new list: CNAMEs, others, addresses, MX, with one address chosen
        by weight (unknown addresses weigh 1) swapped to the front of the
        addresses; nothing else is shuffled.
        """
        addresses = [rr for rr in records if rr.type in (dns.A, dns.AAAA)]
        if not addresses:
            return list(records)
        weights = [self.weights.weight(rr) for rr in addresses]
        pick = self.rng.randrange(sum(weights))
        for index, weight in sorted(enumerate(weights), key=lambda iw: -iw[1]):
            if pick < weight:
                break
            pick -= weight
        addresses[0], addresses[index] = addresses[index], addresses[0]
        return ([rr for rr in records if rr.type == dns.CNAME]
                + [rr for rr in records if rr.type not in (dns.CNAME, dns.A, dns.AAAA, dns.MX)]
                + addresses + [rr for rr in records if rr.type == dns.MX])

    def _prefer(self, records):
        if not self.prefer:
            return records
        addresses = [rr for rr in records if rr.type in (dns.A, dns.AAAA)]
        preferred = [rr for rr in addresses if any(_address(rr) in net for net in self.prefer)]
        if not preferred:
            return records
        ordered = iter(preferred + [rr for rr in addresses if rr not in preferred])
        return [next(ordered) if rr.type in (dns.A, dns.AAAA) else rr for rr in records]

    def reorder(self, records):
        """A new list: CNAMEs, others, shuffled A/AAAA (preferred networks first), shuffled MX."""
        if len(records) < 2:
            return list(records)
        cnames, other, addresses, mxs = [], [], [], []
        for rr in records:
            if rr.type == dns.CNAME:
                cnames.append(rr)
            elif rr.type in (dns.A, dns.AAAA):
                addresses.append(rr)
            elif rr.type == dns.MX:
                mxs.append(rr)
            else:
                other.append(rr)
        self.rng.shuffle(addresses)
        self.rng.shuffle(mxs)
        if self.prefer and addresses:
            preferred = [rr for rr in addresses if any(_address(rr) in net for net in self.prefer)]
            if preferred:
                rest = [rr for rr in addresses if not any(_address(rr) in net for net in self.prefer)]
                addresses = preferred + rest
        return cnames + other + addresses + mxs


def setup(config, ctx, next):
    weights = None
    if config.policy == "weighted":
        weights = Weights(config.weight_file)
        try:
            weights.load()
        except OSError as e:
            if config.reload <= 0:
                raise ConfigError("failed to open weight file %s: %s" % (config.weight_file, e.strerror or e),
                                  config.file, config.line, "loadbalance")
            log.warn("plugin/loadbalance: failed to open weight file {path}; will try again in {reload}s",
                     path=config.weight_file, reload=config.reload)
        except WeightFileError as e:
            raise ConfigError(str(e), config.file, config.line, "loadbalance")
        if config.reload > 0:
            timer = TimerService(config.reload, weights.reload)
            timer.clock = ctx.reactor
            ctx.add_service(timer)
    return LoadbalanceResolver(config, next, weights=weights)
