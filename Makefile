# Everything starts here; a fresh machine needs only python3.11 and make.
# uv is installed from PyPI into .tools/, then builds .venv/ from uv.lock exactly.

PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin

export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export UV_SYSTEM_CERTS := 1
export UV_PROJECT_ENVIRONMENT := $(VENV)
# The stages run `python -m pipeline...`: make them find the project's interpreter first.
export PATH := $(CURDIR)/$(BIN):$(PATH)
# A template must not phone home (DVC's switch is also committed in .dvc/config).
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false

.PHONY: run test test-fast test-slow env lint bench clean help ci smoke champion gate report

help:
	@echo "make run    - build the environment and run the whole pipeline on the shipped data"
	@echo "make test   - build the environment and run lint, type checks and every test tier"
	@echo "make test-fast / test-slow - every tier but the slow demo / only the demo (CI runs both side by side)"
	@echo "make bench  - run the benchmarks against their peers"
	@echo "make ci     - the pull-request checks locally: lint, pipeline, smoke, gate vs BASE, reports/pr_report.md"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION)

$(BIN)/pipeline: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen
	@touch $@

env: $(BIN)/pipeline

run: env
	$(BIN)/pipeline run

lint: env
	$(BIN)/pipeline lint

# One worker per core; a test file stays on one worker, so its module-scoped set-up (a trained
# template, a registry, a server) is built once.
test: env postgres
	$(BIN)/pipeline lint
	$(BIN)/python -m pytest -n auto --dist loadfile

# CI runs the suite as two jobs side by side: the minutes-long demo tier (pytest -m slow) on its
# own, so the main test job's critical path stays short. `make test` still runs everything.
test-fast: env postgres
	$(BIN)/python -m pytest -n auto --dist loadfile -m "not slow"

test-slow: env
	$(BIN)/python -m pytest -n auto --dist loadfile -m slow

# The team set-up tests start PostgreSQL from Debian's package: install it when missing
# (CI must run those tests, not skip them). sudo only when not already root.
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql; }

bench: env
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache

# Pull-request CI, one target per workflow step. BASE is the revision whose model is the
# champion (the workflow passes the PR's base commit); locally the last commit.
BASE ?= HEAD
CHAMPION ?= .champion/model.skops

ci: env
	$(BIN)/pipeline ci --base "$(BASE)"

smoke: env
	$(BIN)/pipeline smoke

champion: env
	$(BIN)/pipeline champion fetch --rev "$(BASE)" --out "$(CHAMPION)"

gate: env
	$(BIN)/pipeline gate --champion-model "$(CHAMPION)"

report: env
	$(BIN)/pipeline report --out reports/pr_report.md --base "$(BASE)"

# Drift workflow, one target per step. The batch checked is the newest period in params
# retrain.production_dir unless DRIFT_CURRENT names a file (the workflow may set it from a
# repository variable); the reports land in params drift.out_dir.
DRIFT_CURRENT ?=
.PHONY: drift-preflight drift-check retrain drift-alert demo

# The retraining pull request's token (RETRAIN_TOKEN); the drift check itself needs none.
drift-preflight: env
	$(BIN)/pipeline preflight --workflow drift --job pr

# The step outputs drift and verdict carry the result, so any verdict exits 0: a failed step
# then always means bad input or an error (exit 2), never a finding.
drift-check: env
	$(BIN)/pipeline drift $(if $(strip $(DRIFT_CURRENT)),--current "$(strip $(DRIFT_CURRENT))") --exit-zero-on-verdict

# The step output status is ready (PR body written) or refused (too few labelled rows, exit 0:
# the alert job takes over); a failed pipeline exits 1, bad input 2.
retrain: env
	$(BIN)/pipeline retrain --champion-model "$(CHAMPION)" --exit-zero-on-refusal

drift-alert: env
	$(BIN)/pipeline github alert

# The whole loop offline in a temporary repository (a few minutes on two cores).
demo: env
	$(BIN)/pipeline demo
