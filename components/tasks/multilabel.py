"""``multilabel``: independent yes/no labels, one 0/1 column each.

Head: a linear layer, one logit per label. Loss: binary cross-entropy over the entries
present (a missing entry masks that entry only). Metrics: micro-F1 (primary) and
macro-F1; metrics read whole rows, so a row with any missing entry is left out of them.
Served answer: a list of 0/1, one per label column.

Example::

    >>> import torch
    >>> from components.config import TaskConfig
    >>> task = MultilabelTask("topics", TaskConfig(type="multilabel", label=["a", "b"]))
    >>> round(task.score(torch.tensor([[1, 0], [1, 1]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))["micro_f1"], 4)
    0.8
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from components.config import InputConfig, TaskConfig
from components.data.encoders import InputEncoder
from components.tasks.base import LabelSchema, Task

if TYPE_CHECKING:
    import torchmetrics


class MultilabelTask(Task):
    type_name = "multilabel"
    answer_description = "a list of 0/1 flags, one per label column {labels}"
    metric_name = "micro_f1"
    higher_is_better = True
    label_count = None

    @classmethod
    def check_config(cls, config: TaskConfig) -> None:
        super().check_config(config)
        if len(set(config.label)) < 2:
            raise ValueError("a multilabel task needs at least two distinct label columns")

    @property
    def num_labels(self) -> int:
        return len(self.columns)

    def schema(self, spec: InputConfig, canvas_size: int) -> LabelSchema:
        import pandera.pandas as pa

        return LabelSchema({label: pa.Column("Int64", pa.Check.isin([0, 1]), nullable=True) for label in self.columns})

    def targets(self, frame: pd.DataFrame, encoder: InputEncoder) -> Tensor:
        return torch.tensor(frame[self.columns].to_numpy(dtype=np.float32, na_value=np.nan))

    def head(self, in_features: int, image_size: int | None = None) -> nn.Module:
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
        import torchmetrics  # here: a stage that scores nothing never pays its import

        return {
            "micro_f1": torchmetrics.classification.MultilabelF1Score(self.num_labels, average="micro"),
            "macro_f1": torchmetrics.classification.MultilabelF1Score(self.num_labels, average="macro"),
        }

    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        return (output > 0).long()  # sigmoid > 0.5

    def row_statistics(self, prediction: Tensor, target: Tensor) -> Tensor | None:
        """[true positives, false positives, false negatives] per row, over its labels."""
        labeled = self.labeled(target).unsqueeze(-1)
        truth = torch.nan_to_num(target).bool() & labeled
        said = prediction.bool() & labeled
        counts = [(said & truth), (said & ~truth), (~said & truth)]
        return torch.stack([c.sum(-1) for c in counts], dim=-1).float()

    def metric_from_statistics(self, sums: Tensor) -> Tensor:
        tp, fp, fn = sums.unbind(-1)
        return torch.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), torch.zeros_like(tp))

    def trivial_prediction(self, train_target: Tensor, rows: int) -> Tensor | None:
        """Each label's majority value in the training split (mostly all zeros)."""
        labeled = train_target[self.labeled(train_target)]
        return (labeled.mean(dim=0) > 0.5).long().expand(rows, -1).clone() if len(labeled) else None

    def metric_target(self, target: Tensor) -> Tensor:
        return target.long()
