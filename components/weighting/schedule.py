"""``schedule``: per-task weight schedules over epochs, e.g. warming up an auxiliary task.

Written here because no MTL library ships epoch schedules for task weights. Each task's
weight is piecewise-linear between ``(epoch, weight)`` points and constant outside them;
tasks without a schedule keep weight 1.

Example::

    >>> schedule = ScheduledWeighting(["main", "aux"], {"aux": [(1, 0.0), (3, 1.0)]})
    >>> schedule.start_epoch(2)
    >>> schedule.weights
    tensor([1.0000, 0.5000])
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from components.config.methods import Schedule
from components.weighting.base import LossWeighting


def weight_at(points: list[tuple[float, float]], epoch: float) -> float:
    """The piecewise-linear weight at ``epoch``; constant beyond the first and last points."""
    epochs, weights = zip(*sorted(points))
    return float(np.interp(epoch, epochs, weights))


class ScheduledWeighting(LossWeighting):
    """Weights that follow ``training.loss_weighting.schedule`` over epochs (default 1)."""

    weights: Tensor

    def __init__(self, task_names: list[str], schedule: dict[str, list[tuple[float, float]]]) -> None:
        super().__init__()
        self.task_names = task_names
        self.schedule = schedule
        self.register_buffer("weights", torch.ones(len(task_names)))

    def start_epoch(self, epoch: int) -> None:
        for index, name in enumerate(self.task_names):
            if name in self.schedule:
                self.weights[index] = weight_at(self.schedule[name], epoch)

    def forward(self, losses: Tensor) -> Tensor:
        return (self.weights * losses).sum()


def build(settings: Schedule, task_names: list[str], shared_layer: list[nn.Parameter]) -> LossWeighting:
    """The configured schedules, task by task."""
    return ScheduledWeighting(
        task_names, {task: [(p[0], p[1]) for p in points] for task, points in settings.schedule.items()}
    )
