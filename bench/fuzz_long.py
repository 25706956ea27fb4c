#!/usr/bin/env python3
"""
The long fuzz runs, bounded in time: the categorised wire fuzzer
(tests/reliability/wiregen.py) through a listener's full request path
in-process (decode, routing, acl/any/rewrite/cache/loadbalance/hosts/whoami,
encode), the Corefile fuzzer (tests/reliability/corefilegen.py) through
check and build, and the Kubernetes object mutator
(tests/reliability/test_k8s_objects.py) through convert and the store.

    .venv/bin/python bench/fuzz_long.py                 # 60 s per fuzzer
    .venv/bin/python bench/fuzz_long.py --seconds 600 --seed 7

A crash is any exception escaping, any logged failure, a reply to a QR=1
packet, a reply with another ID or over the client's UDP size, or a
category answered with an rcode it is not owed.  Output:
bench/results/reliability/fuzz.json and fuzz.md; exit 1 on any crash.
"""

import argparse
import collections
import json
import os
import random
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

OUT = os.path.join(ROOT, "bench", "results", "reliability")

COREFILE = """\
example.org:0 in-addr.arpa:0 example.net:0 {
    bind 127.0.0.1
    errors
    acl example.net {
        block type AAAA
    }
    any
    loadbalance
    rewrite name regex (.*)\\.alias\\.example\\.org {1}.example.org answer auto
    cache 30
    hosts {
        10.0.0.1 www.example.org
        10.0.0.2 www.example.org
        10.0.0.3 mail.example.org
        fd00::1 www.example.org
        fallthrough
    }
    whoami
}
"""


def wire(seconds, seed):
    from twisted.internet import reactor
    from twisted.logger import globalLogPublisher
    from twisted_kdns.config import load
    from twisted_kdns.service import KdnsService
    from tests.reliability.wiregen import EXPECT, WireFuzzer

    path = os.path.join(tempfile.mkdtemp(prefix="kdns-fuzz-"), "Corefile")
    with open(path, "w") as f:
        f.write(COREFILE)
    failures = []

    def observer(event):
        if event.get("log_failure") is not None:
            failures.append(str(event["log_failure"].value))
    globalLogPublisher.addObserver(observer)
    service = KdnsService(load(path=path, dns_port=0), reactor, 0, path)
    service.startService()
    dispatcher = list(service.listeners.values())[0].dispatcher
    fuzzer = WireFuzzer(seed)
    counts = collections.Counter()
    rcodes = collections.defaultdict(collections.Counter)
    crashes = []
    deadline = time.monotonic() + seconds
    import dns.message
    while time.monotonic() < deadline:
        for _ in range(1000):
            category, packet = fuzzer.next()
            counts[category] += 1
            transport = "tcp" if counts[category] % 10 == 0 else "udp"
            try:
                reply = dispatcher.handle(packet, ("127.0.0.1", 5353), transport)
                if hasattr(reply, "addCallback"):
                    box = []
                    reply.addBoth(box.append)
                    reply = box[0] if box else None
            except Exception:
                crashes.append((category, packet.hex(), traceback.format_exc()))
                continue
            expect = EXPECT[category]
            if reply is None:
                rcodes[category]["none"] += 1
                continue
            limit = 65535
            if transport == "udp":
                limit = 512
                try:
                    m = dns.message.from_wire(packet)
                    if m.edns >= 0:
                        limit = max(512, min(m.payload, 1232))
                except Exception:
                    pass
            rc = reply[3] & 0xF
            rcodes[category][rc] += 1
            problem = None
            if expect == "noreply":
                problem = "answered"
            elif reply[:2] != packet[:2]:
                problem = "wrong id"
            elif len(reply) > limit:
                problem = "reply %d over %d" % (len(reply), limit)
            elif isinstance(expect, set) and rc not in expect:
                problem = "rcode %d" % rc
            if problem:
                crashes.append((category, packet.hex(), problem))
    service.stopService()
    globalLogPublisher.removeObserver(observer)
    return {"tried": sum(counts.values()), "by_category": dict(counts),
            "rcodes": {k: {str(r): n for r, n in v.items()} for k, v in rcodes.items()},
            "crashes": crashes[:20], "crash_count": len(crashes), "logged_failures": failures[:20],
            "logged_failure_count": len(failures)}


def corefile(seconds, seed):
    from twisted.internet import task
    from twisted_kdns.config import build, load
    from twisted_kdns.errors import ConfigError
    from tests.reliability.corefilegen import CorefileFuzzer

    fuzzer = CorefileFuzzer(seed)
    outcomes = collections.Counter()
    crashes = []
    work = tempfile.mkdtemp(prefix="kdns-fuzz-cf-")
    cwd = os.getcwd()
    os.chdir(work)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for _ in range(200):
                kind, text = fuzzer.next()
                try:
                    build(load(text=text, dns_port=0, environ={"HOME": work}), task.Clock(), 0)
                    outcomes["built"] += 1
                except ConfigError as e:
                    bad = [err for err in getattr(e, "errors", [e]) if err.file is None or err.line is None]
                    if bad:
                        crashes.append((text, "no file:line: %s" % bad[0]))
                    outcomes["rejected"] += 1
                except Exception:
                    crashes.append((text, traceback.format_exc()))
                    outcomes["crashed"] += 1
    finally:
        os.chdir(cwd)
    return {"tried": sum(outcomes.values()), "outcomes": dict(outcomes), "crashes": crashes[:10],
            "crash_count": len(crashes)}


def k8s(seconds, seed):
    from twisted.internet import reactor
    from twisted_kdns.plugins.kubernetes.objects import KINDS, convert
    from twisted_kdns.plugins.kubernetes.store import Store
    from tests.reliability.test_k8s_objects import mutate, samples

    rng = random.Random(seed)
    base = samples()
    store = Store(reactor, KINDS, [b"cluster.local"])
    outcomes = collections.Counter()
    crashes = []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        for _ in range(500):
            kind = KINDS[i % len(KINDS)]
            i += 1
            raw = mutate(rng, base[kind])
            try:
                record = convert(kind, raw)
                if record is None:
                    outcomes["skipped"] += 1
                    continue
                store.apply(kind, "ADDED", record)
                store.apply(kind, "MODIFIED", record)
                if i % 3 == 0:
                    store.apply(kind, "DELETED", record)
                outcomes["record"] += 1
            except Exception:
                crashes.append((json.dumps(raw, default=str)[:500], traceback.format_exc()))
                outcomes["crashed"] += 1
    return {"tried": sum(outcomes.values()), "outcomes": dict(outcomes), "crashes": crashes[:10],
            "crash_count": len(crashes)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="per fuzzer (default 60)")
    p.add_argument("--seed", type=int, default=20261130)
    p.add_argument("--out", default=OUT)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    result = {"seed": args.seed, "seconds_each": args.seconds}
    for name, fn in (("wire", wire), ("corefile", corefile), ("kubernetes_objects", k8s)):
        t0 = time.monotonic()
        result[name] = fn(args.seconds, args.seed)
        result[name]["rate_per_s"] = round(result[name]["tried"] / (time.monotonic() - t0))
        print("%s: %d inputs, %d crashes" % (name, result[name]["tried"], result[name]["crash_count"]),
              flush=True)
    with open(os.path.join(args.out, "fuzz.json"), "w") as f:
        json.dump(result, f, indent=1)
    total_crashes = sum(result[k]["crash_count"] for k in ("wire", "corefile", "kubernetes_objects")) \
        + result["wire"]["logged_failure_count"]
    with open(os.path.join(args.out, "fuzz.md"), "w") as f:
        f.write("# Long fuzz (%s, seed %d, %.0f s each)\n\n" % (
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), args.seed, args.seconds))
        f.write("| fuzzer | inputs | per second | crashes |\n|---|---:|---:|---:|\n")
        for k in ("wire", "corefile", "kubernetes_objects"):
            f.write("| %s | %d | %d | %d |\n" % (k, result[k]["tried"], result[k]["rate_per_s"],
                                                 result[k]["crash_count"]))
        f.write("\nWire inputs by category (rcodes seen):\n\n| category | inputs | rcodes |\n|---|---:|---|\n")
        for cat, n in sorted(result["wire"]["by_category"].items()):
            rc = result["wire"]["rcodes"].get(cat, {})
            f.write("| %s | %d | %s |\n" % (cat, n, ", ".join("%s: %d" % kv for kv in sorted(rc.items()))))
        f.write("\nCorefile outcomes: %s. Kubernetes object outcomes: %s.\n" % (
            result["corefile"]["outcomes"], result["kubernetes_objects"]["outcomes"]))
    print("total crashes: %d" % (total_crashes,))
    return 1 if total_crashes else 0


if __name__ == "__main__":
    sys.exit(main())
