from twisted.application.service import ServiceMaker

kdns = ServiceMaker("kdns", "twisted_kdns.tap", "A CoreDNS-compatible DNS server for Kubernetes.", "kdns")
