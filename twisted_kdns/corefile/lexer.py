# -*- test-case-name: tests.corefile.test_lexer -*-
"""
Corefile tokens, following Caddy's lexer as CoreDNS uses it.

Tokens are separated by whitespace; C{{} and C{}} are tokens only when they
stand alone; a token starting with C{"} runs to the next unescaped C{"} (only
C{\\"} is an escape) and may span lines; an unquoted C{#} starts a comment.
Every token remembers its file and line for error messages, and whether it
is the first token on its line (directives end at the end of a line).
"""

import os
import re


class Token(object):
    __slots__ = ("text", "file", "line", "first", "quoted", "chain")

    def __init__(self, text, file, line, first, quoted=False, chain=()):
        self.text = text
        self.file = file
        self.line = line
        self.first = first
        self.quoted = quoted
        self.chain = chain  # the imports (files, snippets) this token came through

    def copy(self, chain):
        return Token(self.text, self.file, self.line, self.first, self.quoted, chain)

    def __repr__(self):
        return "Token(%r, %s:%d%s)" % (self.text, self.file, self.line, ", first" if self.first else "")

    @property
    def is_open(self):
        return self.text == "{" and not self.quoted

    @property
    def is_close(self):
        return self.text == "}" and not self.quoted


_ENV = re.compile(r"\{\$([^{}$%]+)\}|\{%([^{}$%]+)%\}")


def substitute_env(text, environ=None):
    """Replace C{{$NAME}} and C{{%NAME%}} with the variable (empty when unset)."""
    env = os.environ if environ is None else environ
    for _ in range(100):  # a value may itself contain a placeholder
        new = _ENV.sub(lambda m: env.get(m.group(1) or m.group(2), ""), text)
        if new == text:
            break
        text = new
    return text


def tokenize(text, file, environ=None):
    """
    Split C{text} into L{Token}s.

    @raise ValueError: with C{(line, message)} args for an unterminated quote.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    nul = text.find("\x00")
    if nul >= 0:  # never valid; paths with it would make os calls raise ValueError
        raise ValueError(text.count("\n", 0, nul) + 1, "NUL byte in the file")
    tokens = []
    line = 1
    i = 0
    n = len(text)
    last_line = 0
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
            continue
        if c.isspace():
            i += 1
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        start_line = line
        if c == '"':
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise ValueError(start_line, "unterminated quoted string")
                c = text[i]
                if c == "\\":
                    # As Caddy: a backslash escapes the next character, but
                    # only an escaped quote loses its backslash.
                    if i + 1 >= n:
                        raise ValueError(start_line, "unterminated quoted string")
                    nxt = text[i + 1]
                    if nxt != '"':
                        buf.append("\\")
                    if nxt == "\n":
                        line += 1
                    buf.append(nxt)
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                if c == "\n":
                    line += 1
                buf.append(c)
                i += 1
            value = substitute_env("".join(buf), environ)
            tokens.append(Token(value, file, start_line, start_line != last_line, True))
            # A quoted token may span lines: what follows its closing quote
            # on the same line continues the same directive.
            last_line = line
            continue
        j = i
        while j < n and not text[j].isspace() and text[j] != "#":
            j += 1
        value = substitute_env(text[i:j].replace("\r", ""), environ)
        tokens.append(Token(value, file, start_line, start_line != last_line))
        last_line = start_line
        i = j
    return tokens
