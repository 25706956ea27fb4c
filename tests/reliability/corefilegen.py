"""
Seeded Corefile fuzzing input (tests/reliability/test_corefile_fuzz.py and
bench/fuzz_long.py): real Corefiles from the docs and etc/ mutated token by
token, and random token streams over the Corefile vocabulary (every plugin
name, the options the docs use, braces, quotes, snippets, imports,
environment placeholders, odd values).
"""

import glob
import os
import random
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FENCE = re.compile(r"~~~ *corefile\n(.*?)~~~", re.S)


def corpus():
    """Every Corefile example in docs/plugins/*.md and the shipped etc/Corefile*."""
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "docs", "plugins", "*.md"))):
        with open(path) as f:
            out.extend(FENCE.findall(f.read()))
    for path in sorted(glob.glob(os.path.join(ROOT, "etc", "Corefile*"))):
        with open(path) as f:
            out.append(f.read())
    return [text for text in out if text.strip()]


def vocabulary(texts):
    words = set()
    for text in texts:
        words.update(re.findall(r"[^\s{}]+", text))
    words.update([
        "{", "}", "{", "}", "\n", "\n", "\n", "import", "(snip)", "import snip", "{$HOME}", "{$NOPE}",
        "{env.HOME}", '"quoted value"', '"unterminated', "\\", "#comment", ".:53", ".:0", ":70000",
        "dns://.:53", "tls://.:853", "grpc://.", "https://.", "example.org:-1", "10.0.0.0/33",
        "1.2.3.4:99999", "::1", "[::1]:53", "-1", "0", "99999999999999999999", "1e9", "5s", "-5s",
        "0s", "1h", "10000h", "NaN", "inf", "/dev/null", "/nonexistent", "*.example.org", "*",
        "\u00e9t\u00e9.example", "\x00", "A", "AAAA", "ANY", "TYPE65535", "IN", "CH", "~", "..",
        "a..b", "x" * 300, "fallthrough", "next", "stop", "answer", "name", "regex", "(.*)",
        "{1}", "(", ")", "\"\"", "''",
    ])
    return sorted(words)


class CorefileFuzzer(object):
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.texts = corpus()
        self.words = vocabulary(self.texts)

    def tokens(self, text):
        return re.findall(r"\s+|[^\s]+", text)

    def mutate(self, text):
        r = self.rng
        toks = self.tokens(text)
        for _ in range(r.randrange(1, 6)):
            if not toks:
                break
            op = r.randrange(5)
            i = r.randrange(len(toks))
            if op == 0:
                del toks[i]
            elif op == 1:
                toks.insert(i, r.choice(self.words))
            elif op == 2:
                toks[i] = r.choice(self.words)
            elif op == 3:
                j = r.randrange(len(toks))
                toks[i], toks[j] = toks[j], toks[i]
            else:
                toks.insert(i, toks[i])
        return "".join(toks)

    def random_stream(self):
        r = self.rng
        out = []
        for _ in range(r.randrange(1, 60)):
            out.append(r.choice(self.words))
            out.append(r.choice((" ", " ", " ", "\n", "\t", "\n  ")))
        return "".join(out)

    def next(self):
        if self.rng.random() < 0.6:
            return "mutated", self.mutate(self.rng.choice(self.texts))
        return "random", self.random_stream()

    def cases(self, count):
        for _ in range(count):
            yield self.next()
