# The two set-up commands of the README: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BENCH_VENV := .venv-bench
STAMP := $(VENV)/.installed
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: demo test lint bench bench-venv bench-drift browser clean

# $(call make_venv,DIR,EXTRA[,PIP_OPTIONS]): a virtual environment with mlsd installed editable plus one extra.
define make_venv
	$(PYTHON) -m venv $(1)
	$(1)/bin/pip install --quiet --upgrade pip
	$(1)/bin/pip install --quiet $(3) -e '.[$(2)]'
	touch $(1)/.installed
endef

# The test environment has the scale extra (Ray, PostgreSQL's driver): `make test` runs the Ray tests.
# Its versions are pinned by constraints.txt (the benchmark environments pin their own: Feast, Evidently).
VENV_EXTRAS := test,scale
$(STAMP): pyproject.toml constraints.txt
	$(call make_venv,$(VENV),$(VENV_EXTRAS),-c constraints.txt)

# The ads system end to end (train, serve, replay with an A/B test, monitor, report) -> runs/demo/.
demo: $(STAMP)
	$(VENV)/bin/mlsd demo

# The dashboard and report tests render pages in headless Chromium (Debian's package).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "installing Debian's chromium for the browser tests"; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get install -y -q chromium >/dev/null || \
	    { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; }; }

test: $(STAMP) browser
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Benchmarks compare against Feast, which lives only in its own environment.
$(BENCH_STAMP): pyproject.toml
	$(call make_venv,$(BENCH_VENV),bench)

bench-venv: $(BENCH_STAMP)

DRIFT_VENV := .venv-drift
DRIFT_STAMP := $(DRIFT_VENV)/.installed
# Evidently, for the drift benchmark, pins its own pandas range: a third environment.
$(DRIFT_STAMP): pyproject.toml
	$(call make_venv,$(DRIFT_VENV),bench-drift)

bench-drift: $(DRIFT_STAMP)
	$(DRIFT_VENV)/bin/python benchmarks/drift.py

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/online_read.py
	$(BENCH_VENV)/bin/python benchmarks/stream_aggregate.py
	$(BENCH_VENV)/bin/python benchmarks/pit_join.py --entity-rows 1000000 --feature-rows 2000000

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(DRIFT_VENV) runs
