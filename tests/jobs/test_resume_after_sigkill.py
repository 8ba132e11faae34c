"""A real training process killed with SIGKILL mid-run: the next ``dvc repro`` continues from
its last complete epoch, ends with the checkpoints of a run that was never interrupted, and
MLflow shows the killed run as KILLED and the new one as its resumption."""

from __future__ import annotations

import json

import pytest
import torch
from mlflow.tracking import MlflowClient

from components.jobs.trainings import RESUMED_AFTER_TAG, RESUMED_FROM_TAG
from components.training.resume import state_path
from tests.helpers.processes import sigkill_when
from tests.helpers.projects import VENV_BIN, accepting, project_copy, run, tiny_params_dict

pytestmark = pytest.mark.slow  # real processes and a whole DVC pipeline

EPOCHS = 6


def _project(root, raw):
    root.mkdir()
    return project_copy(root, raw, ("components",), ("dvc.yaml", ".gitignore"))


def _kill_after_an_epoch(root, env) -> int:
    """``dvc repro train_mtl``, SIGKILLed (with the training it runs) as soon as a resume
    state exists before the last epoch; returns the epoch that state holds."""
    state = state_path(root / "models/mtl")
    seen: list[int] = []

    def mid_run() -> bool:
        if state.exists():
            seen.append(int(torch.load(state, weights_only=True)["epoch"]))
        return bool(seen) and seen[-1] < EPOCHS

    if not sigkill_when([str(VENV_BIN / "dvc"), "repro", "train_mtl"], root, env, mid_run):
        pytest.fail("the training ended before it could be killed mid-run")
    return seen[-1]


def test_sigkilled_training_resumes_on_the_next_repro_and_ends_as_if_never_killed(tmp_path):
    raw = accepting(tiny_params_dict())
    raw["training"]["max_epochs"] = EPOCHS
    dvc = str(VENV_BIN / "dvc")

    straight = tmp_path / "straight"
    env = _project(straight, raw)
    assert run([dvc, "repro", "train_mtl"], straight, env).returncode == 0

    killed = tmp_path / "killed"
    env = _project(killed, raw)
    epoch = _kill_after_an_epoch(killed, env)
    rerun = run([dvc, "repro", "train_mtl"], killed, env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"resuming after epoch {epoch}/{EPOCHS}" in rerun.stdout + rerun.stderr

    def checkpoints(root):
        return [
            (e["epoch"], e["sha256"], e["val_metrics"])
            for e in json.loads((root / "models/mtl/checkpoints.json").read_text())
        ]

    assert checkpoints(killed) == checkpoints(straight)  # bit-identical weights and state, every epoch
    assert not state_path(killed / "models/mtl").exists()

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(raw["registry"]["experiment"]).experiment_id
    runs = [r for r in client.search_runs([experiment]) if r.info.run_name.startswith("mtl-")]
    by_status = {r.info.status: r for r in runs}
    assert sorted(by_status) == ["FINISHED", "KILLED"], [r.info.status for r in runs]
    resumed = by_status["FINISHED"]
    assert resumed.data.tags[RESUMED_FROM_TAG] == by_status["KILLED"].info.run_id
    assert resumed.data.tags[RESUMED_AFTER_TAG] == str(epoch)
    history = client.get_metric_history(resumed.info.run_id, "val/left.accuracy")
    assert [m.step for m in history] == list(range(1, EPOCHS + 1))  # the earlier epochs are on the new run too
