"""Loss weighting: how the per-task losses become the one scalar that is minimised.

=============== =================================================== ====================
``equal``       Σ L_i                                               torchjd ``Sum``
``fixed``       Σ c_i L_i, c from ``training.fixed_weights``        torchjd ``Constant``
``uncertainty`` Kendall et al. 2018, learned log-variances s_i      torchjd ``UW``
``dwa``         Liu et al. 2019, Dynamic Weight Average             torchjd ``DWA``
``famo``        Liu et al. 2023, Fast Adaptive Multitask Opt.       torchjd ``FAMO``
``gradnorm``    Chen et al. 2018, on the last shared layer          ``gradnorm.py``
``schedule``    per-task weight schedule over epochs                ``schedule.py``
=============== =================================================== ====================

Uncertainty weighting uses one form for every task: ½·e^(−s_i)·L_i + ½·s_i with
s_i = log σ_i², Kendall et al.'s regression form (as torchjd and LibMTL implement it).
Their classification form, e^(−s_i)·L_i + ½·s_i, only doubles the loss term's weight;
using one form keeps tasks of different types on one scale.

Example::

    >>> weighting = build_weighting(TrainingConfig(loss_weighting="fixed", fixed_weights={"aux": 0.3}),
    ...                             ["main", "aux"], shared_layer=[])
    >>> weighting(torch.tensor([1.0, 2.0]))
    tensor(1.6000)
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from components.config import LOSS_WEIGHTINGS, TrainingConfig
from components.weighting.base import LossWeighting
from components.weighting.gradnorm import GradNorm
from components.weighting.schedule import ScheduledWeighting

if TYPE_CHECKING:
    from torchjd.scalarization import Scalarizer


def _scalarization() -> ModuleType:
    """torchjd's scalarizers, imported when a weighting is built or used: importing torchjd
    loads cvxpy (0.7 s with it), which the stages that only read trainings (select,
    register, promote, the health check) need not pay."""
    from torchjd import scalarization

    return scalarization


class ScalarizerWeighting(LossWeighting):
    """A torchjd scalarizer, with the epoch and step hooks DWA and FAMO need."""

    def __init__(self, scalarizer: Scalarizer) -> None:
        scalarization = _scalarization()
        super().__init__()
        self.scalarizer = scalarizer
        self.needs_losses_after_step = isinstance(scalarizer, scalarization.FAMO)

    def forward(self, losses: Tensor) -> Tensor:
        scalarized: Tensor = self.scalarizer(losses)
        return scalarized

    def trainable(self) -> list[nn.Parameter]:
        # FAMO steps its own logits with an internal Adam in update()
        return [] if self.needs_losses_after_step else list(self.parameters())

    def end_epoch(self) -> None:
        scalarization = _scalarization()
        if isinstance(self.scalarizer, scalarization.DWA):
            self.scalarizer.step()

    def after_step(self, losses_after: Tensor | None) -> None:
        scalarization = _scalarization()
        if isinstance(self.scalarizer, scalarization.FAMO) and losses_after is not None:
            self.scalarizer.update(losses_after)

    # torch includes these in ``state_dict``, so a resumed training gets them back. They read
    # torchjd's private attributes (pinned in the lock file): DWA keeps its loss history and
    # FAMO its previous losses and Adam state outside any parameter or buffer.
    def get_extra_state(self) -> dict[str, Any]:
        scalarization = _scalarization()
        scalarizer = self.scalarizer
        if isinstance(scalarizer, scalarization.DWA):
            return {
                "loss_sum": scalarizer._loss_sum,
                "n_batches": scalarizer._n_batches,
                "previous_averages": list(scalarizer._previous_averages),
            }
        if isinstance(scalarizer, scalarization.FAMO):
            optimizer = scalarizer._optimizer
            return {
                "prev_losses": scalarizer._prev_losses,
                "optimizer": None if optimizer is None else optimizer.state_dict(),
            }
        return {}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        scalarization = _scalarization()
        scalarizer = self.scalarizer
        if isinstance(scalarizer, scalarization.DWA):
            scalarizer._loss_sum = state["loss_sum"]
            scalarizer._n_batches = state["n_batches"]
            scalarizer._previous_averages = list(state["previous_averages"])
        elif isinstance(scalarizer, scalarization.FAMO):
            scalarizer._prev_losses = state["prev_losses"]
            scalarizer._optimizer = None
            if state["optimizer"] is not None:
                scalarizer._optimizer = torch.optim.Adam(
                    [scalarizer._w], lr=scalarizer.lr, weight_decay=scalarizer.weight_decay
                )
                scalarizer._optimizer.load_state_dict(state["optimizer"])


def build_weighting(config: TrainingConfig, task_names: list[str], shared_layer: list[nn.Parameter]) -> LossWeighting:
    """The loss weighting ``config.loss_weighting`` names, for ``task_names`` in order."""
    scalarization = _scalarization()
    n_tasks = len(task_names)
    method = config.loss_weighting
    if method == "equal":
        return ScalarizerWeighting(scalarization.Sum())
    if method == "fixed":
        weights = torch.tensor([config.fixed_weights.get(name, 1.0) for name in task_names])
        return ScalarizerWeighting(scalarization.Constant(weights))
    if method == "uncertainty":
        return ScalarizerWeighting(scalarization.UW(n_tasks))
    if method == "dwa":
        return ScalarizerWeighting(scalarization.DWA(temperature=config.dwa_temperature))
    if method == "famo":
        return ScalarizerWeighting(scalarization.FAMO(n_tasks, lr=config.famo_lr))
    if method == "gradnorm":
        return GradNorm(n_tasks, config.gradnorm_alpha, shared_layer)
    if method == "schedule":
        return ScheduledWeighting(task_names, {k: [(p[0], p[1]) for p in v] for k, v in config.weight_schedule.items()})
    raise ValueError(f"unknown loss weighting {method!r}; valid: {', '.join(LOSS_WEIGHTINGS)}")


def effective_weights(combined: Tensor, losses: Tensor) -> Tensor:
    """∂(combined)/∂L_i: each task's weight in this step, whatever the method."""
    (weights,) = torch.autograd.grad(combined, losses, retain_graph=True)
    return weights.detach()


__all__ = ["LossWeighting", "build_weighting", "effective_weights"]
