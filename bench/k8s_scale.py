"""
Time to ready and steady-state memory of a kdns process serving a large
cluster: 10,000 Services (a tenth headless), one EndpointSlice each (50,000
endpoints in all) and 50,000 Pods, served by the API stand-in over HTTP.

Target (CoreDNS's published formula for default settings):
RSS <= (Pods + Services) / 1000 + 54 MB = 114 MB.

    .venv/bin/python bench/k8s_scale.py [--services 10000] [--pods 50000] [--pods-mode disabled|verified]
    .venv/bin/python bench/k8s_scale.py --tracemalloc     # in-process: what the memory is

With the default C{pods disabled} the Pods exist in the cluster but are not
watched (as in CoreDNS); C{--pods-mode verified} watches them too (CoreDNS's
formula for that is (Pods + Services) / 250 + 56 MB = 296 MB).

Bounded: gives up after --deadline seconds (default 180).
"""

import argparse
import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dns.message  # noqa: E402
import dns.query  # noqa: E402

from k8s_cluster import cpu_seconds, free_port, generate, rss_mb, standin, start_kdns, stop, wait_ready  # noqa: E402

COREFILE = """\
.:{dns} {{
    bind 127.0.0.1
    errors
    ready 127.0.0.1:{ready}
    cache 30
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        endpoint {url}
        pods {pods}
    }}
}}
"""


def hwm_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def process_mode(args):
    t0 = time.time()
    api = standin(args.services, args.pods, namespaces=100)
    print("stand-in: %d services, %d endpointslices, %d pods generated and served in %.1fs"
          % (args.services, args.services, args.pods, time.time() - t0))
    dns_port, ready_port = free_port(), free_port()
    env = dict(e.split("=", 1) for e in args.env)
    proc, _ = start_kdns(COREFILE.format(dns=dns_port, ready=ready_port, url=api.url, pods=args.pods_mode),
                         env=env)
    try:
        ready = wait_ready(ready_port, args.deadline, proc)
        if ready is None:
            print("kdns did not become ready within %.0fs" % (args.deadline,))
            return 1
        at_ready = rss_mb(proc.pid)
        cpu = cpu_seconds(proc.pid)
        # A few answers, then let the process settle (the LIST buffers are gone).
        for i in range(0, args.services, max(1, args.services // 50)):
            q = dns.message.make_query("svc-%d.ns-%d.svc.cluster.local" % (i, i % 100), "A")
            dns.query.udp(q, "127.0.0.1", port=dns_port, timeout=2)
        time.sleep(args.settle)
        steady = rss_mb(proc.pid)
        peak = hwm_mb(proc.pid)
        objects = args.services + (args.pods if args.pods_mode != "disabled" else 0)
        target = (args.pods + args.services) / 1000.0 + 54
        if args.pods_mode == "verified":
            target = (args.pods + args.services) / 250.0 + 56
        print("kdns (pods %s): ready in %.2fs (kdns CPU %.2fs); RSS at ready %.1f MB, steady %.1f MB, peak %.1f MB "
              "(target <= %.0f MB for %d pods + %d services; %d objects watched)"
              % (args.pods_mode, ready, cpu, at_ready, steady, peak, target, args.pods, args.services, objects))
        return 0 if steady <= target else 2
    finally:
        stop(proc, api)


def tracemalloc_mode(args):
    """Build the store in this process (no HTTP) and show where the memory goes."""
    import tracemalloc

    from twisted.internet import reactor

    tracemalloc.start(1)
    base = tracemalloc.take_snapshot()
    import kubernetes.client  # noqa: F401  (what the watcher imports)
    after_import = tracemalloc.take_snapshot()
    from twisted_kdns.plugins.kubernetes.objects import convert
    from twisted_kdns.plugins.kubernetes.store import Store

    nss, svcs, slices, pods = generate(args.services, args.pods, 100)
    tracemalloc.stop()  # the raw dicts are the stand-in's, not kdns's
    tracemalloc.start(1)
    kinds = ["namespaces", "services", "endpointslices"] + (["pods"] if args.pods_mode != "disabled" else [])
    store = Store(reactor, kinds, [b"cluster.local"])
    before = tracemalloc.take_snapshot()
    for kind, raws in (("namespaces", nss), ("services", svcs), ("endpointslices", slices), ("pods", pods)):
        if kind in kinds:
            store.replace(kind, [convert(kind, r) for r in raws])
    del nss, svcs, slices, pods
    gc.collect()
    snap = tracemalloc.take_snapshot()
    total = sum(s.size for s in snap.compare_to(before, "filename")) / 1e6
    print("store for %d services, %d slices%s: %.1f MB (Python heap, tracemalloc)"
          % (args.services, args.services, ", %d pods" % args.pods if "pods" in kinds else "", total))
    for stat in snap.compare_to(before, "lineno")[:12]:
        print("  %8.2f MB  %7d blocks  %s" % (stat.size_diff / 1e6, stat.count_diff, stat.traceback[0]))
    imported = sum(s.size_diff for s in after_import.compare_to(base, "filename")) / 1e6
    print("import kubernetes.client: %.1f MB of Python heap" % (imported,))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--pods", type=int, default=50000)
    ap.add_argument("--pods-mode", default="disabled", choices=["disabled", "insecure", "verified"])
    ap.add_argument("--deadline", type=float, default=180.0)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--tracemalloc", action="store_true")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra environment for the kdns process (e.g. MALLOC_ARENA_MAX=2)")
    args = ap.parse_args(argv)
    return tracemalloc_mode(args) if args.tracemalloc else process_mode(args)


if __name__ == "__main__":
    sys.exit(main())
