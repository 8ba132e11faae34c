"""Task heads, losses and metrics; rows without a label are masked, never imputed."""

import math

import pandas as pd
import pytest
import torch

from components.config import TaskConfig
from components.data import targets_tensor
from components.tasks import MISSING_CLASS, build_task
from components.training import TensorSplit, evaluate

CLASSIFY = TaskConfig(type="classification", label="y", num_classes=2)
REGRESS = TaskConfig(type="regression", label="y")


def test_missing_labels_become_markers_not_values():
    frame = pd.DataFrame({"y": [1.0, None, 0.0]})
    assert targets_tensor(frame, CLASSIFY).tolist() == [1, MISSING_CLASS, 0]
    values = targets_tensor(frame, REGRESS)
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
