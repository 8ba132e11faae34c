"""The docs' "Add your own task type" (docs/tasks.md), followed once: a ``yes_no`` type (one
0/1 label, a logistic head, AUROC; the built-in ``binary`` is its full version) written as
one class, registered, and run through the whole
pipeline (validation, baselines, MTL, selection, registration, serving) beside a built-in
type, with no other file touched."""

from __future__ import annotations

import json
import math
from typing import Any

import mlflow
import pandas as pd
import pandera.pandas as pa
import pytest
import torch
import torchmetrics
from torch import Tensor, nn
from torch.nn import functional as F

from components.config import InputConfig, Params
from components.data.encoders import InputEncoder
from components.tasks import TASK_TYPES, register_task_type
from components.tasks.base import LabelSchema, Task
from tests.helpers.projects import iris_dict
from tests.helpers.stages import run_stages


class YesNoTask(Task):
    """One yes/no label per row; the served answer is the probability of yes."""

    type_name = "yes_no"
    metric_name = "auroc"
    higher_is_better = True

    def schema(self, spec: InputConfig, canvas_size: int) -> LabelSchema:
        return LabelSchema({self.column: pa.Column("Int64", pa.Check.isin([0, 1]), nullable=True)})

    def targets(self, frame: pd.DataFrame, encoder: InputEncoder) -> Tensor:
        return torch.tensor(frame[self.column].astype("Float64").to_numpy(dtype="float32", na_value=float("nan")))

    def head(self, in_features: int, image_size: int | None = None) -> nn.Module:
        return nn.Linear(in_features, 1)

    def labeled(self, target: Tensor) -> Tensor:
        return ~torch.isnan(target)

    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(output.squeeze(-1), target)

    def metrics(self) -> dict[str, torchmetrics.Metric]:
        return {"auroc": torchmetrics.classification.BinaryAUROC()}

    def metric_target(self, target: Tensor) -> Tensor:
        return target.long()

    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        return torch.sigmoid(output.squeeze(-1))

    def row_answers(self, prediction: Tensor, rows: list[int], own: pd.DataFrame, encoder: InputEncoder) -> list[Any]:
        return [round(float(prediction[row]), 6) for row in rows]


@pytest.fixture
def yes_no_type():
    register_task_type(YesNoTask)
    yield YesNoTask
    TASK_TYPES.pop("yes_no")


def test_a_new_type_runs_the_whole_pipeline(yes_no_type, tmp_path, monkeypatch, mlflow_db):
    monkeypatch.chdir(tmp_path)
    raw = iris_dict(tmp_path)
    for split in ("train", "val", "test"):  # the new label: is the sepal wider than 3 cm?
        table = pd.read_csv(tmp_path / f"tables/{split}.csv")
        table.assign(
            long_sepal=(table["sepal_width"] > 3.0).astype(int),
            long_petal=(table["petal_length"] > 4.0).map({True: "long", False: "short"}),
        ).to_csv(tmp_path / f"tables/{split}.csv", index=False)
    raw["tasks"]["long_sepal"] = {"type": "yes_no", "label": "long_sepal"}
    # beside it the built-in binary type, whose bootstrap recomputes AUROC per resample
    raw["tasks"]["long_petal"] = {"type": "binary", "label": "long_petal", "classes": ["short", "long"]}
    registration = run_stages(Params.model_validate(raw), tmp_path)

    selection = json.loads((tmp_path / "reports/selection.json").read_text())
    for name in ("long_sepal", "long_petal"):
        assert selection["tasks"][name]["metric"] == "auroc" and 0 <= selection["tasks"][name]["test"] <= 1
    low, high = selection["tasks"]["long_petal"]["interval"]  # resampled AUROCs, not a per-row sum
    assert math.isfinite(low) and low <= high
    answers = mlflow.pyfunc.load_model(f"models:/tiny-iris/{registration.version}").predict(
        pd.read_csv(tmp_path / "tables/test.csv")[["sepal_length", "sepal_width", "petal_length"]],
        params={"tasks": ["long_sepal", "long_petal"]},
    )
    assert answers["long_sepal"].between(0, 1).all() and answers["long_petal"].between(0, 1).all()


def test_its_validation_rule_runs_with_the_others(yes_no_type, tmp_path):
    from components.jobs import prepare, validate
    from components.validation.report import DataValidationError

    raw = iris_dict(tmp_path)
    train = pd.read_csv(tmp_path / "tables/train.csv")
    for split in ("train", "val", "test"):
        table = pd.read_csv(tmp_path / f"tables/{split}.csv")
        table.assign(flag=1).to_csv(tmp_path / f"tables/{split}.csv", index=False)
    train.assign(flag=[2] + [1] * (len(train) - 1)).to_csv(tmp_path / "tables/train.csv", index=False)
    raw["tasks"]["flag"] = {"type": "yes_no", "label": "flag"}
    params = Params.model_validate(raw)
    prepare.run(params, tmp_path)
    with pytest.raises(DataValidationError, match=r"column 'flag' failed rule isin\(\[0, 1\]\)"):
        validate.run(params, tmp_path)
