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
