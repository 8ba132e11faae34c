"""Backbones, heads and the sharing strategy that joins them.

Hard parameter sharing (Caruana 1997): one shared backbone, one light head per task.
A single-task baseline is the same model with one head, so baselines and the MTL model
share architecture and training code exactly.

Example::

    >>> model = build_model(ModelConfig(), build_tasks(params.tasks), canvas_size=36)
    >>> outputs = model(torch.zeros(2, 1, 36, 36))   # {"left": (2, 10), "right": ..., "sum": (2,)}
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from components.config import CNNConfig, ModelConfig
from components.tasks import Task


class CNNBackbone(nn.Module):
    """Conv-BN-ReLU-MaxPool blocks, then one fully connected layer: a LeNet-style encoder."""

    def __init__(self, config: CNNConfig, canvas_size: int, in_channels: int = 1) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        channels = in_channels
        for width in config.channels:
            blocks += [
                nn.Conv2d(channels, width, kernel_size=3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = width
        self.features = nn.Sequential(*blocks, nn.Flatten())
        with torch.no_grad():
            flat = self.features(torch.zeros(1, in_channels, canvas_size, canvas_size)).shape[1]
        self.project = nn.Sequential(
            nn.Linear(flat, config.hidden), nn.ReLU(inplace=True), nn.Dropout(config.dropout)
        )
        self.out_features = config.hidden

    def last_layer(self) -> nn.Linear:
        return self.project[0]

    def forward(self, images: Tensor) -> Tensor:
        return self.project(self.features(images))


class HardSharingModel(nn.Module):
    """Shared backbone + one head per task; returns raw head outputs keyed by task name."""

    def __init__(self, backbone: nn.Module, heads: dict[str, nn.Module]) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads)

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def last_shared_layer(self) -> nn.Parameter:
        """Weights of the backbone's last layer, where GradNorm measures gradient norms."""
        return self.backbone.last_layer().weight

    def forward(self, inputs: Tensor, tasks: list[str] | None = None) -> dict[str, Tensor]:
        features = self.backbone(inputs)
        return {name: self.heads[name](features) for name in (tasks or self.heads)}


def build_model(config: ModelConfig, tasks: dict[str, Task], canvas_size: int) -> HardSharingModel:
    backbone = CNNBackbone(config.cnn, canvas_size)
    heads = {name: task.head(backbone.out_features) for name, task in tasks.items()}
    return HardSharingModel(backbone, heads)
