#!/usr/bin/env python3
"""
The benchmark (issue 8): kdns against unbound and dnsmasq on this machine,
one command (``make bench``), results in bench/results/latest.{md,png,json}.

Method: for each scenario every server is started once (server pinned to
CPU 0, dnsperf and the loopback upstream to CPU 1), checked for the right
answers, then measured in interleaved rounds (unbound, dnsmasq, kdns, ...,
then again): a warm-up, a saturated run (QPS), a run at a fixed unsaturated
rate (server CPU µs per query from /proc/PID/stat) and a run at half of
unbound's saturated rate of that round (p99 latency).  Ratios are taken
against unbound within each round; the table shows medians.

Usage: bench/run.py [--quick] [--rounds N] [--duration S] [--warmup S]
                    [--scenarios A,B,...] [--servers unbound,kdns,...] [--profile]
       bench/run.py --rerender bench/results/latest.json   (table and chart again)
"""

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.lib import data, dnsperf, probe, procs, profile, report  # noqa: E402
from bench.scenarios import all_scenarios  # noqa: E402

TOOLS = {"dnsperf": "dnsperf", "unbound": "unbound", "dnsmasq": "dnsmasq-base", "taskset": "util-linux"}
NOT_AVAILABLE = re.compile(r"plugin (\S+) is not available")
PLUGIN_MODULE = re.compile(r"twisted_kdns[./]plugins[./](\w+)")


def say(msg, *args):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg % args if args else msg))
    sys.stderr.flush()


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="a few seconds per scenario: 1 round, 1 s runs (a smoke run, not a result)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--duration", type=float, default=15.0, help="seconds per saturated run (default 15)")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds before each run (default 3)")
    p.add_argument("--rate-duration", type=float, default=None,
                   help="seconds of each fixed-rate run (CPU and p99; default duration/2)")
    p.add_argument("--cpu-rate", type=int, default=5000,
                   help="fixed rate (q/s) for CPU per query; lowered to half the slowest "
                        "server's saturated rate when needed (default 5000)")
    p.add_argument("--no-latency", action="store_true", help="skip the p99 runs")
    p.add_argument("--scenarios", default="A,B,C,D,E", help="comma-separated (default A,B,C,D,E)")
    p.add_argument("--servers", default=None,
                   help="comma-separated rows to run (default all: unbound,dnsmasq,kdns,kdns-core,"
                        "kdns-nofast,kdns+autopath,twisted-floor); unbound is always run when a ratio is wanted")
    p.add_argument("--services", type=int, default=1000, help="Services in the generated cluster")
    p.add_argument("--clients", type=int, default=4, help="dnsperf -c (default 4)")
    p.add_argument("--outstanding", type=int, default=100, help="dnsperf -q (default 100)")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--workdir", default=os.path.join(HERE, "configs", "generated"),
                   help="where generated data, configs and logs go")
    p.add_argument("--out", default=os.path.join(HERE, "results"), help="results directory")
    p.add_argument("--name", default="latest", help="results file name stem (default latest)")
    p.add_argument("--no-chart", action="store_true", help="do not draw (or install matplotlib for) the PNG")
    p.add_argument("--no-install", action="store_true", help="never run apt-get or pip")
    p.add_argument("--source", choices=("tree", "head"), default="tree",
                   help="which kdns to measure: the working tree (default) or the last commit "
                        "(git archive HEAD, so others' uncommitted files are left out)")
    p.add_argument("--profile", action="store_true",
                   help="after the rounds, sample each kdns row with py-spy during an extra "
                        "saturated run; writes OUT/profile-SCENARIO-ROW.md (installs py-spy)")
    p.add_argument("--noise", default="", help="a note on machine noise to print with the results")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds = 1
        args.duration = min(args.duration, 1.0)
        args.warmup = min(args.warmup, 0.3)
        args.cpu_rate = min(args.cpu_rate, 2000)
    if args.rate_duration is None:
        args.rate_duration = max(0.5, args.duration / 2.0)
    args.scenarios = [s.strip().upper() for s in args.scenarios.split(",") if s.strip()]
    if args.servers:
        args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    return args


# --- prerequisites ----------------------------------------------------------

def ensure_tools(no_install):
    missing = sorted({pkg for tool, pkg in TOOLS.items()
                      if shutil.which(tool) is None and not os.path.exists("/usr/sbin/" + tool)})
    if not missing:
        return
    if no_install or os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit("bench: missing %s; install them (apt-get install %s)" % (
            ", ".join(missing), " ".join(missing)))
    say("installing %s from Debian", " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.call(["apt-get", "install", "-y", "--no-install-recommends"] + missing, env=env) != 0:
        subprocess.check_call(["apt-get", "update"], env=env)
        subprocess.check_call(["apt-get", "install", "-y", "--no-install-recommends"] + missing, env=env)


def ensure_matplotlib(no_install):
    try:
        import matplotlib  # noqa: F401
        return None
    except ImportError:
        pass
    if no_install or sys.prefix == sys.base_prefix:
        return "matplotlib is missing (pip install matplotlib into the venv for the chart)"
    say("installing matplotlib into %s (bench-only dependency)", sys.prefix)
    rc = subprocess.call([sys.executable, "-m", "pip", "install", "-q", "matplotlib"])
    return None if rc == 0 else "pip install matplotlib failed"


def ensure_pyspy(no_install):
    if os.path.exists(os.path.join(os.path.dirname(sys.executable), "py-spy")) or no_install:
        return
    say("installing py-spy into %s (bench-only, for --profile)", sys.prefix)
    subprocess.call([sys.executable, "-m", "pip", "install", "-q", "py-spy"])


def binary(name):
    return shutil.which(name) or os.path.join("/usr/sbin", name)


# --- servers ----------------------------------------------------------------

class Running(object):
    """A started server row: its process, port and measurements."""

    def __init__(self, spec, proc, port, notes):
        self.spec = spec
        self.proc = proc
        self.port = port
        self.notes = notes
        self.rounds = []


def kdns_env(source):
    """The environment kdns runs in: C{source} is a directory to import it from, or None."""
    env = dict(os.environ)
    if source:
        env["PYTHONPATH"] = source + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def kdns_check(path, source=None):
    """
    @return: C{(not_available_plugins, other_error_lines)} for a Corefile.
    A plugin module that does not even import (someone is still writing it)
    counts as not available.
    """
    proc = subprocess.run([sys.executable, "-m", "twisted_kdns", "check", path],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
                          env=kdns_env(source), cwd=os.path.dirname(path))
    if proc.returncode == 0:
        return set(), []
    text = proc.stdout.decode("utf-8", "replace")
    if "Traceback (most recent call last)" in text:
        modules = PLUGIN_MODULE.findall(text)
        last = text.strip().splitlines()[-1]
        if modules:
            return {modules[-1]}, []
        return set(), ["kdns check crashed: " + last]
    missing, other = set(), []
    for line in text.splitlines():
        m = NOT_AVAILABLE.search(line)
        if m:
            missing.add(m.group(1))
        elif line.strip():
            other.append(line.strip())
    if not missing and not other:
        other = ["kdns check exited %d" % (proc.returncode,)]
    return missing, other


def kdns_corefile(spec, path, values, source=None):
    """
    Write the row's Corefile, dropping production plugins this checkout does
    not have yet unless the row requires them.

    @return: C{(skip_reason or None, notes)}.
    """
    template = "Corefile.production" if spec.corefile == "production" else "Corefile.core"
    data.render(template, path, **values)
    with open(path) as f:
        head, stanzas, tail = data.corefile_stanzas(f.read())
    stanzas = [s for s in stanzas if s[0] not in spec.drop]
    if spec.add:
        stanzas += [(line.split()[0], [line]) for line in spec.add]
    stanzas = [(n, [re.sub(r"pods \w+", "pods " + spec.pods, l) for l in lines]) for n, lines in stanzas]
    dropped = []
    for _attempt in range(len(stanzas) + 1):
        with open(path, "w") as f:
            f.write(data.join_stanzas(head, stanzas, tail))
        missing, other = kdns_check(path, source)
        needed = sorted(missing & set(spec.requires))
        if needed:
            return "skipped: plugin %s not available" % (", ".join(needed),), []
        if missing:
            dropped += sorted(missing)
            stanzas = [s for s in stanzas if s[0] not in missing]
            continue
        if other:
            return "skipped: kdns check failed: %s" % (" / ".join(other[:3]),), []
        break
    notes = []
    if spec.corefile == "core":
        notes.append("hosts plugin only, not the production Corefile")
    if dropped:
        notes.append("production Corefile without %s (not available yet)" % (", ".join(dropped),))
    if spec.drop:
        notes.append("without %s" % (", ".join(spec.drop),))
    if spec.add:
        notes.append("with %s" % ("; ".join(a.strip() for a in spec.add),))
    return None, notes


def start_row(spec, scen, ds, upstream_port, args):
    """Start one server row.  @return: a L{Running} or a skip reason string."""
    port = procs.free_port()
    tag = "%s-%s" % (scen.key, spec.name.replace("+", "-"))
    log = os.path.join(ds.workdir, tag + ".log")
    notes = []
    if spec.kind == "unbound":
        conf = data.render("unbound.conf", os.path.join(ds.workdir, tag + ".conf"), port=port,
                           workdir=ds.workdir, local_data=ds.local_data, upstream_port=upstream_port,
                           cache_max_ttl=86400 if spec.cache else 0,
                           cache_max_negative_ttl=3600 if spec.cache else 0)
        argv = [binary("unbound"), "-d", "-c", conf]
        if not spec.cache:
            notes.append("cache-max-ttl 0")
    elif spec.kind == "dnsmasq":
        conf = data.render("dnsmasq.conf", os.path.join(ds.workdir, tag + ".conf"), port=port,
                           user=data.user(), hosts_file=ds.hosts, upstream_port=upstream_port,
                           cache_size=10000 if spec.cache else 0)
        argv = [binary("dnsmasq"), "-k", "-C", conf]
        if not spec.cache:
            notes.append("cache-size 0")
    elif spec.kind == "floor":
        if scen.tcp:
            return "skipped: UDP only"
        argv = [sys.executable, os.path.join(HERE, "lib", "floor_server.py"), ds.hosts, str(port)]
        notes.append("not a DNS server: Twisted DatagramProtocol + dict of pre-encoded replies "
                     "(the ceiling for a kdns fast path)")
    else:
        conf = os.path.join(ds.workdir, tag + ".Corefile")
        skip, notes = kdns_corefile(spec, conf, dict(
            port=port, health_port=procs.free_port(), ready_port=procs.free_port(),
            metrics_port=procs.free_port(), manifests=ds.manifests, pods=spec.pods,
            upstream_port=upstream_port, hosts_file=ds.hosts), args.kdns_source)
        if skip:
            return skip
        argv = [sys.executable, "-m", "twisted_kdns", "--corefile", conf, "--log-level", "warn"]
    env = kdns_env(args.kdns_source) if spec.kind == "kdns" else None
    if spec.env:
        env = dict(env or os.environ, **spec.env)
        notes.append("with %s" % (" ".join("%s=%s" % kv for kv in sorted(spec.env.items())),))
    proc = procs.Process(tag, argv, log, cpu=args.server_cpu, cwd=ds.workdir, env=env).start()
    return Running(spec, proc, port, notes)


def verify(row):
    """Wait until the row answers, then check every probe.  @return: None or why not."""
    first = row.spec.probes[0]
    probe.wait_for(row.port, first.name, timeout=60, alive=row.proc.alive)
    if not row.proc.alive():
        return "exited at startup: %s" % (row.proc.log_tail(),)
    for pr in row.spec.probes:
        why = pr.check(probe.ask(row.port, pr.name, timeout=2))
        if why:
            return "wrong answer (%s)" % (why,)
    return None


# --- measurements -----------------------------------------------------------

def perf(row, scen, ds, args, duration, **kw):
    """One dnsperf run against C{row}; C{None} (and a note on the row) when dnsperf fails."""
    try:
        return dnsperf.run(row.port, ds.queries[row.spec.queries], duration, cpu=args.client_cpu,
                           tcp=scen.tcp, clients=args.clients, outstanding=args.outstanding, **kw)
    except dnsperf.DnsperfError as e:
        text = str(e).splitlines()
        note = "dnsperf failed: %s" % ((text[-1] if text else str(e))[:120],)
        say("  %s %-14s %s", scen.key, row.spec.name, note)
        if note not in row.notes:
            row.notes.append(note)
        return None


def measure_round(rnd, rows, scen, ds, args, state):
    for row in rows:
        if not row.proc.alive():
            continue
        if args.warmup > 0:
            perf(row, scen, ds, args, args.warmup)
        c0 = row.proc.cpu()
        res = perf(row, scen, ds, args, args.duration)
        c1 = row.proc.cpu()
        if res is None:
            continue
        sent = res["sent"] or 0
        entry = {"round": rnd, "qps": res["qps"], "sent": sent, "completed": res["completed"],
                 "lost_pct": 100.0 * (res["lost"] or 0) / sent if sent else None,
                 "avg_latency_ms": 1000 * res["avg_latency"] if res["avg_latency"] else None,
                 "rcodes": res["rcodes"],
                 "cpu_us_saturated": 1e6 * (c1 - c0) / res["completed"] if res["completed"] else None}
        row.rounds.append(entry)
        say("  %s %-14s round %d: %s q/s, lost %s%%, rcodes %s", scen.key, row.spec.name, rnd,
            report.fmt(res["qps"]), report.fmt(entry["lost_pct"], 2), res["rcodes"])
    if "cpu_rate" not in state:
        sat = [r.rounds[-1]["qps"] for r in rows if r.rounds and r.rounds[-1]["round"] == rnd
               and r.rounds[-1]["qps"]]
        rate = min([args.cpu_rate] + [0.5 * q for q in sat])
        state["cpu_rate"] = max(100, int(rate // 100 * 100))
    base = next((r for r in rows if r.spec.name == "unbound" and r.rounds
                 and r.rounds[-1]["round"] == rnd), None)
    for row in rows:
        if not row.proc.alive() or not row.rounds or row.rounds[-1]["round"] != rnd:
            continue
        entry = row.rounds[-1]
        c0 = row.proc.cpu()
        res = perf(row, scen, ds, args, args.rate_duration, rate=state["cpu_rate"])
        c1 = row.proc.cpu()
        if res is not None and res["completed"]:
            entry["cpu_us"] = 1e6 * (c1 - c0) / res["completed"]
            entry["cpu_rate_achieved"] = res["qps"]
        if args.no_latency or base is None or not base.rounds[-1].get("qps"):
            continue
        lat_rate = 0.5 * base.rounds[-1]["qps"]
        res = perf(row, scen, ds, args, args.rate_duration, rate=lat_rate, verbose=True)
        if res is None:
            continue
        p99 = dnsperf.percentile(res["latencies"], 99)
        entry["p99_ms"] = 1000 * p99 if p99 is not None else None
        entry["p99_rate"] = lat_rate
        entry["p99_rate_achieved"] = res["qps"]
        say("  %s %-14s round %d: %.1f µs/q at %d q/s, p99 %s ms at %s q/s (got %s)", scen.key,
            row.spec.name, rnd, entry.get("cpu_us") or 0, state["cpu_rate"],
            report.fmt(entry["p99_ms"], 2), report.fmt(lat_rate), report.fmt(res["qps"]))


def profile_row(row, scen, ds, args):
    """An extra saturated run under py-spy; the summary goes next to the results."""
    import threading
    seconds = max(3.0, args.duration)
    raw = os.path.join(ds.workdir, "profile-%s-%s.txt" % (scen.key, row.spec.name))
    result = {}
    t = threading.Thread(target=lambda: result.update(
        perf=perf(row, scen, ds, args, seconds + 2) or {}))
    t.start()
    time.sleep(1)
    why = profile.record(row.proc.pid, seconds, raw)
    t.join()
    path = os.path.join(args.out, "profile-%s-%s.md" % (scen.key, row.spec.name.replace("+", "-")))
    with open(path, "w") as f:
        f.write("# Profile: scenario %s (%s), %s\n\n" % (scen.key, scen.title, row.spec.name))
        f.write("py-spy, %g s at saturation (%s q/s while sampled, sampling slows the server); "
                "written by `bench/run.py --profile` on %s.\n\n" % (
                    seconds, report.fmt(result.get("perf", {}).get("qps")),
                    time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
        f.write(why + "\n" if why else profile.summarise(raw))
    say("  %s %-14s profile: %s", scen.key, row.spec.name, why or path)


def run_scenario(scen, ds, upstream_port, args):
    out = {"key": scen.key, "title": scen.title, "rows": []}
    specs = [s for s in scen.servers if not args.servers or s.name in args.servers
             or s.name == "unbound"]
    rows, started = [], []
    try:
        for spec in specs:
            got = start_row(spec, scen, ds, upstream_port, args)
            if isinstance(got, str):
                say("%s %s: %s", scen.key, spec.name, got)
                out["rows"].append({"name": spec.name, "qpl": spec.qpl, "skipped": got})
                continue
            started.append(got)
        for row in started:
            why = verify(row)
            if why:
                say("%s %s: %s", scen.key, row.spec.name, why)
                out["rows"].append({"name": row.spec.name, "qpl": row.spec.qpl,
                                    "skipped": "skipped: " + why, "notes": row.notes})
                row.proc.stop()
            else:
                rows.append(row)
        if scen.prime:
            for row in rows:  # fill the caches: the whole query file once
                perf(row, scen, ds, args, 30, max_runs=1, rate=20000)
        state = {}
        for rnd in range(1, args.rounds + 1):
            measure_round(rnd, rows, scen, ds, args, state)
        out["cpu_rate"] = state.get("cpu_rate")
        if args.profile:
            for row in rows:
                if row.spec.kind == "kdns" and row.proc.alive():
                    profile_row(row, scen, ds, args)
        for row in rows:
            if not row.proc.alive():
                row.notes.append("server died: %s" % (row.proc.log_tail(),))
            out["rows"].append({"name": row.spec.name, "qpl": row.spec.qpl, "rounds": row.rounds,
                                "notes": row.notes})
    finally:
        procs.wait_exit([r.proc for r in started])
    order = [s.name for s in scen.servers]
    out["rows"].sort(key=lambda r: order.index(r["name"]))
    return out


def export_head(workdir):
    """Extract the committed twisted_kdns (HEAD) into workdir/src; @return: that path."""
    src = os.path.join(workdir, "src")
    shutil.rmtree(src, ignore_errors=True)
    os.makedirs(src)
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", "HEAD", "twisted_kdns"],
                             stdout=subprocess.PIPE, check=True).stdout
    subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
    say("measuring the committed kdns (%s)", src)
    return src


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


README_START = "<!-- latest results: written by bench/run.py -->"
README_END = "<!-- end of latest results -->"


def update_readme(md):
    """Put the latest table into bench/README.md between its markers."""
    path = os.path.join(HERE, "README.md")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return
    body = md.split("\n", 1)[1].replace("\n## Targets", "\n### Targets")
    with open(path, "w") as f:
        f.write(text[:start + len(README_START)] + "\n" + body.strip() + "\n" + text[end:])


def rerender(json_path, no_chart=False):
    """Write the .md (and .png) again from a results JSON (after a report change)."""
    import json
    with open(json_path) as f:
        run = json.load(f)
    stem = os.path.splitext(json_path)[0]
    md = report.markdown(run)
    with open(stem + ".md", "w") as f:
        f.write(md)
    if not no_chart:
        why = report.chart(run, stem + ".png")
        if why:
            say("no chart: %s", why)
    if os.path.abspath(stem) == os.path.join(HERE, "results", "latest"):
        update_readme(md)
    sys.stdout.write(md)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--rerender"]:
        return rerender(argv[1], "--no-chart" in argv)
    args = parse_args(argv)
    ensure_tools(args.no_install)
    chart_note = None if args.no_chart else ensure_matplotlib(args.no_install)
    if args.profile:
        ensure_pyspy(args.no_install)
    os.makedirs(args.workdir, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    ds = data.Dataset(args.workdir, count=args.services).generate()
    args.kdns_source = export_head(args.workdir) if args.source == "head" else None
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).stdout.decode().strip() or "?"
    run_kdns = ("commit %s (git archive HEAD)" % rev) if args.kdns_source else \
        ("the working tree at %s (uncommitted changes included)" % rev)
    run = {"config": dict(vars(args), argv=argv),
           "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": "%s %s, %s" % (platform.system(), platform.release(), platform.python_version()),
           "cpus": os.cpu_count() or 1, "load_before": loadavg(), "noise": args.noise,
           "kdns": run_kdns, "scenarios": []}
    if (os.cpu_count() or 1) < 2:
        run["noise"] = (run["noise"] + " " if run["noise"] else "") + \
            "only one CPU: server and client share it."
    selected = [s for s in all_scenarios() if s.key in args.scenarios]
    upstream = None
    try:
        if any(s.upstream for s in selected):
            uport = procs.free_port()
            conf = data.render("upstream.conf", os.path.join(args.workdir, "upstream.conf"),
                               port=uport, workdir=args.workdir)
            upstream = procs.Process("upstream", [binary("unbound"), "-d", "-c", conf],
                                     os.path.join(args.workdir, "upstream.log"),
                                     cpu=args.client_cpu).start()
            if probe.wait_for(uport, "name1.example.org", timeout=10, alive=upstream.alive) is None:
                raise SystemExit("bench: the upstream unbound did not start: %s" % (upstream.log_tail(),))
        else:
            uport = 0
        for scen in selected:
            say("scenario %s: %s", scen.key, scen.title)
            try:
                run["scenarios"].append(run_scenario(scen, ds, uport, args))
            except Exception as e:  # keep the other scenarios' results
                say("scenario %s failed: %r", scen.key, e)
                run["scenarios"].append({"key": scen.key, "title": scen.title, "rows": [
                    {"name": "(all)", "qpl": 1, "skipped": "scenario failed: %r" % (e,)}]})
    finally:
        if upstream is not None:
            upstream.stop()
    run["load_after"] = loadavg()
    md = report.markdown(run)  # also fills each row's summary for the chart
    if not args.no_chart:
        chart_note = chart_note or report.chart(run, os.path.join(args.out, args.name + ".png"))
        if chart_note:
            say("no chart: %s", chart_note)
    with open(os.path.join(args.out, args.name + ".md"), "w") as f:
        f.write(md)
    report.save_json(run, os.path.join(args.out, args.name + ".json"))
    if args.name == "latest" and os.path.abspath(args.out) == os.path.join(HERE, "results"):
        update_readme(md)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
