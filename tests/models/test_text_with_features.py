"""Text and tabular columns in one model: the features join the pooled text vector, so a
label the text cannot predict is learned from the columns beside it."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from components.config import Params
from components.data.encoders import FittedFeatures
from components.models import build_model
from components.tasks import build_tasks, check_tasks
from tests.helpers.projects import iris_dict
from tests.helpers.stages import read_selection, run_stages

WORDS = ["red", "fast", "car", "old", "town", "blue", "slow", "tree", "river", "song"]


def mixed_dict(tmp_path, rows: int = 600) -> dict:
    """A table whose text is noise; ``above`` depends on the number ``x`` and category ``c``
    alone, ``twice`` is 2x."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=rows)
    c = rng.choice(["a", "b"], size=rows)
    frame = pd.DataFrame(
        {
            "text": [" ".join(rng.choice(WORDS, size=5)) + f" {i}" for i in range(rows)],
            "x": np.where(rng.random(rows) < 0.05, np.nan, x),
            "c": c,
            "above": ((x + (c == "a")) > 0.5).astype(int),
            "twice": 2 * x,
        }
    )
    raw = iris_dict(tmp_path)
    frame.to_csv(tmp_path / "mixed.csv", index=False)
    raw["data"] = {
        "source": "files",
        "dir": "data",
        "files": "mixed.csv",
        "split": {"val": 0.2, "test": 0.2},
        "input": {"kind": "text", "columns": ["text"], "features": ["x"], "categorical": ["c"], "missing": "median"},
    }
    raw["tasks"] = {
        "above": {"type": "classification", "label": "above", "num_classes": 2},
        "twice": {"type": "regression", "label": "twice"},
    }
    raw["model"] = {
        "backbone": "text_transformer",
        "sharing": "hard",
        "text_transformer": {"vocab_size": 100, "max_length": 8, "d_model": 16, "heads": 2, "layers": 1},
        "mlp": {"hidden": [16], "dropout": 0.0},
    }
    raw["training"].update(max_epochs=6, batch_size=32, lr=0.01)
    raw["validation"].update(
        min_rows={"train": 100, "val": 50, "test": 50},
        max_null_fraction_per_column={"x": 0.15},
        min_class_share=0.1,
        max_class_share=0.9,
    )
    raw["registry"] = {"model_name": "mixed", "experiment": "mixed"}
    return raw


@pytest.mark.parametrize("sharing", ["hard", "cross_stitch", "mmoe"])
def test_every_sharing_reads_the_text_and_the_columns_beside_it(tmp_path, sharing):
    raw = mixed_dict(tmp_path)
    raw["model"]["sharing"] = sharing
    params = Params.model_validate(raw)
    model = build_model(params, build_tasks(params.tasks), features=FittedFeatures(width=4))
    ids = torch.randint(1, 100, (3, 8)).float()
    features = torch.zeros(3, 4)
    out = model(torch.cat([ids, features], dim=1))
    assert out["above"].shape == (3, 2) and out["twice"].shape == (3,)
    moved = model(torch.cat([ids, features + 1.0], dim=1))
    assert not torch.allclose(out["twice"], moved["twice"])  # the features reach the heads


def test_a_label_only_the_columns_predict_is_learned_and_served(tmp_path, monkeypatch, mlflow_db):
    monkeypatch.chdir(tmp_path)
    params = Params.model_validate(mixed_dict(tmp_path))
    check_tasks(params)
    run_stages(params, tmp_path)
    report = read_selection(tmp_path)
    # the text is noise: from the text alone the baseline would score near the majority share
    assert report.tasks["above"].baseline > 0.85 and report.tasks["above"].mtl > 0.85
    assert report.tasks["above"].trivial is not None and report.tasks["above"].trivial < 0.75
    assert report.tasks["twice"].mtl < 0.5 * report.tasks["twice"].trivial

    model = mlflow.pyfunc.load_model("models:/mixed/1")
    request = pd.DataFrame({"text": ["red car", "old song"], "x": [3.0, np.nan], "c": ["a", "never seen"]})
    answers = model.predict(request)
    assert answers["above"].tolist()[0] == 1 and answers["twice"].tolist()[0] > 3.0
    card = mlflow.MlflowClient().get_model_version("mixed", "1").description
    assert "beside it the feature columns `x`, `c`" in card
