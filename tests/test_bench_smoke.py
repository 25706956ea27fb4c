"""
The benchmark harness (bench/run.py): its generated data and configurations
are what the scenarios claim, and a one-second mini-run against unbound and
kdns-core completes with figures (when dnsperf and unbound are installed;
under CI=true they must be).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from twisted.trial import unittest

from bench.lib import data, dnsperf, probe, report
from bench.scenarios import all_scenarios
from tests.helpers import require_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class GeneratedDataTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kdns-bench-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.ds = data.Dataset(self.dir, count=1000, external=20, misses=50).generate()

    def test_manifestsHoldEveryService(self):
        """The manifests hold one Service per name, 10 Namespaces and the client Pod."""
        with open(os.path.join(self.ds.manifests, "services.yaml")) as f:
            text = f.read()
        self.assertEqual(text.count("kind: Service\n"), 1000)
        self.assertIn("name: svc999\n  namespace: ns9\n", text)
        self.assertIn("clusterIP: %s\n" % (data.service_ip(999),), text)
        with open(os.path.join(self.ds.manifests, "namespaces.yaml")) as f:
            self.assertEqual(f.read().count("kind: Namespace"), data.NAMESPACES)
        with open(os.path.join(self.ds.manifests, "pods.yaml")) as f:
            self.assertIn("podIP: 127.0.0.1", f.read())

    def test_peersServeTheSameNames(self):
        """The hosts file and unbound local-data carry exactly the Services' names and IPs."""
        expected = {(data.fqdn(n, ns), ip) for n, ns, ip in self.ds.services}
        with open(self.ds.hosts) as f:
            hosts = {tuple(reversed(line.split())) for line in f}
        self.assertEqual(hosts, expected)
        with open(self.ds.local_data) as f:
            local = set(re.findall(r'local-data: "(\S+)\. 30 IN A (\S+)"', f.read()))
        self.assertEqual(local, expected)

    def test_searchPathIsFourNxdomainInFive(self):
        """E's query file asks four search-path names for every external name."""
        with open(self.ds.queries["searchpath"]) as f:
            lines = f.read().split("\n")[:5]
        self.assertEqual(lines, ["www0.example.com.ns0.svc.cluster.local A",
                                 "www0.example.com.svc.cluster.local A",
                                 "www0.example.com.cluster.local A",
                                 "www0.example.com.corp.internal A",
                                 "www0.example.com A"])

    def test_productionCorefileStanzas(self):
        """The production Corefile splits into the seed's plugins (plus bind), in order."""
        path = data.render("Corefile.production", os.path.join(self.dir, "Corefile"), port=1,
                           health_port=2, ready_port=3, metrics_port=4, manifests=self.ds.manifests,
                           pods="insecure", upstream_port=5)
        with open(path) as f:
            head, stanzas, tail = data.corefile_stanzas(f.read())
        self.assertEqual([name for name, _ in stanzas],
                         ["bind", "errors", "health", "ready", "kubernetes", "prometheus",
                          "forward", "cache", "loop", "reload", "loadbalance"])
        kept = [s for s in stanzas if s[0] not in ("kubernetes", "health")]
        text = data.join_stanzas(head, kept, tail)
        self.assertNotIn("kubernetes cluster.local", text)
        self.assertNotIn("lameduck", text)
        self.assertEqual(text.count("{"), text.count("}"))
        self.assertIn("forward . 127.0.0.1:5 {", text)

    def test_templatesFillEveryPlaceholder(self):
        """Every server template renders without a placeholder left over."""
        values = dict(port=1, health_port=2, ready_port=3, metrics_port=4, manifests="m",
                      pods="insecure", upstream_port=5, hosts_file="h", workdir=self.dir,
                      local_data="l", cache_max_ttl=0, cache_max_negative_ttl=0, user="u",
                      cache_size=0)
        for name in ("Corefile.production", "Corefile.core", "unbound.conf", "dnsmasq.conf",
                     "upstream.conf"):
            out = data.render(name, os.path.join(self.dir, name), **values)
            with open(out) as f:
                self.assertNotIn("${", f.read(), name)

    def test_everyScenarioHasUnboundAndProbes(self):
        """Each scenario compares against unbound and checks answers before measuring."""
        scenarios = all_scenarios()
        self.assertEqual([s.key for s in scenarios], ["A", "B", "C", "D", "E"])
        for scen in scenarios:
            self.assertEqual(scen.servers[0].name, "unbound")
            for spec in scen.servers:
                self.assertTrue(spec.probes)
                self.assertIn(spec.queries, self.ds.queries)


class ReportTests(unittest.SynchronousTestCase):
    def test_ratiosAreTakenWithinARound(self):
        """Ratios divide by unbound's figure of the same round, then take the median."""
        base = {"name": "unbound", "qpl": 5, "rounds": [
            {"round": 1, "qps": 100.0, "cpu_us": 10.0}, {"round": 2, "qps": 50.0, "cpu_us": 20.0}]}
        row = {"name": "kdns+autopath", "qpl": 1, "rounds": [
            {"round": 1, "qps": 40.0, "cpu_us": 20.0}, {"round": 2, "qps": 30.0, "cpu_us": 20.0}]}
        s = report.summarise(row, base)
        # lookups/s: round 1: 40 / 20 = 2.0, round 2: 30 / 10 = 3.0
        self.assertAlmostEqual(s["qps_x"], 2.5)
        # CPU per lookup: round 1: 20 / 50 = 0.4, round 2: 20 / 100 = 0.2
        self.assertAlmostEqual(s["cpu_x"], 0.3)
        self.assertEqual(s["qps"], 35.0)

    def test_targetsNameTheRatios(self):
        """The targets table shows kdns' median per-round ratio and whether it meets the bound."""
        def row(name, *qps):
            return {"name": name, "qpl": 1,
                    "rounds": [{"round": i + 1, "qps": q} for i, q in enumerate(qps)]}
        run = {"scenarios": [{"key": "A", "title": "a", "rows": [row("unbound", 100.0, 200.0),
                                                                 row("kdns", 95.0, 180.0)]},
                             {"key": "C", "title": "c", "rows": [row("dnsmasq", 100.0),
                                                                 row("kdns", 50.0)]}]}
        lines = report.targets(run)
        self.assertIn("| A: QPS at saturation ≥ 0.9× unbound | 0.93× | yes |", lines)
        self.assertIn("| C: forwarding QPS ≥ 0.6× dnsmasq | 0.50× | **no** |", lines)
        self.assertIn("| D: TCP QPS ≥ 0.8× unbound | – | not measured |", lines)

    def test_percentile(self):
        """Nearest-rank p99 of 1..100 is 99; an empty list has none."""
        self.assertEqual(dnsperf.percentile(list(range(1, 101)), 99), 99)
        self.assertIsNone(dnsperf.percentile([], 99))

    def test_probeParsesItsOwnQuery(self):
        """The probe's query parses back (as a reply) with its ID and no answers."""
        q = probe.build_query("svc1.ns1.svc.cluster.local", "A", msg_id=0x1234)
        self.assertEqual(probe.parse_reply(q), (0x1234, 0, [], 0))


class MiniRunTests(unittest.SynchronousTestCase):
    def test_oneSecondRun(self):
        """A --quick run of scenario A writes the table and JSON with figures for both rows."""
        for tool in ("dnsperf", "unbound", "dnsmasq"):
            if tool != "dnsperf" and shutil.which(tool) is None and os.path.exists("/usr/sbin/" + tool):
                continue
            require_tool(self, tool)
        out = tempfile.mkdtemp(prefix="kdns-bench-run-")
        self.addCleanup(shutil.rmtree, out, True)
        proc = subprocess.run(
            [sys.executable, os.path.join(ROOT, "bench", "run.py"), "--quick", "--scenarios", "A",
             "--servers", "unbound,kdns-core", "--duration", "1", "--warmup", "0.2",
             "--rate-duration", "0.5", "--no-chart", "--no-install",
             "--workdir", os.path.join(out, "work"), "--out", out],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120, cwd=ROOT)
        self.assertEqual(proc.returncode, 0, proc.stdout.decode("utf-8", "replace")[-2000:])
        with open(os.path.join(out, "latest.json")) as f:
            run = json.load(f)
        rows = {r["name"]: r for r in run["scenarios"][0]["rows"]}
        self.assertEqual(sorted(rows), ["kdns-core", "unbound"])
        for name, row in rows.items():
            self.assertNotIn("skipped", row, name)
            first = row["rounds"][0]
            self.assertGreater(first["qps"], 100, name)
            self.assertEqual(set(first["rcodes"]), {"NOERROR"}, name)
            self.assertIsNotNone(first.get("cpu_us"), name)
        with open(os.path.join(out, "latest.md")) as f:
            table = f.read()
        self.assertIn("| kdns-core |", table)
