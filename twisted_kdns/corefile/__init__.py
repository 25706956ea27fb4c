"""The Corefile language: lexer, parser and the structures plugins read."""

from twisted_kdns.corefile.parser import parse_file, parse_text  # noqa: F401
