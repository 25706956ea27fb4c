#!/usr/bin/env python3
"""
Forwarding throughput: kdns's forward (no cache) against dnsmasq and
unbound forwarding the same names to the same upstream, in one run.

The upstream is a dnsmasq answering every name under fwd.example with TTL 0
(``--address``), so no forwarder can answer from a cache: kdns runs
without the cache plugin, dnsmasq with ``--cache-size=0``, unbound with
``cache-max-ttl: 0``.  The forwarder under test is pinned to CPU 0; the
upstream and dnsperf share CPU 1.  Each measurement is one dnsperf run
bounded in time (``--duration``, default 10 s) after a short warm-up, in
interleaved rounds; the ratios are kdns's rate over each peer's.

Usage: bench/forward_bench.py [--duration S] [--rounds N] [--names N]
                              [--servers kdns,dnsmasq,unbound] [--json PATH]
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.lib import dnsperf, procs  # noqa: E402

SERVER_CPU, CLIENT_CPU = 0, 1
ANSWER = "10.50.0.1"


def say(msg, *args):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg % args if args else msg))
    sys.stderr.flush()


def ask(port, name, timeout=0.5):
    """One A query over UDP: the first answer's address, or None."""
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(packet, ("127.0.0.1", port))
        data = s.recv(4096)
    except OSError:
        return None
    finally:
        s.close()
    if len(data) < 12 or struct.unpack("!H", data[6:8])[0] == 0:
        return None
    return ".".join(str(b) for b in data[-4:])


def wait_answer(port, name, deadline=15.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if ask(port, name) == ANSWER:
            return True
        time.sleep(0.1)
    return False


def upstream(work, port):
    argv = ["dnsmasq", "--keep-in-foreground", "--port=%d" % port, "--listen-address=127.0.0.1",
            "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-poll", "--pid-file=",
            "--user=%s" % _user(), "--address=/fwd.example/" + ANSWER, "--cache-size=0",
            "--dns-forward-max=5000", "--log-facility=" + os.path.join(work, "upstream.dnsmasq.log")]
    return procs.Process("upstream", argv, os.path.join(work, "upstream.log"), cpu=CLIENT_CPU)


def _user():
    return "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")


def kdns(work, port, up):
    corefile = os.path.join(work, "Corefile")
    with open(corefile, "w") as f:
        f.write(".:%d {\n    bind 127.0.0.1\n    forward . 127.0.0.1:%d\n}\n" % (port, up))
    exe = os.path.join(ROOT, ".venv", "bin", "kdns")
    if not os.path.exists(exe):
        exe = shutil.which("kdns") or exe
    return procs.Process("kdns", [exe, "--corefile", corefile, "--log-level", "warn"],
                         os.path.join(work, "kdns.log"), cpu=SERVER_CPU)


def dnsmasq(work, port, up):
    argv = ["dnsmasq", "--keep-in-foreground", "--port=%d" % port, "--listen-address=127.0.0.1",
            "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-poll", "--pid-file=",
            "--user=%s" % _user(), "--server=127.0.0.1#%d" % up, "--cache-size=0",
            "--dns-forward-max=5000", "--log-facility=" + os.path.join(work, "dnsmasq.dnsmasq.log")]
    return procs.Process("dnsmasq", argv, os.path.join(work, "dnsmasq.log"), cpu=SERVER_CPU)


def unbound(work, port, up):
    conf = os.path.join(work, "unbound.conf")
    with open(conf, "w") as f:
        f.write("""server:
    interface: 127.0.0.1
    port: %d
    do-daemonize: no
    num-threads: 1
    username: ""
    chroot: ""
    directory: "%s"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 0
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "iterator"
    qname-minimisation: no
    num-queries-per-thread: 4096
    outgoing-range: 8192
    cache-max-ttl: 0
    cache-max-negative-ttl: 0
    prefetch: no
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@%d
remote-control:
    control-enable: no
""" % (port, work, up))
    return procs.Process("unbound", ["unbound", "-d", "-c", conf], os.path.join(work, "unbound.log"),
                         cpu=SERVER_CPU)


def profile_kdns(server, datafile, args):
    """An extra saturated run of kdns under py-spy (not measured); the summary goes to C{args.profile}."""
    import threading
    from bench.lib import profile
    proc, port = server
    seconds = max(3.0, args.duration)
    raw = args.profile + ".raw"
    got = {}
    t = threading.Thread(target=lambda: got.update(dnsperf.run(
        port, datafile, seconds + 2, cpu=CLIENT_CPU, outstanding=args.outstanding)))
    t.start()
    time.sleep(1)
    why = profile.record(proc.pid, seconds, raw)
    t.join()
    with open(args.profile, "w") as f:
        f.write("# Profile: kdns forwarding, cache off (bench/forward_bench.py --profile)\n\n")
        f.write("py-spy, %g s at saturation (%.0f q/s while sampled; sampling slows the server).\n\n" % (
            seconds, got.get("qps") or 0))
        f.write(why + "\n" if why else profile.summarise(raw, top=40))
    say("profile: %s", why or args.profile)


BUILDERS = {"kdns": kdns, "dnsmasq": dnsmasq, "unbound": unbound}


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench/forward_bench.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per dnsperf run (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before each run (default 2)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    p.add_argument("--names", type=int, default=1000, help="distinct query names (default 1000)")
    p.add_argument("--outstanding", type=int, default=100, help="dnsperf -q (default 100)")
    p.add_argument("--servers", default="kdns,dnsmasq,unbound")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--profile", metavar="OUT.md",
                   help="after the rounds, sample kdns with py-spy during an extra saturated run "
                        "and write the summary (stages, top functions) here")
    args = p.parse_args(argv)
    for tool in ("dnsperf", "dnsmasq", "unbound", "taskset"):
        if shutil.which(tool) is None:
            say("missing tool: %s", tool)
            return 2
    names = [n for n in args.servers.split(",") if n]
    load_before = os.getloadavg()
    work = tempfile.mkdtemp(prefix="kdns-forward-bench-")
    datafile = os.path.join(work, "queries.txt")
    with open(datafile, "w") as f:
        for i in range(args.names):
            f.write("q%d.fwd.example A\n" % i)
    up_port = procs.free_port()
    started = []
    results = {n: [] for n in names}
    try:
        up = upstream(work, up_port).start()
        started.append(up)
        if not wait_answer(up_port, "q0.fwd.example"):
            say("upstream dnsmasq did not answer: %s", up.log_tail(3))
            return 1
        servers = {}
        for name in names:
            port = procs.free_port()
            proc = BUILDERS[name](work, port, up_port).start()
            started.append(proc)
            if not wait_answer(port, "q1.fwd.example"):
                say("%s did not answer correctly: %s", name, proc.log_tail(3))
                return 1
            servers[name] = (proc, port)
            say("%s ready on %d (pid %d)", name, port, proc.pid)
        for rnd in range(args.rounds):
            for name in names:
                proc, port = servers[name]
                if args.warmup:
                    dnsperf.run(port, datafile, args.warmup, cpu=CLIENT_CPU, outstanding=args.outstanding)
                cpu0 = proc.cpu()
                r = dnsperf.run(port, datafile, args.duration, cpu=CLIENT_CPU, outstanding=args.outstanding)
                r["cpu_us_per_query"] = (proc.cpu() - cpu0) * 1e6 / max(1.0, r["completed"])
                results[name].append(r)
                say("round %d %-8s %8.0f q/s  avg %.2f ms  lost %d  %s  %.1f us CPU/query", rnd + 1, name,
                    r["qps"], (r["avg_latency"] or 0) * 1e3, r["lost"], r["rcodes"], r["cpu_us_per_query"])
        if args.profile and "kdns" in servers:
            profile_kdns(servers["kdns"], datafile, args)
    finally:
        procs.wait_exit(started[::-1])
    summary = {}
    for name in names:
        runs = results[name]
        summary[name] = {
            "qps": statistics.median(r["qps"] for r in runs),
            "avg_latency_ms": statistics.median((r["avg_latency"] or 0) * 1e3 for r in runs),
            "lost": sum(r["lost"] for r in runs),
            "cpu_us_per_query": statistics.median(r["cpu_us_per_query"] for r in runs),
            "rcodes": runs[-1]["rcodes"],
        }
    print("| server | q/s (median) | avg latency ms | lost | CPU us/query | rcodes (last run) |")
    print("|---|---:|---:|---:|---:|---|")
    for name in names:
        s = summary[name]
        print("| %s | %.0f | %.2f | %d | %.1f | %s |" % (name, s["qps"], s["avg_latency_ms"], s["lost"],
                                                      s["cpu_us_per_query"], s["rcodes"]))
    if "kdns" in summary:
        for peer in names:
            if peer != "kdns" and summary[peer]["qps"]:
                print("kdns/%s throughput ratio: %.2f   CPU per query ratio: %.1fx" % (
                    peer, summary["kdns"]["qps"] / summary[peer]["qps"],
                    summary["kdns"]["cpu_us_per_query"] / max(0.001, summary[peer]["cpu_us_per_query"])))
    # Other work on the machine skews saturated rates far more than CPU per query.
    print("load average before/after: %.2f / %.2f (on %d CPUs)" % (load_before[0], os.getloadavg()[0],
                                                                 os.cpu_count() or 1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "runs": results, "summary": summary}, f, indent=2)
    shutil.rmtree(work, True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
