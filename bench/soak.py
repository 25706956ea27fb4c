#!/usr/bin/env python3
"""
Soak: kdns (the production Corefile's plugins, 1,000 Services from
manifests, forward to a loopback unbound, cache) under a steady mixed load
at a fraction (80 %) of its measured saturation rate, for a bounded time.

    .venv/bin/python bench/soak.py                   # 10 minutes at 80 %
    .venv/bin/python bench/soak.py --duration 120    # the shortened run

Every 10 s slice is one dnsperf run at the fixed rate (-Q, -v): its
completed/lost counts and p99 latency, then kdns's RSS, open file
descriptors and threads from /proc.  Output: bench/results/reliability/
soak.json, soak.md (the table and verdicts) and soak.png (RSS/fd/p99 over
time; needs matplotlib).  Server on CPU 0, dnsperf and unbound on CPU 1.
Traffic mix per 10 lines: 4 cluster names (A, existing Services), 3
forwarded names (1,000 distinct, cached after their first ask), 2 NXDOMAIN
cluster names, 1 forwarded name from a set of 20,000 (mostly cache misses).
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.lib import dnsperf  # noqa: E402
from bench.lib.data import Dataset, fqdn, render  # noqa: E402
from bench.lib.procs import Process, free_port, pinned  # noqa: E402

OUT = os.path.join(ROOT, "bench", "results", "reliability")

COREFILE = """\
.:{port} {{
    bind 127.0.0.1
    errors
    health 127.0.0.1:{health} {{
       lameduck 1s
    }}
    ready 127.0.0.1:{ready}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
       manifests {manifests}
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    prometheus 127.0.0.1:{metrics}
    forward . 127.0.0.1:{upstream} {{
       max_concurrent 1000
    }}
    cache 30
    loop
    loadbalance
}}
"""


def proc_stats(pid):
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return {"rss_kb": rss, "fds": len(os.listdir("/proc/%d/fd" % pid)),
            "threads": len(os.listdir("/proc/%d/task" % pid))}


def mixed_queries(data, path, lines=20000, seed=1):
    rng = random.Random(seed)
    out = []
    for i in range(lines):
        k = i % 10
        if k < 4:
            name, ns, _ = rng.choice(data.services)
            out.append("%s A" % fqdn(name, ns))
        elif k < 7:
            out.append("name%d.example.org A" % rng.randrange(1000))
        elif k < 9:
            out.append("missing%d.ns%d.svc.cluster.local A" % (rng.randrange(5000), rng.randrange(10)))
        else:
            out.append("miss%d.example.net A" % rng.randrange(20000))
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return path


def wait_port(port, timeout=30):
    import socket
    q = (b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04svc0\x03ns0\x03svc\x07cluster"
         b"\x05local\x00\x00\x01\x00\x01")
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.3)
        try:
            s.sendto(q, ("127.0.0.1", port))
            data = s.recv(512)
            if data[3] & 0xF == 0 and data[7] > 0:
                return True
        except OSError:
            time.sleep(0.2)
        finally:
            s.close()
    return False


def plot(series, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    t = [s["t"] for s in series]
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    axes[0].plot(t, [s["rss_kb"] / 1024.0 for s in series], marker=".")
    axes[0].set_ylabel("RSS (MB)")
    axes[1].plot(t, [s["fds"] for s in series], marker=".", label="fds")
    axes[1].plot(t, [s["threads"] for s in series], marker=".", label="threads")
    axes[1].legend()
    axes[1].set_ylabel("count")
    axes[2].plot(t, [s["p99_ms"] for s in series], marker=".")
    axes[2].set_ylabel("p99 (ms)")
    axes[2].set_xlabel("seconds into the soak")
    fig.suptitle("kdns soak")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=600.0, help="soak seconds (default 600)")
    p.add_argument("--fraction", type=float, default=0.8, help="of the saturated rate (default 0.8)")
    p.add_argument("--slice", type=float, default=10.0, help="seconds per sample (default 10)")
    p.add_argument("--warmup", type=float, default=30.0, help="seconds excluded from the flatness verdict")
    p.add_argument("--out", default=OUT)
    args = p.parse_args(argv)
    for tool in ("dnsperf", "unbound"):
        if shutil.which(tool) is None and not os.path.exists("/usr/sbin/" + tool):
            sys.exit("%s is required" % tool)
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="kdns-soak-")
    procs = []
    try:
        data = Dataset(work).generate()
        queries = mixed_queries(data, os.path.join(work, "queries-soak.txt"))
        up_port = free_port()
        unbound_conf = render("upstream.conf", os.path.join(work, "unbound.conf"), port=up_port, workdir=work)
        unbound = Process("unbound", ["unbound", "-d", "-c", unbound_conf], os.path.join(work, "unbound.log"),
                          cpu=1)
        unbound.start()
        procs.append(unbound)
        port = free_port()
        corefile = os.path.join(work, "Corefile")
        with open(corefile, "w") as f:
            f.write(COREFILE.format(port=port, health=free_port(), ready=free_port(), metrics=free_port(),
                                    manifests=data.manifests, upstream=up_port))
        kdns = Process("kdns", [sys.executable, "-m", "twisted_kdns", "--corefile", corefile],
                       os.path.join(work, "kdns.log"), cpu=0, cwd=ROOT)
        kdns.start()
        procs.append(kdns)
        if not wait_port(port):
            sys.exit("kdns did not answer: %s" % (kdns.log_tail(20),))
        # Fill the caches once, then measure saturation.
        dnsperf.run(port, queries, 5, max_runs=1)
        sat = dnsperf.run(port, queries, 10)
        rate = int(sat["qps"] * args.fraction)
        print("saturation %.0f q/s (lost %d); soaking at %d q/s for %.0f s" % (
            sat["qps"], sat["lost"], rate, args.duration), flush=True)
        series = []
        t0 = time.time()
        base = proc_stats(kdns.pid)
        while time.time() - t0 < args.duration:
            r = dnsperf.run(port, queries, args.slice, rate=rate, verbose=True)
            lat = r.pop("latencies")
            stats = proc_stats(kdns.pid)
            sample = dict(stats, t=round(time.time() - t0, 1), qps=r["qps"], sent=r["sent"],
                          completed=r["completed"], lost=r["lost"], rcodes=r["rcodes"],
                          p50_ms=1000 * (dnsperf.percentile(lat, 50) or 0),
                          p99_ms=1000 * (dnsperf.percentile(lat, 99) or 0))
            series.append(sample)
            print("t=%5.0fs qps=%7.0f lost=%d p99=%.2fms rss=%.1fMB fds=%d threads=%d" % (
                sample["t"], sample["qps"], sample["lost"], sample["p99_ms"], sample["rss_kb"] / 1024.0,
                sample["fds"], sample["threads"]), flush=True)
        alive = kdns.alive()
    finally:
        for proc in reversed(procs):
            proc.stop()
        shutil.rmtree(work, True)
    warm = [s for s in series if s["t"] > args.warmup] or series
    rss = [s["rss_kb"] for s in warm]
    result = {
        "saturation_qps": sat["qps"], "rate": rate, "fraction": args.fraction, "duration": args.duration,
        "slice": args.slice, "start": base, "series": series, "alive_at_end": alive,
        "sent": sum(s["sent"] for s in series), "completed": sum(s["completed"] for s in series),
        "lost": sum(s["lost"] for s in series),
        "rss_warm_min_kb": min(rss), "rss_warm_max_kb": max(rss),
        "rss_growth_after_warmup_kb": rss[-1] - rss[0],
        "fds": sorted({s["fds"] for s in series}), "threads": sorted({s["threads"] for s in series}),
        "p99_ms_max": max(s["p99_ms"] for s in series),
        "p99_ms_median": sorted(s["p99_ms"] for s in series)[len(series) // 2],
    }
    with open(os.path.join(args.out, "soak.json"), "w") as f:
        json.dump(result, f, indent=1)
    png = plot(series, os.path.join(args.out, "soak.png"))
    with open(os.path.join(args.out, "soak.md"), "w") as f:
        f.write("# Soak (%s)\n\n" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        f.write("Saturation %.0f q/s; soak at %d q/s (%.0f %%) for %.0f s in %.0f s slices; "
                "%d sent, %d completed, %d lost; process alive at the end: %s.\n\n" % (
                    sat["qps"], rate, 100 * args.fraction, args.duration, args.slice,
                    result["sent"], result["completed"], result["lost"], alive))
        f.write("RSS after the %.0f s warm-up: %.1f-%.1f MB (first to last: %+d kB). fds seen: %s. "
                "Threads seen: %s. p99: median %.2f ms, worst slice %.2f ms.\n\n" % (
                    args.warmup, min(rss) / 1024.0, max(rss) / 1024.0, result["rss_growth_after_warmup_kb"],
                    result["fds"], result["threads"], result["p99_ms_median"], result["p99_ms_max"]))
        f.write("| t (s) | q/s | lost | p50 (ms) | p99 (ms) | RSS (MB) | fds | threads |\n")
        f.write("|---:|---:|---:|---:|---:|---:|---:|---:|\n")
        for s in series:
            f.write("| %.0f | %.0f | %d | %.2f | %.2f | %.1f | %d | %d |\n" % (
                s["t"], s["qps"], s["lost"], s["p50_ms"], s["p99_ms"], s["rss_kb"] / 1024.0, s["fds"],
                s["threads"]))
        if png:
            f.write("\n![soak](soak.png)\n")
    print(json.dumps({k: v for k, v in result.items() if k != "series"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
