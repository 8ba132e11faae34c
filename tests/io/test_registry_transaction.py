"""One registration = one version: a rerun returns it, a crashed one is completed, and two
registrations at once create one version (real MLflow on SQLite, real processes)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from components.config import Params
from components.io import registry, tracking
from components.jobs import register
from tests.helpers.projects import accepting, mtl, tiny_params_dict
from tests.helpers.stages import run_until_select

pytestmark = pytest.mark.slow  # whole tiny pipelines and concurrent processes


@pytest.fixture
def selected(tmp_path, mlflow_db, monkeypatch):
    """A tiny pipeline run up to `select`, ready to register."""
    monkeypatch.chdir(tmp_path)
    raw = accepting(tiny_params_dict())
    raw["training"]["max_epochs"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    params = Params.model_validate(raw)
    parent = run_until_select(params, tmp_path)
    return params, tmp_path, parent, MlflowClient(mlflow_db, registry_uri=mlflow_db)


def versions(client: MlflowClient) -> list:
    return client.search_model_versions("name = 'tiny-mtl'")


def test_registering_the_same_selection_again_returns_the_same_version(selected):
    params, root, parent, client = selected
    first = register.run(params, root, parent)
    again = register.run(params, root, tracking.start_pipeline_run(params.registry.experiment))
    assert (first.version, again.version) == ("1", "1") and len(versions(client)) == 1
    assert again.reason.startswith("already registered as v1") and "champion" in again.aliases
    assert json.loads((root / "reports/registration.json").read_text())["version"] == "1"


def test_a_version_left_incomplete_by_a_crash_is_completed_not_duplicated(selected):
    params, root, parent, client = selected
    register.run(params, root, parent)
    # the state a crash between version creation and the alias move leaves behind
    client.set_model_version_tag("tiny-mtl", "1", registry.INCOMPLETE, "true")
    for alias in (registry.CHALLENGER, registry.CHAMPION):
        client.delete_registered_model_alias("tiny-mtl", alias)
    completed = register.run(params, root, parent)
    version = client.get_model_version("tiny-mtl", "1")
    assert completed.version == "1" and len(versions(client)) == 1
    assert registry.INCOMPLETE not in version.tags and sorted(version.aliases) == ["challenger", "champion"]


def test_two_registrations_at_once_create_one_version(selected):
    """Two copies of one project (their own folders, so the project lock does not serialise
    them) register the same model into one registry at the same moment."""
    import shutil

    params, root, _, client = selected
    other = root.parent / f"{root.name}-copy"
    shutil.copytree(root, other, ignore=shutil.ignore_patterns(".mtl", "mlflow.db*"))

    command = [sys.executable, "-m", "components.cli", "register", "--params", "params.yaml", "--root", "."]
    both = [
        subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for project in (root, other)
    ]
    outputs = [process.communicate(timeout=300) for process in both]
    assert [process.returncode for process in both] == [0, 0], outputs
    assert len(versions(client)) == 1
    assert sum("already registered as v1" in out for out, _ in outputs) == 1  # the second waited and found it


def test_a_second_register_in_the_same_project_is_told_it_is_busy(selected):
    params, root, _, client = selected
    command = [sys.executable, "-m", "components.cli", "register", "--params", "params.yaml", "--root", "."]
    both = [subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    both.append(subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [process.communicate(timeout=300) for process in both]
    codes = sorted(process.returncode for process in both)
    busy = [err for _, err in outputs if "is busy" in err]
    # usually one is refused; on a loaded machine the first can finish before the second starts
    assert codes in ([0, 1], [0, 0]) and len(busy) == codes.count(1), outputs
    assert len(versions(client)) == 1


def test_a_deleted_registry_is_an_error_not_a_fresh_v1_champion(selected, mlflow_db):
    params, root, parent, _ = selected
    register.run(params, root, parent)
    database = Path(mlflow_db.removeprefix("sqlite:///"))
    database.unlink()  # rm mlflow.db, then the next registration in a new process
    result = mtl("register", root / "params.yaml", root)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        "records tiny-mtl v1, but the registry at" in result.stderr
        and "delete reports/registration.json" in result.stderr
    )
    with sqlite3.connect(database) as fresh:  # what the failed run left: no version registered
        assert fresh.execute("select count(*) from model_versions").fetchone() == (0,)


def test_a_replaced_tracking_store_without_the_training_run_is_an_error_naming_it(selected, mlflow_db):
    """``mlflow.db`` deleted with the last registration's record, ``models/`` and the reports
    kept: the MTL run the model is logged on is gone, which the error says in plain words."""
    params, root, parent, _ = selected
    database = Path(mlflow_db.removeprefix("sqlite:///"))
    database.unlink()
    result = mtl("register", root / "params.yaml", root)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "unexpected" not in result.stderr
    assert "reports/train_mtl.json names the MTL training run" in result.stderr
    assert "does not hold (was the database replaced after training?)" in result.stderr
    with sqlite3.connect(database) as fresh:
        assert fresh.execute("select count(*) from model_versions").fetchone() == (0,)


def test_a_registry_locked_by_another_writer_is_retried_until_it_frees(selected, mlflow_db, capsys):
    params, root, parent, client = selected
    database, held = mlflow_db.removeprefix("sqlite:///"), root / "lock-held"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
         "c.execute('BEGIN EXCLUSIVE'); open(sys.argv[2], 'w').close(); time.sleep(7); c.execute('COMMIT')",
         database, str(held)]
    )  # fmt: skip
    while not held.exists():
        assert holder.poll() is None
        time.sleep(0.05)
    registration = register.run(params, root, parent)
    holder.wait(timeout=30)
    assert "the registry is locked by another writer; retrying in 1 s (1/5)" in capsys.readouterr().out
    assert registration.version == "1" and "champion" in client.get_model_version("tiny-mtl", "1").aliases
