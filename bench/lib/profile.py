"""
Where the time goes: py-spy samples a kdns server during an extra saturated
run (not one that is measured) and the folded stacks are summarised into
self and inclusive shares per function, and per stage of the request path.
"""

import collections
import os
import re
import subprocess
import sys

from bench.lib.procs import pinned

# Stages of the request path, matched on the innermost frame first: the
# first pattern found in a stack (innermost to outermost) names its stage.
STAGES = [
    ("fast path: memo hit (fastpath.py)", re.compile(r"server/fastpath\.py")),
    ("prometheus_client per-query calls", re.compile(r"prometheus_client/")),
    ("metrics bookkeeping (kdns)", re.compile(r"twisted_kdns/metrics\.py|plugins/prometheus\.py")),
    ("decode request (twisted.names Message.decode)", re.compile(r"server/wire\.py.*\bdecode\b|\bdecode \(twisted_kdns/server/wire")),
    ("encode reply (twisted.names Message.toStr)", re.compile(r"\bencode \(twisted_kdns/server/wire|reply_message")),
    ("cache plugin", re.compile(r"plugins/cache/")),
    ("kubernetes plugin", re.compile(r"plugins/kubernetes/")),
    ("forward plugin", re.compile(r"plugins/forward/")),
    ("loadbalance plugin", re.compile(r"plugins/loadbalance")),
    ("errors plugin", re.compile(r"plugins/errors")),
    ("hosts plugin", re.compile(r"plugins/hosts")),
    ("other middleware", re.compile(r"plugins/_middleware|twisted_kdns/chain\.py")),
    ("Deferred machinery", re.compile(r"twisted/internet/defer\.py")),
    ("dispatcher (routing, KdnsQuery, hooks)", re.compile(r"server/dispatch\.py|twisted_kdns/query\.py|twisted_kdns/names\.py|twisted_kdns/response\.py")),
    ("UDP send (Port.write)", re.compile(r"internet/udp\.py.*Port\.write|Port\.write \(")),
    ("UDP/TCP receive and reactor loop", re.compile(r"twisted/internet/|twisted/protocols/|twisted/python/")),
]


def record(pid, seconds, out_path, rate=200):
    """Sample C{pid} for C{seconds} into a raw folded file.  @return: None or why not."""
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy):
        return "py-spy is not installed (pip install py-spy)"
    proc = subprocess.run([spy, "record", "--pid", str(pid), "-d", str(int(max(1, seconds))),
                           "-r", str(rate), "-f", "raw", "-o", out_path, "--nonblocking"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=seconds + 60)
    if proc.returncode != 0 or not os.path.exists(out_path):
        return "py-spy failed: %s" % (proc.stdout.decode("utf-8", "replace").strip()[-200:],)
    return None


def _clean(frame):
    frame = re.sub(r"\(/[^()]*?/site-packages/", "(", frame)
    return re.sub(r"\(/[^()]*?/(twisted_kdns|bench)/", r"(\1/", frame)


def summarise(raw_path, top=25):
    """Markdown: stage shares, then the top functions by self and inclusive samples."""
    self_t, incl, stages = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    with open(raw_path) as f:
        for line in f:
            line = line.rstrip()
            if not line or " " not in line:
                continue
            stack, n = line.rsplit(" ", 1)
            frames = [_clean(fr) for fr in stack.split(";")]
            if any("threading.py" in fr for fr in frames[:3]):
                continue  # idle thread-pool threads, not the reactor
            n = int(n)
            total += n
            self_t[frames[-1]] += n
            for fr in set(frames):
                incl[fr] += n
            for fr in reversed(frames):
                stage = next((name for name, rx in STAGES if rx.search(fr)), None)
                if stage:
                    stages[stage] += n
                    break
            else:
                stages["other"] += n
    if not total:
        return "no samples\n"
    out = ["Samples of the reactor thread: %d." % (total,), "",
           "| Stage (innermost frame that matches) | share |", "|---|--:|"]
    out += ["| %s | %.1f%% |" % (s, 100.0 * n / total) for s, n in stages.most_common()]
    out += ["", "| Top functions, self time | share |", "|---|--:|"]
    out += ["| `%s` | %.1f%% |" % (f, 100.0 * n / total) for f, n in self_t.most_common(top)]
    out += ["", "| Top functions, inclusive | share |", "|---|--:|"]
    out += ["| `%s` | %.1f%% |" % (f, 100.0 * n / total) for f, n in incl.most_common(top + 20)
            if "twisted_kdns" in f or "prometheus_client" in f or "dns.py" in f or "udp.py" in f
            or "tcp.py" in f][:top]
    return "\n".join(out) + "\n"
