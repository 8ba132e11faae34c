"""Finite or fail: a diverging training stops at the step it diverges, names task, epoch
and step, and never reaches selection or the registry."""

from __future__ import annotations

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from components.config import Params
from components.jobs import prepare, validate
from components.training.guard import LossGuard, TrainingDiverged
from tests.helpers.projects import mtl, tiny_params_dict
from tests.helpers.stages import train_tiny, write_baselines_report


def test_a_non_finite_loss_names_task_epoch_and_step():
    guard = LossGuard(["left", "sum"], max_growth=100.0)
    guard.check(torch.tensor([2.3, 1.0]), epoch=3, step=1)
    with pytest.raises(TrainingDiverged, match=r"task 'sum' loss inf at epoch 3, step 7"):
        guard.check(torch.tensor([2.0, float("inf")]), epoch=3, step=7)


def test_a_loss_past_its_growth_limit_stops_and_null_only_checks_finiteness():
    guard = LossGuard(["left"], max_growth=10.0)
    guard.check(torch.tensor([0.0]), epoch=1, step=1)  # no labeled row: not the reference
    guard.check(torch.tensor([2.0]), epoch=1, step=2)  # the first labeled value
    guard.check(torch.tensor([19.9]), epoch=1, step=3)
    with pytest.raises(TrainingDiverged, match=r"loss 20.1, over 10 × its first value 2"):
        guard.check(torch.tensor([20.1]), epoch=1, step=4)
    unbounded = LossGuard(["left"], max_growth=None)
    unbounded.check(torch.tensor([2.0]), epoch=1, step=1)
    unbounded.check(torch.tensor([2e6]), epoch=1, step=2)
    with pytest.raises(TrainingDiverged, match="loss nan"):
        unbounded.check(torch.tensor([float("nan")]), epoch=1, step=3)


@pytest.mark.parametrize("lr", [1e30, 1000.0])
def test_a_real_training_with_a_huge_learning_rate_stops_in_its_first_epoch(tiny_params, tiny_frames, tmp_path, lr):
    params = tiny_params.model_copy(update={"training": tiny_params.training.model_copy(update={"lr": lr})})
    with pytest.raises(TrainingDiverged, match=r"at epoch 1, step \d+"):
        train_tiny(params, tiny_frames, tmp_path)
    assert not list(tmp_path.glob("*.pt"))  # not one checkpoint of a diverged model


def test_the_stage_exits_1_without_traceback_and_its_runs_end_failed(tmp_path, mlflow_db):
    raw = tiny_params_dict()
    raw["training"]["lr"] = 1e30
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    params = Params.model_validate(raw)
    prepare.run(params, tmp_path)
    validate.run(params, tmp_path)
    write_baselines_report(tmp_path, params)
    result = mtl("train-mtl", params_file, tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "training diverged: task" in result.stderr and "at epoch 1, step" in result.stderr
    client = MlflowClient(mlflow_db)
    runs = client.search_runs([client.get_experiment_by_name("tiny-mtl").experiment_id])
    assert runs and {run.info.status for run in runs} == {"FAILED"}  # the training and its pipeline run
    assert not (tmp_path / "models/mtl/checkpoints.json").exists()
