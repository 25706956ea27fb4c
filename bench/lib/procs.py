"""
Server processes: free ports, start pinned to a CPU, CPU time, stop.

Every process started here is tracked and stopped by its own PID (never by
name), so other servers on the machine are never touched.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (best effort)."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            u.close()
            t.close()
        if port >= 20000:
            return port
    raise RuntimeError("no free port found")


def pinned(cpu, argv):
    """C{argv} prefixed with C{taskset -c CPU} when taskset and that CPU exist."""
    if cpu is None or shutil.which("taskset") is None:
        return list(argv)
    if cpu >= (os.cpu_count() or 1):
        return list(argv)
    return ["taskset", "-c", str(cpu)] + list(argv)


def cpu_seconds(pid):
    """
    CPU seconds of a process: its threads' time on CPU plus the time of
    children it has reaped (dnsmasq forks a child per TCP connection).

    /proc/PID/stat gives both (utime + stime, cutime + cstime) in clock
    ticks (10 ms), too coarse for a few thousand queries of a C server; so
    the threads' part comes from /proc/PID/task/*/schedstat (nanoseconds)
    when the kernel has it, and the stat ticks are the fallback.
    """
    with open("/proc/%d/stat" % (pid,)) as f:
        raw = f.read()
    fields = raw[raw.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
    own = (int(fields[11]) + int(fields[12])) / float(CLK_TCK)
    children = (int(fields[13]) + int(fields[14])) / float(CLK_TCK)
    try:
        ns = 0
        for tid in os.listdir("/proc/%d/task" % (pid,)):
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                ns += int(f.read().split()[0])
        own = ns / 1e9
    except (OSError, ValueError, IndexError):
        pass
    return own + children


class Process(object):
    """One server under test (or the upstream), its log and its lifetime."""

    def __init__(self, name, argv, log_path, cpu=None, cwd=None, env=None):
        self.name = name
        self.argv = pinned(cpu, argv)
        self.log_path = log_path
        self.cwd = cwd
        self.env = env
        self.popen = None
        self._log = None

    @property
    def pid(self):
        return self.popen.pid

    def start(self):
        self._log = open(self.log_path, "wb")
        # taskset execs the program, so the PID is the server's own.
        self.popen = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, cwd=self.cwd, env=self.env)
        return self

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def cpu(self):
        return cpu_seconds(self.popen.pid)

    def stop(self, grace=10.0):
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines=1):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])


def wait_exit(procs, deadline=15.0):
    """Stop several processes, SIGTERM first to all, then wait for each."""
    for p in procs:
        if p.alive():
            p.popen.send_signal(signal.SIGTERM)
    end = time.monotonic() + deadline
    for p in procs:
        p.stop(max(0.1, end - time.monotonic()))
