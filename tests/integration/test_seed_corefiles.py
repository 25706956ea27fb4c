"""
The seed article's Corefiles (section 3.1 "custom resolution" and 3.2/8.2
"performance tuning") load and answer correctly end to end.  Adapted only
where a test must: loopback listeners on free ports, upstream kdns servers
with hosts instead of 10.0.0.53 / 192.168.1.10 / /etc/resolv.conf, a
manifests-backed cluster instead of an API server, metrics/health on port 0
and a 100 ms lameduck instead of 5 s so the test stops quickly.
"""

import os
import shutil
import tempfile

from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers import query, start_server

CLUSTER = """apiVersion: v1
kind: Service
metadata: {name: myapp, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.20
  clusterIPs: [10.96.0.20]
  ports:
  - {name: http, port: 80, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  ports:
  - {name: dns, port: 53, protocol: UDP}
"""

SEED_3_1 = """.:0 {
    bind 127.0.0.1
    # custom names
    hosts {
        10.0.0.100 my-custom-service.local
        10.0.0.101 database.internal
        fallthrough
    }

    # conditional forwarding
    forward consul.local 127.0.0.1:%(consul)d
    forward internal.company.com 127.0.0.1:%(internal)d

    # rewrite some names
    rewrite name exact myapp.local myapp.default.svc.cluster.local

    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
       manifests %(manifests)s
    }

    prometheus 127.0.0.1:0
    forward . 127.0.0.1:%(upstream)d
    cache 30
    loop
    reload
    loadbalance
}
"""

SEED_3_2 = """.:0 {
    bind 127.0.0.1
    # bigger, longer cache
    cache 300 {
        success 9984 30
        denial 9984 5
    }

    forward . 127.0.0.1:%(upstream)d {
        max_concurrent 1000
        expire 10s
        health_check 5s
    }

    health 127.0.0.1:0 {
        lameduck 100ms
    }

    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
       manifests %(manifests)s
    }

    prometheus 127.0.0.1:0
    loop
    reload
}
"""

SEED_8_2_CACHE = """cache 300 {
        success 9984 300
        denial 9984 30
        prefetch 10 60s
    }"""


VERBATIM_3_1 = """.:53 {
    # 自定义域名解析
    hosts {
        10.0.0.100 my-custom-service.local
        10.0.0.101 database.internal
        fallthrough
    }

    # 条件转发 - 将特定域名转发到特定的 DNS 服务器
    forward consul.local 10.0.0.53
    forward internal.company.com 192.168.1.10

    # 重写查询 - 将某些查询重写为其他域名
    rewrite name exact myapp.local myapp.default.svc.cluster.local

    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }

    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
}
"""

VERBATIM_3_2 = """.:53 {
    # 增加缓存时间和大小
    cache 300 {
        success 9984 30
        denial 9984 5
    }

    # 优化转发器配置
    forward . /etc/resolv.conf {
        max_concurrent 1000
        expire 10s
        health_check 5s
    }

    # 配置更详细的健康检查
    health {
        lameduck 5s
    }

    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
       # 优化 API 调用
       kubeconfig /etc/coredns/kubeconfig
    }

    prometheus :9153
    loop
    reload
}
"""


def records(reply, section="answer"):
    return sorted((rrset.name.to_text(), rd.to_text()) for rrset in getattr(reply, section) for rd in rrset)


def values(reply):
    return sorted(rd.to_text() for rrset in reply.answer for rd in rrset)


class VerbatimCheckTests(unittest.SynchronousTestCase):
    def test_seedCorefilesPassCheck(self):
        """The seed's 3.1 and 3.2 Corefiles, unchanged (comments included), pass the configuration check."""
        from twisted_kdns import config
        for text in (VERBATIM_3_1, VERBATIM_3_2):
            plan = config.load(text=text)
            self.assertEqual(len(plan.blocks), 1)
        plan = config.load(text=VERBATIM_3_2)
        cache = plan.blocks[0].configs["cache"]
        self.assertEqual((cache.success.capacity, cache.success.ttl, cache.denial.ttl), (9984, 30, 5))


class SeedCorefileTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kdns-seed-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.manifests = os.path.join(self.dir, "cluster.yaml")
        with open(self.manifests, "w") as f:
            f.write(CLUSTER)

    def upstream(self, entries):
        lines = "\n".join("  %s %s" % pair for pair in entries)
        _, port = start_server(self, ".:0 {\n bind 127.0.0.1\n hosts {\n%s\n  ttl 3600\n }\n}\n" % (lines,))
        return port

    def ports(self):
        return {
            "consul": self.upstream([("10.3.0.1", "web.service.consul.local")]),
            "internal": self.upstream([("10.4.0.1", "wiki.internal.company.com")]),
            "upstream": self.upstream([("10.5.0.1", "www.example.com"), ("10.5.0.2", "www.example.com"),
                                       ("10.5.0.3", "www.example.com")]),
            "manifests": self.manifests,
        }

    @defer.inlineCallbacks
    def test_section31CustomResolution(self):
        """Section 3.1: hosts, both conditional forwards, rewrite, kubernetes (records, PTR, pods, fallthrough), default forward, cache and loadbalance answer as CoreDNS would."""
        service, port = start_server(self, SEED_3_1 % self.ports())
        reply = yield query(port, "my-custom-service.local", "A")
        self.assertEqual(records(reply), [("my-custom-service.local.", "10.0.0.100")])
        reply = yield query(port, "database.internal", "A", tcp=True)
        self.assertEqual(values(reply), ["10.0.0.101"])
        reply = yield query(port, "web.service.consul.local", "A")
        self.assertEqual(values(reply), ["10.3.0.1"])
        reply = yield query(port, "wiki.internal.company.com", "A")
        self.assertEqual(values(reply), ["10.4.0.1"])
        reply = yield query(port, "myapp.local", "A")
        self.assertEqual(records(reply), [("myapp.local.", "10.96.0.20")])
        reply = yield query(port, "myapp.default.svc.cluster.local", "A")
        self.assertEqual(values(reply), ["10.96.0.20"])
        self.assertLessEqual(reply.answer[0].ttl, 30)
        reply = yield query(port, "20.0.96.10.in-addr.arpa", "PTR")
        self.assertEqual(values(reply), ["myapp.default.svc.cluster.local."])
        reply = yield query(port, "10-1-2-3.default.pod.cluster.local", "A")
        self.assertEqual(values(reply), ["10.1.2.3"])
        reply = yield query(port, "missing.default.svc.cluster.local", "A")
        self.assertEqual(reply.rcode(), 3)
        self.assertEqual([rrset.rdtype for rrset in reply.authority], [6])
        # PTR outside the cluster's addresses falls through kubernetes to forward.
        reply = yield query(port, "1.0.5.10.in-addr.arpa", "PTR")
        self.assertEqual(values(reply), ["www.example.com."])
        # Default forward, cached (AA on hits, TTL capped at 30) and shuffled by loadbalance.
        orders = set()
        for i in range(8):
            reply = yield query(port, "www.example.com", "A")
            self.assertEqual(values(reply), ["10.5.0.1", "10.5.0.2", "10.5.0.3"])
            self.assertLessEqual(reply.answer[0].ttl, 30)
            orders.add(tuple(rd.to_text() for rd in reply.answer[0]))
            if i:
                self.assertTrue(reply.flags & 0x0400)
        self.assertGreater(len(orders), 1)
        plugins = service.generation.blocks[0].plugins
        self.assertEqual(len(plugins["cache"].success.items) > 0, True)

    @defer.inlineCallbacks
    def test_section32PerformanceTuning(self):
        """Section 3.2: the tuned cache caps forward answers at 30 s and cluster NXDOMAIN at 5 s; forward options and health load."""
        service, port = start_server(self, SEED_3_2 % self.ports())
        reply = yield query(port, "www.example.com", "A")
        self.assertEqual(values(reply), ["10.5.0.1", "10.5.0.2", "10.5.0.3"])
        self.assertEqual(reply.answer[0].ttl, 30)
        reply = yield query(port, "missing.default.svc.cluster.local", "A")
        self.assertEqual(reply.rcode(), 3)
        self.assertLessEqual(reply.authority[0].ttl, 5)
        reply = yield query(port, "myapp.default.svc.cluster.local", "A")
        self.assertEqual(values(reply), ["10.96.0.20"])
        cache = service.generation.blocks[0].plugins["cache"]
        self.assertEqual((cache.config.success.capacity, cache.config.success.ttl, cache.config.denial.ttl),
                         (9984, 30, 5))

    @defer.inlineCallbacks
    def test_section82CacheStrategy(self):
        """Section 8.2's cache (success 300, denial 30, prefetch 10 60s) in the 3.2 block answers with those caps."""
        text = SEED_3_2.replace("""cache 300 {
        success 9984 30
        denial 9984 5
    }""", SEED_8_2_CACHE)
        service, port = start_server(self, text % self.ports())
        reply = yield query(port, "www.example.com", "A")
        self.assertEqual(reply.answer[0].ttl, 300)
        reply = yield query(port, "missing.default.svc.cluster.local", "A")
        self.assertEqual(reply.rcode(), 3)
        self.assertLessEqual(reply.authority[0].ttl, 30)
        cache = service.generation.blocks[0].plugins["cache"]
        self.assertEqual((cache.config.prefetch, cache.config.prefetch_window), (10, 60.0))
