# CRM Signals. `make run` and `make test` are all the set-up a fresh machine needs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

export CRM_HOME ?= $(CURDIR)/var
export DAGSTER_HOME := $(CRM_HOME)/dagster
export UV_COMPILE_BYTECODE := 1
export MPLBACKEND := Agg
# MLflow and friends phone home by default; this machine has no internet and we promise no tracking.
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true

UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
VENV := .venv
BIN := $(VENV)/bin
DBT_MANIFEST := dbt_project/target/manifest.json
DBT_SOURCES := $(shell find dbt_project -path dbt_project/target -prune -o -type f \( -name '*.sql' -o -name '*.yml' -o -name '*.csv' \) -print)

.PHONY: run serve ui ui-check browser java wrk test test-distributed lint format clean env bench bench-quality bench-scale bench-serving rollback

env: $(VENV)/.synced

$(VENV)/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --compile-bytecode
	@touch $@

# dagster-dbt reads the dbt manifest when the definitions load.
$(DBT_MANIFEST): $(VENV)/.synced $(DBT_SOURCES)
	cd dbt_project && ../$(BIN)/dbt parse --profiles-dir . --quiet

$(DAGSTER_HOME)/dagster.yaml: orchestration/dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp $< $@

## run: generate the synthetic CRM (or read CRM_SOURCE), run the whole pipeline, print a summary
run: env $(DBT_MANIFEST) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/crm-signals run

## serve: the real-time scoring service on http://127.0.0.1:8000 from the champions and the newest
## features of make run (docs/serving-api.md); SERVE_ARGS="--host 0.0.0.0 --workers 2" needs API keys
serve: env
	$(BIN)/crm-signals serve $(SERVE_ARGS)

## ui: the Dagster UI on http://127.0.0.1:3000 (asset graph, checks, schedules, sensor)
ui: env $(DBT_MANIFEST) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## ui-check: open the Dagster UI in headless Chromium, check the key assets and checks are shown,
## screenshots in $(CRM_HOME)/reports/ui_asset_graph.png and ui_asset_checks.png
ui-check: env $(DBT_MANIFEST) $(DAGSTER_HOME)/dagster.yaml browser
	$(BIN)/python -m tests.ui.ui_check

# debian_install(target, files that must exist, packages, what for): Debian packages installed
# with apt-get when a file is missing (as root or with password-less sudo), or a clear error.
define debian_install
	@if $(foreach file,$(2),[ -x $(file) ] &&) true; then exit 0; fi; \
	sudo=""; if [ "$$(id -u)" != 0 ]; then sudo="sudo -n"; fi; \
	log=$$(mktemp); \
	echo "Installing $(3) with apt-get ($(4))..."; \
	if ! { $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install \
			-y -qq --no-install-recommends $(3); } >"$$log" 2>&1 \
		|| ! { $(foreach file,$(2),[ -x $(file) ] &&) true; }; then \
		tail -n 20 "$$log" >&2; rm -f "$$log"; \
		echo "make $(1): could not install $(3) with apt-get." >&2; \
		echo "Install as root (apt-get install $(3)) and run make again." >&2; \
		exit 1; \
	fi; \
	rm -f "$$log"
endef

## browser: Debian's chromium and chromedriver (for ui-check and the UI test), installed when missing
## (as root or with password-less sudo; CI runs it before make test)
browser:
	$(call debian_install,browser,/usr/bin/chromium /usr/bin/chromedriver,chromium chromium-driver,for make ui-check)

## java: Debian's Java 17 runtime (openjdk-17-jre-headless) for Spark (the dbt spark target and
## make test-distributed), installed when missing (as root or with password-less sudo)
java:
	$(call debian_install,java,/usr/bin/java,openjdk-17-jre-headless,for Spark)

## wrk: Debian's HTTP load generator (for make bench-serving), installed when missing
wrk:
	$(call debian_install,wrk,/usr/bin/wrk,wrk,for make bench-serving)

## test: the whole test suite but the distributed tier; no root needed (the UI test is skipped
## until `make browser` has run)
test: env $(DBT_MANIFEST)
	$(BIN)/pytest -n 2 --dist loadgroup -m "not distributed"

## test-distributed: the slow tier, tests/distributed: the dbt project on Spark, a run over Celery
## workers (CI runs it after make test)
test-distributed: env $(DBT_MANIFEST) java
	$(BIN)/pytest -n 2 --dist loadgroup -m distributed

## bench: wall time, peak memory and time per step of the pipeline (benchmarks/results/)
bench: env $(DBT_MANIFEST)
	$(BIN)/python benchmarks/pipeline.py $(BENCH_ARGS)

## bench-quality: the models on the public data in ../shared/data (CRM_PUBLIC_DATA) against their anchors
bench-quality: env
	$(BIN)/python benchmarks/quality.py $(BENCH_ARGS)

## bench-scale: the pipeline at 1M customers (CRM_BENCH_CUSTOMERS), wall time and peak memory per stage
bench-scale: env $(DBT_MANIFEST)
	$(BIN)/python benchmarks/scale.py $(BENCH_ARGS)

## bench-serving: load test of the scoring service on the state of make run (runs it when missing):
## p99 of one lead and one customer, a batch of 1,000 leads, 500 requests/s for 60 s, memory
## (benchmarks/results/serving.json); installs wrk when missing (make wrk)
bench-serving: env $(DBT_MANIFEST) $(DAGSTER_HOME)/dagster.yaml wrk
	$(BIN)/python benchmarks/serving_load.py $(BENCH_ARGS)

## rollback: make an earlier model version champion again: make rollback MODEL=churn VERSION=3 REASON="..."
rollback: env
	$(BIN)/python -m orchestration.rollback "$(MODEL)" "$(VERSION)" --reason "$(or $(REASON),manual rollback)"

## lint: ruff (lint + format check), mypy, and the import contracts of the layers (pyproject.toml)
lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy ml orchestration expectations tests/ui/ui_check.py
	$(BIN)/lint-imports

format: env
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## clean: remove the state folder and build output (the environment stays)
clean:
	rm -rf "$(CRM_HOME)" dbt_project/target dbt_project/logs .pytest_cache .mypy_cache .ruff_cache
