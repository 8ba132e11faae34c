"""Shared fixtures: a tiny configuration, tiny real data, and isolated MLflow/Prefect state."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from components.config import Params  # noqa: E402
from components.data import build_multimnist  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def run(command: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


def project_copy(root: Path, raw_params: dict, packages: tuple[str, ...], files: tuple[str, ...]) -> dict:
    """The repository's ``packages`` and ``files`` in a fresh git + DVC repository with a
    local remote, on ``raw_params``; returns the environment that points MLflow at it."""
    for package in packages:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in files:
        shutil.copy(REPO / name, root / name)
    (root / "params.yaml").write_text(yaml.safe_dump(raw_params))
    (root / ".venv").symlink_to(VENV_BIN.parent)
    env = os.environ | {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "MLFLOW_REGISTRY_URI": f"sqlite:///{root / 'mlflow.db'}",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    dvc = str(VENV_BIN / "dvc")
    for command in (
        ["git", "init", "-q"],
        [dvc, "init", "-q"],
        [dvc, "config", "core.analytics", "false"],
        [dvc, "remote", "add", "-d", "local", str(root / "remote")],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "pipeline"],
    ):
        assert run(command, root, env).returncode == 0, command
    return env


def tiny_params_dict() -> dict:
    """The default params.yaml shrunk so that the whole pipeline runs in seconds."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"]["source_digits"] = {"train": 600, "val": 200, "test": 200}
    raw["data"]["images"] = {"train": 400, "val": 150, "test": 150}
    raw["model"]["cnn"] = {"channels": [4, 8], "hidden": 16, "dropout": 0.0}
    raw["training"].update(epochs=2, batch_size=64, lr=0.003)
    raw["validation"]["min_rows"] = {"train": 100, "val": 50, "test": 50}
    raw["validation"]["min_class_share"] = 0.02
    raw["validation"]["max_class_share"] = 0.25
    raw["registry"] = {"model_name": "tiny-mtl", "experiment": "tiny-mtl"}
    return raw


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
