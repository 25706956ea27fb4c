"""twisted_kdns: a CoreDNS-compatible DNS server for Kubernetes, on Twisted."""

__version__ = "0.1.0"
