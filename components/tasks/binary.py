"""``binary``: the probability that a row is positive (income > 50K, a click, churn).

Head: one logit. Loss: binary cross-entropy on the logit. Metrics: AUROC (primary, from
torchmetrics), accuracy at 0.5 and log-loss. Labels are 0/1, or two names in ``classes``
(``[negative, positive]``) read as 0 and 1; a missing label is skipped. Served answers are
probabilities. Validation is classification's: labels in {0, 1}, each class's share of a
split within bounds, val and test distributed as train.

AUROC does not decompose over rows, so its bootstrap (``components.bootstrap``) cannot sum
per-row statistics: :meth:`BinaryTask.resampled_metric` recomputes the Mann-Whitney
statistic on every resample's row weights at once (rows sorted by score once, ties counted
half), one (resamples × rows) pass.

Example::

    >>> from components.config import TaskConfig
    >>> task = BinaryTask("rich", TaskConfig(type="binary", label="rich"))
    >>> scores, labels = torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])
    >>> task.score(scores, labels)["auroc"]
    0.75
    >>> counts = torch.tensor([[1.0, 1, 1, 1], [1.0, 0, 1, 1]])  # the rows; row 2 left out
    >>> task.resampled_metric(task.row_statistics(scores, labels), counts).tolist()
    [0.75, 1.0]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from components.config import TaskConfig
from components.data.encoders import InputEncoder
from components.tasks.classification import ClassificationTask

if TYPE_CHECKING:
    import torchmetrics


class LogitHead(nn.Module):
    """A linear layer giving one logit per row."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 1)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(features).squeeze(-1)


def _log_loss() -> torchmetrics.Metric:
    """Mean binary cross-entropy of probabilities, as a torchmetrics metric: torchmetrics has
    none for log-loss (its calibration error is another quantity)."""
    import torchmetrics

    class LogLoss(torchmetrics.Metric):
        higher_is_better = False
        total: Tensor
        rows: Tensor

        def __init__(self) -> None:
            super().__init__()
            self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state("rows", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

        def update(self, probability: Tensor, target: Tensor) -> None:
            clipped = probability.double().clamp(1e-7, 1 - 1e-7)
            self.total += F.binary_cross_entropy(clipped, target.double(), reduction="sum")
            self.rows += target.numel()

        def compute(self) -> Tensor:
            return self.total / self.rows

    return LogLoss()


class BinaryTask(ClassificationTask):
    type_name = "binary"
    answer_description = "the probability that {labels} is the positive class (1)"
    metric_name = "auroc"
    higher_is_better = True
    keys = frozenset({"classes", "min_class_share", "max_class_share"})

    @classmethod
    def check_config(cls, config: TaskConfig) -> None:
        super(ClassificationTask, cls).check_config(config)
        if config.classes is not None and (len(config.classes) != 2 or len(set(config.classes)) != 2):
            raise ValueError(f"a binary task's classes name the negative and the positive label (got {config.classes})")

    @property
    def num_classes(self) -> int:
        return 2

    def describe_answer(self) -> str:
        if self.config.classes:
            return f"the probability that {self.column} is {self.config.classes[1]!r} (not {self.config.classes[0]!r})"
        return self.answer_description.format(labels=self.column)

    def head(self, in_features: int, image_size: int | None = None) -> nn.Module:
        return LogitHead(in_features)

    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(output, target.float())

    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        return torch.sigmoid(output)

    def metrics(self) -> dict[str, torchmetrics.Metric]:
        import torchmetrics  # here: a stage that scores nothing never pays its import

        return {
            "auroc": torchmetrics.classification.BinaryAUROC(),
            "accuracy": torchmetrics.classification.BinaryAccuracy(),
            "log_loss": _log_loss(),
        }

    def row_statistics(self, prediction: Tensor, target: Tensor) -> Tensor | None:
        """[score, positive, negative] per row (both 0 on a row without a label)."""
        labeled = self.labeled(target)
        positive = labeled & (target == 1)
        return torch.stack([prediction.float(), positive.float(), (labeled & ~positive).float()], dim=-1)

    def resampled_metric(self, statistics: Tensor, counts: Tensor) -> Tensor:
        """AUROC of each resample (``counts``: (resamples, rows) weights): the weight of
        (positive, negative) pairs ordered right, ties half, over all pairs' weight."""
        order = torch.argsort(statistics[:, 0])
        scores, positive, negative = statistics[order].unbind(-1)
        weights = counts[:, order].double()
        _, group = torch.unique_consecutive(scores, return_inverse=True)  # equal scores: one group
        groups = int(group.max()) + 1 if len(group) else 0
        positives = weights.new_zeros(len(weights), groups).index_add_(1, group, weights * positive.double())
        negatives = weights.new_zeros(len(weights), groups).index_add_(1, group, weights * negative.double())
        below = negatives.cumsum(dim=1) - negatives
        ordered = (positives * (below + 0.5 * negatives)).sum(dim=1)
        return (ordered / (positives.sum(dim=1) * negatives.sum(dim=1))).float()

    def trivial_prediction(self, train_target: Tensor, rows: int) -> Tensor | None:
        """The training split's positive rate for every row (AUROC 0.5)."""
        labeled = train_target[self.labeled(train_target)]
        return torch.full((rows,), float(labeled.float().mean())) if len(labeled) else None

    def row_answers(self, prediction: Tensor, rows: list[int], own: pd.DataFrame, encoder: InputEncoder) -> list[Any]:
        return [float(prediction[row]) for row in rows]
