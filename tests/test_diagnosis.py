"""Why the gate said no: trivial levels, loss scales and the fallback to conflicts, each
finding naming the setting to try."""

from __future__ import annotations

import math

import pytest
import torch

from components.config import TaskConfig
from components.diagnosis import diagnose, trivial_levels
from components.selection import TaskResult
from components.tasks import build_task
from components.training.loader import TensorSplit


def split(**targets) -> TensorSplit:
    rows = len(next(iter(targets.values())))
    return TensorSplit(torch.zeros(rows, 1), targets)


def test_trivial_levels_are_the_majority_class_the_median_and_the_majority_labels():
    tasks = {
        "kind": build_task("kind", TaskConfig(type="classification", label="kind", num_classes=3)),
        "price": build_task("price", TaskConfig(type="regression", label="price")),
        "tags": build_task("tags", TaskConfig(type="multilabel", label=["a", "b"])),
    }
    train = split(
        kind=torch.tensor([2, 2, 1, -1]),  # majority 2; the missing label is not counted
        price=torch.tensor([1.0, 2.0, 10.0, math.nan]),  # median 2
        tags=torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]),  # a mostly on, b mostly off
    )
    val = split(
        kind=torch.tensor([2, 0, 2, 1]),
        price=torch.tensor([2.0, 4.0, 0.0, 2.0]),
        tags=torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]),
    )
    levels = trivial_levels(tasks, train.targets, val)
    assert levels["kind"] == pytest.approx(0.5)  # class 2 right on 2 of 4 rows
    assert levels["price"] == pytest.approx(1.0)  # |0| + |2| + |2| + |0| over 4
    # predicting [1, 0] everywhere: 3 true positives, 1 false positive, 1 false negative
    assert levels["tags"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))


def result(baseline, mtl, trivial, passed, higher=True, metric="accuracy") -> TaskResult:
    change = (mtl - baseline) / baseline * (1 if higher else -1)
    return TaskResult(metric, higher, baseline, mtl, change, 0.02, passed, mtl, baseline, trivial)


def test_a_head_starved_by_the_shared_model_is_named_with_what_to_try():
    findings = diagnose(
        {"genres": result(0.33, 0.05, 0.05, False, metric="micro_f1"), "rating": result(1.0, 1.0, 0.5, True)},
        {"genres": 0.6, "rating": 1.1},
    )
    assert findings == [
        "genres: MTL micro_f1 0.05 is no better than a constant answer (0.05); alone it reached 0.33: the "
        "shared model starves it: weigh it up (loss_weighting: uncertainty, or fixed with weights) or raise "
        "tasks.genres.lr_scale"
    ]


def test_a_task_nothing_learns_points_at_the_data_not_the_sharing():
    (finding,) = diagnose({"mpaa": result(0.70, 0.70, 0.70, True)}, {})
    assert "nor is the single-task baseline: the input may not predict it" in finding


def test_losses_apart_suggest_a_loss_weighting_and_an_unexplained_regression_suggests_gradient_methods():
    findings = diagnose(
        {"price": result(2.0, 2.5, 9.0, False, higher=False, metric="mae"), "kind": result(0.9, 0.9, 0.3, True)},
        {"price": 250.0, "kind": 1.1},
    )
    assert findings == [
        "losses differ 227x at the start (price 250, kind 1.1): the largest steers the shared layers; "
        "loss_weighting: uncertainty or gradnorm balances them"
    ]
    (conflict,) = diagnose(
        {"price": result(2.0, 2.5, 9.0, False, higher=False, metric="mae"), "kind": result(0.9, 0.9, 0.3, True)},
        {"price": 1.0, "kind": 1.1},
    )
    assert conflict.startswith("price: regresses with no collapsed head and no loss-scale gap")
    assert "training.gradient: pcgrad, upgrad or cagrad" in conflict and "`mtl compare`" in conflict
    assert diagnose({"kind": result(0.9, 0.91, 0.3, True)}, {"kind": 1.0}) == []  # nothing to say


def test_measured_conflicts_name_the_task_a_regressing_one_fought_most():
    results = {
        "price": result(2.0, 2.5, 9.0, False, higher=False, metric="mae"),
        "kind": result(0.9, 0.9, 0.3, True),
        "size": result(0.8, 0.8, 0.3, True),
    }
    conflict = {"kind vs price": 0.12, "price vs size": 0.47, "kind vs size": 0.9}
    cosine = {"kind vs price": 0.3, "price vs size": -0.05, "kind vs size": -0.4}
    (finding,) = diagnose(results, {"price": 1.0, "kind": 1.1, "size": 1.0}, conflict, cosine)
    assert "its gradients conflicted with size's on 47% of measured steps (mean cosine -0.05)" in finding
    assert "`mtl affinity` proposes groups" in finding
    # gradients that hardly ever conflicted point away from gradient methods
    agreeing = {"kind vs price": 0.0, "price vs size": 0.04, "kind vs size": 0.9}
    (finding,) = diagnose(results, {"price": 1.0, "kind": 1.1, "size": 1.0}, agreeing, cosine)
    assert finding.startswith(
        "price: regresses, but its gradients rarely conflicted with the others' (at most 4% of measured steps, "
        "with size; mean cosine -0.05): a gradient method is unlikely to help"
    )
    assert "raise tasks.price.lr_scale" in finding


def test_a_rejection_on_delta_m_alone_names_the_weakest_task():
    results = {"left": result(0.95, 0.949, 0.1, True), "sum": result(1.30, 1.31, 3.0, True, higher=False, metric="mae")}
    (finding,) = diagnose(results, {"left": 1.0, "sum": 1.2}, delta_m=(-0.0044, None), min_delta_m=0.0)
    assert finding.startswith(
        "no task regresses beyond its tolerance, but Δm -0.44% does not reach selection.min_delta_m"
    )
    assert "(weakest: sum -0.77%)" in finding
    # under lower_bound the lower end of Δm's interval is what failed
    (finding,) = diagnose(results, {"left": 1.0, "sum": 1.2}, delta_m=(0.004, -0.006), min_delta_m=0.0)
    assert "Δm +0.40% (lower end -0.60%)" in finding
    assert diagnose(results, {"left": 1.0, "sum": 1.2}, delta_m=(0.004, 0.001), min_delta_m=0.0) == []
