"""
Shared test helpers: run a real server on 127.0.0.1 from Corefile text and
query it over real sockets with dnspython (in a thread, so the reactor keeps
serving) or with C{dig}.
"""

import os
import shutil
import subprocess
import tempfile

import dns.message
import dns.query
import dns.rdatatype
from twisted.internet import reactor, threads

from twisted_kdns.config import load
from twisted_kdns.service import KdnsService


def free_port():
    """A port free on 127.0.0.1 for both UDP and TCP right now (kdns binds both)."""
    import socket
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no port free for both UDP and TCP")


def require_tool(testcase, tool, ci_installs=True):
    """
    Skip when C{tool} is missing, except under CI=true where it must exist
    because .ci/run installs it.  C{ci_installs=False} marks a tool Debian's
    registries do not carry (kubectl): it is used when present, else skipped.
    """
    if shutil.which(tool) is None:
        if ci_installs and os.environ.get("CI") == "true":
            testcase.fail("%s is required under CI=true (.ci/run installs it)" % (tool,))
        testcase.skipTest("%s is not installed" % (tool,))


def write_corefile(testcase, text, name="Corefile", directory=None):
    """Write C{text} into a fresh temporary directory; return the path."""
    if directory is None:
        directory = tempfile.mkdtemp(prefix="kdns-test-")
        testcase.addCleanup(shutil.rmtree, directory, True)
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def start_server(testcase, text, path=None, dns_port=53):
    """
    Start a L{KdnsService} for Corefile C{text} on the real reactor and stop
    it when the test ends.  Use port 0 in the keys (C{.:0}) with
    C{bind 127.0.0.1} to get a free port.

    @return: C{(service, port)} where C{port} is the first listener's port.
    """
    if path is None:
        path = write_corefile(testcase, text)
    plan = load(path=path, dns_port=dns_port)
    service = KdnsService(plan, reactor, dns_port, path)
    service.startService()
    testcase.addCleanup(service.stopService)
    return service, service.port_of()


def make_query(name, rdtype="A", **kw):
    return dns.message.make_query(name, rdtype, **kw)


def query(port, name, rdtype="A", tcp=False, timeout=2.0, host="127.0.0.1", **kw):
    """
    Ask the server over a real socket; returns a Deferred firing with the
    dnspython reply (the blocking call runs in a thread).
    """
    message = name if isinstance(name, dns.message.Message) else make_query(name, rdtype, **kw)
    fn = dns.query.tcp if tcp else dns.query.udp
    return threads.deferToThread(fn, message, host, timeout=timeout, port=port)


def raw_udp(port, payload, timeout=1.0, host="127.0.0.1"):
    """Send raw bytes; Deferred firing with the reply bytes or C{None} on timeout."""
    import socket

    def run():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        try:
            s.sendto(payload, (host, port))
            return s.recvfrom(65535)[0]
        except socket.timeout:
            return None
        finally:
            s.close()
    return threads.deferToThread(run)


def dig(port, *args, host="127.0.0.1"):
    """Run C{dig}; Deferred firing with its stdout text."""
    cmd = ["dig", "@" + host, "-p", str(port), "+time=2", "+tries=1"] + list(args)
    return threads.deferToThread(lambda: subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout)


def rrset_values(reply, section="answer"):
    """Sorted text of every record in a section of a dnspython reply."""
    out = []
    for rrset in getattr(reply, section):
        for rd in rrset:
            out.append(rd.to_text())
    return sorted(out)


def spawn(testcase, argv, **popen_kw):
    """
    Start a process (stdout and stderr piped together) that is killed and
    reaped when the test ends.
    """
    popen_kw.setdefault("stdout", subprocess.PIPE)
    popen_kw.setdefault("stderr", subprocess.STDOUT)
    proc = subprocess.Popen(argv, **popen_kw)

    def reap():
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    testcase.addCleanup(reap)
    return proc
