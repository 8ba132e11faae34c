"""Shared fixtures: a tiny configuration, tiny real data, and isolated MLflow state."""

from __future__ import annotations

import pytest

from components.config import Params
from components.data.sources import build_multimnist
from components.startup import configure
from tests.helpers import tiny_params_dict

configure()


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
