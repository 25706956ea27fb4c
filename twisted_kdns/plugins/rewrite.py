# -*- test-case-name: tests.plugins.test_rewrite -*-
"""
rewrite: change the question before the rest of the chain sees it, and the
reply on its way back, as CoreDNS's rewrite plugin does.

Rules are tried in Corefile order; a rule that applies ends the evaluation
unless its mode is C{continue}.  Request changes produce a derived query
(L{KdnsQuery.derive}); the client always sees its own question because the
server copies the request's question into the reply.  Reply changes (names
put back, TTL clamps, rcode swaps) collected from the applied rules run in
reverse order on a copy of the reply: the next plugin's answer may be a
cached one shared with other clients.
"""

import ipaddress
import re
import struct

from twisted.logger import Logger
from twisted.names import dns

from twisted_kdns.errors import ServFail
from twisted_kdns.names import valid_domain
from twisted_kdns.plugin import Args, Wrapper
from twisted_kdns.plugins._middleware import (
    as_deferred, call_next, copy_rr, deliver, qtype_value, rcode_value, settle)
from twisted_kdns.query import Edns

KIND = "wrapper"
ONCE = False
log = Logger(namespace="kdns.plugins.rewrite")
MATCH_TYPES = ("exact", "prefix", "suffix", "substring", "regex")
CLASSES = {"IN": dns.IN, "CH": dns.CH, "HS": dns.HS}
MAX_REGEX = 10000
MAX_TTL = 2 ** 31 - 1
EDNS_NSID, EDNS_SUBNET = 3, 8


class RuleError(ValueError):
    """A rule that cannot be built; the parser adds file and line."""


def type_name(qtype):
    if qtype == dns.ALL_RECORDS:
        return "ANY"
    return dns.QUERY_TYPES.get(qtype) or dns.EXT_QUERIES.get(qtype) or "TYPE%d" % (qtype,)


def fqdn_text(text):
    text = text.lower()
    return text if text.endswith(".") else text + "."


def expand_groups(template, match):
    """CoreDNS's C{{N}} group references in a replacement."""
    out = template
    for index in range(len(match.groups()), -1, -1):
        out = out.replace("{%d}" % index, match.group(index) or "")
    return out


def compile_regex(pattern, replacement):
    if len(pattern) > MAX_REGEX:
        raise RuleError("regex pattern too long")
    try:
        regex = re.compile(pattern)
    except re.error:
        raise RuleError("invalid regex matching pattern: %s" % (pattern,))
    used = sum(1 for i in range(101) if "{%d}" % i in replacement)
    if used > regex.groups:
        raise RuleError("the rewrite regex pattern (%s) uses more subexpressions than its "
                        "corresponding matching regex pattern (%s)" % (replacement, pattern))
    return regex


class NameMatch(object):
    """FROM (and TO) of one match type, on lower-case FQDN text."""

    def __init__(self, kind, source, target=None):
        if kind not in MATCH_TYPES:
            raise RuleError("name rule supports only exact, prefix, suffix, substring, and regex "
                            "name matching, received: %s" % (kind,))
        self.kind = kind
        if kind == "regex":
            self.source = source
            self.target = fqdn_text(target) if target is not None else None
            self.regex = compile_regex(source, target or "")
        else:
            self.source = fqdn_text(source)
            self.target = fqdn_text(target) if target is not None else None
            self.regex = None

    def matches(self, name):
        kind, source = self.kind, self.source
        if kind == "exact":
            return name == source
        if kind == "prefix":
            return name.startswith(source)
        if kind == "suffix":
            return name.endswith(source)
        if kind == "substring":
            return source in name
        return self.regex.search(name) is not None

    def rewrite(self, name):
        """The new name, or C{None} when the rule does not match."""
        kind, source, target = self.kind, self.source, self.target
        if kind == "exact":
            return target if name == source else None
        if kind == "prefix":
            return target + name[len(source):] if name.startswith(source) else None
        if kind == "suffix":
            return name[:-len(source)] + target if name.endswith(source) else None
        if kind == "substring":
            return name.replace(source, target) if source in name else None
        match = self.regex.search(name)
        return expand_groups(target, match) if match else None


# -- reply rewriting ---------------------------------------------------------

def _text(name):
    return fqdn_text(name.name.decode("ascii", "replace") if hasattr(name, "name") else name)


def _bytes(text):
    return text.rstrip(".").encode("ascii", "replace")


def _rewrite_value(payload, fn):
    """A new payload with its domain-name fields passed through C{fn}, or C{None} if unchanged."""
    t = payload.TYPE
    ttl = payload.ttl
    if t in (dns.CNAME, dns.DNAME, dns.NS, dns.PTR):
        new = fn(_text(payload.name))
        return type(payload)(_bytes(new), ttl) if new is not None else None
    if t == dns.MX:
        new = fn(_text(payload.name))
        return dns.Record_MX(payload.preference, _bytes(new), ttl) if new is not None else None
    if t == dns.SRV:
        new = fn(_text(payload.target))
        return dns.Record_SRV(payload.priority, payload.weight, payload.port, _bytes(new), ttl) if new is not None else None
    if t == dns.SOA:
        mname, rname = fn(_text(payload.mname)), fn(_text(payload.rname))
        if mname is None and rname is None:
            return None
        return dns.Record_SOA(_bytes(mname) if mname else payload.mname.name,
                              _bytes(rname) if rname else payload.rname.name, payload.serial,
                              payload.refresh, payload.retry, payload.expire, payload.minimum, ttl)
    if t == dns.NAPTR:
        new = fn(_text(payload.replacement))
        return dns.Record_NAPTR(payload.order, payload.preference, payload.flags.string,
                                payload.service.string, payload.regexp.string, _bytes(new), ttl) if new is not None else None
    return None


class RecordRewrite(object):
    """Rewrite owner names (C{names}) and/or record values (C{values}) with C{fn(text) -> text|None}."""

    def __init__(self, fn, names=True, values=True):
        self.fn = fn
        self.names = names
        self.values = values

    def __call__(self, response):
        def fix(rr):
            if rr.type == dns.OPT:
                return rr
            name = payload = None
            if self.names:
                new = self.fn(_text(rr.name))
                if new is not None:
                    name = _bytes(new)
            if self.values:
                payload = _rewrite_value(rr.payload, self.fn)
            if name is None and payload is None:
                return rr
            return copy_rr(rr, name=name, payload=payload)
        return response.replace(answers=[fix(rr) for rr in response.answers],
                                authority=[fix(rr) for rr in response.authority],
                                additional=[fix(rr) for rr in response.additional])


def swap_suffix(old, new):
    """C{fn} mapping names equal to or under C{old} to the same under C{new}."""
    def fn(name):
        if name == old:
            return new
        if name.endswith("." + old):
            return name[:len(name) - len(old)] + new
        return None
    return fn


def swap_string_suffix(old, new):
    """The suffix rule's inverse: a plain string suffix swap, as the rule itself matched."""
    def fn(name):
        return name[:len(name) - len(old)] + new if name.endswith(old) else None
    return fn


def swap_prefix(old, new):
    def fn(name):
        return new + name[len(old):] if name.startswith(old) else None
    return fn


def regex_fn(regex, replacement):
    def fn(name):
        match = regex.search(name)
        return fqdn_text(expand_groups(replacement, match)) if match else None
    return fn


class TtlClamp(object):
    def __init__(self, low, high):
        self.low, self.high = low, high

    def __call__(self, response):
        def clamp(rr):
            if rr.type == dns.OPT:
                return rr
            ttl = min(max(rr.ttl, self.low), self.high)
            return rr if ttl == rr.ttl else copy_rr(rr, ttl=ttl)
        return response.replace(answers=[clamp(rr) for rr in response.answers],
                                authority=[clamp(rr) for rr in response.authority],
                                additional=[clamp(rr) for rr in response.additional])


class RcodeSwap(object):
    def __init__(self, old, new):
        self.old, self.new = old, new

    def __call__(self, response):
        return response.replace(rcode=self.new) if response.rcode == self.old else response


# -- rules --------------------------------------------------------------------

class NameRule(object):
    """C{name [TYPE] FROM TO [answer auto | answer name RE REPL | answer value RE REPL]...}"""

    def __init__(self, mode, args):
        self.mode = mode
        if len(args) < 2:
            raise RuleError("too few arguments for a name rule")
        if args[0].lower() in MATCH_TYPES and len(args) >= 3:
            kind, source, target, rest = args[0].lower(), args[1], args[2], args[3:]
        elif len(args) == 2:
            kind, source, target, rest = "exact", args[0], args[1], []
        else:
            raise RuleError("name rule supports only exact, prefix, suffix, substring, and regex "
                            "name matching, received: %s" % (args[0],))
        self.match = NameMatch(kind, source, target)
        self.auto = kind == "exact"
        self.answers = []
        explicit_name = False
        while rest:
            if rest[0] != "answer" or len(rest) < 2:
                raise RuleError("the rewrite rule is invalid: %s" % (" ".join(rest),))
            field = rest[1].lower()
            if field == "auto":
                self.auto = True
                rest = rest[2:]
            elif field in ("name", "value"):
                if len(rest) < 4:
                    raise RuleError("answer %s needs a pattern and a replacement" % (field,))
                regex = compile_regex(rest[2], rest[3])
                self.answers.append(RecordRewrite(regex_fn(regex, rest[3]), names=field == "name",
                                                  values=field == "value"))
                explicit_name = explicit_name or field == "name"
                rest = rest[4:]
            else:
                raise RuleError("invalid answer rewrite field '%s' (auto, name or value)" % (rest[1],))
        if self.auto and explicit_name and kind != "exact":
            raise RuleError("answer auto cannot be combined with answer name")

    def apply(self, kq, name):
        new = self.match.rewrite(name)
        if new is None:
            return None
        if not valid_domain(new) or ".." in new:
            raise ServFail("plugin/rewrite: invalid name after rewrite: %s" % (new,))
        reverts = list(self.answers)
        if self.auto:
            kind = self.match.kind
            if kind == "suffix":
                reverts.append(RecordRewrite(swap_string_suffix(self.match.target, self.match.source)))
            elif kind == "prefix":
                reverts.append(RecordRewrite(swap_prefix(self.match.target, self.match.source)))
            else:
                reverts.append(RecordRewrite(swap_suffix(new, name)))
        return kq.derive(name=_bytes(new)), reverts


class TypeRule(object):
    def __init__(self, mode, args):
        self.mode = mode
        if len(args) != 2:
            raise RuleError("type rule takes FROM and TO")
        self.old, self.new = qtype_value(args[0]), qtype_value(args[1])
        if self.old is None or self.new is None:
            raise RuleError("invalid type %r" % (args[0] if self.old is None else args[1],))

    def apply(self, kq, name):
        if kq.type != self.old:
            return None
        return kq.derive(type=self.new), []


class ClassRule(object):
    def __init__(self, mode, args):
        self.mode = mode
        if len(args) != 2 or args[0].upper() not in CLASSES or args[1].upper() not in CLASSES:
            raise RuleError("class rule takes FROM and TO among IN, CH, HS")
        self.old, self.new = CLASSES[args[0].upper()], CLASSES[args[1].upper()]

    def apply(self, kq, name):
        if kq.cls != self.old:
            return None
        return kq.derive(cls=self.new), []


def _match_args(args, needed):
    """C{[TYPE] NAME rest...} with exactly C{needed} values after NAME."""
    if len(args) == needed + 2 and args[0].lower() in MATCH_TYPES:
        return args[0].lower(), args[1], args[2:]
    if len(args) == needed + 1:
        return "exact", args[0], args[1:]
    raise RuleError("wrong number of arguments")


class TtlRule(object):
    """C{ttl [TYPE] NAME SECONDS|MIN-MAX}: clamp every TTL of the reply."""

    def __init__(self, mode, args):
        self.mode = mode
        kind, name, (spec,) = _match_args(args, 1)
        self.match = NameMatch(kind, name)
        m = re.match(r"^(\d*)(-?)(\d*)$", spec)
        if not m or (not m.group(1) and not m.group(3)):
            raise RuleError("invalid TTL '%s'" % (spec,))
        low = int(m.group(1)) if m.group(1) else 0
        if m.group(2):
            high = int(m.group(3)) if m.group(3) else MAX_TTL
        else:
            high = low
        if low > high or high > MAX_TTL:
            raise RuleError("invalid TTL range '%s'" % (spec,))
        self.clamp = TtlClamp(low, high)

    def apply(self, kq, name):
        return (kq, [self.clamp]) if self.match.matches(name) else None


class RcodeRule(object):
    """C{rcode [TYPE] NAME FROM TO}: swap the reply's rcode."""

    def __init__(self, mode, args):
        self.mode = mode
        kind, name, (old, new) = _match_args(args, 2)
        self.match = NameMatch(kind, name)
        old_v, new_v = rcode_value(old), rcode_value(new)
        if old_v is None or new_v is None:
            raise RuleError("invalid rcode '%s'" % (old if old_v is None else new,))
        self.swap = RcodeSwap(old_v, new_v)

    def apply(self, kq, name):
        return (kq, [self.swap]) if self.match.matches(name) else None


class Edns0Rule(object):
    """
    C{edns0 local|nsid|subnet set|append|replace|unset ...}: edit the EDNS
    options plugins after us (forward) send on.  C{revert} is accepted;
    replies never carry upstream options here, so there is nothing to undo.
    """

    VARIABLES = ("{qname}", "{qtype}", "{client_ip}", "{client_port}", "{protocol}",
                 "{server_ip}", "{server_port}")

    def __init__(self, mode, args):
        self.mode = mode
        args = list(args)
        if args and args[-1] == "revert":
            args.pop()
        if len(args) < 2:
            raise RuleError("edns0 rule needs a type and an action")
        self.kind, self.action = args[0].lower(), args[1].lower()
        if self.action not in ("set", "append", "replace", "unset"):
            raise RuleError("invalid action '%s' (set, append, replace, unset)" % (args[1],))
        rest = args[2:]
        if self.kind == "local":
            if len(rest) != (1 if self.action == "unset" else 2):
                raise RuleError("edns0 local needs CODE%s" % ("" if self.action == "unset" else " DATA",))
            try:
                self.code = int(rest[0], 0)
            except ValueError:
                raise RuleError("invalid EDNS0 local code '%s'" % (rest[0],))
            self.data = None
            if len(rest) > 1:
                data = rest[1]
                if data.startswith("{") and data.endswith("}"):
                    if data not in self.VARIABLES:
                        raise RuleError("unsupported variable name '%s'" % (data,))
                    self.data = data
                elif data.startswith("0x"):
                    try:
                        self.data = bytes.fromhex(data[2:])
                    except ValueError:
                        raise RuleError("invalid hex data '%s'" % (data,))
                else:
                    self.data = data.encode()
        elif self.kind == "nsid":
            if rest:
                raise RuleError("edns0 nsid takes no arguments")
            self.code, self.data = EDNS_NSID, b""
        elif self.kind == "subnet":
            if self.action == "unset":
                if rest:
                    raise RuleError("edns0 subnet unset takes no arguments")
            elif len(rest) != 2:
                raise RuleError("edns0 subnet needs V4BITS V6BITS")
            else:
                try:
                    self.v4, self.v6 = int(rest[0]), int(rest[1])
                except ValueError:
                    raise RuleError("invalid subnet bit lengths")
                if not (0 <= self.v4 <= 32 and 0 <= self.v6 <= 128):
                    raise RuleError("subnet bit lengths out of range (0-32, 0-128)")
            self.code = EDNS_SUBNET
        else:
            raise RuleError("unsupported edns0 type '%s' (local, nsid, subnet)" % (args[0],))

    def _value(self, kq):
        if self.kind == "subnet":
            host = kq.client[0].split("%")[0]
            ip = ipaddress.ip_address(host)
            bits = self.v4 if ip.version == 4 else self.v6
            net = ipaddress.ip_network("%s/%d" % (host, bits), strict=False)
            raw = net.network_address.packed[:(bits + 7) // 8]
            return struct.pack("!HBB", 1 if ip.version == 4 else 2, bits, 0) + raw
        data = self.data
        if isinstance(data, str):
            local = kq.local or ("", 0)
            data = {"{qname}": kq.name.name.decode("ascii", "replace") + ".",
                    "{qtype}": type_name(kq.type),
                    "{client_ip}": kq.client[0], "{client_port}": str(kq.client[1]),
                    "{protocol}": kq.transport, "{server_ip}": local[0],
                    "{server_port}": str(local[1])}[data]
            if not isinstance(data, str):
                data = str(data)
            data = data.encode()
        return data

    def apply(self, kq, name):
        edns = kq.edns
        options = parse_options(edns.options if edns is not None else b"")
        present = any(code == self.code for code, _ in options)
        if self.action == "unset":
            if not present:
                return None
            options = [(c, d) for c, d in options if c != self.code]
        elif self.action == "append":
            if present:
                return None
            options.append((self.code, self._value(kq)))
        elif self.action == "replace":
            if not present:
                return None
            value = self._value(kq)
            options = [(c, value if c == self.code else d) for c, d in options]
        else:
            value = self._value(kq)
            if present:
                options = [(c, value if c == self.code else d) for c, d in options]
            else:
                options.append((self.code, value))
        new = kq.derive()
        if edns is None:
            new.edns = Edns(payload=512, options=encode_options(options))
        else:
            new.edns = Edns(edns.payload, edns.do, edns.version, encode_options(options), edns.raw_flags)
        return new, []


def parse_options(raw):
    out, pos = [], 0
    while pos + 4 <= len(raw):
        code, length = struct.unpack("!HH", raw[pos:pos + 4])
        out.append((code, raw[pos + 4:pos + 4 + length]))
        pos += 4 + length
    return out


def encode_options(options):
    return b"".join(struct.pack("!HH", code, len(data)) + data for code, data in options)


class CnameTarget(object):
    """
    The reply side of a C{cname} rule: a CNAME whose target matches gets the
    new target, and the new target is resolved through the rest of the
    chain with the same type; the answer becomes the CNAMEs plus the new
    target's records (the old target's records are dropped), as CoreDNS does.
    """

    needs_lookup = True

    def __init__(self, match, kq):
        self.match = match
        self.kq = kq

    def resolve(self, response, next):
        for rr in response.answers:
            if rr.type != dns.CNAME:
                continue
            target = _text(rr.payload.name)
            new = self.match.rewrite(target)
            if new is None or new == target:
                continue
            if not valid_domain(new) or ".." in new:
                log.warn("plugin/rewrite: invalid cname target after rewrite: {name}", name=new)
                return as_deferred(response)
            return self._lookup(response, target, new, next)
        return as_deferred(response)

    def _lookup(self, response, old, new, next):
        ask = self.kq.derive(name=_bytes(new))
        ask.hooks = ()

        def done(outcome):
            found = settle(outcome)
            if found is None or found.rcode != dns.OK:
                log.info("plugin/rewrite: lookup of rewritten cname target {name} failed", name=new)
            cnames = []
            for rr in response.answers:
                if rr.type == dns.CNAME:
                    if _text(rr.payload.name) == old:
                        rr = copy_rr(rr, payload=dns.Record_CNAME(_bytes(new), rr.payload.ttl))
                    cnames.append(rr)
            extra = [rr for rr in (found.answers if found is not None else ()) if _text(rr.name) == new]
            return response.replace(answers=cnames + extra)
        return call_next(next, ask).addBoth(done)


class CnameRule(object):
    """C{cname [TYPE] FROM TO}: rewrite CNAME targets in the reply and resolve the new target."""

    def __init__(self, mode, args):
        self.mode = mode
        if len(args) == 3 and args[0].lower() in MATCH_TYPES:
            kind, source, target = args[0].lower(), args[1], args[2]
        elif len(args) == 2:
            kind, source, target = "exact", args[0], args[1]
        elif len(args) == 3:
            raise RuleError("unknown cname rewrite type: %s" % (args[0],))
        else:
            raise RuleError("too few (%d) arguments for a cname rule" % (len(args),))
        self.match = NameMatch(kind, source, target)

    def apply(self, kq, name):
        return kq, [CnameTarget(self.match, kq)]


RULES = {"name": NameRule, "cname": CnameRule, "type": TypeRule, "class": ClassRule, "ttl": TtlRule,
         "rcode": RcodeRule, "edns0": Edns0Rule}


def _rule(args, values):
    mode = "stop"
    if values and values[0] in ("stop", "continue"):
        mode, values = values[0], values[1:]
    if args.d.block is not None:
        if values:
            raise args.error("rewrite block form takes only [continue|stop] before '{'")
        for sub in args.block():
            values = values + [sub.name] + sub.values
    if not values:
        raise args.error("Wrong argument count or unexpected line ending after 'rewrite'")
    field = values[0].lower()
    cls = RULES.get(field)
    if cls is None:
        raise args.error("invalid rule type %r" % (values[0],))
    try:
        return cls(mode, values[1:])
    except RuleError as e:
        raise args.error(str(e))


def parse(directives):
    rules = []
    for directive in directives:
        args = Args(directive, "rewrite")
        rules.append(_rule(args, list(args.values)))
    return rules


class RewriteResolver(Wrapper):
    name = "rewrite"

    def __init__(self, rules, next):
        Wrapper.__init__(self, next)
        self.rules = rules

    def query(self, kq, timeout=None):
        current = kq
        reverts = []
        try:
            for rule in self.rules:
                name = current.qname.decode("ascii", "replace") + "."
                applied = rule.apply(current, name)
                if applied is None:
                    continue
                current, more = applied
                reverts.extend(more)
                if rule.mode == "stop":
                    break
        except ServFail as e:
            return as_deferred(deliver(e.response, e.reason))
        d = call_next(self.next, current)
        if reverts:
            d.addBoth(self._reply, reverts)
        return d

    def _reply(self, outcome, reverts):
        response = settle(outcome)
        if response is None:
            return outcome
        reason = getattr(getattr(outcome, "value", None), "reason", "")
        return self._revert(response, list(reversed(reverts)), reason)

    def _revert(self, response, pending, reason):
        while pending:
            revert = pending.pop(0)
            if getattr(revert, "needs_lookup", False):
                d = revert.resolve(response, self.next)
                return d.addCallback(self._revert, pending, reason)
            response = revert(response)
        return deliver(response, reason)


def setup(config, ctx, next):
    return RewriteResolver(config, next)
