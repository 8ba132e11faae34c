"""``dvc repro`` re-runs ``prepare`` when one of your data files changes, and only then: the
``sources`` stage fingerprints what ``data.files`` names into ``reports/sources.json``."""

from __future__ import annotations

import pytest
import yaml

from components.config import Params
from components.jobs import sources
from tests.helpers.projects import VENV_BIN, iris_dict, project_copy, run


def test_the_fingerprint_follows_the_bytes_of_each_named_file(tmp_path):
    params = Params.model_validate(iris_dict(tmp_path))
    first = sources.run(params, tmp_path)
    assert sorted(first) == ["test: tables/test.csv", "train: tables/train.csv", "val: tables/val.csv"]
    assert sources.run(params, tmp_path) == first
    train = tmp_path / "tables/train.csv"
    train.write_text(train.read_text().replace("5.1", "5.2", 1))
    changed = sources.run(params, tmp_path)
    assert changed["train: tables/train.csv"] != first["train: tables/train.csv"]
    assert changed["val: tables/val.csv"] == first["val: tables/val.csv"]
    train.unlink()
    with pytest.raises(FileNotFoundError, match="tables/train.csv"):
        sources.run(params, tmp_path)


@pytest.mark.slow
def test_dvc_repro_prepares_again_after_a_data_file_changes_and_only_then(tmp_path):
    raw = iris_dict(tmp_path)
    env = project_copy(tmp_path, raw, ("components",), ("dvc.yaml", ".gitignore"))
    dvc = str(VENV_BIN / "dvc")
    first = run([dvc, "repro", "prepare"], tmp_path, env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Running stage 'prepare'" in first.stdout
    again = run([dvc, "repro", "prepare"], tmp_path, env)
    assert "Running stage 'sources'" in again.stdout and "Stage 'prepare' didn't change" in again.stdout
    train = tmp_path / "tables/train.csv"
    train.write_text(train.read_text().replace("5.1", "5.2", 1))  # one measurement corrected
    edited = run([dvc, "repro", "prepare"], tmp_path, env)
    assert edited.returncode == 0, edited.stdout + edited.stderr
    assert "Running stage 'prepare'" in edited.stdout
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["data"]["files"]["train"] == "tables/train.csv"
