"""
A real C{kdns} process for the signal tests and bench/soak.py: start it
from a Corefile, find its DNS port in the log, read its RSS and open file
descriptors from /proc, and a closed-loop UDP client that records each
query's outcome in order.
"""

import os
import re
import socket
import subprocess
import sys
import threading
import time

DNS_LINE = re.compile(r"dns://127\.0\.0\.1:0 \((\d+)\)|dns://[^ ]*:(\d+)\b")


class KdnsProcess(object):
    def __init__(self, corefile_path, args=()):
        self.proc = subprocess.Popen([sys.executable, "-m", "twisted_kdns", "--corefile", corefile_path]
                                     + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.output = []
        self.port = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._ready = threading.Event()
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.output.append(line)
            if self.port is None:
                m = re.search(r"dns://127\.0\.0\.1:0 \((\d+)\)", line)
                if m:
                    self.port = int(m.group(1))
                    self._ready.set()
        self._ready.set()

    def wait_port(self, timeout=20):
        self._ready.wait(timeout)
        return self.port

    def rss_kb(self):
        with open("/proc/%d/status" % (self.proc.pid,)) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % (self.proc.pid,)))

    def threads(self):
        return len(os.listdir("/proc/%d/task" % (self.proc.pid,)))

    def signal(self, signum):
        self.proc.send_signal(signum)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(5)
        self.proc.stdout.close()


QUESTION = (b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
            b"\x01a\x07example\x03org\x00\x00\x01\x00\x01")


class ClosedLoopClient(object):
    """
    One connected UDP socket asking a question, waiting for its reply (or
    C{timeout}), then asking again; C{outcomes} is the ordered list of
    C{(send time, "answered"|"refused"|"timeout", latency)}.
    """

    def __init__(self, port, question=QUESTION, timeout=0.5):
        self.port = port
        self.question = question
        self.timeout = timeout
        self.outcomes = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(10)
        return self.outcomes

    def run(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.1", self.port))
        s.settimeout(self.timeout)
        qid = 0
        try:
            while not self.stop_event.is_set():
                qid = (qid + 1) & 0xFFFF
                packet = bytes([qid >> 8, qid & 0xFF]) + self.question[2:]
                t0 = time.monotonic()
                try:
                    s.send(packet)
                    while True:
                        data = s.recv(65535)
                        if data[:2] == packet[:2]:
                            break
                    self.outcomes.append((t0, "answered", time.monotonic() - t0))
                except ConnectionRefusedError:
                    self.outcomes.append((t0, "refused", time.monotonic() - t0))
                    time.sleep(0.01)
                except socket.timeout:
                    self.outcomes.append((t0, "timeout", time.monotonic() - t0))
        finally:
            s.close()
