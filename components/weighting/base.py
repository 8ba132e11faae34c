"""What every loss-weighting method provides to the training loop, and the adapter of a
torchjd scalarizer that most methods are."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from torch import Tensor, nn


class LossWeighting(nn.Module):
    """Turns the vector of task losses (one entry per task) into the scalar to minimise.

    Subclasses override :meth:`forward`; the hooks below default to doing nothing.
    """

    #: Whether :meth:`after_step` wants the batch's losses recomputed after the update (FAMO).
    needs_losses_after_step: bool = False

    def learn(self, losses: Tensor) -> None:
        """Fills ``.grad`` of the weighting's own parameters from an objective of its own,
        before the training step's backward (GradNorm's L_grad); nothing by default."""

    def trainable(self) -> list[nn.Parameter]:
        """Parameters the training optimizer updates (e.g. uncertainty log-variances)."""
        return list(self.parameters())

    def start_epoch(self, epoch: int) -> None:
        """Called before the first batch of ``epoch`` (1-based)."""

    def end_epoch(self) -> None:
        """Called after the last batch of an epoch."""

    def after_step(self, losses_after: Tensor | None) -> None:
        """Called after each optimizer step."""


def scalarization() -> ModuleType:
    """torchjd's scalarizers, imported when a weighting is built: importing torchjd loads cvxpy
    (0.7 s with it), which the stages that only read trainings (select, register, promote,
    the health check) need not pay."""
    from torchjd import scalarization

    return scalarization


class ScalarizerWeighting(LossWeighting):
    """A torchjd scalarizer as a loss weighting: its parameters (if any) are the weighting's."""

    def __init__(self, scalarizer: nn.Module) -> None:
        super().__init__()
        #: typed loosely: the methods call what their torchjd class has (DWA's ``step``, FAMO's ``update``)
        self.scalarizer: Any = scalarizer

    def forward(self, losses: Tensor) -> Tensor:
        scalarized: Tensor = self.scalarizer(losses)
        return scalarized
