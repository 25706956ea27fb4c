#!/usr/bin/env python3
"""
Fault injection against a real kdns process, bounded in time (about 3
minutes; --stall sets the API stall, 30 s by default):

  1. API server (the stand-in, tests/k8s_apiserver.py, 500 Services): 20
     dropped watches with changes in between, a storm of 20 410s, 10 s of
     HTTP 500s, a stall, a rotated token (401 until the kubeconfig holds
     the new one), a restart with a reset resourceVersion.  A querier keeps
     asking names that exist throughout; after each fault, the time until
     every name answers as the stand-in says.
  2. Upstreams with forward's defaults: dead, silent, 2 s slow, SERVFAIL,
     wrong IDs, truncating, and each bad one in front of a good one: answer
     time (max, p99), rcodes, and kdns's file descriptors after three rounds.
  3. SIGHUP storm, 10 a second for 10 s, with kubernetes + forward + cache:
     answers lost, fds/threads/RSS before and after.
  4. SIGTERM under load with a 2 s lameduck: queries lost before the close.

    .venv/bin/python bench/faults.py [--stall 30]

Output: bench/results/reliability/faults.json and faults.md.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.k8s_apiserver import FakeApiServer, service  # noqa: E402
from tests.reliability.faulty import FaultyUpstream, dead_port  # noqa: E402
from tests.reliability.k8sfaults import Querier, converge, expected_answers, populate  # noqa: E402
from tests.reliability.process import ClosedLoopClient, KdnsProcess  # noqa: E402
from tests.reliability.test_upstream_faults import burst  # noqa: E402

OUT = os.path.join(ROOT, "bench", "results", "reliability")

K8S_COREFILE = """\
.:0 {
    bind 127.0.0.1
    errors {
        consolidate 5s .*
    }
    health 127.0.0.1:0 {
        lameduck %(lameduck)s
    }
    kubernetes cluster.local {
        kubeconfig %(kubeconfig)s
    }
    cache 30
    forward . 127.0.0.1:%(upstream)d
}
"""


def pct(values, p):
    values = sorted(values)
    if not values:
        return None
    return values[min(len(values) - 1, int(len(values) * p / 100.0))]


def api_faults(work, stall):
    api = FakeApiServer(token="first")
    api.start()
    up = FaultyUpstream("good").start()
    kubeconfig = api.kubeconfig(os.path.join(work, "kubeconfig"), token="first")
    populate(api, 500)
    path = os.path.join(work, "Corefile.api")
    with open(path, "w") as f:
        f.write(K8S_COREFILE % {"lameduck": "0s", "kubeconfig": kubeconfig, "upstream": up.port})
    kdns = KdnsProcess(path)
    results = {"services": 500, "faults": []}
    try:
        port = kdns.wait_port()
        took, names = converge(port, api, timeout=60)
        results["initial_sync_s"] = round(took, 3)
        stable = expected_answers(api)
        querier = Querier(port, [(n, v) for n, v in stable.items() if n.startswith("svc-1")]).start()
        gone = []
        serial = [0]

        def churn():
            serial[0] += 1
            i = serial[0]
            api.create("services", service("new-%d" % i, "default", cluster_ip="10.9.%d.%d" % (i // 200, i % 200 + 1)))
            victim = "svc-%d" % (200 + i)
            ns = ("default", "other")[(200 + i) % 2]
            api.delete("services", ns, victim)
            gone.append("%s.%s.svc.cluster.local." % (victim, ns))

        def measure(name, detail):
            t0 = time.monotonic()
            took, count = converge(port, api, gone, timeout=120)
            results["faults"].append({"fault": name, "detail": detail, "converged_s": round(took, 3),
                                      "names_compared": count})
            print("api %-28s converged in %.2fs (%d names)" % (name, took, count), flush=True)

        for _ in range(20):
            churn()
            api.drop_watches()
            time.sleep(0.1)
        measure("dropped watches", "20 drops, a create and a delete before each")
        for _ in range(20):
            churn()
            api.compact()
            api.drop_watches()
            time.sleep(0.1)
        measure("410 storm", "20 x (change, compact, drop): every reconnect gets 410 Gone")
        churn()
        api.fail_next(100000, 500)
        api.drop_watches()
        time.sleep(10)
        with api._cond:  # the stand-in answers normally again (its fault list is private)
            api._fail[:] = []
        measure("500s for 10 s", "every request HTTP 500 for 10 s; time from the end, backoff capped at 30 s")
        api.stall()
        api.drop_watches()
        churn()
        time.sleep(stall)
        api.release()
        measure("stall", "every request held %.0f s; time from the release" % stall)
        api.set_token("second")
        api.drop_watches()
        churn()
        time.sleep(3)
        api.kubeconfig(kubeconfig, token="second")
        measure("rotated token", "401 for 3 s until the kubeconfig had the new token; time from then")
        api.stop()
        churn()
        time.sleep(3)
        api.reset(rv=10)
        api.start()
        measure("restart, reset rv", "port closed 3 s, objects renumbered from 10; time from the restart")
        results["querier"] = querier.stop()
        results["querier_p99_ms"] = round(1000 * (pct(querier.latencies, 99) or 0), 2)
        results["querier_max_ms"] = round(1000 * max(querier.latencies), 2)
        results["kdns_threads"] = kdns.threads()
        results["kdns_fds"] = kdns.fds()
    finally:
        kdns.stop()
        api.stop()
        up.stop()
    return results


def upstream_faults(work):
    results = []
    scenarios = [("dead", ["dead"]), ("silent", ["silent"]), ("slow 2s", ["slow"]),
                 ("SERVFAIL", ["servfail"]), ("wrong ID", ["wrongid"]), ("truncating", ["truncate"]),
                 ("dead, good", ["dead", "good"]), ("silent, good", ["silent", "good"]),
                 ("wrong ID, good", ["wrongid", "good"]), ("slow 2s, good", ["slow", "good"])]
    for label, modes in scenarios:
        ups, ports = [], []
        for m in modes:
            if m == "dead":
                ports.append(dead_port())
            else:
                u = FaultyUpstream(m, delay=2.0).start()
                ups.append(u)
                ports.append(u.port)
        path = os.path.join(work, "Corefile.up")
        with open(path, "w") as f:
            f.write(".:0 {\n    bind 127.0.0.1\n    forward . %s {\n        policy sequential\n    }\n}\n"
                    % " ".join("127.0.0.1:%d" % p for p in ports))
        kdns = KdnsProcess(path)
        try:
            port = kdns.wait_port()
            rounds = []
            fds = []
            for r in range(3):
                out = burst(port, 300, name="r%d.example.com." % r, timeout=10)
                rounds.append(out)
                fds.append(kdns.fds())
            allr = [x for rr in rounds for x in rr]
            times = [t for t, _ in allr]
            rcodes = {}
            for _, reply in allr:
                key = "timeout" if reply is None else str(reply.rcode())
                rcodes[key] = rcodes.get(key, 0) + 1
            row = {"upstreams": label, "queries": len(allr), "rcodes": rcodes,
                   "max_s": round(max(times), 3), "p99_s": round(pct(times, 99), 3),
                   "median_s": round(pct(times, 50), 3), "fds_after_each_round": fds,
                   "rss_kb": kdns.rss_kb()}
            results.append(row)
            print("upstream %-16s max %.2fs p99 %.2fs rcodes %s fds %s" % (
                label, row["max_s"], row["p99_s"], rcodes, fds), flush=True)
        finally:
            kdns.stop()
            for u in ups:
                u.stop()
    return results


def signal_faults(work):
    api = FakeApiServer(token="t")
    api.start()
    populate(api, 100)
    up = FaultyUpstream("good").start()
    kubeconfig = api.kubeconfig(os.path.join(work, "kubeconfig.sig"), token="t")
    out = {}
    path = os.path.join(work, "Corefile.sig")
    with open(path, "w") as f:
        f.write(K8S_COREFILE % {"lameduck": "2s", "kubeconfig": kubeconfig, "upstream": up.port})
    kdns = KdnsProcess(path)
    try:
        port = kdns.wait_port()
        converge(port, api, timeout=60)
        name = b"\x05svc-1\x05other\x03svc\x07cluster\x05local\x00"
        question = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + name + b"\x00\x01\x00\x01"
        fwd = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01"
        clients = [ClosedLoopClient(port, question).start(), ClosedLoopClient(port, fwd).start()]
        for _ in range(10):  # warm-up storm
            kdns.signal(signal.SIGHUP)
            time.sleep(0.1)
        time.sleep(2)
        before = {"fds": kdns.fds(), "threads": kdns.threads(), "rss_kb": kdns.rss_kb()}
        for _ in range(100):
            kdns.signal(signal.SIGHUP)
            time.sleep(0.1)
        time.sleep(3)
        after = {"fds": kdns.fds(), "threads": kdns.threads(), "rss_kb": kdns.rss_kb()}
        outcomes = [o for c in clients for o in c.stop()]
        kinds = [k for _, k, _ in outcomes]
        out["sighup_storm"] = {"signals": 100, "rate_per_s": 10, "reloads_completed": sum(
            "Reloading complete" in line for line in kdns.output), "queries": len(kinds),
            "answered": kinds.count("answered"), "timeouts": kinds.count("timeout"),
            "p99_ms": round(1000 * pct([l for _, k, l in outcomes if k == "answered"], 99), 2),
            "before": before, "after": after}
        print("sighup storm: %s" % (out["sighup_storm"],), flush=True)
        clients = [ClosedLoopClient(port, question).start() for _ in range(4)]
        time.sleep(1)
        t_term = time.monotonic()
        kdns.signal(signal.SIGTERM)
        code = kdns.proc.wait(20)
        time.sleep(0.3)
        lost_before_close = 0
        answered = 0
        last_answer_after = 0.0
        for c in clients:
            outcomes = c.stop()
            kinds = [k for _, k, _ in outcomes]
            last = max(i for i, k in enumerate(kinds) if k == "answered")
            lost_before_close += sum(1 for k in kinds[:last + 1] if k != "answered")
            answered += kinds.count("answered")
            last_answer_after = max(last_answer_after, outcomes[last][0] - t_term)
        out["sigterm_lameduck"] = {"lameduck_s": 2, "clients": 4, "answered": answered,
                                   "lost_before_close": lost_before_close,
                                   "last_answer_after_sigterm_s": round(last_answer_after, 3), "exit": code}
        print("sigterm: %s" % (out["sigterm_lameduck"],), flush=True)
    finally:
        kdns.stop()
        api.stop()
        up.stop()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stall", type=float, default=30.0)
    p.add_argument("--out", default=OUT)
    p.add_argument("--only", choices=("api", "upstream", "signals"))
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="kdns-faults-")
    result = {}
    try:
        if args.only in (None, "api"):
            result["api"] = api_faults(work, args.stall)
        if args.only in (None, "upstream"):
            result["upstream"] = upstream_faults(work)
        if args.only in (None, "signals"):
            result["signals"] = signal_faults(work)
    finally:
        shutil.rmtree(work, True)
    name = "faults" if args.only is None else "faults-" + args.only
    with open(os.path.join(args.out, name + ".json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(args.out, name + ".md"), "w") as f:
        f.write("# Fault injection (%s)\n\n" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        if "api" in result:
            a = result["api"]
            f.write("## API server (%d Services, initial sync %.2f s)\n\n" % (a["services"], a["initial_sync_s"]))
            f.write("| fault | detail | every name equal after (s) | names compared |\n|---|---|---:|---:|\n")
            for row in a["faults"]:
                f.write("| %s | %s | %.2f | %d |\n" % (row["fault"], row["detail"], row["converged_s"],
                                                      row["names_compared"]))
            f.write("\nQuerier on names that exist throughout: %s; p99 %.2f ms, max %.2f ms.\n\n" % (
                a["querier"], a["querier_p99_ms"], a["querier_max_ms"]))
        if "upstream" in result:
            f.write("## Upstreams (forward defaults, policy sequential, 3 rounds of 300 concurrent queries)\n\n")
            f.write("| upstreams | queries | rcodes | median (s) | p99 (s) | max (s) | kdns fds after each round |\n")
            f.write("|---|---:|---|---:|---:|---:|---|\n")
            for row in result["upstream"]:
                f.write("| %s | %d | %s | %.3f | %.3f | %.3f | %s |\n" % (
                    row["upstreams"], row["queries"], row["rcodes"], row["median_s"], row["p99_s"], row["max_s"],
                    row["fds_after_each_round"]))
            f.write("\n")
        if "signals" in result:
            s = result["signals"]
            f.write("## Signals\n\nSIGHUP storm: %s\n\nSIGTERM with lameduck: %s\n" % (
                json.dumps(s["sighup_storm"]), json.dumps(s["sigterm_lameduck"])))
    print(json.dumps(result, indent=1)[:3000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
