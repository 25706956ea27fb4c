"""
Shared by the kubernetes benchmarks: a generated cluster for the API
stand-in, a kdns process runner, and small measuring helpers.

The cluster is deterministic: C{services} Services spread over
C{namespaces} namespaces (every 10th headless, every 20th of those without
a selector), one EndpointSlice per Service holding that Service's Pods'
addresses (so slices carry C{pods / services} endpoints on average, with
hostnames on the headless ones), and C{pods} Running Pods.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.k8s_apiserver import FakeApiServer, _encoded  # noqa: E402


def ip(n, base=10):
    return "%d.%d.%d.%d" % (base, (n >> 16) & 255, (n >> 8) & 255, n & 255)


def generate(services=10000, pods=50000, namespaces=100):
    """C{(namespaces, services, endpointslices, pods)} as lists of API dicts."""
    nss = [{"metadata": {"name": "ns-%d" % i, "labels": {"kubernetes.io/metadata.name": "ns-%d" % i}}}
           for i in range(namespaces)]
    svcs, slices, pod_objs = [], [], []
    per = max(1, pods // services)
    p = 0
    for i in range(services):
        ns = "ns-%d" % (i % namespaces)
        name = "svc-%d" % i
        headless = i % 10 == 0
        spec = {"type": "ClusterIP", "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                                               {"name": "metrics", "port": 9090, "protocol": "TCP"}]}
        if headless:
            spec["clusterIP"] = "None"
            spec["clusterIPs"] = ["None"]
        else:
            spec["clusterIP"] = ip(i + 1, 172)
            spec["clusterIPs"] = [spec["clusterIP"]]
        if not (headless and i % 20 == 0):
            spec["selector"] = {"app": name}
        svcs.append({"metadata": {"name": name, "namespace": ns, "labels": {"app": name},
                                  "annotations": {"example.com/owner": "team-%d" % (i % 40)}},
                     "spec": spec, "status": {"loadBalancer": {}}})
        endpoints = []
        count = per if i < services - 1 else pods - p
        for j in range(count):
            pod_ip = ip(p + 1)
            pod_name = "%s-%d" % (name, j)
            ep = {"addresses": [pod_ip], "conditions": {"ready": True, "serving": True, "terminating": False},
                  "nodeName": "node-%d" % (p % 500), "zone": "zone-%d" % (p % 3),
                  "targetRef": {"kind": "Pod", "namespace": ns, "name": pod_name, "uid": "uid-%d" % p}}
            if headless:
                ep["hostname"] = "host-%d" % j
            endpoints.append(ep)
            pod_objs.append({
                "metadata": {"name": pod_name, "namespace": ns, "labels": {"app": name},
                             "ownerReferences": [{"kind": "ReplicaSet", "name": name + "-rs"}]},
                "spec": {"nodeName": "node-%d" % (p % 500),
                         "containers": [{"name": "app", "image": "registry.example.com/app:1.0",
                                         "ports": [{"containerPort": 8080}]}]},
                "status": {"phase": "Running", "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
                           "hostIP": ip(p % 500 + 1, 192),
                           "conditions": [{"type": "Ready", "status": "True"}]}})
            p += 1
        slices.append({"metadata": {"name": name + "-x1y2z", "namespace": ns,
                                    "labels": {"kubernetes.io/service-name": name,
                                               "endpointslice.kubernetes.io/managed-by":
                                                   "endpointslice-controller.k8s.io"}},
                       "addressType": "IPv4", "endpoints": endpoints,
                       "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                                 {"name": "metrics", "port": 9090, "protocol": "TCP"}]})
    return nss, svcs, slices, pod_objs


def standin(services, pods, namespaces=100):
    """A started stand-in loaded with a generated cluster."""
    api = FakeApiServer()
    nss, svcs, slices, pod_objs = generate(services, pods, namespaces)
    api.load("namespaces", nss)
    api.load("services", svcs)
    api.load("endpointslices", slices)
    api.load("pods", pod_objs)
    for objs in api.objects.values():  # pre-encode: LIST speed is then the wire's, not json.dumps's
        for obj in objs.values():
            _encoded(obj)
    api.start()
    return api


def free_port(kind=socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_kdns(corefile_text, workdir=None, env=None):
    """Run C{kdns --corefile} in its own process; returns C{(process, corefile path)}."""
    workdir = workdir or tempfile.mkdtemp(prefix="kdns-bench-")
    path = os.path.join(workdir, "Corefile")
    with open(path, "w") as f:
        f.write(corefile_text)
    exe = os.path.join(os.path.dirname(sys.executable), "kdns")
    cmd = [exe, "--corefile", path] if os.path.exists(exe) else [sys.executable, "-m", "twisted_kdns",
                                                                 "--corefile", path]
    log = open(os.path.join(workdir, "kdns.log"), "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            env=dict(os.environ, **(env or {})))
    return proc, path


def stop(proc, api):
    """Terminate kdns (kill it after 10 s) and the API stand-in."""
    proc.terminate()
    try:
        proc.wait(10)
    except Exception:
        proc.kill()
    api.stop()


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return None


def cpu_seconds(pid):
    """User + system CPU time the process used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def wait_ready(port, timeout, proc=None):
    """Poll C{/ready} until 200; seconds waited, or C{None} on timeout."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("kdns exited with %s" % (proc.returncode,))
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/ready" % port, timeout=1) as r:
                if r.status == 200:
                    return time.time() - t0
        except Exception:
            pass
        time.sleep(0.02)
    return None


def percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(q / 100.0 * (len(values) - 1)))))
    return values[k]
