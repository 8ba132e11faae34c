"""``upgrad``: UPGrad (Quinton & Rey 2024, "Jacobian Descent for Multi-Objective
Optimization"), torchjd ``UPGrad``: each task's gradient projected onto the dual cone of
all of them, then averaged: no task's loss increases to first order.

Example::

    >>> import torch
    >>> update = build(UPGrad(), n_tasks=2).combine(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))
    >>> bool((torch.tensor([[1.0, 0.0], [-1.0, 1.0]]) @ update >= -1e-6).all())
    True
"""

from __future__ import annotations

from components.config.methods import UPGrad
from components.gradients.base import GradientMethod, aggregation


def build(settings: UPGrad, n_tasks: int) -> GradientMethod:
    """The method with its configured settings."""
    return GradientMethod(aggregation().UPGrad(), aggregation().UPGradWeighting())
