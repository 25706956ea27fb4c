# -*- test-case-name: tests.plugins.kubernetes.test_apiserver -*-
"""
Connecting a watch thread to the API server with the official client's
configuration and HTTP layer.

Three ways to reach the API server, as CoreDNS offers them:

  - C{kubeconfig PATH [CONTEXT]}: the official loader (exec plugins, OIDC,
    client certificates, its own token refresh); it wins over C{endpoint}.
  - C{endpoint URL} with optional C{tls CERT KEY CACERT}: a plain
    configuration with a client certificate and the CA to check the server.
  - neither: in-cluster, from C{KUBERNETES_SERVICE_HOST}/C{_PORT} and the
    service-account token and CA under C{/var/run/secrets/kubernetes.io}.

In-cluster tokens are bound tokens that the kubelet rotates about hourly; a
watch lives for days.  The client's own in-cluster loader re-reads the file
on a one-minute timer, so for up to a minute after a rotation (and for ever
if its clock logic misfires) requests carry a token the server may already
refuse.  L{TokenFile} instead checks the file's identity (inode, size,
mtime) before every request -- one C{stat}, done in the watch thread -- and
re-reads it as soon as it changes; L{TokenFile.invalidate} forces a re-read
after a 401.

Everything here blocks (file reads, kubeconfig exec plugins), so it runs in
the watch thread, never on the reactor.  The kubernetes package is imported
lazily: a VM that does not use the plugin never pays for it.

Memory: C{import kubernetes} executes the package's C{__init__}, which
imports every API class and model: +64 MB of RSS with Debian's client 22.6,
+20 MB with 37, more than the whole store of a 10,000-Service cluster.  The
watcher needs two classes, the client's C{Configuration} and
C{RESTClientObject} (TLS, CA, proxy, the urllib3 pool).  For C{endpoint}
and in-cluster connections L{client_classes} loads just those modules
(C{client/configuration.py}, C{client/rest.py} and what they import) from
the installed package, as a private copy; C{kubeconfig} needs the official
loader and so the full package.  If the light load fails for any reason (a
future layout change), the full import is used.
"""

import importlib
import importlib.util
import os
import sys
import threading
import types

_import_lock = threading.Lock()
_light = None

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_PATH = os.path.join(SERVICE_ACCOUNT_DIR, "token")
CA_PATH = os.path.join(SERVICE_ACCOUNT_DIR, "ca.crt")


def _full_classes():
    from kubernetes.client import Configuration
    from kubernetes.client.rest import RESTClientObject
    return Configuration, RESTClientObject


def _light_classes():
    """
    C{(Configuration, RESTClientObject)} loaded without running the
    C{kubernetes} and C{kubernetes.client} package initialisers: stand-in
    parent packages pointing at the real directories are put in
    C{sys.modules} only while the two modules load, then every
    C{kubernetes*} name added is removed again, so a later ordinary
    C{import kubernetes} (kubeconfig mode, other code) gets the real
    packages, untouched.
    """
    spec = importlib.util.find_spec("kubernetes")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the kubernetes client is not installed")
    roots = list(spec.submodule_search_locations)
    before = set(sys.modules)
    try:
        for name, sub in (("kubernetes", None), ("kubernetes.client", "client"), ("kubernetes.utils", "utils")):
            stub = types.ModuleType(name)
            stub.__path__ = [os.path.join(r, sub) if sub else r for r in roots]
            sys.modules[name] = stub
        configuration = importlib.import_module("kubernetes.client.configuration")
        rest = importlib.import_module("kubernetes.client.rest")
        return configuration.Configuration, rest.RESTClientObject
    finally:
        for name in set(sys.modules) - before:
            if name == "kubernetes" or name.startswith("kubernetes."):
                del sys.modules[name]


def client_classes(full=False):
    """
    The client's C{(Configuration, RESTClientObject)}: from the full
    package when it is already imported or C{full} is asked for, else the
    light private copy (see the module docstring).
    """
    global _light
    with _import_lock:
        if full or sys.modules.get("kubernetes.client") is not None:
            return _full_classes()
        if _light is None:
            try:
                _light = _light_classes()
            except Exception:
                return _full_classes()
        return _light


class Connection(object):
    """
    What a watch thread talks through: the client configuration and the
    urllib3 pool its C{RESTClientObject} built from it.
    """

    def __init__(self, configuration, rest_class, user_agent="twisted-kdns"):
        self.configuration = configuration
        self.rest_client = rest_class(configuration)
        self.user_agent = user_agent


class ConnectionError_(Exception):
    """The connection settings cannot be turned into a client (missing in-cluster env, bad kubeconfig)."""


class TokenFile(object):
    """
    A bearer token read from a file and re-read whenever the file changes.

    Kept as a C{refresh_api_key_hook} of the client configuration: the client
    calls it before building every request's headers (both client 22.6 and
    37 do), so the next request after a rotation carries the new token.
    """

    def __init__(self, path):
        self.path = path
        self._ident = None
        self._token = None
        self._lock = threading.Lock()

    def _stat(self):
        st = os.stat(self.path)
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_dev)

    def token(self):
        """The current token, re-reading the file if it changed since the last read."""
        with self._lock:
            try:
                ident = self._stat()
            except OSError:
                ident = None
            if ident is None and self._token is not None:
                # A rotation replaces the file via a symlink swap; keep the
                # last token for the instant the path is missing.
                return self._token
            if ident != self._ident or self._token is None:
                with open(self.path) as f:
                    self._token = f.read().strip()
                self._ident = ident
            return self._token

    def invalidate(self):
        """Forget the cached token so the next request re-reads the file (after a 401)."""
        with self._lock:
            self._ident = None
            self._token = None

    def __call__(self, configuration):
        """The C{refresh_api_key_hook}: put the current token in the configuration."""
        configuration.api_key["authorization"] = "Bearer " + self.token()


def incluster_configuration(environ=None, token_path=TOKEN_PATH, ca_path=CA_PATH, scheme="https"):
    """
    A client configuration for running inside a pod.

    @param environ: the environment to read C{KUBERNETES_SERVICE_HOST} and
        C{KUBERNETES_SERVICE_PORT} from (default C{os.environ}).
    @param scheme: C{https} in a cluster; tests may use C{http}.
    @return: C{(configuration, token_file)}.
    @raise ConnectionError_: not in a cluster (no environment or token).
    """
    configuration_class = client_classes()[0]
    environ = os.environ if environ is None else environ
    host = environ.get("KUBERNETES_SERVICE_HOST")
    port = environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConnectionError_(
            "not running in a cluster: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are unset "
            "(use 'endpoint' or 'kubeconfig')")
    if not os.path.exists(token_path):
        raise ConnectionError_("service account token %s does not exist" % (token_path,))
    if ":" in host:  # IPv6 literal
        host = "[%s]" % (host,)
    cfg = configuration_class()
    cfg.host = "%s://%s:%s" % (scheme, host, port)
    if scheme == "https":
        cfg.ssl_ca_cert = ca_path
    token = TokenFile(token_path)
    token(cfg)
    cfg.refresh_api_key_hook = token
    return cfg, token


def endpoint_configuration(url, tls=None):
    """
    A configuration for C{endpoint URL} with optional C{tls (CERT, KEY, CACERT)}.

    Any of the three TLS paths may be empty (CoreDNS passes empty strings
    through the same way); a missing file is an error here, in the thread,
    reported through the watcher's log.
    """
    cfg = client_classes()[0]()
    cfg.host = url.rstrip("/")
    if tls is not None:
        cert, key, cacert = tls
        for path in (cert, key, cacert):
            if path and not os.path.exists(path):
                raise ConnectionError_("tls file %s does not exist" % (path,))
        cfg.cert_file = cert or None
        cfg.key_file = key or None
        cfg.ssl_ca_cert = cacert or None
    return cfg


def kubeconfig_configuration(path, context=None):
    """A configuration from a kubeconfig file (and optional context) via the official loader."""
    from kubernetes import config as kconfig

    cfg = client_classes(full=True)[0]()
    try:
        kconfig.load_kube_config(config_file=path, context=context, client_configuration=cfg,
                                 persist_config=False)
    except Exception as e:  # ConfigException, yaml errors, missing file
        raise ConnectionError_("kubeconfig %s: %s" % (path, e))
    return cfg


class ClientFactory(object):
    """
    Builds one L{Connection} per call from the plugin's connection settings.

    Each watch thread calls it once per (re)connection cycle, so no urllib3
    pool is shared between threads and a broken pool is simply dropped.

    @ivar token: the L{TokenFile} in use (in-cluster only) or C{None}.
    @ivar description: where the client connects, for log lines.
    """

    def __init__(self, config, environ=None, token_path=TOKEN_PATH, ca_path=CA_PATH,
                 incluster_scheme="https"):
        self.config = config
        self.environ = environ
        self.token_path = token_path
        self.ca_path = ca_path
        self.incluster_scheme = incluster_scheme
        self.token = None
        self.description = None
        self._lock = threading.Lock()

    def configuration(self):
        with self._lock:
            return self._configuration()

    def _configuration(self):
        kubeconfig = getattr(self.config, "kubeconfig", None)
        endpoint = getattr(self.config, "endpoint", None)
        if kubeconfig:
            path, context = kubeconfig
            cfg = kubeconfig_configuration(path, context)
            self.description = "kubeconfig %s (%s)" % (path, cfg.host)
        elif endpoint:
            cfg = endpoint_configuration(endpoint, getattr(self.config, "tls", None))
            self.description = "endpoint %s" % (cfg.host,)
        else:
            if self.token is None:
                cfg, self.token = incluster_configuration(self.environ, self.token_path, self.ca_path,
                                                          self.incluster_scheme)
            else:
                cfg, _ = incluster_configuration(self.environ, self.token_path, self.ca_path,
                                                 self.incluster_scheme)
                cfg.refresh_api_key_hook = self.token
                self.token(cfg)
            self.description = "in-cluster %s" % (cfg.host,)
        return cfg

    def __call__(self):
        """A fresh L{Connection} (its own urllib3 pool)."""
        cfg = self.configuration()
        return Connection(cfg, client_classes(full=bool(getattr(self.config, "kubeconfig", None)))[1])

    def unauthorized(self):
        """A request got 401: re-read the token file before the next one."""
        if self.token is not None:
            self.token.invalidate()
