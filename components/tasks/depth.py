"""``depth``: a distance per pixel; pixels without a reading (NaN, or 0 as depth sensors
write it) are left out of the loss and the metrics.

Reads ``pixels`` or ``image`` input with a backbone's feature map (``cnn``, or
``hf_backbone``'s FPN decoder). Head: a 1×1 convolution to one channel in standardised
units (the valid training pixels' mean and std live in the head), upsampled bilinearly to
the image. Loss: L1 on the standardised depth of valid pixels. Metrics, over every valid
pixel of a split, as NYUv2 reports them (Eigen et al. 2014, "Depth Map Prediction from a
Single Image using a Multi-Scale Deep Network"): abs-rel ``mean(|d̂ − d| / d)`` (primary,
so a task's relative change is by abs-rel), RMSE, and δ < 1.25 (the share of pixels with
``max(d̂/d, d/d̂) < 1.25``). Label: a column of flat depth maps in metres
(``data.canvas_size``² or ``data.image_size``² values; on image input, ``prepare``
decodes them from 16-bit millimetre PNGs). Served answer: the flat predicted depth map.

Example::

    >>> import torch
    >>> from components.config import TaskConfig
    >>> task = DepthTask("depth", TaskConfig(type="depth", label="depth"))
    >>> scores = task.score(torch.tensor([[[1.0, 2.0], [4.0, 9.0]]]), torch.tensor([[[1.0, 1.0], [4.0, 0.0]]]))
    >>> round(scores["abs_rel"], 4), round(scores["delta1"], 4)
    (0.3333, 0.6667)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from components.config import InputConfig, Params
from components.config.model import FEATURE_MAP_BACKBONES
from components.data.encoders import InputEncoder, is_missing
from components.tasks.base import LabelSchema, Task, is_list

if TYPE_CHECKING:
    import torchmetrics

#: the NYUv2 threshold of the δ accuracy
DELTA = 1.25
#: depth maps with a pixel this close to zero: predictions are clamped here, so abs-rel and δ stay finite
MIN_DEPTH = 1e-3


def valid_pixels(target: Tensor) -> Tensor:
    """The pixels that carry a depth reading: finite and positive."""
    return torch.isfinite(target) & (target > 0)


class DepthHead(nn.Module):
    """A 1×1 convolution to standardised depth on a feature map, upsampled to the image size."""

    target_mean: Tensor
    target_std: Tensor

    def __init__(self, in_channels: int, size: int) -> None:
        super().__init__()
        self.regress = nn.Conv2d(in_channels, 1, kernel_size=1)
        self.size = size
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))

    def forward(self, features: Tensor) -> Tensor:
        depth = F.interpolate(self.regress(features), size=(self.size, self.size), mode="bilinear", align_corners=False)
        return depth.squeeze(1)

    def standardize(self, target: Tensor) -> Tensor:
        return (target - self.target_mean) / self.target_std

    def destandardize(self, output: Tensor) -> Tensor:
        return (output * self.target_std + self.target_mean).clamp_min(MIN_DEPTH)


def _delta_metric() -> torchmetrics.Metric:
    """δ < 1.25 over every pixel fed to it. torchmetrics has abs-rel (MAPE) and RMSE but no
    threshold accuracy, so this one is a small Metric of its own."""
    import torchmetrics

    class ThresholdAccuracy(torchmetrics.Metric):
        hits: Tensor
        total: Tensor

        def __init__(self) -> None:
            super().__init__()
            self.add_state("hits", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

        def update(self, prediction: Tensor, target: Tensor) -> None:
            self.hits += _within_delta(prediction, target).sum()
            self.total += target.numel()

        def compute(self) -> Tensor:
            return (self.hits / self.total).float()

    return ThresholdAccuracy()


def _within_delta(prediction: Tensor, target: Tensor) -> Tensor:
    ratio = torch.maximum(prediction / target, target / prediction)
    return ratio < DELTA


class DepthTask(Task):
    type_name = "depth"
    answer_description = "a flat depth map, one value per pixel, in the units of {labels}"
    metric_name = "abs_rel"
    higher_is_better = False
    dense = True
    reads_input = ("pixels", "image")
    label_files = "depth"

    @classmethod
    def check_fits(cls, name: str, params: Params) -> None:
        super().check_fits(name, params)
        if params.model.backbone not in FEATURE_MAP_BACKBONES:
            raise ValueError(f"depth needs a backbone with feature maps: {' or '.join(FEATURE_MAP_BACKBONES)}")

    def schema(self, spec: InputConfig, canvas_size: int) -> LabelSchema:
        import pandera.pandas as pa

        size = canvas_size**2

        def readable(value: object) -> bool:
            if not is_list(value) or len(value) != size:  # type: ignore[arg-type]  # is_list narrows
                return False
            depths = np.asarray(value, dtype=np.float64)
            return bool(np.all(np.isnan(depths) | (np.isfinite(depths) & (depths >= 0))))

        valid = pa.Check(readable, element_wise=True, name=f"depth_map_of_{size}_pixels_nonnegative_or_nan")
        return LabelSchema({self.column: pa.Column(object, valid, nullable=True)})

    def targets(self, frame: pd.DataFrame, encoder: InputEncoder) -> Tensor:
        side = encoder.image_side(frame)
        maps = [
            np.full(side * side, np.nan) if is_missing(m) else np.asarray(m, dtype=np.float32)
            for m in frame[self.column]
        ]
        stacked = np.stack(maps) if maps else np.zeros((0, side * side))
        return torch.tensor(stacked, dtype=torch.float32).reshape(-1, side, side)

    def as_moving_map(self, target: Tensor) -> Tensor | None:
        """Pixels without a reading as 0, as a depth sensor writes them."""
        return torch.where(valid_pixels(target), target, 0.0).unsqueeze(1)

    def from_moving_map(self, moved: Tensor) -> Tensor:
        depth = moved.squeeze(1)
        return torch.where(depth > 0, depth, torch.nan)

    def head(self, in_features: int, image_size: int | None = None) -> nn.Module:
        if image_size is None:
            raise ValueError(f"task {self.name!r}: a depth head needs the image size")
        return DepthHead(in_features, image_size)

    def prepare_head(self, head: nn.Module, train_targets: Tensor) -> None:
        assert isinstance(head, DepthHead)
        depths = train_targets[valid_pixels(train_targets)]
        if len(depths):
            head.target_mean.fill_(depths.mean())
            head.target_std.fill_(depths.std().clamp_min(1e-6) if len(depths) > 1 else 1.0)

    def labeled(self, target: Tensor) -> Tensor:
        return valid_pixels(target).flatten(1).any(dim=1)

    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        assert isinstance(head, DepthHead)
        valid = valid_pixels(target)
        return F.l1_loss(output[valid], head.standardize(target[valid]))

    def metrics(self) -> dict[str, torchmetrics.Metric]:
        import torchmetrics  # here: a stage that scores nothing never pays its import

        return {
            "abs_rel": torchmetrics.MeanAbsolutePercentageError(),  # mean |d̂ − d| / |d|: abs-rel
            "rmse": torchmetrics.MeanSquaredError(squared=False),
            "delta1": _delta_metric(),
        }

    def update_metrics(self, metrics: dict[str, torchmetrics.Metric], prediction: Tensor, target: Tensor) -> None:
        """Feeds every valid pixel to each metric (the labeled rows' other pixels stay out)."""
        valid = valid_pixels(target)
        if not valid.any():
            return
        for metric in metrics.values():
            metric.update(prediction[valid].float(), target[valid])

    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        assert isinstance(head, DepthHead)
        return head.destandardize(output)

    def row_statistics(self, prediction: Tensor, target: Tensor) -> Tensor | None:
        """[Σ |d̂ − d| / d, valid pixels] per row: abs-rel over the pixels of any rows is their ratio."""
        valid = valid_pixels(target)
        safe = torch.where(valid, target, torch.ones_like(target))
        relative = torch.where(valid, (prediction.float() - safe).abs() / safe, torch.zeros_like(target))
        return torch.stack([relative.flatten(1).sum(1), valid.flatten(1).sum(1).float()], dim=-1)

    def metric_from_statistics(self, sums: Tensor) -> Tensor:
        return sums[..., 0] / sums[..., 1]

    def trivial_prediction(self, train_target: Tensor, rows: int) -> Tensor | None:
        """The median valid training depth at every pixel: what a model that ignores the image answers."""
        depths = train_target[valid_pixels(train_target)]
        return torch.full((rows, *train_target.shape[1:]), float(depths.median())) if len(depths) else None
