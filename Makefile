# Corral: `make run` and `make test` work on a fresh machine; both run set-up first.
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
POLICIES ?= $(CURDIR)/policies
METRICS_ADDR ?= 127.0.0.1:9750

PREFIX ?= /opt/corral

.PHONY: setup run test unit integration lint bench openapi install clean

setup:
	@bash scripts/setup.sh

run: setup
	$(VENV)/bin/corral daemon --policies $(POLICIES) --metrics-addr $(METRICS_ADDR)

# Coverage of agent/, the daemon and CLI subprocesses included (pyproject.toml); the floor is the
# figure measured on the reference host (docs/testing.md), so it only goes up.
COVERAGE ?= --cov=agent --cov-report= --cov-fail-under=$(COVERAGE_FLOOR)
COVERAGE_FLOOR ?= 90

test: setup lint
	$(PY) -m pytest -q -ra $(COVERAGE) tests

unit: setup
	$(PY) -m pytest -q tests/unit

integration: setup
	$(PY) -m pytest -q -ra tests/integration

# ruff (rules in pyproject.toml) over the code, tests and benchmarks; mypy over agent/.
# The core seams are held to mypy --strict: the catalogue, the schemas, the kernel-seam protocols
# and their doubles, the one writer/mount table/syscall table, the registry client.
STRICT := agent/catalog agent/schema.py agent/atomic_file.py agent/mount_table.py agent/syscall_table.py \
	agent/registry agent/probes/interface.py agent/probes/double.py agent/metrics/sampler.py \
	agent/runtime/decider.py agent/policy/decider.py

lint: setup
	$(VENV)/bin/ruff check agent tests bench
	$(VENV)/bin/mypy --ignore-missing-imports agent
	$(VENV)/bin/mypy --strict --ignore-missing-imports $(STRICT)

# `make bench` runs every bench; `make bench churn` (or launch, probes, scrape, reaction, policies, api, state, pull, build) only those.
BENCHES := launch seccomp probes scrape reaction churn policies api state pull build
bench: setup
	bash bench/setup.sh
	$(PY) -m bench $(filter $(BENCHES),$(MAKECMDGOALS))

ifneq ($(filter bench,$(MAKECMDGOALS)),)
$(BENCHES):
	@:
endif

# agent/api/openapi.yaml from the route table and the msgspec schemas (tests/unit/test_openapi.py
# fails while the committed file differs from what this writes).
openapi: setup
	$(PY) -m agent.api.openapi_gen

# A host install for systemd (docs/deployment.md): the package in its own venv under $(PREFIX),
# the launcher, the probes, the unit, tmpfiles and a default /etc/corral/corral.yaml.
install: setup
	install -d $(PREFIX) $(PREFIX)/share /etc/corral /usr/lib/tmpfiles.d
	test -x $(PREFIX)/bin/python || /usr/bin/python3 -m venv --system-site-packages $(PREFIX)
	$(PREFIX)/bin/pip install -q --no-build-isolation .
	gcc -O2 -Wall -Wextra -Werror -o $(PREFIX)/bin/corral-launch launcher/*.c
	rm -rf $(PREFIX)/share/probes && cp -r probes $(PREFIX)/share/probes
	ln -sfn $(PREFIX)/bin/corral /usr/local/bin/corral
	install -m 0644 deploy/systemd/corral.service /etc/systemd/system/corral.service
	install -m 0644 deploy/systemd/corral.conf /usr/lib/tmpfiles.d/corral.conf
	test -e /etc/corral/corral.yaml || install -m 0644 deploy/corral.yaml /etc/corral/corral.yaml
	systemd-tmpfiles --create /usr/lib/tmpfiles.d/corral.conf || true
	systemctl daemon-reload 2>/dev/null || true
	@echo "installed; start it with: systemctl enable --now corral"

clean:
	rm -rf $(VENV) build *.egg-info
