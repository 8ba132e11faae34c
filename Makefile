# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

# No network beyond package registries: keep Prefect and DVC from phoning home.
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := false
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false

.PHONY: install demo test flow summary ui push lock clean

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

install: $(VENV)/.installed  ## create .venv from the lock file

demo: install  ## run the whole pipeline on the default data with dvc repro
	$(BIN)/dvc repro

test: install  ## run the test suite
	$(BIN)/python -m pytest

flow: install  ## run the same pipeline as one Prefect flow
	$(BIN)/python -m flows.pipeline

summary: install  ## print the results table of the last run again
	$(BIN)/mtl summary

ui: install  ## MLflow UI on http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1

push: install  ## push data and artifacts to the DVC remote
	$(BIN)/dvc push

lock: install  ## regenerate requirements.lock from the current environment
	{ head -n 2 requirements.lock; $(BIN)/pip freeze --exclude-editable | sed 's/+cpu$$//'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:  ## remove pipeline outputs (keeps .venv and the MLflow database)
	rm -rf data models reports
