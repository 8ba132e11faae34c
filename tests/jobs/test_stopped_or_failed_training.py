"""A real ``mtl train-mtl`` stopped or failing, in one project (issue 25, cases 8, 14 and 15):

- SIGTERM (``timeout -s TERM``) ends its MLflow runs KILLED, not RUNNING, and keeps the
  resume state, from which the next start continues;
- splits edited after ``validate`` passed them are refused before any training, naming
  what to run;
- a training that fails (here it diverges) leaves the last good training's checkpoints,
  manifest and ``result.json`` as they were;
- a full disk (a small tmpfs on ``models/mtl``; mounting needs root, elsewhere that test
  skips) printed ``unexpected RuntimeError: . unexpected pos 1511232 vs 1511120`` and left a
  truncated ``epoch_001.pt``: now it names the device and the folder, and leaves nothing.
"""

from __future__ import annotations

import hashlib
import subprocess

import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from components.training.previous import PREVIOUS
from components.training.resume import state_path
from tests.helpers.processes import sigterm_when
from tests.helpers.projects import MTL, VENV_BIN, accepting, project_copy, run, tiny_params_dict

pytestmark = pytest.mark.slow  # real processes and a DVC pipeline

EPOCHS = 5


def _files(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


TRAIN = [*MTL, "train-mtl"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny project run up to its baselines; its params.yaml as a dict."""
    root = tmp_path_factory.mktemp("stopped")
    raw = accepting(tiny_params_dict())
    raw["training"]["max_epochs"] = EPOCHS
    raw["training"]["early_stopping"] = {"enabled": False}
    env = project_copy(root, raw, ("components",), ("dvc.yaml", ".gitignore"))
    assert run([str(VENV_BIN / "dvc"), "repro", "baselines"], root, env).returncode == 0
    return root, env, raw


def test_a_stopped_training_resumes_and_a_failed_one_destroys_nothing(project):
    tmp_path, env, raw = project
    train = TRAIN
    models = tmp_path / "models/mtl"

    # SIGTERM mid-run
    state = state_path(models)
    stopped = sigterm_when(
        train, tmp_path, env, lambda: state.exists() and int(torch.load(state, weights_only=True)["epoch"]) < EPOCHS
    )
    assert stopped is not None, "the training ended before it could be stopped"
    assert stopped.returncode == 143 and "Traceback" not in stopped.stderr, stopped.stderr
    assert "stopped by signal SIGTERM: runs ended KILLED" in " ".join(stopped.stderr.split())
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(raw["registry"]["experiment"]).experiment_id
    statuses = {r.info.run_name: r.info.status for r in client.search_runs([experiment])}
    assert "RUNNING" not in statuses.values(), statuses
    assert [s for n, s in statuses.items() if n.startswith("mtl-")] == ["KILLED"], statuses
    assert state.exists()
    resumed = run(train, tmp_path, env)
    assert resumed.returncode == 0 and "resuming after epoch" in resumed.stdout + resumed.stderr
    good = _files(models)
    assert "result.json" in good and f"epoch_{EPOCHS:03d}.pt" in good and not (models / PREVIOUS).exists()

    # splits edited after validation: refused, nothing touched
    split = tmp_path / "data/train.parquet"
    validated = split.read_bytes()
    frame = pd.read_parquet(split)
    frame["px_0000"] = frame["px_0000"].astype("float64")
    frame.loc[0, "px_0000"], frame.loc[1, "left"] = 1e300, 42
    frame.to_parquet(split)
    edited = run(train, tmp_path, env)
    assert edited.returncode == 1 and "Traceback" not in edited.stderr
    message = " ".join(edited.stderr.split())
    assert "data changed after validation passed it" in message and "run `mtl validate`" in message, message
    assert "lower training.lr" not in message and _files(models) == good
    split.write_bytes(validated)

    # a training that fails: the last good one stays
    diverging = raw | {"training": raw["training"] | {"lr": 1e30}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(diverging))
    diverged = run(train, tmp_path, env)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert diverged.returncode == 1 and "training diverged" in diverged.stderr, diverged.stderr
    assert _files(models) == good and not (models / PREVIOUS).exists()


def test_a_full_disk_is_named_and_leaves_no_truncated_checkpoint(project):
    root, env, _ = project
    models = root / "models/mtl"
    models.mkdir(parents=True, exist_ok=True)
    before = _files(models)
    # 48 kB: less than the tiny model's first checkpoint (0.1 MB); a fresh mount hides what is there
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(models)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        result = run(TRAIN, root, env)  # the mount hides the finished training: it trains again
        left = sorted(p.name for p in models.iterdir())
    finally:
        subprocess.run(["umount", str(models)], check=True)

    assert result.returncode == 1 and "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "no space left on device: models/mtl (writing epoch_001." in message and "unexpected" not in message
    assert left == [], left  # no epoch file, truncated or whole, and no partial write
    assert _files(models) == before
