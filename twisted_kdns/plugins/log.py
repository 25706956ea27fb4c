# -*- test-case-name: tests.plugins.test_log -*-
"""
log: one line per query in CoreDNS's common (or combined, or custom)
format, for the first rule whose name contains the query, filtered by
response class (success, denial, error, all).
"""

import re

from twisted.logger import Logger
from twisted.names import dns

from twisted_kdns.names import is_subdomain, normalize
from twisted_kdns.plugin import Args, Wrapper

KIND = "wrapper"
ONCE = False
log = Logger(namespace="kdns.plugins.log")

COMMON = ('{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" '
          '{rcode} {>rflags} {rsize} {duration}')
COMBINED = COMMON + ' "{>opcode}"'
CLASSES = ("success", "denial", "error", "all")
_PLACEHOLDER = re.compile(r"\{[^{}]+\}")
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
               6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADVERS"}


class Rule(object):
    def __init__(self, name, fmt, classes):
        self.name = name
        self.format = fmt
        self.classes = classes


class LogConfig(object):
    def __init__(self, rules):
        self.rules = rules


def parse(directives):
    rules = []
    for d in directives:
        args = Args(d, "log")
        values = args.count(0)
        fmt = COMMON
        names = values
        if len(values) > 1 and "{" in values[-1]:
            fmt = values[-1].replace("{common}", COMMON).replace("{combined}", COMBINED)
            names = values[:-1]
        classes = set()
        for sub in args.block():
            if sub.name != "class":
                raise sub.unknown()
            for c in sub.count(1):
                if c not in CLASSES:
                    raise sub.error("unknown class '%s'" % (c,))
                classes.add(c)
        if not classes or "all" in classes:
            classes = {"success", "denial", "error"}
        for name in names or ["."]:
            rules.append(Rule(normalize(name), fmt, frozenset(classes)))
    return LogConfig(rules)


def response_class(reply):
    """
    CoreDNS's C{response.Typify} then C{Classify}: answers -> success;
    an SOA in authority with NOERROR (NODATA) or NXDOMAIN -> denial;
    other NOERROR (delegation, empty) -> success; anything else, an
    NXDOMAIN without SOA included, -> error.
    """
    rcode = reply.rCode
    if rcode == dns.OK and reply.answers:
        return "success"
    soa = any(rr.type == dns.SOA for rr in reply.authority)
    if soa and rcode in (dns.OK, dns.ENAME):
        return "denial"
    if rcode == dns.OK:
        return "success"
    return "error"


def flags(reply):
    names = (("qr", reply.answer), ("aa", reply.auth), ("tc", reply.trunc), ("rd", reply.recDes),
             ("ra", reply.recAv), ("ad", reply.authenticData), ("cd", reply.checkingDisabled))
    return ",".join(n for n, v in names if v)


def format_line(fmt, kq, reply, wire, now):
    ext = 0
    for rr in reply.additional:
        if rr.type == dns.OPT:
            ext = rr.ttl >> 24
    rcode = (ext << 4) | reply.rCode
    host = kq.client[0]
    local = kq.local[0] if kq.local else ""
    values = {
        "{remote}": "[%s]" % host if ":" in host else host,
        "{port}": str(kq.client[1]),
        "{local}": "[%s]" % local if ":" in local else local,
        "{type}": dns.QUERY_TYPES.get(kq.type, "TYPE%d" % kq.type),
        "{class}": dns.QUERY_CLASSES.get(kq.cls, "CLASS%d" % kq.cls),
        "{name}": kq.qname.decode("ascii", "replace") + ".",
        "{proto}": kq.transport,
        "{size}": str(kq.size),
        "{rcode}": RCODE_NAMES.get(rcode, str(rcode)),
        "{rsize}": str(len(wire)),
        "{duration}": "%.9fs" % max(0.0, now - kq.started),
        "{>id}": str(kq.message.id if kq.message else 0),
        "{>rflags}": flags(reply),
        "{>do}": "true" if kq.do else "false",
        "{>bufsize}": str(65535 if kq.transport == "tcp" else max(512, kq.edns.payload if kq.edns else 512)),
        "{>opcode}": str(kq.message.opCode if kq.message else 0),
    }
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(0), "-"), fmt)


class LogResolver(Wrapper):
    name = "log"

    def __init__(self, config, next, clock):
        Wrapper.__init__(self, next)
        self.rules = config.rules
        self.clock = clock

    def query(self, query, timeout=None):
        for rule in self.rules:
            if is_subdomain(query.qname, rule.name):
                query.add_hook(lambda kq, reply, wire, rule=rule: self._log(rule, kq, reply, wire))
                break
        return self.next.query(query)

    def _log(self, rule, kq, reply, wire):
        if response_class(reply) in rule.classes:
            log.info("[INFO] {line}", line=format_line(rule.format, kq, reply, wire, self.clock()))


def setup(config, ctx, next):
    import time
    return LogResolver(config, next, time.monotonic)
