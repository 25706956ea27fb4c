"""
Generated inputs: the cluster (Namespace/Service/Pod manifests), the same
names as hosts and unbound local-data, dnsperf query files, and server
configurations rendered from the templates in bench/configs/.
"""

import getpass
import os
import string

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
NAMESPACES = 10
SEARCH = ("%s.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.internal")
CLIENT_NS = "ns0"


def service_ip(i):
    return "10.96.%d.%d" % (i // 250, i % 250 + 1)


def services(count):
    """C{[(name, namespace, cluster_ip)]} for C{count} Services."""
    return [("svc%d" % i, "ns%d" % (i % NAMESPACES), service_ip(i)) for i in range(count)]


def fqdn(name, ns):
    return "%s.%s.svc.cluster.local" % (name, ns)


def render(template, out_path, **values):
    """Fill C{bench/configs/TEMPLATE} (C{${name}} placeholders) into C{out_path}."""
    with open(os.path.join(CONFIGS, template)) as f:
        text = string.Template(f.read()).substitute(**{k: str(v) for k, v in values.items()})
    with open(out_path, "w") as f:
        f.write(text)
    return out_path


def user():
    try:
        return getpass.getuser()
    except Exception:
        return "root"


class Dataset(object):
    """Every generated file for one run, under C{workdir}."""

    def __init__(self, workdir, count=1000, external=200, misses=20000):
        self.workdir = workdir
        self.count = count
        self.external = external
        self.misses = misses
        self.services = services(count)
        self.manifests = os.path.join(workdir, "cluster")
        self.hosts = os.path.join(workdir, "cluster.hosts")
        self.local_data = os.path.join(workdir, "cluster.unbound.conf")
        self.queries = {}

    def generate(self):
        os.makedirs(self.manifests, exist_ok=True)
        self._manifests()
        with open(self.hosts, "w") as f:
            for name, ns, ip in self.services:
                f.write("%s %s\n" % (ip, fqdn(name, ns)))
        with open(self.local_data, "w") as f:
            f.write("server:\n")
            for name, ns, ip in self.services:
                f.write('    local-data: "%s. 30 IN A %s"\n' % (fqdn(name, ns), ip))
        # A and D: every Service once, in order.
        self._queries("cluster", ["%s A" % fqdn(n, ns) for n, ns, _ip in self.services])
        # B: 1,000 forwarded names, answered by the upstream, cached by the server.
        self._queries("forwarded", ["name%d.example.org A" % i for i in range(self.count)])
        # C: distinct names (caches off, and too many to repeat often anyway).
        self._queries("misses", ["miss%d.example.net A" % i for i in range(self.misses)])
        # E: a pod in ns0 with ndots:5 resolving external names: four NXDOMAIN
        # search-path queries, then the name itself.
        search = [s % CLIENT_NS if "%s" in s else s for s in SEARCH]
        lines = []
        for i in range(self.external):
            base = "www%d.example.com" % i
            lines.extend("%s.%s A" % (base, s) for s in search)
            lines.append("%s A" % base)
        self._queries("searchpath", lines)
        # E with autopath: the client's first query only; the server walks the
        # search path and answers with a CNAME, so the client stops there.
        self._queries("autopath", ["www%d.example.com.%s A" % (i, search[0]) for i in range(self.external)])
        return self

    def _queries(self, key, lines):
        path = os.path.join(self.workdir, "queries-%s.txt" % (key,))
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.queries[key] = path

    def _manifests(self):
        with open(os.path.join(self.manifests, "namespaces.yaml"), "w") as f:
            for i in range(NAMESPACES):
                f.write("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns%d\n" % i)
        with open(os.path.join(self.manifests, "services.yaml"), "w") as f:
            for name, ns, ip in self.services:
                f.write("---\napiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: %s\n"
                        "spec:\n  type: ClusterIP\n  clusterIP: %s\n  clusterIPs: [%s]\n"
                        "  ports:\n  - name: http\n    port: 80\n    protocol: TCP\n"
                        "  selector:\n    app: %s\n" % (name, ns, ip, ip, name))
        # The benchmark client (dnsperf on 127.0.0.1) as a Pod in ns0, so that
        # `autopath @kubernetes` with `pods verified` knows its namespace.
        with open(os.path.join(self.manifests, "pods.yaml"), "w") as f:
            f.write("---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: bench-client\n"
                    "  namespace: %s\n  labels:\n    app: bench-client\nspec:\n  containers:\n"
                    "  - name: dnsperf\n    image: dnsperf\nstatus:\n  phase: Running\n"
                    "  podIP: 127.0.0.1\n  podIPs:\n  - ip: 127.0.0.1\n" % (CLIENT_NS,))


def corefile_stanzas(text):
    """
    Split a one-block Corefile into C{(head, [(plugin, lines)], tail)}: each
    stanza is a top-level directive with its sub-block, so a scenario can
    drop or add plugins by name.
    """
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.rstrip().endswith("{") and not l.startswith(" "))
    end = max(i for i, l in enumerate(lines) if l.strip() == "}" and not l.startswith(" "))
    stanzas = []
    for line in lines[start + 1:end]:
        if not line.strip():
            continue
        if line.startswith("    ") and not line.startswith("     ") and line.strip() != "}":
            stanzas.append([line.split()[0], [line]])
        else:
            stanzas[-1][1].append(line)
    return lines[:start + 1], [(n, l) for n, l in stanzas], lines[end:]


def join_stanzas(head, stanzas, tail):
    out = list(head)
    for _name, lines in stanzas:
        out.extend(lines)
    return "\n".join(out + list(tail)) + "\n"
