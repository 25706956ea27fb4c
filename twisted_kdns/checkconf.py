# -*- test-case-name: tests.test_entrypoints -*-
"""
C{kdns check FILE} / C{kdns-checkconf FILE}: validate a Corefile without
binding anything.  Exit 0, or 1 with every error found, one per line.
"""

import argparse
import sys

from twisted_kdns.errors import ConfigError, ConfigErrors


def check_file(path, dns_port=53):
    """@return: the list of error lines (empty when the Corefile is valid)."""
    from twisted_kdns.config import load
    try:
        load(path=path, dns_port=dns_port)
    except ConfigErrors as e:
        return [str(err) for err in e.errors]
    except ConfigError as e:
        return [str(e)]
    return []


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kdns-checkconf", description="Validate a Corefile.")
    parser.add_argument("corefile", nargs="?", help="the Corefile to check")
    parser.add_argument("--corefile", dest="corefile_opt", help="the Corefile to check")
    parser.add_argument("--dns-port", type=int, default=53)
    args = parser.parse_args(argv)
    path = args.corefile_opt or args.corefile or "Corefile"
    errors = check_file(path, args.dns_port)
    for line in errors:
        print(line, file=sys.stderr)
    if not errors:
        print("%s: OK" % (path,))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
