"""
Shared by tests/reliability/test_api_faults.py and bench/faults.py: a kdns
server watching the API stand-in through a kubeconfig with a token, a
querier thread that keeps asking while faults are injected, and the
every-name comparison of DNS answers with the stand-in's objects.
"""

import threading
import time

import dns.message
import dns.query
import dns.rcode

from tests.k8s_apiserver import endpointslice, namespace, service

COREFILE = """\
.:0 {
    bind 127.0.0.1
    kubernetes cluster.local {
        kubeconfig %s
    }
}
"""


def populate(api, count):
    """C{count} services over two namespaces; every fifth headless with one endpoint."""
    api.load("namespaces", [namespace("default"), namespace("other")])
    svcs, slices = [], []
    for i in range(count):
        ns = ("default", "other")[i % 2]
        name = "svc-%d" % (i,)
        svcs.append(service(name, ns, cluster_ip="10.0.%d.%d" % (i // 200, i % 200 + 1),
                            headless=(i % 5 == 0)))
        slices.append(endpointslice(name, ["10.1.%d.%d" % (i // 200, i % 200 + 1)], ns))
    api.load("services", svcs)
    api.load("endpointslices", slices)


def expected_answers(api):
    """C{{qname: sorted A values}} for every service the stand-in holds (headless: its endpoints)."""
    slices = {}
    for s in api.items("endpointslices"):
        meta = s["metadata"]
        svc = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        for ep in s.get("endpoints") or ():
            slices.setdefault((meta["namespace"], svc), []).extend(ep["addresses"])
    out = {}
    for s in api.items("services"):
        meta, spec = s["metadata"], s["spec"]
        name = "%s.%s.svc.cluster.local." % (meta["name"], meta["namespace"])
        if spec.get("clusterIP") == "None":
            out[name] = sorted(slices.get((meta["namespace"], meta["name"]), []))
        else:
            out[name] = [spec["clusterIP"]]
    return out


def ask(port, name, timeout=1.0):
    """C{(rcode, sorted A values)} or C{None} when no answer came."""
    try:
        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", timeout=timeout, port=port)
    except dns.exception.Timeout:
        return None
    return reply.rcode(), sorted(rd.to_text() for rrset in reply.answer for rd in rrset)


def differences(port, want, gone=()):
    """Names whose answer differs from the stand-in's (blocking: call from a thread)."""
    out = []
    for name, values in sorted(want.items()):
        got = ask(port, name)
        if got != (dns.rcode.NOERROR, values):
            out.append((name, values, got))
    for name in gone:
        got = ask(port, name)
        if got is None or got[0] != dns.rcode.NXDOMAIN:
            out.append((name, "NXDOMAIN", got))
    return out


def converge(port, api, gone=(), timeout=10.0):
    """Seconds until every name matches the stand-in (blocking); raises after C{timeout}."""
    t0 = time.monotonic()
    while True:
        want = expected_answers(api)
        diff = differences(port, want, gone)
        if not diff:
            return time.monotonic() - t0, len(want) + len(gone)
        if time.monotonic() - t0 > timeout:
            raise AssertionError("not converged after %.1fs: %r" % (timeout, diff[:5]))
        time.sleep(0.05)


class Querier(object):
    """A thread asking for names that exist all along; counts answered, missing and wrong replies."""

    def __init__(self, port, names):
        self.port = port
        self.names = sorted(names)
        self.counts = {"answered": 0, "timeout": 0, "wrong": 0}
        self.wrong = []
        self.latencies = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        return self.counts

    def _run(self):
        i = 0
        while not self._stop.is_set():
            name, values = self.names[i % len(self.names)]
            i += 1
            t0 = time.monotonic()
            got = ask(self.port, name)
            self.latencies.append(time.monotonic() - t0)
            if got is None:
                self.counts["timeout"] += 1
            elif got != (dns.rcode.NOERROR, values):
                self.counts["wrong"] += 1
                self.wrong.append((name, values, got))
            else:
                self.counts["answered"] += 1
            time.sleep(0.002)
