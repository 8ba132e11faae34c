"""Finite or fail: a training that diverges stops at the step where it does.

Every step's task losses must be finite, and, once a task has a first labeled loss L_t(0),
stay below ``training.max_loss_growth`` × L_t(0). Otherwise :class:`TrainingDiverged`
stops the training naming the task, epoch and step, before the optimizer applies that
step: the MLflow run ends FAILED, the stage exits 1, nothing downstream runs and nothing
is registered. Written here because no training library checks this for a hand-written
loop; torch's anomaly mode finds where a NaN appears in backward, at many times the cost.

Example::

    >>> import torch
    >>> guard = LossGuard(["left", "sum"], max_growth=100.0)
    >>> guard.check(torch.tensor([2.3, 1.0]), epoch=1, step=1)
    >>> try:
    ...     guard.check(torch.tensor([2.1, float("nan")]), epoch=1, step=2)
    ... except TrainingDiverged as error:
    ...     print(str(error).split(";")[0])
    training diverged: task 'sum' loss nan at epoch 1, step 2
"""

from __future__ import annotations

import math

from torch import Tensor

from components.errors import PipelineError


class TrainingDiverged(PipelineError):
    """A task's loss became non-finite or blew up; the message names task, epoch and step."""


class LossGuard:
    """Checks each step's task losses against finiteness and their first labeled value."""

    def __init__(self, tasks: list[str], max_growth: float | None) -> None:
        self.tasks = tasks
        self.max_growth = max_growth
        self.initial: list[float | None] = [None] * len(tasks)

    def check(self, losses: Tensor, epoch: int, step: int) -> None:
        """Raises :class:`TrainingDiverged` on the first task whose loss is out of bounds."""
        values = losses.detach().float().cpu().tolist()
        for index, (task, value) in enumerate(zip(self.tasks, values)):
            if not math.isfinite(value):
                raise TrainingDiverged(self._message(task, f"loss {value}", epoch, step))
            if self.initial[index] is None and value > 0:  # 0: no row of this batch was labeled for it
                self.initial[index] = value
            first = self.initial[index]
            if self.max_growth is not None and first is not None and value > self.max_growth * first:
                detail = f"loss {value:.4g}, over {self.max_growth:g} × its first value {first:.4g}"
                raise TrainingDiverged(self._message(task, detail, epoch, step))

    @staticmethod
    def _message(task: str, detail: str, epoch: int, step: int) -> str:
        return (
            f"training diverged: task {task!r} {detail} at epoch {epoch}, step {step}; "
            "lower training.lr (or tasks.<t>.lr_scale), or raise training.max_loss_growth if the loss "
            "legitimately grows"
        )
