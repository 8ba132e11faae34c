"""Task registry: a task type maps to its head, its loss and its primary metric.

================== ====================================== ==================================
type               loss                                   primary metric (others)
================== ====================================== ==================================
``classification`` cross-entropy                          accuracy (macro-F1)
``multilabel``     binary cross-entropy                   micro-F1 (macro-F1)
``regression``     MSE or L1 on the standardised target   MAE
``tagging``        token cross-entropy, padding masked    seqeval entity F1 on BIO tags
                                                          (token accuracy)
``span``           start/end cross-entropy                SQuAD F1 (exact match)
``segmentation``   pixel cross-entropy, ignore index      mIoU (pixel accuracy)
================== ====================================== ==================================

``tagging``, ``span`` and ``segmentation`` are dense: their heads read the backbone's
per-token or per-pixel features rather than its pooled vector.

A row may lack the label of some tasks (``MISSING_CLASS`` for classes, NaN for values,
``IGNORE`` positions for dense targets): that task's loss and metric skip the row, nothing
is imputed, and a batch with no label for a task contributes a zero loss for it.

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
from components.inputs import IGNORE

MISSING_CLASS = -1
MAX_ANSWER_TOKENS = 30  # the longest span a span head predicts, as in BERT's SQuAD evaluation


class Task(ABC):
    """One prediction target: how to build its head, score it and turn outputs into predictions."""

    metric_name: str
    higher_is_better: bool
    #: reads per-token or per-pixel features instead of the pooled vector
    dense: bool = False

    def __init__(self, name: str, config: TaskConfig) -> None:
        self.name = name
        self.config = config

    @abstractmethod
    def head(self, in_features: int, input_size: int | None = None) -> nn.Module:
        """The task's head on features of width ``in_features`` (channels for a feature
        map); ``input_size`` is the side of the input image, for heads that upsample."""

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
        if not labeled.any():  # e.g. a batch of another dataset's rows
            return
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

    def head(self, in_features: int, input_size: int | None = None) -> nn.Module:
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

    def head(self, in_features: int, input_size: int | None = None) -> nn.Module:
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

    def head(self, in_features: int, input_size: int | None = None) -> nn.Module:
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


class SeqevalScore(torchmetrics.Metric):
    """Entity-level F1 (``score="f1"``) or token accuracy of BIO tag sequences, scored by
    seqeval (CoNLL rules: an entity counts only when its type and both boundaries match).

    Updated with (B, L) predicted and gold tag indices, ``IGNORE`` where a position is no
    word's first sub-word; only word positions form the sequences seqeval scores.
    """

    full_state_update = False

    def __init__(self, tags: list[str], score: str = "f1") -> None:
        super().__init__()
        self.tags, self.score = list(tags), score
        self.add_state("predicted", default=[], dist_reduce_fx="cat")
        self.add_state("gold", default=[], dist_reduce_fx="cat")
        self.add_state("lengths", default=[], dist_reduce_fx="cat")

    def update(self, prediction: Tensor, target: Tensor) -> None:
        words = target != IGNORE
        self.predicted.append(prediction[words])
        self.gold.append(target[words])
        self.lengths.append(words.sum(dim=1))

    def compute(self) -> Tensor:
        from seqeval.metrics import accuracy_score, f1_score

        if not self.lengths:
            return torch.tensor(0.0)
        bounds = [0, *torch.cat(self.lengths).cumsum(0).tolist()]  # each sentence's slice of the flat tags

        def sentences(flat: Tensor) -> list[list[str]]:
            names = [self.tags[i] for i in flat.tolist()]
            return [names[a:b] for a, b in zip(bounds, bounds[1:])]

        predicted, gold = sentences(torch.cat(self.predicted)), sentences(torch.cat(self.gold))
        if self.score == "accuracy":
            return torch.tensor(float(accuracy_score(gold, predicted)))
        return torch.tensor(float(f1_score(gold, predicted, zero_division=0)))


class TaggingTask(Task):
    """One BIO tag per word (its first sub-word token), e.g. named entities (CoNLL-2003)."""

    metric_name = "entity_f1"
    higher_is_better = True
    dense = True

    def head(self, in_features: int, input_size: int | None = None) -> nn.Module:
        return nn.Linear(in_features, len(self.config.tags))  # applied at every token

    def labeled(self, target: Tensor) -> Tensor:
        return (target != IGNORE).any(dim=1)

    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output.flatten(0, 1), target.flatten(), ignore_index=IGNORE)

    def metrics(self) -> dict[str, torchmetrics.Metric]:
        return {"entity_f1": SeqevalScore(self.config.tags), "token_accuracy": SeqevalScore(self.config.tags, "accuracy")}

    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        return output.argmax(dim=-1)


class SQuADSpanScore(torchmetrics.Metric):
    """SQuAD exact match or F1 (in 0..1) of predicted (start, end) token spans, computed by
    torchmetrics' SQuAD metric on the spans written as their token positions.

    Prediction and gold index the same tokens, so this is SQuAD's bag-of-tokens F1 over
    sub-word tokens rather than over normalised words; (0, 0) is "no answer" (SQuAD 2.0):
    it matches only another "no answer".
    """

    full_state_update = False

    def __init__(self, score: str = "f1") -> None:
        super().__init__()
        self.score = score
        self.squad = torchmetrics.text.SQuAD()

    @staticmethod
    def _as_text(span: list[int]) -> str:
        start, end = span
        return "" if start == 0 else " ".join(str(position) for position in range(start, end + 1))

    def update(self, prediction: Tensor, target: Tensor) -> None:
        offset = int(self.squad.total)
        predictions, targets = [], []
        for row, (predicted, gold) in enumerate(zip(prediction.tolist(), target.tolist())):
            key = str(offset + row)
            predictions.append({"prediction_text": self._as_text(predicted), "id": key})
            targets.append({"answers": {"answer_start": [gold[0]], "text": [self._as_text(gold)]}, "id": key})
        self.squad.update(predictions, targets)

    def compute(self) -> Tensor:
        if int(self.squad.total) == 0:
            return torch.tensor(0.0)
        return self.squad.compute()[self.score] / 100.0

    def reset(self) -> None:
        super().reset()
        self.squad.reset()


class SpanTask(Task):
    """The answer to a question as a (start, end) token span of the context (SQuAD)."""

    metric_name = "f1"
    higher_is_better = True
    dense = True

    def head(self, in_features: int, input_size: int | None = None) -> nn.Module:
        return nn.Linear(in_features, 2)  # start and end logit at every token

    def labeled(self, target: Tensor) -> Tensor:
        return target[:, 0] != IGNORE

    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        return (F.cross_entropy(output[..., 0], target[:, 0]) + F.cross_entropy(output[..., 1], target[:, 1])) / 2

    def metrics(self) -> dict[str, torchmetrics.Metric]:
        return {"f1": SQuADSpanScore("f1"), "exact_match": SQuADSpanScore("exact_match")}

    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        """The best-scoring span with start <= end < start + ``MAX_ANSWER_TOKENS``."""
        start, end = output[..., 0], output[..., 1]
        length = start.shape[1]
        scores = start.unsqueeze(2) + end.unsqueeze(1)  # (B, start, end)
        allowed = torch.ones(length, length, dtype=torch.bool, device=output.device).triu()
        allowed &= ~torch.ones_like(allowed).triu(MAX_ANSWER_TOKENS)
        best = scores.masked_fill(~allowed, float("-inf")).flatten(1).argmax(dim=1)
        return torch.stack([best // length, best % length], dim=1)


class SegmentationHead(nn.Module):
    """A 1×1 convolution to class scores on the backbone's feature map, upsampled
    bilinearly to the input size (Long et al. 2015, "Fully Convolutional Networks")."""

    def __init__(self, in_channels: int, classes: int, size: int) -> None:
        super().__init__()
        self.classify = nn.Conv2d(in_channels, classes, kernel_size=1)
        self.size = size

    def forward(self, features: Tensor) -> Tensor:
        return F.interpolate(self.classify(features), size=(self.size, self.size), mode="bilinear", align_corners=False)


class SegmentationTask(Task):
    """A class per pixel; pixels whose mask holds ``ignore_index`` are left out."""

    metric_name = "miou"
    higher_is_better = True
    dense = True

    def head(self, in_features: int, input_size: int | None = None) -> nn.Module:
        if input_size is None:
            raise ValueError(f"task {self.name!r}: a segmentation head needs the input size")
        return SegmentationHead(in_features, self.config.num_classes, input_size)

    def labeled(self, target: Tensor) -> Tensor:
        return (target != self.config.ignore_index).flatten(1).any(dim=1)

    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output, target, ignore_index=self.config.ignore_index)

    def metrics(self) -> dict[str, torchmetrics.Metric]:
        classes, ignore = self.config.num_classes, self.config.ignore_index
        return {
            "miou": torchmetrics.classification.MulticlassJaccardIndex(classes, ignore_index=ignore, average="macro"),
            "pixel_accuracy": torchmetrics.classification.MulticlassAccuracy(
                classes, ignore_index=ignore, average="micro", multidim_average="global"
            ),
        }

    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        return output.argmax(dim=1)


TASK_TYPES: dict[str, type[Task]] = {
    "classification": ClassificationTask,
    "multilabel": MultilabelTask,
    "regression": RegressionTask,
    "tagging": TaggingTask,
    "span": SpanTask,
    "segmentation": SegmentationTask,
}


def build_task(name: str, config: TaskConfig) -> Task:
    try:
        return TASK_TYPES[config.type](name, config)
    except KeyError:
        raise ValueError(f"task {name!r}: unknown type {config.type!r}; valid: {', '.join(TASK_TYPES)}") from None


def build_tasks(configs: dict[str, TaskConfig]) -> dict[str, Task]:
    return {name: build_task(name, config) for name, config in configs.items()}
