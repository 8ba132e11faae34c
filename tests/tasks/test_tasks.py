"""Task heads, losses and metrics; rows without a label are masked, never imputed."""

import math

import pandas as pd
import pytest
import torch

from components.config import TaskConfig
from components.tasks import MISSING_CLASS, build_task
from components.training.evaluation import evaluate
from components.training.loader import TensorSplit
from tests.helpers.stages import targets

CLASSIFY = TaskConfig(type="classification", label="y", num_classes=2)
REGRESS = TaskConfig(type="regression", label="y")


def test_missing_labels_become_markers_not_values():
    frame = pd.DataFrame({"y": [1.0, None, 0.0]})
    assert targets(frame, CLASSIFY).tolist() == [1, MISSING_CLASS, 0]
    values = targets(frame, REGRESS)
    assert values[0] == 1.0 and math.isnan(values[1])


def test_cross_entropy_ignores_unlabeled_rows():
    task = build_task("c", CLASSIFY)
    logits = torch.tensor([[2.0, 0.0], [0.0, 5.0], [0.0, 0.0]])
    loss = task.loss(task.head(4), logits, torch.tensor([0, MISSING_CLASS, 1]))
    # mean of -log softmax over the two labeled rows: log(1 + e^-2) and log 2
    assert loss.item() == pytest.approx((math.log(1 + math.exp(-2)) + math.log(2)) / 2)


def test_regression_loss_ignores_missing_values():
    task = build_task("r", REGRESS)
    head = task.head(4)  # standardisation starts at mean 0, std 1
    loss = task.loss(head, torch.tensor([1.0, 5.0]), torch.tensor([3.0, float("nan")]))
    assert loss.item() == pytest.approx(4.0)


def test_batch_without_labels_contributes_zero_and_a_clean_gradient():
    task = build_task("c", CLASSIFY)
    logits = torch.randn(3, 2, requires_grad=True)
    loss = task.loss(task.head(4), logits, torch.full((3,), MISSING_CLASS))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros(3, 2))


def test_standardisation_uses_labeled_targets_only():
    task = build_task("r", REGRESS)
    head = task.head(4)
    task.prepare_head(head, torch.tensor([2.0, float("nan"), 4.0]))
    assert head.target_mean.item() == pytest.approx(3.0) and head.target_std.item() == pytest.approx(math.sqrt(2))


def test_metrics_skip_unlabeled_rows():
    class Fixed(torch.nn.Module):
        heads = torch.nn.ModuleDict({"c": torch.nn.Identity()})

        def forward(self, inputs, tasks):
            return {"c": inputs}

        def eval(self):
            return self

    tasks = {"c": build_task("c", CLASSIFY)}
    logits = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # predicts 0, 0, 1, 1
    split = TensorSplit(logits, {"c": torch.tensor([0, MISSING_CLASS, 0, MISSING_CLASS])})
    # labeled rows 0 and 2: one right, one wrong
    assert evaluate(Fixed(), tasks, split, batch_size=2, device=torch.device("cpu"))["c"] == pytest.approx(0.5)


MULTI = TaskConfig(type="multilabel", label=["a", "b", "c"])


def test_multilabel_bce_masks_single_entries():
    task = build_task("m", MULTI)
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    target = torch.tensor([[1.0, float("nan"), 0.0]])
    loss = task.loss(task.head(4), logits, target)
    # mean BCE over the two labeled entries: -log σ(0) and -log(1 - σ(-1)) = log 2 and log(1 + e^-1)
    assert loss.item() == pytest.approx((math.log(2) + math.log(1 + math.exp(-1))) / 2)
    assert not task.labeled(target).item()  # the row is incomplete, so metrics skip it


def test_multilabel_f1_by_hand():
    task = build_task("m", MULTI)
    metrics = task.metrics()
    predictions = torch.tensor([[1, 0, 1], [1, 1, 0]])
    targets = torch.tensor([[1, 0, 0], [1, 0, 1]])
    for metric in metrics.values():
        metric.update(predictions, targets)
    # micro: tp 2, fp 2, fn 1 -> F1 = 2·2 / (2·2 + 2 + 1) = 4/7
    assert metrics["micro_f1"].compute().item() == pytest.approx(4 / 7)
    # per label F1: a = 1, b = 0, c = 0 -> macro 1/3
    assert metrics["macro_f1"].compute().item() == pytest.approx(1 / 3)


def test_classification_macro_f1_by_hand():
    metrics = build_task("c", TaskConfig(type="classification", label="y", num_classes=2)).metrics()
    for metric in metrics.values():
        metric.update(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]))
    assert metrics["accuracy"].compute().item() == pytest.approx(0.75)
    # class 0: P 1/2, R 1 -> 2/3; class 1: P 1, R 2/3 -> 0.8; macro = (2/3 + 0.8) / 2
    assert metrics["macro_f1"].compute().item() == pytest.approx((2 / 3 + 0.8) / 2)


def test_regression_l1_loss():
    task = build_task("r", TaskConfig(type="regression", label="y", loss="l1"))
    assert task.loss(task.head(4), torch.tensor([1.0, 5.0]), torch.tensor([3.0, 4.0])).item() == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "multilabel", "label": "a"}, "list of label columns"),
        ({"type": "classification", "label": ["a", "b"], "num_classes": 2}, "one label column"),
        ({"type": "multilabel", "label": ["a", "a"]}, "two distinct"),
        ({"type": "classification", "label": "a", "num_classes": 3, "loss": "l1"}, "classification task takes no loss"),
        ({"type": "regression", "label": "a", "num_classes": 3}, "regression task takes no num_classes"),
        ({"type": "span", "label": ["a", "b", "c"]}, "two label columns"),
        ({"type": "tagging", "label": "tags", "tags": ["B-PER", "I-PER"]}, "include O"),
        ({"type": "segmentation", "label": "m", "num_classes": 3, "ignore_index": 1}, "is a class id"),
        ({"type": "sentiment", "label": "a"}, "unknown type 'sentiment'; valid: classification, multilabel"),
    ],
)
def test_task_config_rules(config, message):
    """Each task type's file holds its own rules; build_task applies them."""
    with pytest.raises(ValueError, match=message):
        build_task("t", TaskConfig(**config))


def test_multilabel_targets_from_columns():
    frame = pd.DataFrame({"a": [1, 0], "b": [0.0, None], "c": [1, 1]})
    target = targets(frame, MULTI)
    assert target.shape == (2, 3) and math.isnan(target[1, 1]) and target[0].tolist() == [1.0, 0.0, 1.0]


def test_every_registered_type_is_one_file_named_after_it():
    from pathlib import Path

    from components.tasks import TASK_TYPES

    for name, cls in TASK_TYPES.items():
        assert cls.type_name == name and Path(__import__(cls.__module__, fromlist=["_"]).__file__).stem == name
