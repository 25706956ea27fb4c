"""
etc/grafana/kdns-dashboard.json: valid JSON, and every metric its queries
use is one that kdns exports once its plugins are loaded (a renamed metric
would silently empty a panel).
"""

import importlib
import json
import os
import pkgutil
import re

from prometheus_client import REGISTRY
from twisted.trial import unittest

from twisted_kdns import registry

DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "etc", "grafana", "kdns-dashboard.json")
METRIC = re.compile(r"\b((?:coredns|kdns|process)_[a-zA-Z0-9_]+)")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("", "_count", "_sum", "_created"), "gauge": ("",), "info": ("_info",),
            "gaugehistogram": ("_bucket", "_gcount", "_gsum"), "stateset": ("",), "unknown": ("",)}


def load_plugins():
    """Import every implemented plugin with its submodules, as Corefiles naming them would."""
    import twisted_kdns.plugins as package
    for name in registry.implemented():
        module = registry.load(name)
        if hasattr(module, "__path__"):
            for info in pkgutil.iter_modules(module.__path__, module.__name__ + "."):
                importlib.import_module(info.name)
    return package


def exported_names():
    """Every series name the registry can expose (families without samples included)."""
    names = set()
    for family in REGISTRY.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
        names.update(sample.name for sample in family.samples)
    return names


def queried_names(dashboard):
    found = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "query", "definition") and isinstance(value, str):
                    found.update(METRIC.findall(value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    walk(dashboard)
    return found


class DashboardTests(unittest.SynchronousTestCase):
    def setUp(self):
        with open(DASHBOARD) as f:
            self.dashboard = json.load(f)

    def test_everyQueriedMetricIsExported(self):
        """Each metric named in a panel query or template variable is exported by kdns."""
        load_plugins()
        queried = queried_names(self.dashboard)
        self.assertGreater(len(queried), 20)
        self.assertEqual(sorted(queried - exported_names()), [])

    def test_coversTheIssue(self):
        """The dashboard shows QPS by type and rcode, latency quantiles, cache hits, forward and kubernetes."""
        queried = queried_names(self.dashboard)
        for name in ("coredns_dns_requests_total", "coredns_dns_responses_total",
                     "coredns_dns_request_duration_seconds_bucket", "coredns_cache_hits_total",
                     "coredns_cache_requests_total", "coredns_proxy_request_duration_seconds_bucket",
                     "coredns_proxy_healthcheck_failures_total",
                     "coredns_kubernetes_dns_programming_duration_seconds_bucket",
                     "kdns_kubernetes_last_sync_timestamp_seconds"):
            self.assertIn(name, queried)

    def test_panelsHaveUniqueIdsAndDatasource(self):
        """Panel ids are unique and every query panel uses the templated data source."""
        panels = self.dashboard["panels"]
        ids = [p["id"] for p in panels]
        self.assertEqual(len(ids), len(set(ids)))
        for panel in panels:
            if panel["type"] != "row":
                self.assertEqual(panel["datasource"]["uid"], "${datasource}")
                self.assertTrue(panel["targets"])
