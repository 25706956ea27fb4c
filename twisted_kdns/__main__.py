"""
The C{kdns} command: run the server in the foreground with text logs, the
way systemd and containers want it (C{twist} under the hood, which exits
non-zero on a bad configuration, unlike Debian's C{twistd}).

  kdns [--corefile FILE] [--dns-port PORT] [--log-level LEVEL]
  kdns check FILE        validate only (see L{twisted_kdns.checkconf})
  kdns --version
"""

import argparse
import sys

from twisted_kdns import __version__


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "check":
        from twisted_kdns.checkconf import main as check_main
        return check_main(argv[1:])
    parser = argparse.ArgumentParser(prog="kdns", description="A CoreDNS-compatible DNS server for Kubernetes.")
    parser.add_argument("--corefile", "-conf", "-c", help="Corefile to load")
    parser.add_argument("--dns-port", "-dns.port", "-p", type=int, help="default port for server blocks")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warn", "error", "critical"])
    parser.add_argument("--version", "-version", action="store_true", help="print the version and exit")
    args = parser.parse_args(argv)
    if args.version:
        print("kdns-%s" % (__version__,))
        return 0
    if args.corefile:
        from twisted_kdns.checkconf import check_file
        errors = check_file(args.corefile, args.dns_port or 53)
        if errors:
            for line in errors:
                print(line, file=sys.stderr)
            return 1
    twist_argv = ["kdns", "--log-format=text", "--log-level=" + args.log_level, "kdns"]
    if args.corefile:
        twist_argv += ["--corefile", args.corefile]
    if args.dns_port is not None:
        twist_argv += ["--dns-port", str(args.dns_port)]
    from twisted.application.twist._twist import Twist
    Twist.main(twist_argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
