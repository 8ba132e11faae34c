"""Shared fixtures: a tiny configuration, tiny real data, and isolated MLflow state."""

from __future__ import annotations

import os

import pytest
import torch

from components.config import Params
from components.data.sources import build_multimnist
from components.startup import configure
from tests.helpers.projects import tiny_params_dict

configure()

# One torch thread per xdist worker, and per process it starts (dvc stages, torchrun,
# servers inherit the variable): with a worker per core, two threads each oversubscribe
# the cores, and torch's spinning threads then slow every process down.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture
def tiny_params() -> Params:
    return Params.model_validate(tiny_params_dict())


@pytest.fixture(scope="session")
def tiny_frames():
    params = Params.model_validate(tiny_params_dict())
    return build_multimnist(params.data, params.seed)


@pytest.fixture
def mlflow_db(tmp_path, monkeypatch) -> str:
    """A temporary SQLite tracking store and registry, as MLFLOW_TRACKING_URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    return uri
