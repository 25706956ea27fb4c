# -*- test-case-name: tests.plugins.kubernetes.test_parse -*-
"""
Kubernetes label selectors (C{labels}, C{namespace_labels}).

The API watcher passes the selector string to the API server as is; we
parse it here so that a bad one is a Corefile error (as in CoreDNS) and so
that the manifests source can apply it itself.  Grammar (apimachinery's
labels.Parse): comma-separated requirements C{k=v}, C{k==v}, C{k!=v},
C{k in (a,b)}, C{k notin (a,b)}, C{k}, C{!k}.
"""

import re

_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                  r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SET = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\(([^()]*)\)\s*$")


class SelectorError(ValueError):
    pass


def _split(text):
    """Split on commas outside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError("unbalanced parenthesis")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise SelectorError("unbalanced parenthesis")
    parts.append("".join(cur))
    return parts


def _key(key):
    if len(key.split("/")[-1]) > 63 or not _KEY.match(key):
        raise SelectorError("invalid label key %r" % (key,))
    return key


def _value(value):
    if len(value) > 63 or not _VALUE.match(value):
        raise SelectorError("invalid label value %r" % (value,))
    return value


class Selector(object):
    """A parsed selector; L{matches} tests a labels dict."""

    def __init__(self, text):
        self.text = text
        self.requirements = []
        if not text.strip():
            return
        for part in _split(text):
            part = part.strip()
            if not part:
                raise SelectorError("empty requirement")
            m = _SET.match(part)
            if m:
                values = [_value(v.strip()) for v in m.group(3).split(",")]
                self.requirements.append((_key(m.group(1)), m.group(2), frozenset(values)))
                continue
            for op in ("==", "!=", "="):
                if op in part:
                    key, value = part.split(op, 1)
                    self.requirements.append((_key(key.strip()), "!=" if op == "!=" else "=",
                                              _value(value.strip())))
                    break
            else:
                if part.startswith("!"):
                    self.requirements.append((_key(part[1:].strip()), "!", None))
                elif " " in part:
                    raise SelectorError("unexpected text %r" % (part,))
                else:
                    self.requirements.append((_key(part), "exists", None))

    def matches(self, labels):
        labels = labels if isinstance(labels, dict) else {}
        for key, op, value in self.requirements:
            present = key in labels
            actual = labels.get(key)
            if op == "=" and actual != value:
                return False
            if op == "!=" and present and actual == value:
                return False
            if op == "in" and (not present or actual not in value):
                return False
            if op == "notin" and present and actual in value:
                return False
            if op == "exists" and not present:
                return False
            if op == "!" and present:
                return False
        return True

    def __repr__(self):
        return "Selector(%r)" % (self.text,)
