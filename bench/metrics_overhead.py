#!/usr/bin/env python3
"""
What recording the per-query metrics costs, measured two ways:

  1. in process: the dispatcher's C{handle(bytes)} for a hosts answer, timed
     with and without C{prometheus} in the block (best of several repeats;
     CPU cost only, little affected by other load on the machine);
  2. over the wire: dnsperf against a kdns process serving a hosts file,
     once with C{prometheus} and once without, alternating runs, then the
     throughput and latency difference (noisy on a shared machine).

  .venv/bin/python bench/metrics_overhead.py [--seconds 5] [--rounds 2] [--names 1000] [--no-dnsperf]

Bounded: each dnsperf run lasts C{--seconds} and sends at most C{--max-queries};
traffic goes to 127.0.0.1 only.  Needs dnsperf (Debian: dnsperf).
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

COREFILE = """\
example.org:{port} {{
    bind 127.0.0.1
{prometheus}    hosts {hosts} {{
        reload 0
    }}
}}
"""


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def probe(port, timeout=0.5):
    """One A query for host0.example.org; True when anything answers."""
    q = struct.pack(">HHHHHH", 0x4b44, 0x0100, 1, 0, 0, 0) + b"\x05host0\x07example\x03org\x00\x00\x01\x00\x01"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, ("127.0.0.1", port))
        return s.recvfrom(4096)[0][:2] == q[:2]
    except OSError:
        return False
    finally:
        s.close()


def start_kdns(corefile, port):
    cmd = [sys.executable, "-m", "twisted", "--log-format=text", "--log-level=warn", "kdns",
           "--corefile", corefile]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("kdns exited: %s" % proc.stderr.read().decode(errors="replace"))
        if probe(port):
            return proc
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("kdns did not answer on port %d" % port)


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def dnsperf(port, queries, seconds, max_queries, clients):
    out = subprocess.run(
        ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", queries, "-l", str(seconds),
         "-n", "1000000", "-c", str(clients), "-q", "200", "-t", "2"],
        capture_output=True, text=True, timeout=seconds + 30).stdout
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    latency = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1))
    sent = int(re.search(r"Queries sent:\s+(\d+)", out).group(1))
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))
    return {"qps": qps, "latency": latency, "sent": sent, "lost": lost}


def counted(metrics_port):
    """Sum of coredns_dns_requests_total on the /metrics page."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    body = opener.open("http://127.0.0.1:%d/metrics" % metrics_port, timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith("coredns_dns_requests_total{"))


def in_process(repeats=5, number=20000):
    """Per-query microseconds of C{Dispatcher.handle} without and with prometheus."""
    import timeit

    import dns.message
    from twisted.internet import reactor

    from twisted_kdns import config
    from twisted_kdns.server.dispatch import Dispatcher

    data = dns.message.make_query("a.example.org", "A").to_wire()
    best = {}
    for _ in range(2):
        for variant in ("without", "with"):
            text = "example.org:53 {\n%s hosts {\n  10.1.2.3 a.example.org\n  reload 0\n }\n}\n" % (
                " prometheus 127.0.0.1:0\n" if variant == "with" else "")
            generation = config.build(config.load(text=text), reactor)
            key = generation.listeners[0]
            dispatcher = Dispatcher(lambda: generation.routes[key], "dns://:53", ("127.0.0.1", 53))
            # CPU time of this process: other processes on the machine matter less.
            t = min(timeit.repeat(lambda: dispatcher.handle(data, ("127.0.0.1", 5555), "udp"),
                                  number=number, repeat=repeats, timer=time.process_time)) / number
            best[variant] = min(best.get(variant, t), t)
    return best["without"] * 1e6, best["with"] * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each dnsperf run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per variant (alternating)")
    parser.add_argument("--names", type=int, default=1000, help="hosts entries / distinct query names")
    parser.add_argument("--clients", type=int, default=1, help="dnsperf -c")
    parser.add_argument("--max-queries", type=int, default=1000000)
    parser.add_argument("--no-dnsperf", action="store_true", help="only the in-process measurement")
    args = parser.parse_args(argv)
    plain, prom = in_process()
    print("in process: %.1f us/query without prometheus, %.1f us/query with (+%.1f us, %+.1f%%)"
          % (plain, prom, prom - plain, (prom - plain) / plain * 100), flush=True)
    if args.no_dnsperf:
        return
    if shutil.which("dnsperf") is None:
        raise SystemExit("dnsperf is not installed (apt-get install dnsperf)")
    work = tempfile.mkdtemp(prefix="kdns-metrics-bench-")
    try:
        hosts = os.path.join(work, "hosts")
        queries = os.path.join(work, "queries")
        with open(hosts, "w") as h, open(queries, "w") as q:
            for i in range(args.names):
                h.write("10.%d.%d.%d host%d.example.org\n" % (i >> 16 & 255, i >> 8 & 255, i & 255, i))
                q.write("host%d.example.org A\n" % i)
        results = {"without": [], "with": []}
        for _ in range(args.rounds):
            for variant in ("without", "with"):
                port, mport = free_port(), free_port()
                prom = "    prometheus 127.0.0.1:%d\n" % mport if variant == "with" else ""
                path = os.path.join(work, "Corefile." + variant)
                with open(path, "w") as f:
                    f.write(COREFILE.format(port=port, prometheus=prom, hosts=hosts))
                proc = start_kdns(path, port)
                try:
                    r = dnsperf(port, queries, args.seconds, args.max_queries, args.clients)
                    if variant == "with":
                        r["counted"] = counted(mport)
                finally:
                    stop(proc)
                results[variant].append(r)
                print("%-8s qps=%9.1f latency=%.6fs sent=%d lost=%d%s" % (
                    variant, r["qps"], r["latency"], r["sent"], r["lost"],
                    " counted=%d" % r["counted"] if "counted" in r else ""), flush=True)
        base = statistics.median(r["qps"] for r in results["without"])
        prom = statistics.median(r["qps"] for r in results["with"])
        lat0 = statistics.median(r["latency"] for r in results["without"])
        lat1 = statistics.median(r["latency"] for r in results["with"])
        print("median qps without prometheus: %.1f" % base)
        print("median qps with prometheus:    %.1f" % prom)
        print("throughput difference: %+.1f%%   mean latency %.3f ms -> %.3f ms"
              % ((prom - base) / base * 100, lat0 * 1000, lat1 * 1000))
        print("per-query cost of metrics: %.2f us" % ((1 / prom - 1 / base) * 1e6))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
