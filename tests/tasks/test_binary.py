"""``binary``: a logit head judged by AUROC, whose bootstrap recomputes the AUROC of every
resample (it does not decompose over rows), and a real training that learns one."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import torchmetrics

from components.bootstrap import change_samples, resample_counts
from components.config import Params, TaskConfig
from components.tasks import BinaryTask, build_task
from tests.helpers.projects import tiny_params_dict
from tests.helpers.stages import train_tiny


def _task(**config) -> BinaryTask:
    task = build_task("rich", TaskConfig(type="binary", label="rich", **config))
    assert isinstance(task, BinaryTask)
    return task


def test_the_resampled_auroc_is_the_auroc_of_the_rows_each_resample_draws():
    """Against torchmetrics on each resample's rows written out, with ties and unlabeled rows."""
    generator = torch.Generator().manual_seed(0)
    rows = 60
    scores = torch.randint(0, 12, (rows,), generator=generator).float() / 12  # many ties
    target = torch.randint(0, 2, (rows,), generator=generator)
    target[::7] = -1  # no label: left out of every resample's AUROC
    task = _task()
    counts = resample_counts(rows, 40, seed=1)

    fast = task.resampled_metric(task.row_statistics(scores, target), counts)

    labeled = target >= 0
    for sample, weights in enumerate(counts):
        drawn = torch.repeat_interleave(torch.arange(rows), weights.long())
        drawn = drawn[labeled[drawn]]
        expected = torchmetrics.functional.classification.binary_auroc(scores[drawn], target[drawn])
        assert float(fast[sample]) == pytest.approx(float(expected), abs=1e-6), sample


def test_a_hand_computable_paired_change():
    """Four rows, two positives: the baseline orders 3 of the 4 pairs right (AUROC 0.75), the
    MTL model all 4 (1.0): Δ = +33.3 % on the rows as they are."""
    target = torch.tensor([0, 0, 1, 1])
    task = _task()
    baseline = task.row_statistics(torch.tensor([0.1, 0.4, 0.35, 0.8]), target)
    mtl = task.row_statistics(torch.tensor([0.1, 0.2, 0.35, 0.8]), target)
    change = change_samples(task, baseline, mtl, torch.ones(1, 4))
    assert change.tolist() == pytest.approx([1 / 3])


def test_metrics_loss_answers_and_config():
    task = _task(classes=["<=50K", ">50K"])
    probability = torch.tensor([0.9, 0.2, 0.6, 0.4])
    target = torch.tensor([1, 0, 0, -1])  # the last row unlabeled
    scores = task.score(probability, target)
    assert scores["auroc"] == pytest.approx(1.0) and scores["accuracy"] == pytest.approx(2 / 3)
    expected_log_loss = -(math.log(0.9) + math.log(0.8) + math.log(0.4)) / 3  # each labeled row's own probability
    assert scores["log_loss"] == pytest.approx(expected_log_loss, rel=1e-5)
    head = task.head(3)
    assert task.loss(head, torch.tensor([2.0, -1.0, 0.0]), torch.tensor([1, 0, -1])) > 0
    frame = pd.DataFrame({"rich": [">50K", "<=50K", None]}).assign(id=["a", "b", "c"])
    assert task.label_ids(frame)["rich"].tolist()[:2] == [1, 0]
    assert task.row_answers(probability, [0, 1], frame, None) == pytest.approx([0.9, 0.2])
    assert "the probability that rich is '>50K'" in task.describe_answer()
    with pytest.raises(ValueError, match="classes name the negative and the positive label"):
        BinaryTask.check_config(TaskConfig(type="binary", label="rich", classes=["a", "b", "c"]))
    trivial = task.trivial_prediction(torch.tensor([1, 0, 0, 0, -1]), 3)
    assert trivial.tolist() == pytest.approx([0.25] * 3)


def test_a_real_training_learns_a_binary_task(tiny_frames, tmp_path):
    """Is the left digit at least 5? A tiny CNN beats chance clearly in two epochs."""
    raw = tiny_params_dict()
    raw["tasks"] = {"big_left": {"type": "binary", "label": "big_left"}, "right": raw["tasks"]["right"]}
    frames = {split: frame.assign(big_left=(frame["left"] >= 5).astype(int)) for split, frame in tiny_frames.items()}
    _, history = train_tiny(Params.model_validate(raw), frames, tmp_path)
    assert history[-1].val_metrics["big_left"] > 0.7  # AUROC, against 0.5 for a constant
