# virtbalance: the two README commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SCENARIO ?= default
# Metrics backend of the demo: prometheus, or victoriametrics (VictoriaMetrics with vmalert).
BACKEND ?= prometheus

.PHONY: bootstrap test unit lint demo demo-down clean

bootstrap:
	@scripts/bootstrap

# The whole suite: lint, unit, integration against real libvirt/Prometheus/Alertmanager, end to end in the lab.
# pytest exits 5 when it collects nothing; that is a failure here too, since the suite is never empty.
test: bootstrap lint
	$(PY) -m pytest tests

unit: bootstrap
	$(PY) -m pytest tests/unit

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy virtbalance exporter actioner lab simulator

demo: bootstrap
	$(VENV)/bin/virtbalance demo up --scenario $(SCENARIO) --backend $(BACKEND)

demo-down:
	$(VENV)/bin/virtbalance demo down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
