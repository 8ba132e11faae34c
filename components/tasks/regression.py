"""``regression``: one real value per row.

Head: a linear layer predicting the target in standardised units (mean and std of the
training targets live in the head as buffers), so under equal loss weights an MSE on a
0..18 target does not drown the cross-entropies of the other tasks. Loss: ``mse`` or
``l1`` on the standardised target. Metric: MAE in the target's own units. A missing label
(NaN) is skipped. Validation: present values are finite.

Example::

    >>> import torch
    >>> from components.config import TaskConfig
    >>> task = RegressionTask("sum", TaskConfig(type="regression", label="sum"))
    >>> task.score(torch.tensor([1.0, 3.0]), torch.tensor([2.0, float("nan")]))["mae"]
    1.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from components.config import InputConfig
from components.data.encoders import InputEncoder
from components.tasks.base import LabelSchema, Task, finite_check

if TYPE_CHECKING:
    import torchmetrics


class StandardizedRegressionHead(nn.Module):
    """A linear layer whose output is the target in standardised units."""

    target_mean: Tensor
    target_std: Tensor

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
    type_name = "regression"
    answer_description = "a number in the units of {labels}"
    metric_name = "mae"
    higher_is_better = False
    keys = frozenset({"loss"})

    def schema(self, spec: InputConfig, canvas_size: int) -> LabelSchema:
        import pandera.pandas as pa

        return LabelSchema({self.column: pa.Column(float, finite_check(), nullable=True)})

    def targets(self, frame: pd.DataFrame, encoder: InputEncoder) -> Tensor:
        return torch.tensor(frame[self.column].to_numpy(dtype=np.float32, na_value=np.nan))

    def head(self, in_features: int, image_size: int | None = None) -> nn.Module:
        return StandardizedRegressionHead(in_features)

    def prepare_head(self, head: nn.Module, train_targets: Tensor) -> None:
        assert isinstance(head, StandardizedRegressionHead)
        labeled = train_targets[self.labeled(train_targets)].float()
        head.target_mean.fill_(labeled.mean())
        head.target_std.fill_(labeled.std().clamp_min(1e-6))

    def labeled(self, target: Tensor) -> Tensor:
        return ~torch.isnan(target)

    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        assert isinstance(head, StandardizedRegressionHead)
        loss = F.l1_loss if self.config.loss == "l1" else F.mse_loss
        return loss(output, head.standardize(target))

    def metrics(self) -> dict[str, torchmetrics.Metric]:
        import torchmetrics  # here: a stage that scores nothing never pays its import

        return {"mae": torchmetrics.MeanAbsoluteError()}

    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        assert isinstance(head, StandardizedRegressionHead)
        return head.destandardize(output)

    def row_statistics(self, prediction: Tensor, target: Tensor) -> Tensor | None:
        """[absolute error, labeled] per row: MAE is their ratio."""
        labeled = self.labeled(target)
        error = torch.where(labeled, (prediction.float() - target).abs(), torch.zeros_like(target))
        return torch.stack([error, labeled.float()], dim=-1)

    def metric_from_statistics(self, sums: Tensor) -> Tensor:
        return sums[..., 0] / sums[..., 1]

    def trivial_prediction(self, train_target: Tensor, rows: int) -> Tensor | None:
        """The training split's median: the constant with the lowest mean absolute error."""
        labeled = train_target[self.labeled(train_target)]
        return torch.full((rows,), float(labeled.median())) if len(labeled) else None
