"""``famo``: Fast Adaptive Multitask Optimization (Liu et al. 2023, "FAMO: Fast Adaptive
Multitask Optimization"), torchjd ``FAMO``: task-weight logits that its own Adam steps after
every update, from how much each task's loss fell, so the tasks' log losses decrease at
one rate. It needs the batch's losses recomputed after the step.

Example::

    >>> import torch
    >>> weighting = build(FAMO(lr=0.025), ["main", "aux"], shared_layer=[])
    >>> weighting.needs_losses_after_step, weighting.trainable()
    (True, [])
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from components import torchjd_state
from components.config.methods import FAMO
from components.weighting.base import LossWeighting, ScalarizerWeighting, scalarization


class FAMOWeighting(ScalarizerWeighting):
    """FAMO, shown each step's losses after the update; its optimizer is in its ``state_dict``."""

    needs_losses_after_step = True

    def trainable(self) -> list[nn.Parameter]:
        return []  # FAMO steps its own logits with an internal Adam in update()

    def after_step(self, losses_after: Tensor | None) -> None:
        if losses_after is not None:
            self.scalarizer.update(losses_after)

    def get_extra_state(self) -> dict[str, Any]:
        return torchjd_state.famo_state(self.scalarizer)

    def set_extra_state(self, state: dict[str, Any]) -> None:
        torchjd_state.load_famo_state(self.scalarizer, state)


def build(settings: FAMO, task_names: list[str], shared_layer: list[nn.Parameter]) -> LossWeighting:
    """FAMO with the configured learning rate of its logits."""
    return FAMOWeighting(scalarization().FAMO(len(task_names), lr=settings.lr))
