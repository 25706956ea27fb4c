# -*- test-case-name: tests.plugins.test_hosts -*-
"""
hosts: answers from a hosts(5) file and inline entries, as CoreDNS does.

The file is re-read every C{reload} interval (default 5 s) only when its
mtime or size changed; if it disappears the last data stays.  Inline and
file entries are merged.  PTR records are generated unless C{no_reverse}.
A name that is not found gives SERVFAIL (there is no SOA for an NXDOMAIN)
unless C{fallthrough} covers it.
"""

import ipaddress
import os

from prometheus_client import Gauge
from twisted.application.internet import TimerService
from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import dns

from twisted_kdns.errors import PassToNext, ServFail
from twisted_kdns.names import Fallthrough, ip_to_ptr, is_subdomain, match_zone, normalize
from twisted_kdns.plugin import Args, once
from twisted_kdns.response import Response

KIND = "terminal"
ONCE = True
log = Logger(namespace="kdns.plugins.hosts")

ENTRIES = Gauge("coredns_hosts_entries", "The combined number of entries in hosts and Corefile.",
                ["hostsfile"])
RELOAD_TIMESTAMP = Gauge("coredns_hosts_reload_timestamp_seconds",
                         "The timestamp of the last reload of hosts file.")


class HostsConfig(object):
    def __init__(self):
        self.path = "/etc/hosts"
        self.zones = None
        self.inline = []  # (ip, [names]) lines
        self.ttl = 3600
        self.no_reverse = False
        self.reload = 5.0
        self.fallthrough = Fallthrough.never()
        self.fallthrough_unsupported = False
        self.file = None
        self.line = None


def parse_line(line):
    """C{(ip, [names])} from one hosts line, or C{None} when it is not an entry."""
    line = line.split("#", 1)[0]
    fields = line.split()
    if len(fields) < 2:
        return None
    try:
        ip = ipaddress.ip_address(fields[0].split("%")[0])
    except ValueError:
        return None
    return str(ip), fields[1:]


def parse(directives):
    args = once(directives, "hosts")
    cfg = HostsConfig()
    cfg.file, cfg.line = args.d.file, args.d.line
    values = args.count(0)
    if values:
        cfg.path = values[0]
        if not os.path.isabs(cfg.path) and args.d.file and os.path.dirname(args.d.file):
            cfg.path = os.path.join(os.path.dirname(os.path.abspath(args.d.file)), cfg.path)
        if len(values) > 1:
            cfg.zones = args.zones(values[1:])
    seen_fallthrough = False
    for sub in args.block():
        name = sub.name
        if name == "ttl":
            cfg.ttl = sub.integer(sub.count(1, 1)[0], 1, 65535, "ttl")
        elif name == "no_reverse":
            sub.count(0, 0)
            cfg.no_reverse = True
        elif name == "reload":
            cfg.reload = sub.duration(sub.count(1, 1)[0], "reload duration")
            if cfg.reload < 0:
                raise sub.error("invalid negative duration for reload '%s'" % (sub.values[0],))
        elif name == "fallthrough":
            cfg.fallthrough = sub.fallthrough()
            seen_fallthrough = True
        elif name == "fallthrough_unsupported":
            sub.count(0, 0)
            cfg.fallthrough_unsupported = True
            unsupported = sub
        else:
            if seen_fallthrough:
                raise sub.unknown()
            entry = parse_line(" ".join([name] + sub.values))
            if entry is None:
                raise sub.unknown()
            cfg.inline.append(entry)
    if cfg.fallthrough_unsupported and not seen_fallthrough:
        raise unsupported.error("fallthrough_unsupported requires fallthrough")
    return cfg


class HostsTable(object):
    """Name and address maps built from entries; replaced whole on reload."""

    def __init__(self, entries, zones, no_reverse):
        self.v4 = {}
        self.v6 = {}
        self.ptr = {}
        self.wild4 = {}
        self.wild6 = {}
        count = 0
        for ip, names in entries:
            v6 = ":" in ip
            for raw in names:
                try:
                    name = normalize(raw)
                except (UnicodeError, ValueError):
                    continue  # not encodable as a DNS name: skipped like any bad line
                if not any(is_subdomain(name, z) for z in zones):
                    continue
                wildcard = name.startswith(b"*.")
                if wildcard:
                    table = self.wild6 if v6 else self.wild4
                    key = name[2:]
                else:
                    table = self.v6 if v6 else self.v4
                    key = name
                ips = table.setdefault(key, [])
                if ip not in ips:
                    ips.append(ip)
                    count += 1
                if not no_reverse and not wildcard:
                    ptrs = self.ptr.setdefault(ip_to_ptr(ip), [])
                    if name not in ptrs:
                        ptrs.append(name)
        self.count = count

    def lookup(self, name, v6):
        table, wild = (self.v6, self.wild6) if v6 else (self.v4, self.wild4)
        found = table.get(name)
        if found is None and b"." in name:
            found = wild.get(name.split(b".", 1)[1])
        return found

    def exists(self, name):
        return self.lookup(name, False) is not None or self.lookup(name, True) is not None


def read_hosts(path):
    entries = []
    with open(path, "rb") as f:
        for raw in f:
            entry = parse_line(raw.decode("utf-8", "replace"))
            if entry is not None:
                entries.append(entry)
    return entries


class HostsResolver(object):
    """The hosts terminal; C{reload()} is called by a timer service."""

    name = "hosts"

    def __init__(self, config, zones):
        self.config = config
        self.zones = {z: True for z in (config.zones if config.zones is not None else zones)}
        self.fallthrough = config.fallthrough
        self.stamp = None
        self.file_entries = []
        self.table = HostsTable(config.inline, self.zones, config.no_reverse)
        ENTRIES.labels(config.path).set(self.table.count)
        self.reload()

    def reload(self):
        """Re-read the file when its mtime or size changed."""
        try:
            st = os.stat(self.config.path)
        except OSError as e:
            if self.stamp is None:
                log.warn("hosts file {path} not readable: {err}", path=self.config.path, err=e.strerror)
                self.stamp = ()
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self.stamp:
            return
        try:
            entries = read_hosts(self.config.path)
        except OSError as e:
            log.warn("could not read {path}: {err}", path=self.config.path, err=e)
            return
        self.stamp = stamp
        self.table = HostsTable(entries + self.config.inline, self.zones, self.config.no_reverse)
        ENTRIES.labels(self.config.path).set(self.table.count)
        RELOAD_TIMESTAMP.set_to_current_time()

    def _rr(self, owner, ip):
        if ":" in ip:
            return dns.RRHeader(owner, dns.AAAA, dns.IN, self.config.ttl, dns.Record_AAAA(ip, self.config.ttl), auth=True)
        return dns.RRHeader(owner, dns.A, dns.IN, self.config.ttl, dns.Record_A(ip, self.config.ttl), auth=True)

    def query(self, query, timeout=None):
        qname = query.qname
        table = self.table
        owner = query.name.name
        if query.type == dns.PTR:
            names = table.ptr.get(qname)
            if not names:
                raise PassToNext(qname)
            ttl = self.config.ttl
            answers = [dns.RRHeader(owner, dns.PTR, dns.IN, ttl, dns.Record_PTR(n, ttl), auth=True) for n in names]
            return defer.succeed(Response(answers, aa=True, plugin="hosts"))
        if match_zone(qname, self.zones) is None:
            raise PassToNext(qname)
        if (query.type not in (dns.A, dns.AAAA) and self.config.fallthrough_unsupported
                and self.fallthrough.through(qname)):
            raise PassToNext(qname)  # types hosts cannot hold go on (MX, TXT, SRV, ...)
        if query.type in (dns.A, dns.AAAA):
            ips = table.lookup(qname, query.type == dns.AAAA)
            if ips:
                return defer.succeed(Response([self._rr(owner, ip) for ip in ips], aa=True, plugin="hosts"))
        if table.exists(qname):
            return defer.succeed(Response((), aa=True, plugin="hosts"))  # NODATA, no SOA to add
        if self.fallthrough.through(qname):
            raise PassToNext(qname)
        # CoreDNS answers SERVFAIL without an error to log: there is no SOA to build an NXDOMAIN.
        return defer.fail(ServFail())


def setup(config, ctx, next):
    resolver = HostsResolver(config, ctx.zones)
    if config.reload > 0:
        timer = TimerService(config.reload, resolver.reload)
        timer.clock = ctx.reactor
        ctx.add_service(timer)
    return resolver
