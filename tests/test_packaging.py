"""
The Debian package and the systemd unit.

Static checks always run (debian/ files, the unit, the VM Corefile).  The
whole cycle -- dpkg-buildpackage, lintian, apt-get install, kdns check, the
unit's ExecStart as _kdns with only CAP_NET_BIND_SERVICE, ExecReload,
SIGTERM, purge -- runs only with KDNS_TEST_DEB=1, as root on Debian, never
under CI=true (it installs a package on the machine and takes a minute).
"""

import os
import pickle
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from twisted.trial import unittest

from tests.helpers import free_port, spawn
from twisted_kdns import __version__

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEBIAN = os.path.join(ROOT, "debian")
UNIT = os.path.join(ROOT, "etc", "systemd", "kdns.service")
PLUGIN_CACHE = "/usr/lib/python3/dist-packages/twisted/plugins/dropin.cache"


def skip_without_tree(testcase):
    if not os.path.isdir(DEBIAN):
        testcase.skipTest("debian/ is not in this tree (running from a build copy)")


def read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def deb822(text):
    """Paragraphs of a debian/control-style file as dicts (continuation lines joined)."""
    paragraphs = []
    current = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key is not None:
            current[key] += "\n" + line.strip()
        elif not line.startswith("#"):
            key, _, value = line.partition(":")
            current[key] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def relations(value):
    """Package names of a Depends-style field (versions, profiles and alternatives stripped)."""
    out = []
    for item in value.replace("\n", " ").split(","):
        item = item.strip()
        if item:
            out.append(re.split(r"[\s(<\[|]", item, 1)[0])
    return out


def unit_file(text):
    """C{{section: {key: [values...]}}} of a systemd unit (keys may repeat)."""
    sections = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            section.setdefault(key.strip(), []).append(value.strip())
    return sections


def seconds(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|min)?", text)
    factor = {"ms": 0.001, "s": 1, "min": 60, None: 1}[m.group(2)]
    return float(m.group(1)) * factor


class ControlTests(unittest.SynchronousTestCase):
    def setUp(self):
        skip_without_tree(self)
        self.source, self.binary = deb822(read("debian", "control"))

    def test_buildSystem(self):
        """debhelper-compat 13 with pybuild and the pyproject plugin; rules use pybuild."""
        build_depends = self.source["Build-Depends"]
        self.assertIn("debhelper-compat (= 13)", build_depends)
        for name in ("dh-sequence-python3", "pybuild-plugin-pyproject", "python3-all", "python3-setuptools"):
            self.assertIn(name, relations(build_depends))
        self.assertEqual(self.source["Rules-Requires-Root"], "no")
        rules = read("debian", "rules")
        self.assertIn("dh $@ --buildsystem=pybuild", rules)
        self.assertTrue(os.access(os.path.join(DEBIAN, "rules"), os.X_OK))
        self.assertEqual(read("debian", "source", "format").strip(), "3.0 (native)")

    def test_dependsOnDebianPackages(self):
        """Architecture all; depends on bookworm's python3 modules the code imports, and adduser."""
        self.assertEqual(self.binary["Architecture"], "all")
        depends = relations(self.binary["Depends"])
        for name in ("python3-twisted", "python3-kubernetes", "python3-prometheus-client",
                     "python3-zope.interface", "python3-yaml", "adduser", "${python3:Depends}"):
            self.assertIn(name, depends)

    def test_changelogVersion(self):
        """The package version is the Python package's version."""
        first = read("debian", "changelog").splitlines()[0]
        self.assertEqual(first.split()[:2], ["twisted-kdns", "(%s)" % (__version__,)])

    def test_noPluginCacheShipped(self):
        """dropin.cache written by the build-time tests is deleted; the trigger rebuilds the system cache."""
        rules = read("debian", "rules")
        self.assertIn("PYBUILD_AFTER_TEST", rules)
        self.assertIn("-name dropin.cache -delete", rules)
        triggers = [line for line in read("debian", "twisted-kdns.triggers").splitlines()
                    if line and not line.startswith("#")]
        self.assertEqual(triggers, ["activate-noawait twisted-plugins-cache"])

    def test_installsConffileUnitAndUser(self):
        """/etc/kdns/Corefile and the unit come from etc/; postinst creates _kdns before #DEBHELPER#."""
        lines = [line.split() for line in read("debian", "twisted-kdns.install").splitlines() if line.strip()]
        self.assertIn(["etc/Corefile", "etc/kdns/"], lines)
        self.assertIn(["etc/systemd/kdns.service", "lib/systemd/system/"], lines)
        for source, _ in lines:
            self.assertTrue(os.path.exists(os.path.join(ROOT, source)), source)
        postinst = read("debian", "twisted-kdns.postinst")
        self.assertIn("adduser --system --group", postinst)
        self.assertLess(postinst.index("_kdns"), postinst.index("#DEBHELPER#"))
        self.assertTrue(postinst.startswith("#!/bin/sh\nset -e\n"))

    def test_manPagesForEveryCommand(self):
        """Each console script of setup.cfg has a man page listed in .manpages (lintian wants one)."""
        setup = read("setup.cfg")
        scripts = re.findall(r"^\s+([\w-]+) = twisted_kdns", setup, re.M)
        self.assertEqual(sorted(scripts), ["kdns", "kdns-checkconf"])
        pages = read("debian", "twisted-kdns.manpages").split()
        for script in scripts:
            page = "debian/%s.1" % (script,)
            self.assertIn(page, pages)
            self.assertIn(".TH %s 1" % (script.upper(),), read(page))


class UnitTests(unittest.SynchronousTestCase):
    def setUp(self):
        skip_without_tree(self)
        self.unit = unit_file(read("etc", "systemd", "kdns.service"))
        self.service = self.unit["Service"]

    def test_notifyAsUnprivilegedUser(self):
        """Type=notify as _kdns, with port 53 through an ambient capability only."""
        s = self.service
        self.assertEqual(s["Type"], ["notify"])
        self.assertEqual(s["User"], ["_kdns"])
        self.assertEqual(s["AmbientCapabilities"], ["CAP_NET_BIND_SERVICE"])
        self.assertEqual(s["CapabilityBoundingSet"], ["CAP_NET_BIND_SERVICE"])
        self.assertEqual(s["NoNewPrivileges"], ["yes"])
        self.assertIn("_kdns", read("debian", "twisted-kdns.postinst"))

    def test_hardening(self):
        """The sandbox options are on."""
        for key, value in [("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                           ("PrivateDevices", "yes"), ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
                           ("SystemCallFilter", "@system-service"), ("RestrictNamespaces", "yes")]:
            self.assertEqual(self.service.get(key), [value], key)

    def test_startAndReloadCommands(self):
        """ExecStart runs kdns on the packaged Corefile; ExecReload checks it, then sends SIGHUP."""
        install = read("debian", "twisted-kdns.install")
        self.assertIn("etc/Corefile etc/kdns/", install)
        self.assertEqual(self.service["ExecStart"], ["/usr/bin/kdns --corefile /etc/kdns/Corefile"])
        check, hup = self.service["ExecReload"]
        self.assertIn(shlex.split(check)[:2], (["/usr/bin/kdns", "check"], ["/usr/bin/kdns-checkconf"]))
        self.assertEqual(shlex.split(check)[-1], "/etc/kdns/Corefile")
        self.assertEqual(hup, "/bin/kill -HUP $MAINPID")

    def test_stopTimeoutAboveLameduck(self):
        """TimeoutStopSec leaves room for the Corefile's health lameduck."""
        m = re.search(r"lameduck (\d+)s", read("etc", "Corefile"))
        self.assertGreater(seconds(self.service["TimeoutStopSec"][0]), float(m.group(1)))
        self.assertEqual(self.unit["Install"]["WantedBy"], ["multi-user.target"])
        self.assertTrue(self.unit["Unit"]["Documentation"][0].startswith("man:kdns(1)"))

    def test_systemdAnalyzeVerify(self):
        """systemd-analyze verify finds no unknown key or bad value (missing binaries aside)."""
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze is not installed")
        tmp = tempfile.mkdtemp(prefix="kdns-unit-")
        self.addCleanup(shutil.rmtree, tmp, True)
        shutil.copy(UNIT, tmp)
        out = subprocess.run(["systemd-analyze", "verify", os.path.join(tmp, "kdns.service")],
                             capture_output=True, text=True, timeout=60)
        noise = ("is not executable", "Command 'man ")
        problems = [line for line in (out.stdout + out.stderr).splitlines()
                    if line.strip() and not any(n in line for n in noise)]
        self.assertEqual(problems, [])


class VmCorefileTests(unittest.SynchronousTestCase):
    def setUp(self):
        skip_without_tree(self)

    def test_defaultCorefile(self):
        """An explicit loopback bind; health, ready and metrics on loopback; passes kdns check once plugins land."""
        from tests.test_manifests_yaml import check_corefile
        text = read("etc", "Corefile")
        plan = check_corefile(self, text)
        from twisted_kdns.config import bind_addresses
        block = plan.blocks[0]
        self.assertEqual(bind_addresses(block), ["127.0.0.1"])
        self.assertEqual([k.port for k in block.block.keys], [53])
        self.assertTrue(block.configs["health"].addresses[0].startswith("127.0.0.1:"))
        self.assertTrue(block.configs["ready"].address.startswith("127.0.0.1:"))
        self.assertTrue(block.configs["prometheus"].address.startswith("127.0.0.1:"))
        for name in ("hosts", "forward", "cache", "loop", "reload", "errors"):
            self.assertIn(name, block.configs)


def run(cmd, **kw):
    kw.setdefault("timeout", 600)
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def port_free(port):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


class DebCycleTests(unittest.SynchronousTestCase):
    """
    Build, lint, install, run and purge the package (KDNS_TEST_DEB=1 only).
    One test method, since each step needs the previous one.
    """

    def setUp(self):
        skip_without_tree(self)
        if os.environ.get("CI") == "true":
            self.skipTest("never under CI=true: installs a package on the machine")
        if os.environ.get("KDNS_TEST_DEB") != "1":
            self.skipTest("set KDNS_TEST_DEB=1 to build, install and purge the .deb (about a minute)")
        for tool in ("dpkg-buildpackage", "lintian", "apt-get", "setpriv", "git"):
            if shutil.which(tool) is None:
                self.skipTest("%s is not installed" % (tool,))
        if os.geteuid() != 0 or not os.path.exists("/etc/debian_version"):
            self.skipTest("needs root on Debian")
        if run(["dpkg-query", "-W", "twisted-kdns"]).returncode == 0:
            self.skipTest("twisted-kdns is already installed; not touching it")

    def build(self):
        tmp = tempfile.mkdtemp(prefix="kdns-deb-")
        self.addCleanup(shutil.rmtree, tmp, True)
        src = os.path.join(tmp, "twisted-kdns")
        os.mkdir(src)
        # The work tree as the tests see it (tracked and new files, not ignored ones).
        files = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT).stdout
        for rel in filter(None, files.split("\0")):
            if os.path.isfile(os.path.join(ROOT, rel)):
                os.makedirs(os.path.join(src, os.path.dirname(rel)), exist_ok=True)
                shutil.copy2(os.path.join(ROOT, rel), os.path.join(src, rel))
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": os.environ.get("HOME", "/root"),
               "DEB_BUILD_OPTIONS": "nocheck"}
        out = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env)
        self.assertEqual(out.returncode, 0, out.stdout[-3000:] + out.stderr[-3000:])
        deb = os.path.join(tmp, "twisted-kdns_%s_all.deb" % (__version__,))
        self.assertTrue(os.path.exists(deb))
        return tmp, deb

    def lint(self, tmp, deb):
        changes = [f for f in os.listdir(tmp) if f.endswith(".changes")]
        out = run(["lintian", "--allow-root", "--fail-on", "error,warning", os.path.join(tmp, changes[0])])
        tags = [line for line in out.stdout.splitlines() if line[:2] in ("E:", "W:")]
        self.assertEqual((out.returncode, tags), (0, []), out.stdout + out.stderr)
        listing = run(["dpkg-deb", "-c", deb]).stdout
        self.assertNotIn("dropin.cache", listing)
        for path in ("./etc/kdns/Corefile", "./lib/systemd/system/kdns.service", "./usr/bin/kdns",
                     "./usr/lib/python3/dist-packages/twisted/plugins/kdns_plugin.py"):
            self.assertIn(path, listing)
        self.assertNotIn("twisted/plugins/__init__.py", listing)

    def install(self, deb):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        self.addCleanup(run, ["apt-get", "purge", "-y", "twisted-kdns"], env=env)
        out = run(["apt-get", "install", "-y", "--no-install-recommends", deb], env=env)
        self.assertEqual(out.returncode, 0, out.stdout[-3000:] + out.stderr)
        self.assertEqual(run(["getent", "passwd", "_kdns"]).returncode, 0)
        conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "twisted-kdns"]).stdout
        self.assertIn("/etc/kdns/Corefile", conffiles)
        with open(PLUGIN_CACHE, "rb") as f:
            self.assertIn("kdns_plugin", pickle.load(f))
        return env

    def serve(self):
        """The unit's ExecStart, User and capabilities, emulated with setpriv; READY=1, answers, reload, stop."""
        unit = unit_file(read("etc", "systemd", "kdns.service"))["Service"]
        port = 53 if port_free(53) else free_port()
        tmp = tempfile.mkdtemp(prefix="kdns-run-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        corefile = os.path.join(tmp, "Corefile")
        with open(corefile, "w") as f:
            f.write(".:%d {\n bind 127.0.0.1\n hosts {\n  10.53.0.7 deb.example.org\n }\n}\n" % port)
        os.chmod(corefile, 0o644)
        argv = shlex.split(unit["ExecStart"][0].replace("/etc/kdns/Corefile", corefile))
        user = unit["User"][0]
        cap = unit["AmbientCapabilities"][0].lower().replace("cap_", "")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(notify.close)
        name = "kdns-deb-test-%d" % os.getpid()
        notify.bind("\0" + name)
        notify.settimeout(20)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET": "@" + name,
               "PYTHONDONTWRITEBYTECODE": "1"}
        proc = spawn(
            self, ["setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups", "--no-new-privs",
             "--inh-caps=+" + cap, "--ambient-caps=+" + cap, "--bounding-set=-all,+" + cap] + argv,
            env=env)
        self.assertIn("READY=1", notify.recv(4096).decode())
        self.assertEqual(self.ask(port), ["10.53.0.7"])
        with open("/proc/%d/status" % proc.pid) as f:
            uid = [line.split()[1] for line in f if line.startswith("Uid:")][0]
        self.assertEqual(uid, run(["id", "-u", user]).stdout.strip())
        # ExecReload: the check command, then SIGHUP; kdns keeps serving.
        check = shlex.split(unit["ExecReload"][0].replace("/etc/kdns/Corefile", corefile))
        self.assertEqual(run(["runuser", "-u", user, "--"] + check).returncode, 0)
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        self.assertIsNone(proc.poll())
        self.assertEqual(self.ask(port), ["10.53.0.7"])
        proc.send_signal(signal.SIGTERM)
        messages = []
        while "STOPPING=1" not in messages:
            messages.append(notify.recv(4096).decode())
        self.assertIn(proc.wait(20), (0, -signal.SIGTERM))

    def ask(self, port):
        import dns.message
        import dns.query
        reply = dns.query.udp(dns.message.make_query("deb.example.org.", "A"), "127.0.0.1", timeout=3, port=port)
        return sorted(rd.to_text() for rrset in reply.answer for rd in rrset)

    def purge(self, env):
        out = run(["apt-get", "purge", "-y", "twisted-kdns"], env=env)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        for path in ("/etc/kdns", "/usr/bin/kdns", "/lib/systemd/system/kdns.service",
                     "/etc/systemd/system/multi-user.target.wants/kdns.service"):
            self.assertFalse(os.path.exists(path), path)
        with open(PLUGIN_CACHE, "rb") as f:
            self.assertNotIn("kdns_plugin", pickle.load(f))

    def test_buildInstallRunPurge(self):
        """The .deb builds, is lintian-clean, installs, runs as the unit says, reloads, stops and purges."""
        tmp, deb = self.build()
        self.lint(tmp, deb)
        env = self.install(deb)
        out = run(["runuser", "-u", "_kdns", "--", "kdns", "check", "/etc/kdns/Corefile"])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.serve()
        self.purge(env)
