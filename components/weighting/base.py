"""What every loss-weighting method provides to the training loop."""

from __future__ import annotations

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
