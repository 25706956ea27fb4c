# -*- test-case-name: tests.plugins.kubernetes.test_parse -*-
"""
kubernetes: cluster DNS to the Kubernetes DNS specification, as CoreDNS's
plugin/kubernetes answers it.

The package splits the plugin by job:

  - this module: C{parse} (the Corefile options, with CoreDNS's errors) and
    C{setup} (store + source + resolver for one server block);
  - L{objects}: slim records of Namespaces, Services, EndpointSlices, Pods;
  - L{store}: the indexes the resolver reads, fed by a source on the
    reactor thread, with change notifications for the cache;
  - L{resolver}: the records (names, types, NXDOMAIN vs NODATA, TTLs);
  - L{watch}: the API server source (list + watch threads);
  - L{manifests}: our extension, a source reading YAML/JSON files instead
    of an API server.
"""

import os

from twisted_kdns.errors import ConfigError
from twisted_kdns.names import Fallthrough, normalize
from twisted_kdns.plugin import once, parse_duration

from twisted_kdns.plugins.kubernetes.selectors import Selector, SelectorError

KIND = "terminal"
ONCE = True

PODS_MODES = ("disabled", "insecure", "verified")


def is_reverse(zone):
    """C{True} for names under in-addr.arpa or ip6.arpa."""
    return zone == b"in-addr.arpa" or zone.endswith(b".in-addr.arpa") or \
        zone == b"ip6.arpa" or zone.endswith(b".ip6.arpa")


class KubernetesConfig(object):
    """
    The parsed C{kubernetes} directive.

    @ivar zones: zones from the arguments (normalised), or C{None} to use
        the server block's.
    @ivar endpoint: API server URL or C{None} (in-cluster).
    @ivar tls: C{(cert, key, cacert)} or C{None}.
    @ivar kubeconfig: C{(path, context-or-None)} or C{None}.
    @ivar namespaces: set of exposed namespaces (empty: all).
    @ivar labels: label selector text for Services/EndpointSlices/Pods, or C{None}.
    @ivar namespace_labels: label selector text for Namespaces, or C{None}.
    @ivar pods: C{"disabled"}, C{"insecure"} or C{"verified"}.
    @ivar startup_timeout: seconds to wait for the first sync.
    @ivar manifests: paths (our extension) or C{None} for the API.
    """

    def __init__(self):
        self.zones = None
        self.endpoint = None
        self.tls = None
        self.kubeconfig = None
        self.namespaces = set()
        self.labels = None
        self.namespace_labels = None
        self.pods = "disabled"
        self.endpoint_pod_names = False
        self.ttl = 5
        self.noendpoints = False
        self.fallthrough = Fallthrough.never()
        self.ignore_empty_service = False
        self.startup_timeout = 5.0
        self.manifests = None
        self.file = None
        self.line = None

    def kinds(self):
        """The resource kinds to list and watch for these options."""
        kinds = ["namespaces", "services"]
        if not self.noendpoints:
            kinds.append("endpointslices")
        if self.pods == "verified" or self.endpoint_pod_names:
            kinds.append("pods")
        return kinds


def _path(args, text):
    """Relative paths are relative to the Corefile's directory."""
    if not os.path.isabs(text) and args.d.file and os.path.dirname(args.d.file):
        return os.path.join(os.path.dirname(os.path.abspath(args.d.file)), text)
    return text


def _selector(sub, what):
    text = " ".join(sub.count(1))
    try:
        Selector(text)
    except SelectorError as e:
        raise sub.error("unable to parse %s selector value: '%s': %s" % (what, text, e))
    return text


def parse(directives):
    args = once(directives, "kubernetes")
    cfg = KubernetesConfig()
    cfg.file, cfg.line = args.d.file, args.d.line
    values = args.count(0)
    if values:
        cfg.zones = []
        for z in args.zones(values):
            if z not in cfg.zones:
                cfg.zones.append(z)
        if not any(not is_reverse(z) for z in cfg.zones):
            raise args.error("non-reverse zone name must be used")
    for sub in args.block():
        name = sub.name
        if name == "endpoint_pod_names":
            sub.count(0, 0)
            cfg.endpoint_pod_names = True
        elif name == "pods":
            mode = sub.count(1, 1)[0]
            if mode not in PODS_MODES:
                raise sub.error("wrong value for pods: %s,  must be one of: disabled, verified, insecure" % (mode,))
            cfg.pods = mode
        elif name == "namespaces":
            cfg.namespaces.update(v.lower() for v in sub.count(1))
        elif name == "endpoint":
            urls = sub.count(1)
            cfg.endpoint = urls[0]
        elif name == "tls":
            cert, key, ca = sub.count(3, 3)
            cfg.tls = (_path(sub, cert), _path(sub, key), _path(sub, ca))
        elif name == "kubeconfig":
            vals = sub.count(1, 2)
            cfg.kubeconfig = (_path(sub, vals[0]), vals[1] if len(vals) > 1 else None)
        elif name == "labels":
            cfg.labels = _selector(sub, "label")
        elif name == "namespace_labels":
            cfg.namespace_labels = _selector(sub, "namespace_label")
        elif name == "fallthrough":
            cfg.fallthrough = sub.fallthrough()
        elif name == "ttl":
            text = sub.count(1)[0]
            try:
                ttl = int(text)
            except ValueError:
                raise sub.error('strconv.Atoi: parsing "%s": invalid syntax' % (text,))
            if ttl < 0 or ttl > 3600:
                raise sub.error("ttl must be in range [0, 3600]: %d" % (ttl,))
            cfg.ttl = ttl
        elif name == "noendpoints":
            sub.count(0, 0)
            cfg.noendpoints = True
        elif name == "ignore":
            vals = sub.count(0)
            if not vals:
                continue  # CoreDNS accepts a bare "ignore" and does nothing
            if vals[0] != "empty_service":
                raise sub.error("unable to parse ignore value: '%s'" % (vals[0],))
            cfg.ignore_empty_service = True
        elif name == "startup_timeout":
            text = sub.count(1, 1)[0]
            try:
                cfg.startup_timeout = parse_duration(text, allow_bare_seconds=False)
            except ValueError:
                raise sub.error('failed to parse startup_timeout: %s, time: invalid duration "%s"' % (text, text))
        elif name == "manifests":
            cfg.manifests = [_path(sub, p) for p in sub.count(1)]
        elif name in ("multicluster", "zonal", "apiserver_qps", "apiserver_burst",
                      "apiserver_max_inflight"):
            raise sub.error("kubernetes option '%s' is not supported by kdns" % (name,))
        else:
            raise sub.unknown()
    if cfg.namespaces and cfg.namespace_labels is not None:
        raise args.error("namespaces and namespace_labels cannot both be set")
    return cfg


def _source(config, kinds, store, reactor):
    if config.manifests is not None:
        from twisted_kdns.plugins.kubernetes.manifests import ManifestSource
        return ManifestSource(config.manifests, kinds, store, reactor,
                              labels=config.labels, namespace_labels=config.namespace_labels)
    try:
        from twisted_kdns.plugins.kubernetes.watch import ApiSource
    except ImportError as e:
        raise ConfigError("the Kubernetes API source is not available (%s); use 'manifests PATH' "
                          "or install the kubernetes client" % (e,), config.file, config.line,
                          "kubernetes")
    return ApiSource(config, kinds, store, reactor)


def setup(config, ctx, next):
    from twisted_kdns.plugins.kubernetes.resolver import KubernetesResolver
    from twisted_kdns.plugins.kubernetes.store import Store

    zones = list(config.zones) if config.zones is not None else [normalize(z) for z in ctx.zones]
    if not any(not is_reverse(z) for z in zones):
        raise ConfigError("non-reverse zone name must be used", config.file, config.line, "kubernetes")
    kinds = config.kinds()
    store = Store(ctx.reactor, kinds, [z for z in zones if not is_reverse(z)])
    resolver = KubernetesResolver(config, zones, store, ctx.reactor, next=next)
    # CoreDNS reads its "local IPs" (NS answers) at startup, after bind ran.
    resolver.bind_context = ctx
    source = _source(config, kinds, store, ctx.reactor)
    resolver.source = source
    ctx.add_service(source)
    ctx.add_service(resolver.startup_service())
    ctx.add_readiness("kubernetes", resolver)
    ctx.options.extras.setdefault("kubernetes", []).append(resolver)
    return resolver
