"""``segmentation``: a class per pixel; pixels whose mask holds ``ignore_index`` are left out.

Reads ``pixels`` or ``image`` input with a backbone's feature map (``cnn``, or
``hf_backbone``'s FPN decoder). Head: a 1×1 convolution to class scores, upsampled
bilinearly to the image (Long et al. 2015, "Fully Convolutional Networks"). Loss: pixel
cross-entropy. Metrics: mIoU (primary) and pixel accuracy from torchmetrics. Label: a
column of flat masks (``data.canvas_size``² or ``data.image_size``² class ids; on image
input, ``prepare`` decodes them from mask files). Served answer: the flat predicted mask.

Example::

    >>> import torch
    >>> from components.config import TaskConfig
    >>> task = SegmentationTask("mask", TaskConfig(type="segmentation", label="mask", num_classes=2))
    >>> task.score(torch.tensor([[[0, 1], [1, 1]]]), torch.tensor([[[0, 1], [255, 1]]]))["pixel_accuracy"]
    1.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from components.config import InputConfig, Params, TaskConfig
from components.config.model import FEATURE_MAP_BACKBONES
from components.data.encoders import InputEncoder, is_missing
from components.tasks.base import LabelSchema, Task, is_list

if TYPE_CHECKING:
    import torchmetrics


class SegmentationHead(nn.Module):
    """A 1×1 convolution to class scores on a feature map, upsampled to the image size."""

    def __init__(self, in_channels: int, classes: int, size: int) -> None:
        super().__init__()
        self.classify = nn.Conv2d(in_channels, classes, kernel_size=1)
        self.size = size

    def forward(self, features: Tensor) -> Tensor:
        return F.interpolate(self.classify(features), size=(self.size, self.size), mode="bilinear", align_corners=False)


class SegmentationTask(Task):
    type_name = "segmentation"
    answer_description = "a flat mask of class ids, one per pixel"
    metric_name = "miou"
    higher_is_better = True
    dense = True
    reads_input = ("pixels", "image")
    label_files = "mask"
    keys = frozenset({"num_classes"})

    @classmethod
    def check_config(cls, config: TaskConfig) -> None:
        super().check_config(config)
        if config.num_classes is None:
            raise ValueError("a segmentation task needs num_classes")
        if 0 <= config.ignore_index < config.num_classes:
            raise ValueError(
                f"ignore_index {config.ignore_index} is a class id; use a value outside 0..{config.num_classes - 1}"
            )

    @classmethod
    def check_fits(cls, name: str, params: Params) -> None:
        super().check_fits(name, params)
        if params.model.backbone not in FEATURE_MAP_BACKBONES:
            raise ValueError(f"segmentation needs a backbone with feature maps: {' or '.join(FEATURE_MAP_BACKBONES)}")

    def schema(self, spec: InputConfig, canvas_size: int) -> LabelSchema:
        import pandera.pandas as pa

        classes, ignore = self.num_classes, self.config.ignore_index
        size, allowed = canvas_size**2, set(range(classes)) | {ignore}
        valid = pa.Check(
            lambda v: is_list(v) and len(v) == size and set(np.unique(v)) <= allowed,
            element_wise=True,
            name=f"mask_of_{size}_pixels_in[0..{classes - 1}|{ignore}]",
        )
        return LabelSchema({self.column: pa.Column(object, valid, nullable=True)})

    def targets(self, frame: pd.DataFrame, encoder: InputEncoder) -> Tensor:
        side, ignore = encoder.image_side(frame), self.config.ignore_index
        masks = [np.full(side * side, ignore) if is_missing(m) else np.asarray(m) for m in frame[self.column]]
        stacked = np.stack(masks) if masks else np.zeros((0, side * side))
        return torch.tensor(stacked, dtype=torch.long).reshape(-1, side, side)

    def as_moving_map(self, target: Tensor) -> Tensor | None:
        """Class c as c + 1, ignored pixels as 0."""
        return torch.where(target == self.config.ignore_index, 0, target + 1).unsqueeze(1).float()

    def from_moving_map(self, moved: Tensor) -> Tensor:
        classes = moved.squeeze(1).round().long() - 1
        return torch.where(classes < 0, self.config.ignore_index, classes)

    def head(self, in_features: int, image_size: int | None = None) -> nn.Module:
        if image_size is None:
            raise ValueError(f"task {self.name!r}: a segmentation head needs the image size")
        return SegmentationHead(in_features, self.num_classes, image_size)

    def labeled(self, target: Tensor) -> Tensor:
        return (target != self.config.ignore_index).flatten(1).any(dim=1)

    def labeled_loss(self, head: nn.Module, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output, target, ignore_index=self.config.ignore_index)

    def metrics(self) -> dict[str, torchmetrics.Metric]:
        import torchmetrics  # here: a stage that scores nothing never pays its import

        classes, ignore = self.num_classes, self.config.ignore_index
        return {
            "miou": torchmetrics.classification.MulticlassJaccardIndex(classes, ignore_index=ignore, average="macro"),
            "pixel_accuracy": torchmetrics.classification.MulticlassAccuracy(
                classes, ignore_index=ignore, average="micro", multidim_average="global"
            ),
        }

    def predict(self, head: nn.Module, output: Tensor) -> Tensor:
        return output.argmax(dim=1)
