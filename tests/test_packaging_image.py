"""
The container image recipe.  There is no Docker engine here, so the
Dockerfile is checked statically, and with KDNS_TEST_IMAGE=1 the same
recipe (etc/container/build-venv.sh on the .dockerignore'd context) is run
by etc/container/image-rootfs.sh: venv built, tree made read-only, kdns
started as uid 65532 and queried (about a minute; it installs from PyPI).
"""

import fnmatch
import os
import re
import shutil
import subprocess

from twisted.trial import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def skip_without_tree(testcase):
    if not os.path.exists(os.path.join(ROOT, "Dockerfile")):
        testcase.skipTest("Dockerfile is not in this tree (running from a build copy)")


def read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def instructions(text):
    """C{[(INSTRUCTION, arguments)]} of a Dockerfile (continuations joined, comments dropped)."""
    out = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def dockerignore_excludes(patterns, path):
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(p.split("/")[-1], pat[3:]) for p in prefixes)
        else:
            hit = any(fnmatch.fnmatchcase(p, pat) and p.count("/") == pat.count("/") for p in prefixes)
        if hit:
            excluded = not negate
    return excluded


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


class DockerfileTests(unittest.SynchronousTestCase):
    def setUp(self):
        skip_without_tree(self)
        self.steps = instructions(read("Dockerfile"))

    def test_multiStageOnSlimPython(self):
        """A build stage runs build-venv.sh; the final stage copies only /opt/venv and the Corefile."""
        froms = [args for word, args in self.steps if word == "FROM"]
        self.assertEqual(froms, ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"])
        self.assertIn(("ARG", "PYTHON_IMAGE=python:3.11-slim-bookworm"), self.steps)
        final = self.steps[[i for i, (w, _) in enumerate(self.steps) if w == "FROM"][1]:]
        self.assertIn(("RUN", "sh etc/container/build-venv.sh /src /opt/venv python3"), self.steps)
        copies = [args for word, args in final if word == "COPY"]
        self.assertEqual(copies, ["--from=build /opt/venv /opt/venv", "etc/Corefile.cluster /etc/kdns/Corefile"])

    def test_runtimeSettings(self):
        """Numeric non-root USER, kdns as ENTRYPOINT on /etc/kdns/Corefile, no bytecode writes, DNS ports."""
        final = dict(self.steps[[i for i, (w, _) in enumerate(self.steps) if w == "FROM"][1]:])
        self.assertRegex(final["USER"], r"^[1-9]\d*:[1-9]\d*$")
        self.assertEqual(final["ENTRYPOINT"], '["kdns"]')
        self.assertEqual(final["CMD"], '["--corefile", "/etc/kdns/Corefile"]')
        self.assertIn("PYTHONDONTWRITEBYTECODE=1", final["ENV"])
        self.assertIn("PATH=/opt/venv/bin:$PATH", final["ENV"])
        for port in ("53/udp", "53/tcp", "8080/tcp", "8181/tcp", "9153/tcp"):
            self.assertIn(port, final["EXPOSE"].split())

    def test_buildWritesEverythingAhead(self):
        """build-venv.sh pins versions, compiles hash-checked bytecode and writes the plugin cache."""
        script = read("etc", "container", "build-venv.sh")
        self.assertIn('--constraint "$src/etc/container/constraints.txt"', script)
        self.assertIn("--invalidation-mode unchecked-hash", script)
        self.assertIn("getPlugins(IPlugin)", script)
        self.assertIn('"kdns_plugin" not in names', script)

    def test_constraintsPinEveryDependency(self):
        """Each install_requires package of setup.cfg has an exact pin in the constraints file."""
        setup = read("setup.cfg")
        block = setup.split("install_requires =", 1)[1].split("\n\n", 1)[0].split("[", 1)[0]
        requires = [canonical(re.split(r"[\s<>=!;]", line.strip(), 1)[0])
                    for line in block.splitlines() if line.strip()]
        pins = {}
        for line in read("etc", "container", "constraints.txt").splitlines():
            if line and not line.startswith("#"):
                name, _, version = line.partition("==")
                pins[canonical(name)] = version
        self.assertTrue(requires)
        for name in requires:
            self.assertIn(name, pins)
            self.assertRegex(pins[name], r"^\d")

    def test_dockerignoreLetsTheBuildThrough(self):
        """The context holds the sources, setup files and recipe, and not the venv, git or tests."""
        patterns = [line for line in read(".dockerignore").splitlines() if line and not line.startswith("#")]
        for path in ("setup.cfg", "pyproject.toml", "twisted_kdns/service.py", "twisted_kdns/plugins/hosts.py",
                     "twisted/plugins/kdns_plugin.py", "etc/Corefile.cluster", "etc/container/build-venv.sh",
                     "etc/container/constraints.txt"):
            self.assertFalse(dockerignore_excludes(patterns, path), path)
            self.assertTrue(os.path.exists(os.path.join(ROOT, path)), path)
        for path in (".venv/bin/python", ".git/HEAD", "tests/helpers.py", "debian/control",
                     "twisted_kdns/__pycache__/x.pyc", "twisted/plugins/dropin.cache", "etc/Corefile"):
            self.assertTrue(dockerignore_excludes(patterns, path), path)


class ImageRootfsTests(unittest.SynchronousTestCase):
    def test_imageRecipeRunsReadOnlyAsNonRoot(self):
        """make image-rootfs: the Dockerfile's venv, on a read-only tree as uid 65532, answers DNS and HTTP probes."""
        skip_without_tree(self)
        if os.environ.get("KDNS_TEST_IMAGE") != "1":
            self.skipTest("set KDNS_TEST_IMAGE=1 to build the image venv and run it (about a minute, needs PyPI)")
        for tool in ("dig", "setpriv"):
            if shutil.which(tool) is None:
                self.skipTest("%s is not installed" % (tool,))
        out = subprocess.run(["sh", os.path.join(ROOT, "etc", "container", "image-rootfs.sh")],
                             capture_output=True, text=True, timeout=900)
        text = out.stdout + out.stderr
        self.assertEqual(out.returncode, 0, text[-4000:])
        self.assertIn("image-rootfs: OK", text)
        self.assertIn("udp: 10.65.53.2", text)
        self.assertIn("tcp: 10.65.53.2", text)
