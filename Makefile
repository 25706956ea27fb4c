# Two commands: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 1053
COREFILE ?= etc/Corefile.dev

.PHONY: run test venv check bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

venv: $(VENV)/.installed

run: venv
	$(VENV)/bin/kdns --corefile $(COREFILE)

check: venv
	$(VENV)/bin/kdns check $(COREFILE)

test: venv
	$(PY) -m pytest -q

bench: venv
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info twisted/plugins/dropin.cache

# Packaging (docs/deployment.md).  Neither is part of `make test`.
# `make deb`: the .deb from the committed tree (HEAD), built with a clean
# environment (no pyenv shims on PATH) in build/deb, then lintian.  The suite
# runs inside the build on Debian's libraries; DEB_BUILD_OPTIONS=nocheck skips it.
deb:
	rm -rf build/deb && mkdir -p build/deb/src
	git archive HEAD | tar -x -C build/deb/src
	cd build/deb/src && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$$HOME" DEB_BUILD_OPTIONS="$$DEB_BUILD_OPTIONS" dpkg-buildpackage -us -uc -b
	lintian -I --pedantic --fail-on error,warning $$([ "$$(id -u)" = 0 ] && echo --allow-root) build/deb/*.changes

# `make image-rootfs`: the Dockerfile's recipe without a Docker engine
# (etc/container/image-rootfs.sh): build the venv, start kdns as uid 65532
# from a read-only copy and query it.
image-rootfs:
	sh etc/container/image-rootfs.sh

.PHONY: deb image-rootfs

# `make soak`: the long reliability runs (docs/reliability.md), bounded in
# time, not part of `make test`: fuzzers (60 s each), fault injection (about
# 3 minutes), then a soak (SOAK_SECONDS, 10 minutes by default) at 80 % of
# the measured saturation rate.  Results in bench/results/reliability/.
SOAK_SECONDS ?= 600
soak: venv
	$(PY) bench/fuzz_long.py --seconds 60
	$(PY) bench/faults.py
	$(PY) bench/soak.py --duration $(SOAK_SECONDS)

.PHONY: soak
