# Corral: `make run` and `make test` work on a fresh machine; both run set-up first.
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
POLICIES ?= $(CURDIR)/policies
METRICS_ADDR ?= 127.0.0.1:9750

.PHONY: setup run test unit integration bench clean

setup:
	@bash scripts/setup.sh

run: setup
	$(VENV)/bin/corral daemon --policies $(POLICIES) --metrics-addr $(METRICS_ADDR)

test: setup
	$(PY) -m pytest -q -ra tests

unit: setup
	$(PY) -m pytest -q tests/unit

integration: setup
	$(PY) -m pytest -q -ra tests/integration

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info
