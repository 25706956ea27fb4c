"""
etc/kubernetes: every object validates offline against the Kubernetes API
schemas (the official client's generated models: required fields, and no
unknown field survives a round trip), the pieces fit together (selectors,
ports, probes, volumes, service account), the Corefiles inside the
ConfigMaps pass C{kdns check}, RBAC grants exactly what the kubernetes
plugin watches, and the NodeLocal Corefile really caches and forwards.
"""

import glob
import os
import shutil
import socket
import subprocess

import yaml
from twisted.trial import unittest

from tests.helpers import query, rrset_values, start_server, write_corefile
from twisted_kdns import config, registry
from twisted_kdns.errors import ConfigErrors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFESTS = os.path.join(ROOT, "etc", "kubernetes")
NODELOCAL_IP = "169.254.20.10"
UPSTREAM_VAR = "KUBE_DNS_UPSTREAM_SERVICE_HOST"


def skip_without_tree(testcase):
    """pybuild runs the tests from a copy without etc/: nothing to check there."""
    if not os.path.isdir(MANIFESTS):
        testcase.skipTest("etc/kubernetes is not in this tree (running from a build copy)")


def load_docs(name):
    with open(os.path.join(MANIFESTS, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def all_objects():
    """C{{(kind, name): object}} over every manifest except the kustomization."""
    out = {}
    for path in sorted(glob.glob(os.path.join(MANIFESTS, "*.yaml"))):
        if os.path.basename(path) == "kustomization.yaml":
            continue
        for doc in load_docs(os.path.basename(path)):
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def model_name(doc):
    """The client model class for an object: V1Deployment for apps/v1 Deployment."""
    version = doc["apiVersion"].split("/")[-1]
    return version[0].upper() + version[1:] + doc["kind"]


def dropped_keys(original, roundtrip, path=""):
    """Paths of keys in C{original} that the typed model did not keep (unknown fields)."""
    missing = []
    if isinstance(original, dict):
        if not isinstance(roundtrip, dict):
            return [path or "."]
        for key, value in original.items():
            if key not in roundtrip:
                missing.append("%s.%s" % (path, key))
            else:
                missing.extend(dropped_keys(value, roundtrip[key], "%s.%s" % (path, key)))
    elif isinstance(original, list):
        if not isinstance(roundtrip, list) or len(roundtrip) != len(original):
            return [path or "."]
        for i, (a, b) in enumerate(zip(original, roundtrip)):
            missing.extend(dropped_keys(a, b, "%s[%d]" % (path, i)))
    return missing


def validate(doc):
    """
    Deserialize into the client's typed model (raises on a missing
    required field or a wrong type) and return the keys it dropped.
    """
    from kubernetes import client
    api = client.ApiClient()
    obj = api._ApiClient__deserialize(doc, model_name(doc))
    return dropped_keys(doc, api.sanitize_for_serialization(obj))


def plugins_missing(text):
    """Plugin names used in Corefile C{text} that this version does not implement."""
    from twisted_kdns.corefile import parse_text
    corefile = parse_text(text, "Corefile", 53, {UPSTREAM_VAR: "10.96.0.11"})
    names = set()
    for block in corefile.blocks:
        names.update(block.by_name())
    return sorted(n for n in names if n in registry.RANK and not registry.available(n))


def check_corefile(testcase, text, environ=None):
    """C{kdns check}'s verdict on C{text}; skips while a plugin it names has not landed."""
    missing = plugins_missing(text)
    if missing:
        testcase.skipTest("plugins not available in this version yet: %s" % (", ".join(missing),))
    try:
        return config.load(text=text, path="Corefile", environ=environ if environ is not None else {})
    except ConfigErrors as e:
        testcase.fail("kdns check failed:\n" + "\n".join(str(x) for x in e.errors))


def container(obj, name=None):
    containers = obj["spec"]["template"]["spec"]["containers"]
    if name is None:
        return containers[0]
    return [c for c in containers if c["name"] == name][0]


def ports_of(c):
    return sorted((p["containerPort"], p.get("protocol", "TCP")) for p in c.get("ports", []))


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


class SchemaTests(unittest.SynchronousTestCase):
    def setUp(self):
        skip_without_tree(self)

    def test_everyObjectValidates(self):
        """Each object deserializes into its API model with no required field missing and no unknown field."""
        objects = all_objects()
        self.assertEqual(sorted(k for k, _ in objects), sorted([
            "ClusterRole", "ClusterRoleBinding", "ConfigMap", "ConfigMap", "DaemonSet", "Deployment",
            "PodDisruptionBudget", "Service", "Service", "ServiceAccount", "ServiceAccount"]))
        for key, doc in objects.items():
            self.assertEqual(validate(doc), [], "unknown fields in %s/%s" % key)

    def test_validatorCatchesMistakes(self):
        """The validator itself rejects a misspelt field and a missing required one."""
        deployment = all_objects()[("Deployment", "kdns")]
        bad = yaml.safe_load(yaml.safe_dump(deployment))
        bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
        self.assertEqual(validate(bad), [".spec.template.spec.containers[0].readinesProbe"])
        del bad["spec"]["selector"]
        self.assertRaises(Exception, validate, bad)

    def test_namespaceAndKustomization(self):
        """Namespaced objects live in kube-system; kustomization.yaml lists every cluster-DNS file."""
        for (kind, name), doc in all_objects().items():
            if kind not in ("ClusterRole", "ClusterRoleBinding"):
                self.assertEqual(doc["metadata"].get("namespace"), "kube-system", "%s/%s" % (kind, name))
        kustomization = load_docs("kustomization.yaml")[0]
        self.assertEqual(sorted(kustomization["resources"]),
                         ["configmap.yaml", "deployment.yaml", "pdb.yaml", "rbac.yaml", "service.yaml"])
        for path in kustomization["resources"]:
            self.assertTrue(os.path.exists(os.path.join(MANIFESTS, path)), path)

    def test_kustomizeRenders(self):
        """C{kubectl kustomize} (offline) renders the set with the image set in the kustomization."""
        if shutil.which("kubectl") is None:
            self.skipTest("kubectl is not installed")
        out = subprocess.run(["kubectl", "kustomize", MANIFESTS], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        docs = [d for d in yaml.safe_load_all(out.stdout) if d]
        self.assertEqual(sorted(d["kind"] for d in docs), sorted([
            "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "PodDisruptionBudget", "Service",
            "ServiceAccount"]))
        image = load_docs("kustomization.yaml")[0]["images"][0]
        deployment = [d for d in docs if d["kind"] == "Deployment"][0]
        self.assertEqual(container(deployment)["image"], "%s:%s" % (image["newName"], image["newTag"]))


class ClusterDnsTests(unittest.SynchronousTestCase):
    def setUp(self):
        skip_without_tree(self)
        self.objects = all_objects()
        self.deployment = self.objects[("Deployment", "kdns")]
        self.pod = self.deployment["spec"]["template"]

    def test_configMapIsTheClusterCorefile(self):
        """The ConfigMap carries etc/Corefile.cluster verbatim, and it passes kdns check."""
        text = self.objects[("ConfigMap", "kdns")]["data"]["Corefile"]
        with open(os.path.join(ROOT, "etc", "Corefile.cluster")) as f:
            self.assertEqual(text, f.read())
        plan = check_corefile(self, text)
        self.assertIn("kubernetes", plan.blocks[0].configs)

    def test_deploymentShape(self):
        """3 replicas, one-at-a-time rolling update, node anti-affinity, cluster-critical, kube-dns labels."""
        spec = self.deployment["spec"]
        self.assertEqual(spec["replicas"], 3)
        self.assertEqual(spec["strategy"]["type"], "RollingUpdate")
        self.assertEqual(spec["strategy"]["rollingUpdate"], {"maxSurge": 1, "maxUnavailable": 1})
        labels = self.pod["metadata"]["labels"]
        self.assertEqual(labels["k8s-app"], "kube-dns")
        self.assertTrue(selects(spec["selector"]["matchLabels"], labels))
        term = self.pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
        self.assertEqual(term["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname")
        self.assertTrue(selects(term["podAffinityTerm"]["labelSelector"]["matchLabels"], labels))
        self.assertEqual(self.pod["spec"]["priorityClassName"], "system-cluster-critical")
        self.assertEqual(self.pod["spec"]["dnsPolicy"], "Default")

    def test_probesMatchTheCorefile(self):
        """Liveness is /health and readiness /ready on the ports the Corefile's health and ready use."""
        c = container(self.deployment)
        plan = check_corefile(self, self.objects[("ConfigMap", "kdns")]["data"]["Corefile"])
        configs = plan.blocks[0].configs
        health_port = int(configs["health"].addresses[0].rsplit(":", 1)[1])
        ready_port = int(configs["ready"].address.rsplit(":", 1)[1])
        metrics_port = int(configs["prometheus"].address.rsplit(":", 1)[1])
        self.assertEqual((c["livenessProbe"]["httpGet"]["path"], c["livenessProbe"]["httpGet"]["port"]),
                         ("/health", health_port))
        self.assertEqual((c["readinessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["port"]),
                         ("/ready", ready_port))
        self.assertEqual((health_port, ready_port, metrics_port), (8080, 8181, 9153))
        self.assertEqual(c["livenessProbe"]["timeoutSeconds"], 5)
        self.assertEqual(c["livenessProbe"]["failureThreshold"], 5)
        for port in ((53, "UDP"), (53, "TCP"), (metrics_port, "TCP"), (health_port, "TCP"), (ready_port, "TCP")):
            self.assertIn(port, ports_of(c))

    def test_securityAndResources(self):
        """Non-root with the image's numeric uid, read-only root fs, no capabilities, port 53 via sysctl."""
        c = container(self.deployment)
        sc = c["securityContext"]
        self.assertEqual((sc["allowPrivilegeEscalation"], sc["readOnlyRootFilesystem"], sc["capabilities"]),
                         (False, True, {"drop": ["ALL"]}))
        psc = self.pod["spec"]["securityContext"]
        self.assertTrue(psc["runAsNonRoot"])
        with open(os.path.join(ROOT, "Dockerfile")) as f:
            users = [line.split()[1] for line in f if line.startswith("USER ")]
        self.assertEqual(users, ["%d:%d" % (psc["runAsUser"], psc["runAsGroup"])])
        self.assertIn({"name": "net.ipv4.ip_unprivileged_port_start", "value": "53"}, psc["sysctls"])
        for key in ("requests", "limits"):
            self.assertIn("memory", c["resources"][key])
        self.assertIn("cpu", c["resources"]["requests"])

    def test_configMountAndServiceAccount(self):
        """The ConfigMap is mounted as a directory (no subPath) where --corefile points; the SA exists."""
        c = container(self.deployment)
        volumes = {v["name"]: v for v in self.pod["spec"]["volumes"]}
        mount = [m for m in c["volumeMounts"] if m["mountPath"] == "/etc/kdns"][0]
        self.assertNotIn("subPath", mount)
        self.assertTrue(mount["readOnly"])
        volume = volumes[mount["name"]]["configMap"]
        self.assertIn(("ConfigMap", volume["name"]), self.objects)
        corefile = os.path.join(mount["mountPath"], volume["items"][0]["path"])
        self.assertEqual(c["args"][c["args"].index("--corefile") + 1], corefile)
        self.assertIn(("ServiceAccount", self.pod["spec"]["serviceAccountName"]), self.objects)

    def test_serviceAndPdb(self):
        """kube-dns keeps its label, selects the pods and maps 53/UDP, 53/TCP, 9153 to container ports."""
        svc = self.objects[("Service", "kube-dns")]
        self.assertEqual(svc["metadata"]["labels"]["k8s-app"], "kube-dns")
        self.assertTrue(selects(svc["spec"]["selector"], self.pod["metadata"]["labels"]))
        container_ports = ports_of(container(self.deployment))
        got = sorted((p["port"], p["protocol"]) for p in svc["spec"]["ports"])
        self.assertEqual(got, [(53, "TCP"), (53, "UDP"), (9153, "TCP")])
        for p in svc["spec"]["ports"]:
            self.assertIn((p["targetPort"], p["protocol"]), container_ports)
        pdb = self.objects[("PodDisruptionBudget", "kdns")]
        self.assertEqual(pdb["spec"]["maxUnavailable"], 1)
        self.assertTrue(selects(pdb["spec"]["selector"]["matchLabels"], self.pod["metadata"]["labels"]))


class RbacTests(unittest.SynchronousTestCase):
    def setUp(self):
        skip_without_tree(self)

    def test_rulesCoverExactlyWhatThePluginWatches(self):
        """The ClusterRole grants list+watch on exactly the kinds the ConfigMap's kubernetes block watches."""
        objects = all_objects()
        plan = check_corefile(self, objects[("ConfigMap", "kdns")]["data"]["Corefile"])
        from twisted_kdns.plugins.kubernetes import watch
        kubernetes_config = plan.blocks[0].configs["kubernetes"]
        wanted = sorted(api_resource(watch.KINDS[k], k) for k in kubernetes_config.kinds())
        granted = []
        for rule in objects[("ClusterRole", "system:kdns")]["rules"]:
            self.assertEqual(sorted(rule["verbs"]), ["list", "watch"])
            granted.extend((g, r) for g in rule["apiGroups"] for r in rule["resources"])
        self.assertEqual(sorted(granted), wanted)
        self.assertEqual(wanted, [("", "namespaces"), ("", "services"), ("discovery.k8s.io", "endpointslices")])

    def test_bindingTiesRoleToServiceAccount(self):
        """The binding names the ClusterRole and the kdns ServiceAccount in kube-system."""
        objects = all_objects()
        binding = objects[("ClusterRoleBinding", "system:kdns")]
        self.assertEqual(binding["roleRef"], {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                              "name": "system:kdns"})
        self.assertEqual(binding["subjects"], [{"kind": "ServiceAccount", "name": "kdns",
                                                "namespace": "kube-system"}])


def api_resource(entry, kind):
    """C{(API group, resource)} the watcher requests for one kind (from its collection path)."""
    first = entry[0]
    if first.startswith("/"):
        parts = first.strip("/").split("/")  # api/v1/services or apis/GROUP/VERSION/RESOURCE
        return ("" if parts[0] == "api" else parts[1]), parts[-1]
    return {"CoreV1Api": "", "DiscoveryV1Api": "discovery.k8s.io"}[first], kind


def free_ports(count):
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class NodeLocalTests(unittest.TestCase):
    def setUp(self):
        skip_without_tree(self)
        self.objects = all_objects()
        self.corefile = self.objects[("ConfigMap", "node-local-dns")]["data"]["Corefile"]
        self.daemonset = self.objects[("DaemonSet", "node-local-dns")]

    def test_corefileBindsTheLinkLocalAddress(self):
        """Every block binds 169.254.20.10; cluster zones forward over TCP to kube-dns-upstream."""
        plan = check_corefile(self, self.corefile, {UPSTREAM_VAR: "10.96.0.11"})
        zones = []
        for bplan in plan.blocks:
            self.assertEqual(config.bind_addresses(bplan), [NODELOCAL_IP])
            zones.extend(k.zone for k in bplan.block.keys)
            self.assertIn("cache", bplan.configs)
        self.assertEqual(sorted(zones), [b"", b"cluster.local", b"in-addr.arpa", b"ip6.arpa"])
        self.assertEqual(self.corefile.count("force_tcp"), 3)
        self.assertEqual(self.corefile.count("{$%s}" % UPSTREAM_VAR), 3)
        upstream = self.objects[("Service", "kube-dns-upstream")]
        self.assertEqual(UPSTREAM_VAR, upstream["metadata"]["name"].upper().replace("-", "_") + "_SERVICE_HOST")
        self.assertEqual(upstream["spec"]["selector"], {"k8s-app": "kube-dns"})

    def test_daemonSetShape(self):
        """hostNetwork, node's resolv.conf, node-critical, everywhere, liveness on its own health address."""
        spec = self.daemonset["spec"]["template"]["spec"]
        self.assertTrue(spec["hostNetwork"])
        self.assertEqual(spec["dnsPolicy"], "Default")
        self.assertEqual(spec["priorityClassName"], "system-node-critical")
        self.assertEqual(spec["tolerations"], [{"operator": "Exists"}])
        c = container(self.daemonset, "node-cache")
        probe = c["livenessProbe"]["httpGet"]
        self.assertIn("health %s:%d" % (probe["host"], probe["port"]), self.corefile)
        self.assertEqual(c["securityContext"]["capabilities"], {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]})
        self.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])
        self.assertNotIn("sysctls", spec.get("securityContext", {}))  # not allowed with hostNetwork
        self.assertIn(NODELOCAL_IP, "".join(spec["initContainers"][0]["command"]))
        self.assertIn(("ServiceAccount", spec["serviceAccountName"]), self.objects)

    def test_servesThroughUpstream(self):
        """The NodeLocal Corefile, moved to loopback, answers cluster names from the upstream and caches them."""
        missing = plugins_missing(self.corefile)
        if missing:
            self.skipTest("plugins not available in this version yet: %s" % (", ".join(missing),))
        upstream, upstream_port = start_server(
            self, "cluster.local:0 {\n bind 127.0.0.1\n hosts {\n  10.96.7.7 web.default.svc.cluster.local\n }\n}\n")
        dns_port, health_port, metrics_port = free_ports(3)
        text = (self.corefile.replace("%s:8080" % NODELOCAL_IP, "127.0.0.1:%d" % health_port)
                .replace("bind %s" % NODELOCAL_IP, "bind 127.0.0.1")
                .replace(":53 {", ":%d {" % dns_port)
                .replace("prometheus :9253", "prometheus 127.0.0.1:%d" % metrics_port))
        old = os.environ.get(UPSTREAM_VAR)
        os.environ[UPSTREAM_VAR] = "127.0.0.1:%d" % upstream_port
        self.addCleanup(lambda: os.environ.pop(UPSTREAM_VAR) if old is None
                        else os.environ.__setitem__(UPSTREAM_VAR, old))
        path = write_corefile(self, text)
        node_local, port = start_server(self, text, path=path)
        self.assertEqual(port, dns_port)

        def first(reply):
            self.assertEqual(rrset_values(reply), ["10.96.7.7"])
            # The upstream goes away: the answer must now come from the cache.
            return upstream.stopService()

        def cached(_):
            return query(port, "web.default.svc.cluster.local.", "A")
        d = query(port, "web.default.svc.cluster.local.", "A")
        d.addCallback(first)
        d.addCallback(cached)
        d.addCallback(lambda reply: self.assertEqual(rrset_values(reply), ["10.96.7.7"]))
        return d
