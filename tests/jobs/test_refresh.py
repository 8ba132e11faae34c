"""The nightly refresh from each source, on real files and a real DVC repository."""

from __future__ import annotations

import pandas as pd
import pytest

from components.config import Params
from components.data.splits import SPLITS
from components.io.dvc import data_version
from components.jobs import refresh as operations
from tests.helpers.projects import VENV_BIN, run, tiny_params_dict

DVC = str(VENV_BIN / "dvc")


def params_with(refresh: dict, **orchestration) -> Params:
    raw = tiny_params_dict()
    raw["orchestration"] = {"refresh": refresh, **orchestration}
    return Params.model_validate(raw)


def write_tables(directory, marker: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        pd.DataFrame({"id": [f"{split}-0"], "marker": [marker]}).to_parquet(directory / f"{split}.parquet")


@pytest.fixture
def dvc_repo(tmp_path):
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
    }
    for command in (
        ["git", "init", "-q"],
        [DVC, "init", "-q"],
        [DVC, "config", "core.analytics", "false"],
        [DVC, "remote", "add", "-d", "local", str(tmp_path / "remote")],
    ):
        assert run(command, tmp_path, env).returncode == 0, command
    return tmp_path, env


def test_refresh_from_a_path_copies_the_splits_and_names_missing_ones(tmp_path):
    write_tables(tmp_path / "incoming", marker=7)
    params = params_with({"source": "path", "path": "incoming"})
    assert "copied train.parquet, val.parquet, test.parquet" in operations.refresh_data(params, tmp_path)
    assert pd.read_parquet(tmp_path / "data/val.parquet")["marker"].tolist() == [7]
    (tmp_path / "incoming/test.parquet").unlink()
    with pytest.raises(operations.OperationError, match="refresh.path lacks test.parquet"):
        operations.refresh_data(params, tmp_path)


def test_refresh_by_dvc_pull_restores_the_pushed_data_version(dvc_repo):
    root, env = dvc_repo
    write_tables(root / "data", marker=1)
    for command in ([DVC, "add", "-q", "data"], [DVC, "push", "-q"]):
        assert run(command, root, env).returncode == 0, command
    pushed = data_version(root, "data")
    (root / ".dvc/cache").rename(root / "old-cache")  # only the remote has the data now
    for path in (root / "data").iterdir():
        path.unlink()
    assert operations.refresh_data(params_with({"source": "dvc_pull"}), root) == "dvc pull data"
    assert data_version(root, "data") == pushed


def test_refresh_by_dvc_update_follows_the_imported_source(dvc_repo, tmp_path_factory):
    root, env = dvc_repo
    upstream = tmp_path_factory.mktemp("upstream")
    write_tables(upstream, marker=1)
    assert run([DVC, "import-url", str(upstream), "data"], root, env).returncode == 0
    before = data_version(root, "data")
    write_tables(upstream, marker=2)  # the upstream dataset moves on
    params = params_with({"source": "dvc_update", "target": "data.dvc"})
    assert operations.refresh_data(params, root) == "dvc update data.dvc"
    assert data_version(root, "data") != before
    assert pd.read_parquet(root / "data/train.parquet")["marker"].tolist() == [2]


def test_a_failing_dvc_command_is_reported_with_its_message(dvc_repo):
    root, _ = dvc_repo
    params = params_with({"source": "dvc_update", "target": "missing.dvc"})
    with pytest.raises(operations.OperationError, match=r"`dvc update missing.dvc` failed in"):
        operations.refresh_data(params, root)
