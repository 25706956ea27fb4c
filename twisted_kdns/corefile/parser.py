# -*- test-case-name: tests.corefile.test_parser -*-
"""
Corefile structure: server blocks, keys, directives and their blocks, with
C{import} and snippets expanded, following Caddy's grammar as CoreDNS uses
it.  Plugins never see tokens: they get L{Directive}s, whose C{error()}
builds a L{ConfigError} that names the file and line.
"""

import glob
import ipaddress
import os

from twisted.logger import Logger

from twisted_kdns.corefile.lexer import Token, tokenize
from twisted_kdns.errors import ConfigError
from twisted_kdns.names import normalize, reverse_zones, valid_domain

log = Logger(namespace="kdns.corefile")
DEFAULT_PORT = 53
SUPPORTED_SCHEMES = ("dns",)
KNOWN_SCHEMES = {"dns": 53, "tls": 853, "quic": 853, "grpc": 443, "https": 443, "https3": 443}
MAX_IMPORTS = 100000
MAX_SNIPPET_EXPANSIONS = 10000


class Directive(object):
    """
    One directive (or sub-directive inside a block).

    @ivar name: its first token's text.
    @ivar args: the following tokens on its line, as L{Token}s.
    @ivar block: sub-directives when it opened a C{{ }} block, else C{None}.
    """

    __slots__ = ("token", "args", "block")

    def __init__(self, token, args, block=None):
        self.token = token
        self.args = args
        self.block = block

    @property
    def name(self):
        return self.token.text

    @property
    def file(self):
        return self.token.file

    @property
    def line(self):
        return self.token.line

    @property
    def values(self):
        """The argument texts."""
        return [a.text for a in self.args]

    def error(self, message, token=None, plugin=None):
        """A L{ConfigError} located at this directive (or one of its tokens)."""
        where = token or self.token
        return ConfigError(message, where.file, where.line, plugin)

    def __repr__(self):
        return "Directive(%r, %r%s)" % (self.name, self.values, ", {...}" if self.block is not None else "")


class ZoneKey(object):
    """One server block key: C{[SCHEME://]ZONE[:PORT]}, normalised."""

    __slots__ = ("scheme", "zone", "port", "text", "token")

    def __init__(self, scheme, zone, port, text, token):
        self.scheme = scheme
        self.zone = zone
        self.port = port
        self.text = text
        self.token = token

    def __repr__(self):
        return "%s://%s:%d" % (self.scheme, (self.zone.decode() + ".") if self.zone else ".", self.port)


class ServerBlock(object):
    """A server block: its keys and directives in Corefile order."""

    def __init__(self, keys, directives, token):
        self.keys = keys
        self.directives = directives
        self.token = token

    @property
    def zones(self):
        return [k.zone for k in self.keys]

    def by_name(self):
        """Directive name -> every occurrence in this block, in Corefile order."""
        grouped = {}
        for d in self.directives:
            grouped.setdefault(d.name, []).append(d)
        return grouped

    def __repr__(self):
        return "ServerBlock(%r, %r)" % (self.keys, self.directives)


class Corefile(object):
    """The parsed file: server blocks and every file read (for reload checksums)."""

    def __init__(self, blocks, files, path):
        self.blocks = blocks
        self.files = files
        self.path = path


def parse_key(token, default_port=DEFAULT_PORT):
    """
    Parse one server block key into L{ZoneKey}s (a CIDR expands to several).

    @raise ConfigError: unsupported scheme, bad port or invalid zone.
    """
    text = token.text.rstrip(",")
    scheme = "dns"
    rest = text
    if "://" in rest:
        scheme, rest = rest.split("://", 1)
        scheme = scheme.lower()
        if scheme not in KNOWN_SCHEMES:
            raise ConfigError("unknown transport scheme '%s' in '%s'" % (scheme, text), token.file, token.line)
        if scheme not in SUPPORTED_SCHEMES:
            raise ConfigError(
                "transport '%s://' is not supported in this version (only dns://)" % (scheme,),
                token.file, token.line)
    port = None
    host = rest
    cidr = None
    try:
        # Only "ADDR/LEN" is the reverse shorthand: a bare "10.0.0.1" is an
        # ordinary (if odd) domain name, as in CoreDNS.
        if "/" not in rest:
            raise ValueError(rest)
        ipaddress.ip_network(rest, strict=False)
        cidr = rest
    except ValueError:
        if ":" in rest:
            host, _, port_text = rest.rpartition(":")
            if not port_text:
                raise ConfigError("expecting data after last colon in '%s'" % (text,), token.file, token.line)
            if not port_text.isdigit() or not 0 <= int(port_text) < 65536:
                raise ConfigError("invalid port '%s' in '%s'" % (port_text, text), token.file, token.line)
            port = int(port_text)
            if "/" in host:
                cidr = host
    if port is None:
        port = default_port if scheme == "dns" else KNOWN_SCHEMES[scheme]
    if cidr is not None:
        try:
            zones = reverse_zones(cidr)
        except ValueError:
            raise ConfigError("invalid CIDR '%s'" % (cidr,), token.file, token.line)
        return [ZoneKey(scheme, z, port, text, token) for z in zones]
    if not host:
        raise ConfigError("empty zone in '%s'" % (text,), token.file, token.line)
    if host != "." and not valid_domain(host):
        raise ConfigError("zone is not a valid domain name: %s" % (host,), token.file, token.line)
    try:
        zone = normalize(host)
    except ValueError:  # UnicodeError: an IDNA label empty or too long
        raise ConfigError("zone is not a valid domain name: %s" % (host,), token.file, token.line)
    return [ZoneKey(scheme, zone, port, text, token)]


class _Stream(object):
    """Tokens with C{import} lines expanded as they are read."""

    def __init__(self, tokens, snippets, files, environ):
        self.stack = list(reversed(tokens))
        self.snippets = snippets
        self.files = files
        self.environ = environ
        self.imports = 0
        self.expansions = 0

    def peek(self):
        tok = self._next(consume=False)
        return tok

    def next(self):
        return self._next(consume=True)

    def _next(self, consume):
        while self.stack:
            tok = self.stack[-1]
            if tok.text == "import" and tok.first and not tok.quoted:
                self.stack.pop()
                self._expand(tok)
                continue
            if consume:
                self.stack.pop()
            return tok
        return None

    def _expand(self, tok):
        if not self.stack or self.stack[-1].first or self.stack[-1].is_open or self.stack[-1].is_close:
            raise ConfigError("Import takes one argument (a snippet name or a file pattern)", tok.file, tok.line)
        arg = self.stack.pop()
        if self.stack and not self.stack[-1].first and self.stack[-1].line == arg.line \
                and self.stack[-1].file == arg.file:
            raise ConfigError("Import takes only one argument", tok.file, tok.line)
        self.imports += 1
        if self.imports > MAX_IMPORTS:
            raise ConfigError("too many imports (more than %d)" % (MAX_IMPORTS,), tok.file, tok.line)
        pattern = arg.text
        if pattern in self.snippets:
            key = "snippet:" + pattern
            if key in tok.chain:
                raise ConfigError("import cycle: snippet '%s' imports itself" % (pattern,), tok.file, tok.line)
            self.expansions += 1
            if self.expansions > MAX_SNIPPET_EXPANSIONS:
                # a snippet imported many times by snippets imported many times
                # grows exponentially without ever forming a cycle
                raise ConfigError("too many snippet expansions (more than %d)" % (MAX_SNIPPET_EXPANSIONS,),
                                  tok.file, tok.line)
            body = self.snippets[pattern]
            chain = tok.chain + (key,)
            spliced = [t.copy(chain) for t in body]
            if spliced:
                spliced[0].first = True
            self.stack.extend(reversed(spliced))
            return
        if not pattern:
            raise ConfigError("Import requires a non-empty argument", tok.file, tok.line)
        base = os.path.dirname(os.path.abspath(tok.file)) if tok.file else os.getcwd()
        path = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
        if any(c in pattern for c in "*?["):
            if "[" in pattern or pattern.count("*") + pattern.count("?") > 1:
                raise ConfigError("Glob pattern may only contain one wildcard (*), but has others: %s"
                                  % (pattern,), tok.file, tok.line)
            matches = sorted(glob.glob(path))
            if not matches:
                log.warn("[WARNING] No files matching import glob pattern: {pattern}", pattern=pattern)
        else:
            if not os.path.isfile(path):
                raise ConfigError("File to import not found: %s" % (pattern,), tok.file, tok.line)
            matches = [path]
        tokens = []
        for match in matches:
            real = os.path.realpath(match)
            if real in tok.chain:
                raise ConfigError("import cycle: %s imports itself" % (match,), tok.file, tok.line)
            try:
                with open(match, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError("could not read imported file %s: %s" % (match, getattr(e, "strerror", None) or e),
                                  tok.file, tok.line)
            self.files.append(match)
            try:
                found = tokenize(text, match, self.environ)
            except ValueError as e:
                raise ConfigError(e.args[1], match, e.args[0])
            chain = tok.chain + (real,)
            tokens.extend(t.copy(chain) for t in found)
        self.stack.extend(reversed(tokens))


def _parse_lines(stream, opener):
    """
    Directives until the C{}} matching C{opener} (or EOF when C{opener} is
    C{None}).  Each directive is its line's tokens; a trailing C{{} opens
    a nested block.
    """
    result = []
    while True:
        tok = stream.next()
        if tok is None:
            if opener is not None:
                raise ConfigError("Unexpected EOF: '{' opened here is never closed", opener.file, opener.line)
            return result
        if tok.is_close:
            if opener is None:
                raise ConfigError("Unexpected '}' because no matching opening brace", tok.file, tok.line)
            return result
        if tok.is_open:
            raise ConfigError("Unexpected token '{': a block must open on the line of its directive",
                              tok.file, tok.line)
        args = []
        block = None
        while True:
            nxt = stream.peek()
            if nxt is None or nxt.first or nxt.is_close:
                break
            stream.next()
            if nxt.is_open:
                block = _parse_lines(stream, nxt)
                break
            args.append(nxt)
        result.append(Directive(tok, args, block))


def _parse_snippet(stream, name_tok, snippets):
    name = name_tok.text[1:-1]
    opener = stream.next()
    if opener is None or not opener.is_open:
        raise ConfigError("Expected '{' after snippet definition (%s)" % (name,), name_tok.file, name_tok.line)
    if name in snippets:
        raise ConfigError("redeclaration of previously declared snippet %s" % (name,), name_tok.file, name_tok.line)
    depth = 1
    body = []
    # Raw tokens: imports inside a snippet expand where the snippet is used.
    while True:
        if not stream.stack:
            raise ConfigError("Unexpected EOF in snippet %s" % (name,), name_tok.file, name_tok.line)
        tok = stream.stack.pop()
        if tok.is_open:
            depth += 1
        elif tok.is_close:
            depth -= 1
            if depth == 0:
                break
        body.append(tok)
    for i, tok in enumerate(body[:-1]):
        if tok.text == "import" and tok.first and body[i + 1].text == name:
            raise ConfigError("a snippet cannot import itself (%s)" % (name,), tok.file, tok.line)
    snippets[name] = body


def _parse_keys(stream, first, default_port):
    keys = []
    tok = first
    while True:
        if tok.is_open:
            raise ConfigError("Expected another address but had '{' - check for extra comma", tok.file, tok.line)
        keys.extend(parse_key(tok, default_port))
        nxt = stream.peek()
        if tok.text.endswith(",") and (nxt is None or nxt.is_open):
            where = nxt or tok
            raise ConfigError("Expected another address but had '%s' - check for extra comma"
                              % (nxt.text if nxt else "EOF",), where.file, where.line)
        if nxt is None or nxt.is_open:
            return keys, tok
        if tok.text.endswith(",") or not nxt.first:
            tok = stream.next()
            continue
        return keys, tok


def parse_tokens(tokens, path, default_port=DEFAULT_PORT, environ=None, files=None):
    """Server blocks from top-level tokens."""
    snippets = {}
    files = files if files is not None else []
    stream = _Stream(tokens, snippets, files, environ)
    blocks = []
    while True:
        tok = stream.next()
        if tok is None:
            break
        if tok.is_close:
            raise ConfigError("Unexpected '}' because no matching opening brace", tok.file, tok.line)
        if tok.is_open:
            raise ConfigError("Unexpected token '{', expecting a server block address", tok.file, tok.line)
        if tok.text.startswith("(") and tok.text.endswith(")") and len(tok.text) > 2:
            _parse_snippet(stream, tok, snippets)
            continue
        keys, last = _parse_keys(stream, tok, default_port)
        nxt = stream.peek()
        if nxt is not None and nxt.is_open:
            opener = stream.next()
            directives = _parse_lines(stream, opener)
        else:
            directives = _parse_lines(stream, None)
        blocks.append(ServerBlock(keys, directives, tok))
    return Corefile(blocks, files, path)


def parse_text(text, path="Corefile", default_port=DEFAULT_PORT, environ=None):
    """
    Parse Corefile C{text}; C{path} names it in errors and anchors imports.

    @raise ConfigError: on any syntax error.
    """
    try:
        tokens = tokenize(text, path, environ)
    except ValueError as e:
        raise ConfigError(e.args[1], path, e.args[0])
    files = [path]
    return parse_tokens(tokens, path, default_port, environ, files)


def parse_file(path, default_port=DEFAULT_PORT, environ=None):
    """Read and parse a Corefile. @raise ConfigError: unreadable or invalid."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("cannot read Corefile: %s" % (getattr(e, "strerror", None) or e,), path, 0)
    return parse_text(text, path, default_port, environ)


__all__ = ["Directive", "ZoneKey", "ServerBlock", "Corefile", "Token", "parse_key",
           "parse_text", "parse_file", "parse_tokens"]
