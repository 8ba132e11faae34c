# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

# No network beyond package registries: keep Prefect and DVC from phoning home.
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
export NO_MKDOCS_2_WARNING := 1
# dvc.yaml's stage commands run the `python` on PATH: the project's environment comes first.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install demo test docs bench acceptance-study gate-study test-fast check chaos screenshots flow summary ui push lock clean nightly deploy retrain health serve image

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

install: $(VENV)/.installed  ## create .venv from the lock file

demo: install  ## run the whole pipeline on the default data with dvc repro
	$(BIN)/dvc repro

test: check docs  ## lint, formatting, types, the docs site, then the whole suite (module doctests included)
	$(BIN)/python -m pytest

docs: install  ## the docs site from docs/ into .site/ (strict: a warning or a broken link fails it)
	$(BIN)/mkdocs build --strict --quiet

$(VENV)/.bench-installed: $(VENV)/.installed benchmarks/requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r benchmarks/requirements.txt
	touch $@

BENCH_DEMO ?= /tmp/mtl-bench-demo
bench: $(VENV)/.bench-installed  ## side-by-side benchmarks on this machine (~15 min): reports/benchmarks/*.md and *.json
	$(BIN)/python benchmarks/e2e.py --workdir $(BENCH_DEMO) --keep
	$(BIN)/python benchmarks/serve.py --root $(BENCH_DEMO)
	$(BIN)/python benchmarks/input_pipeline.py --root $(BENCH_DEMO)
	rm -rf $(BENCH_DEMO)
	$(BIN)/python benchmarks/step.py
	$(BIN)/python benchmarks/peer.py

acceptance-study: install  ## how often each selection rule admits a model that regresses on test, 10 seeds (~30 min)
	$(BIN)/python benchmarks/acceptance_study.py --seeds 10

gate-study: install  ## the gate's error rates against ground truth: synthetic tasks, 3 correlations x 2 validation sizes x 10 seeds (~35 min)
	$(BIN)/python benchmarks/gate_calibration.py --seeds 10

test-fast: install  ## the inner loop: everything but the slow end-to-end tests
	$(BIN)/python -m pytest -m "not slow"

check: install  ## ruff (lint, pydocstyle for public functions, formatting) and mypy on the whole tree
	$(BIN)/ruff check components flows tests benchmarks scripts docs/hooks.py
	$(BIN)/ruff format --check components flows tests benchmarks scripts docs/hooks.py
	$(BIN)/mypy

chaos: install  ## reliability scenarios end to end on a tiny config (a few minutes): one table, exit 1 on a failure
	$(BIN)/python -m scripts.chaos

screenshots: install  ## the README's screenshots of the last run (MLflow UI, Data Docs, dvc plots), by headless chromium
	$(BIN)/python -m scripts.screenshots

flow: install  ## run the same pipeline as one Prefect flow
	$(BIN)/python -m flows.pipeline

summary: install  ## print the results table of the last run again
	$(BIN)/mtl summary

ui: install  ## MLflow UI on http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1

push: install  ## push data and artifacts to the DVC remote
	$(BIN)/dvc push

nightly: install  ## local Prefect server (127.0.0.1:4200, SQLite), work pools, deployments and workers
	$(BIN)/python -m flows.local

deploy: install  ## (re)deploy prefect.yaml to the server at PREFECT_API_URL, schedules from params.yaml
	$(BIN)/python -m flows.local --deploy-only

retrain: install  ## one nightly run now: refresh, skip if unchanged, else train, register, dvc push
	$(BIN)/python -m flows.nightly

health: install  ## score the champion on the canary rows; exit 1 when a task is below tolerance
	$(BIN)/python -m flows.health

serve: install  ## serve the champion on http://127.0.0.1:5001/invocations (mtl serve: limits, no echo)
	$(BIN)/mtl serve --host 127.0.0.1 --port 5001

TORCH_VARIANT ?= cuda
image:  ## build the Docker image mtl-pipeline:latest (TORCH_VARIANT=cpu for a CPU-only image)
	docker build --build-arg TORCH_VARIANT=$(TORCH_VARIANT) -t mtl-pipeline:latest .

lock: install  ## regenerate requirements.lock from the current environment
	{ head -n 2 requirements.lock; $(BIN)/pip freeze --exclude-editable | sed 's/+cpu$$//'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:  ## remove pipeline outputs (keeps .venv and the MLflow database)
	rm -rf data models reports .mtl
