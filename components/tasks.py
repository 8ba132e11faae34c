"""Task registry: a task type maps to its head, its loss and its primary metric.

A row may lack the label of some tasks (``MISSING_CLASS`` for classes, NaN for values):
that task's loss and metric skip the row, nothing is imputed, and a batch with no label
for a task contributes a zero loss for it.

Example::

    >>> task = build_task("left", TaskConfig(type="classification", label="left", num_classes=10))
    >>> task.metric_name, task.higher_is_better
    ('accuracy', True)
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torchmetrics
from torch import Tensor, nn
from torch.nn import functional as F

from components.config import TaskConfig

MISSING_CLASS = -1


class Task(ABC):
    """One prediction target: how to build its head, score it and turn outputs into predictions."""

    metric_name: str
    higher_is_better: bool

    def __init__(self, name: str, config: TaskConfig) -> None:
        self.name = name
        self.config = config

    @abstractmethod
    def head(self, in_features: int) -> nn.Module: ...

    @abstractmethod
    def labeled(self, target: Tensor) -> Tensor:
        """Boolean mask of the rows that carry a label for this task."""

    @abstractmethod
    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        """The loss over rows that all carry a label."""

    def loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        mask = self.labeled(target)
        if not mask.any():
            return output.sum() * 0.0  # keeps the graph, contributes nothing
        return self.labeled_loss(head, output[mask], target[mask])

    @abstractmethod
    def metrics(self) -> dict[str, torchmetrics.Metric]:
        """Fresh metrics updated with ``(prediction, target)``; the primary one under ``metric_name``."""

    @abstractmethod
    def predict(self, head: nn.Module, output: Tensor) -> Tensor: ...

    def prepare_head(self, head: nn.Module, train_targets: Tensor) -> None:
        """Fits anything the head needs from the training targets before training starts."""

    def metric_target(self, target: Tensor) -> Tensor:
        """The labeled targets in the form the metrics expect."""
        return target

    def update_metrics(self, metrics: dict[str, torchmetrics.Metric], prediction: Tensor, target: Tensor) -> None:
        """Feeds the rows labeled for this task to every metric."""
        labeled = self.labeled(target)
        for metric in metrics.values():
            metric.update(prediction[labeled], self.metric_target(target[labeled]))

    def score(self, prediction: Tensor, target: Tensor) -> dict[str, float]:
        """Every metric of ``prediction`` (as :meth:`predict` returns it) against ``target``."""
        metrics = self.metrics()
        self.update_metrics(metrics, prediction, target)
        return {key: float(metric.compute()) for key, metric in metrics.items()}


class ClassificationTask(Task):
    metric_name = "accuracy"
    higher_is_better = True

    def head(self, in_features: int) -> nn.Module:
        return nn.Linear(in_features, self.config.num_classes)

    def labeled(self, target: Tensor) -> Tensor:
        return target != MISSING_CLASS

    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output, target)

    def metrics(self) -> dict[str, torchmetrics.Metric]:
        classes = self.config.num_classes
        return {
            "accuracy": torchmetrics.classification.MulticlassAccuracy(classes, average="micro"),
            "macro_f1": torchmetrics.classification.MulticlassF1Score(classes, average="macro"),
        }

    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        return output.argmax(dim=-1)


class StandardizedRegressionHead(nn.Module):
    """Predicts the target in standardized units, so that under equal loss weights an MSE on a
    0..18 target does not drown the cross-entropies of the other tasks."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 1)
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(features).squeeze(-1)

    def standardize(self, target: Tensor) -> Tensor:
        return (target - self.target_mean) / self.target_std

    def destandardize(self, output: Tensor) -> Tensor:
        return output * self.target_std + self.target_mean


class RegressionTask(Task):
    metric_name = "mae"
    higher_is_better = False

    def head(self, in_features: int) -> nn.Module:
        return StandardizedRegressionHead(in_features)

    def prepare_head(self, head: nn.Module, train_targets: Tensor) -> None:
        labeled = train_targets[self.labeled(train_targets)].float()
        head.target_mean.fill_(labeled.mean())
        head.target_std.fill_(labeled.std().clamp_min(1e-6))

    def labeled(self, target: Tensor) -> Tensor:
        return ~torch.isnan(target)

    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        loss = F.l1_loss if self.config.loss == "l1" else F.mse_loss
        return loss(output, head.standardize(target))

    def metrics(self) -> dict[str, torchmetrics.Metric]:
        return {"mae": torchmetrics.MeanAbsoluteError()}

    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        return head.destandardize(output)


class MultilabelTask(Task):
    """Independent yes/no labels, one 0/1 column each; a missing entry masks that entry only."""

    metric_name = "micro_f1"
    higher_is_better = True

    @property
    def num_labels(self) -> int:
        return len(self.config.label)

    def head(self, in_features: int) -> nn.Module:
        return nn.Linear(in_features, self.num_labels)

    def labeled(self, target: Tensor) -> Tensor:
        return ~torch.isnan(target).any(dim=-1)  # metrics need whole rows

    def loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        entries = ~torch.isnan(target)
        if not entries.any():
            return output.sum() * 0.0
        return self.labeled_loss(head, output[entries], target[entries])

    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(output, target)

    def metrics(self) -> dict[str, torchmetrics.Metric]:
        return {
            "micro_f1": torchmetrics.classification.MultilabelF1Score(self.num_labels, average="micro"),
            "macro_f1": torchmetrics.classification.MultilabelF1Score(self.num_labels, average="macro"),
        }

    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        return (output > 0).long()  # sigmoid > 0.5

    def metric_target(self, target: Tensor) -> Tensor:
        return target.long()


TASK_TYPES: dict[str, type[Task]] = {
    "classification": ClassificationTask,
    "multilabel": MultilabelTask,
    "regression": RegressionTask,
}


def build_task(name: str, config: TaskConfig) -> Task:
    try:
        return TASK_TYPES[config.type](name, config)
    except KeyError:
        raise ValueError(f"task {name!r}: unknown type {config.type!r}; valid: {', '.join(TASK_TYPES)}") from None


def build_tasks(configs: dict[str, TaskConfig]) -> dict[str, Task]:
    return {name: build_task(name, config) for name, config in configs.items()}
