# virtbalance: the two README commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SCENARIO ?= default
# Metrics backend of the demo: prometheus, or victoriametrics (VictoriaMetrics with vmalert).
BACKEND ?= prometheus

.PHONY: bootstrap test unit integration e2e lint generate verify-gen demo demo-down clean

# The exporter's golden exposition: its test rewrites it when asked to, and compares it otherwise.
GOLDEN_TEST := tests/unit/exporter/test_golden.py::test_exposition_matches_golden_file
GOLDEN_FILE := tests/fixtures/exporter/golden.prom

bootstrap:
	@scripts/bootstrap

# The whole suite: lint, unit, integration against real libvirt/Prometheus/Alertmanager, end to end in the lab.
# pytest exits 5 when it collects nothing; that is a failure here too, since the suite is never empty.
test: bootstrap lint verify-gen
	$(PY) -m pytest tests

# One marker per test directory (tests/conftest.py sets it), so the three together are the whole suite.
unit: bootstrap
	$(PY) -m pytest tests -m unit

# Real libvirt, promtool, Prometheus, Alertmanager, and the lab; the end-to-end run is apart.
integration: bootstrap
	$(PY) -m pytest tests -m "integration and not e2e"

e2e: bootstrap
	$(PY) -m pytest tests -m e2e

# Every generated file: the rule files and dashboards (python -m virtbalance.mixin), the golden exposition.
generate: bootstrap
	$(PY) -m virtbalance.mixin generate
	VIRTBALANCE_UPDATE_GOLDEN=1 $(PY) -m pytest -q -p no:cacheprovider $(GOLDEN_TEST)

# Fails naming each stale file; the unit tests make the same comparisons, through the same code.
verify-gen: bootstrap
	@stale=0; \
	$(PY) -m virtbalance.mixin verify || stale=1; \
	$(PY) -m pytest -q -p no:cacheprovider $(GOLDEN_TEST) >/dev/null \
		|| { echo "verify-gen: $(GOLDEN_FILE) is stale; run \`make generate\`" >&2; stale=1; }; \
	exit $$stale

# mypy reaches the component folders through virtbalance/'s links; naming them too would check each twice.
lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy virtbalance

demo: bootstrap
	$(VENV)/bin/virtbalance demo up --scenario $(SCENARIO) --backend $(BACKEND)

demo-down:
	$(VENV)/bin/virtbalance demo down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
