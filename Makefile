# Two commands matter: `make demo` and `make test`. Both set up what they need on a fresh machine
# with Python 3.11+ and Node.js (a .venv from requirements-dev.txt, Azurite from package-lock.json).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .stamps

.PHONY: test demo deps lint typecheck unit bench bench-emulator clean

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

lint: $(STAMPS)/venv
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

typecheck: $(STAMPS)/venv
	$(PY) -m mypy

test: deps lint typecheck
	$(PY) -m pytest

unit: $(STAMPS)/venv
	$(PY) -m pytest tests/unit

demo: deps
	$(PY) -m demo $(DEMO_ARGS)

bench-emulator: deps
	$(PY) -m bench.emulator_throughput

# make bench-cycle-scale | bench-call-counts | bench-import-time | bench-consumer-get | bench-sweep-memory
BENCHMARKS := cycle-scale call-counts import-time consumer-get sweep-memory
.PHONY: $(addprefix bench-,$(BENCHMARKS))
$(addprefix bench-,$(BENCHMARKS)): bench-%: deps
	$(PY) -m bench.$(subst -,_,$*) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules $(STAMPS)
