# The two commands: `make demo` and `make test`. Everything installs into .venv from here.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test lint bench bench-versioning bench-pipeline bench-remote bench-checks bench-registry bench-serving bench-workflow bench-ui bench-build clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[demo]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[test,demo]"
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/python demo/demo.py $(if $(UI),--ui)

# the browser tests drive Debian's chromium (never a browser Playwright downloads)
$(VENV)/.chromium-installed: | $(BIN)/python
	command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi; }
	touch $@

test: $(VENV)/.test-installed $(VENV)/.chromium-installed
	$(BIN)/ruff check src tests bench demo
	$(BIN)/ruff format --check src tests bench demo
	$(BIN)/mypy
	pg_url="$$($(BIN)/python tests/_postgres.py)" && CONVEYOR_TEST_PG_URL="$$pg_url" $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests bench demo
	$(BIN)/ruff format --check src tests bench demo
	$(BIN)/mypy

bench: bench-versioning bench-pipeline bench-remote bench-checks bench-registry bench-serving

bench-versioning: $(VENV)/.demo-installed
	$(BIN)/python bench/bench_versioning.py $(BENCH_ARGS)

bench-pipeline: $(VENV)/.demo-installed
	$(BIN)/python bench/bench_pipeline.py $(BENCH_PIPELINE_ARGS)

# needs moto[server] and s3fs (the test extra); installs dvc-s3 into bench/.venv-dvc on first use
bench-remote: $(VENV)/.test-installed
	$(BIN)/python bench/bench_remote.py $(BENCH_REMOTE_ARGS)

# installs Deepchecks 0.19.1 (with the older NumPy, pandas and scikit-learn it needs) into bench/.venv-deepchecks
bench-checks: $(VENV)/.test-installed
	$(BIN)/python bench/bench_checks.py $(BENCH_CHECKS_ARGS)

# installs MLflow (mlflow-skinny) into bench/.venv-mlflow on first use; SQLite and the machine's PostgreSQL
bench-registry: $(VENV)/.test-installed
	$(BIN)/python bench/bench_registry.py $(BENCH_REGISTRY_ARGS)

# conveyor serve against mlflow models serve (bench/.venv-mlflow), the same model, payloads and wrk (apt-get installs it)
bench-serving: $(VENV)/.test-installed
	$(BIN)/python bench/bench_serving.py --wait-quiet 600 $(BENCH_SERVING_ARGS)

# conveyor's scheduler against Luigi 3.x's local scheduler (bench/.venv-luigi, installed on first use)
bench-workflow: $(VENV)/.demo-installed
	$(BIN)/python bench/bench_workflow.py $(BENCH_WORKFLOW_ARGS)

# conveyor ui against MLflow's tracking server and UI (full mlflow in bench/.venv-mlflow-ui), in headless chromium
bench-ui: $(VENV)/.test-installed $(VENV)/.chromium-installed
	$(BIN)/python bench/bench_ui.py $(BENCH_UI_ARGS)

# conveyor build against mlflow models generate-dockerfile (bench/.venv-mlflow-ui), hadolint, kubernetes-validate
bench-build: $(VENV)/.test-installed
	$(BIN)/python bench/bench_build.py $(BENCH_BUILD_ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
