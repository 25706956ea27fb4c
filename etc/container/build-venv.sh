#!/bin/sh
# Build the runtime virtualenv of the container image.  The Dockerfile's
# build stage runs this, and so does `make image-rootfs` (which has no
# Docker engine to run the Dockerfile): one recipe, exercised on both.
#
#   build-venv.sh SOURCE_DIR VENV_DIR [PYTHON]
#
# Everything that would otherwise be written at run time is written now,
# so the image works with a read-only root filesystem: bytecode (hash
# based, valid whatever the file times after COPY) and Twisted's plugin
# cache (twisted/plugins/dropin.cache).
set -eu
src=$1
venv=$2
python=${3:-python3}

"$python" -m venv "$venv"
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    "$venv/bin/pip" install --quiet --no-compile \
    --constraint "$src/etc/container/constraints.txt" "$src"
"$venv/bin/python" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$venv/lib"
"$venv/bin/python" -c 'from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))'
"$venv/bin/python" - <<'PY'
import os, pickle, twisted.plugins
where = [d for d in twisted.plugins.__path__ if os.path.exists(os.path.join(d, "kdns_plugin.py"))]
cache = os.path.join(where[0], "dropin.cache")
with open(cache, "rb") as f:
    names = pickle.load(f)
if "kdns_plugin" not in names:
    raise SystemExit("kdns_plugin missing from %s: %s" % (cache, sorted(names)))
print("plugin cache: %s (%d entries)" % (cache, len(names)))
PY
"$venv/bin/kdns" --version
