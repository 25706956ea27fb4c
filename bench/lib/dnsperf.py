"""Running dnsperf (pinned to the client CPU) and reading its statistics."""

import math
import re
import subprocess

from bench.lib.procs import pinned

FIELDS = {
    "sent": re.compile(r"Queries sent:\s+(\d+)"),
    "completed": re.compile(r"Queries completed:\s+(\d+)"),
    "lost": re.compile(r"Queries lost:\s+(\d+)"),
    "qps": re.compile(r"Queries per second:\s+([\d.]+)"),
    "runtime": re.compile(r"Run time \(s\):\s+([\d.]+)"),
    "avg_latency": re.compile(r"Average Latency \(s\):\s+([\d.]+)"),
}
RCODES = re.compile(r"Response codes:\s+(.*)")
VERBOSE = re.compile(rb"^> (\S+) .* ([\d.]+)$", re.M)


class DnsperfError(Exception):
    pass


def run(port, datafile, duration, cpu=1, tcp=False, rate=None, clients=4, outstanding=100,
        timeout=2, verbose=False, max_runs=None):
    """
    Run dnsperf once; C{duration} bounds it in time, C{max_runs} (C{-n}) in
    count.  @return: a dict with sent, completed, lost, qps, runtime,
    avg_latency, rcodes (C{{name: count}}) and, when C{verbose}, the sorted
    per-query latencies in seconds (C{latencies}).
    """
    argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", datafile,
            "-l", "%g" % (duration,), "-c", str(clients), "-q", str(outstanding),
            "-t", str(timeout)]
    if tcp:
        argv += ["-m", "tcp"]
    if rate:
        argv += ["-Q", str(int(rate))]
    if verbose:
        argv += ["-v"]
    if max_runs:
        argv += ["-n", str(max_runs)]
    try:
        proc = subprocess.run(pinned(cpu, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=duration + timeout + 30)
    except subprocess.TimeoutExpired:
        raise DnsperfError("dnsperf did not finish in time")
    out = proc.stdout
    text = out.decode("utf-8", "replace") if not verbose else _stats_part(out)
    result = {}
    for key, rx in FIELDS.items():
        m = rx.search(text)
        result[key] = float(m.group(1)) if m else None
    if result["completed"] is None:
        raise DnsperfError("dnsperf failed (exit %d): %s" % (
            proc.returncode, proc.stderr.decode("utf-8", "replace").strip()[-300:]))
    m = RCODES.search(text)
    rcodes = {}
    if m:
        for name, count in re.findall(r"([A-Z]+) (\d+)", m.group(1)):
            rcodes[name] = int(count)
    result["rcodes"] = rcodes
    if verbose:
        result["latencies"] = sorted(float(v) for _rc, v in VERBOSE.findall(out))
    return result


def _stats_part(out):
    # "Statistics:" starts the summary; TCP adds a later "Connection Statistics:".
    i = out.rfind(b"\nStatistics:")
    return out[i if i >= 0 else 0:].decode("utf-8", "replace")


def percentile(sorted_values, pct):
    """Nearest-rank percentile of an already sorted list (C{None} when empty)."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(math.ceil(pct / 100.0 * len(sorted_values))) - 1))
    return sorted_values[k]
