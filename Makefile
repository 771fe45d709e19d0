# Two commands matter: `make demo` and `make test`. Both set up what they need on a fresh machine
# with Python 3.11+ and Node.js (a .venv from requirements-dev.txt, Azurite from package-lock.json).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .stamps

.PHONY: test demo local deps lint typecheck unit scan bench bench-emulator clean

$(STAMPS)/venv: requirements.txt requirements-dev.txt
	@mkdir -p $(STAMPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(STAMPS)/npm: package.json package-lock.json
	@mkdir -p $(STAMPS)
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

deps: $(STAMPS)/venv $(STAMPS)/npm

# IaC scanner in its own venv: checkov pins pycep-parser 0.5.1, which cannot parse Bicep lambdas (map,
# toObject), so the parser the tests use (0.7.1, requirements-dev.txt) is installed over it.
SCAN_VENV := .venv-scan
SCAN_PY := $(SCAN_VENV)/bin/python
PYCEP_PIN := $(shell grep -E '^pycep-parser==' requirements-dev.txt)

$(STAMPS)/scan-venv: requirements-scan.txt requirements-dev.txt
	@mkdir -p $(STAMPS)
	test -x $(SCAN_PY) || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(SCAN_PY) -m pip install --quiet --disable-pip-version-check -r requirements-scan.txt
	$(SCAN_PY) -m pip install --quiet --disable-pip-version-check --no-deps '$(PYCEP_PIN)'
	@touch $@

# Every check must pass or be suppressed in place with a reason (tests/infra/test_scanner.py); a
# template checkov cannot parse fails the scan too (it would otherwise be skipped silently).
scan: $(STAMPS)/scan-venv
	$(SCAN_VENV)/bin/checkov --directory infra --framework bicep --skip-download --compact \
		--output json > $(STAMPS)/checkov.json 2> $(STAMPS)/checkov.log || true
	$(PYTHON) tests/infra/scan_report.py $(STAMPS)/checkov.json $(STAMPS)/checkov.log

lint: $(STAMPS)/venv
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

typecheck: $(STAMPS)/venv
	$(PY) -m mypy

test: deps scan lint typecheck
	$(PY) -m pytest

unit: $(STAMPS)/venv
	$(PY) -m pytest tests/unit

demo: deps
	$(PY) -m demo $(DEMO_ARGS)

# The emulator, Azurite and the Function App over HTTP, in the foreground until Ctrl-C (README "Run it by
# hand"). LOCAL_ARGS e.g. "--accounts 300" or "--schedule '*/10 * * * * *'".
local: deps
	$(PY) -m local_host $(LOCAL_ARGS)

bench-emulator: deps
	$(PY) -m bench.emulator_throughput

# make bench-cycle-scale | bench-call-counts | bench-import-time | bench-consumer-get | bench-sweep-memory
# | bench-probe-verdicts | bench-fleet-scale
BENCHMARKS := cycle-scale call-counts import-time consumer-get sweep-memory probe-verdicts fleet-scale async-prototype
# make bench-cost: client CPU per target-cycle in a Function-shaped process (bench/cost_per_cycle.py)
.PHONY: bench-cost
bench-cost: deps
	$(PY) -m bench.cost_per_cycle $(BENCH_ARGS)
.PHONY: $(addprefix bench-,$(BENCHMARKS))
$(addprefix bench-,$(BENCHMARKS)): bench-%: deps
	$(PY) -m bench.$(subst -,_,$*) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(SCAN_VENV) node_modules $(STAMPS)
