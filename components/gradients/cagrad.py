"""``cagrad``: CAGrad (Liu et al. 2021, "Conflict-Averse Gradient Descent for Multi-task
Learning"), torchjd ``CAGrad``: the update that most improves the worst-off task within a
ball of radius c around the mean gradient.

Example::

    >>> import torch
    >>> build(CAGrad(c=0.0), n_tasks=2).combine(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))   # c = 0: the mean
    tensor([0.0000, 0.5000])
"""

from __future__ import annotations

from components.config.methods import CAGrad
from components.gradients.base import GradientMethod, aggregation


def build(settings: CAGrad, n_tasks: int) -> GradientMethod:
    """The method with its configured settings."""
    return GradientMethod(aggregation().CAGrad(c=settings.c), aggregation().CAGradWeighting(c=settings.c))
