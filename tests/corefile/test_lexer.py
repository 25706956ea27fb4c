"""Corefile tokens: whitespace, braces, quotes, comments, environment variables, lines."""

from twisted.trial import unittest

from twisted_kdns.corefile.lexer import substitute_env, tokenize


def texts(tokens):
    return [t.text for t in tokens]


class LexerTests(unittest.SynchronousTestCase):
    def test_whitespaceAndBraces(self):
        """Tokens split on any whitespace; a lone brace is a token, a glued one is not."""
        tokens = tokenize("example.org {\n\thosts\r\n}\nexample.net{\n", "F")
        self.assertEqual(texts(tokens), ["example.org", "{", "hosts", "}", "example.net{"])
        self.assertTrue(tokens[1].is_open)
        self.assertTrue(tokens[3].is_close)
        self.assertFalse(tokens[4].is_open)

    def test_lineNumbersAndFirst(self):
        """Every token knows its file, line and whether it starts its line."""
        tokens = tokenize(". {\n  log a b\n\n  whoami\n}\n", "Corefile")
        self.assertEqual([(t.text, t.line, t.first) for t in tokens],
                         [(".", 1, True), ("{", 1, False), ("log", 2, True), ("a", 2, False),
                          ("b", 2, False), ("whoami", 4, True), ("}", 5, True)])
        self.assertEqual({t.file for t in tokens}, {"Corefile"})

    def test_comments(self):
        """An unquoted # starts a comment, even mid-token; the part before it stays a token."""
        tokens = tokenize("# header\nhosts a#b c\n# x y\nlog # trailing\n", "F")
        self.assertEqual(texts(tokens), ["hosts", "a", "log"])
        self.assertEqual([t.line for t in tokens], [2, 2, 4])

    def test_quotedTokens(self):
        """A quoted token keeps spaces, # and braces literally; only \\" is an escape."""
        tokens = tokenize('log "a b # c" "{" "say \\"hi\\"" "back\\slash" ""\n', "F")
        self.assertEqual(texts(tokens), ["log", "a b # c", "{", 'say "hi"', "back\\slash", ""])
        self.assertFalse(tokens[2].is_open)
        self.assertTrue(tokens[1].quoted)

    def test_escapedBackslashBeforeQuote(self):
        """As Caddy: a backslash escapes the next character, so "a\\" ends at its quote."""
        self.assertEqual(texts(tokenize('"a\\\\" b\n', "F")), ["a\\\\", "b"])

    def test_quoteMidToken(self):
        """A quote in the middle of a token is an ordinary character."""
        self.assertEqual(texts(tokenize('ab"cd ef\n', "F")), ['ab"cd', "ef"])

    def test_multilineQuote(self):
        """A quoted token may span lines; the line count goes on, and what follows it on
        its closing line belongs to the same directive."""
        tokens = tokenize('log "a\nb" tail\nnext\n', "F")
        self.assertEqual(texts(tokens), ["log", "a\nb", "tail", "next"])
        self.assertEqual([t.line for t in tokens], [1, 1, 2, 3])
        self.assertEqual([t.first for t in tokens], [True, False, False, True])

    def test_unterminatedQuote(self):
        """An unterminated quote is an error naming the line where it opened."""
        e = self.assertRaises(ValueError, tokenize, 'a\nlog "open\n\n', "F")
        self.assertEqual(e.args, (2, "unterminated quoted string"))

    def test_byteOrderMark(self):
        """A leading byte-order mark is dropped."""
        self.assertEqual(texts(tokenize("\ufeff. {\n}\n", "F")), [".", "{", "}"])

    def test_envUnixAndWindows(self):
        """{$NAME} and {%NAME%} are replaced anywhere in a token, quoted or not; unset is empty."""
        env = {"PORT": "1053", "ZONE": "example.org", "ARG": "x y"}
        tokens = tokenize('{$ZONE}:{%PORT%} {\n log "{$ARG}" pre{$UNSET}post\n}\n', "F", env)
        self.assertEqual(texts(tokens), ["example.org:1053", "{", "log", "x y", "prepost", "}"])

    def test_envNested(self):
        """A value that itself holds a placeholder is substituted again."""
        self.assertEqual(substitute_env("{$A}", {"A": "{$B}", "B": "done"}), "done")

    def test_envDefaultsToProcessEnvironment(self):
        """Without an explicit mapping the process environment is used."""
        import os
        os.environ["KDNS_LEXER_TEST"] = "from-env"
        self.addCleanup(os.environ.pop, "KDNS_LEXER_TEST", None)
        self.assertEqual(texts(tokenize("{$KDNS_LEXER_TEST}\n", "F")), ["from-env"])
