"""``mgda``: MGDA (Sener & Koltun 2018, "Multi-Task Learning as Multi-Objective
Optimization"), torchjd ``MGDA``: the minimum-norm point of the convex hull of the tasks'
gradients.

Example::

    >>> import torch
    >>> build(MGDA(), n_tasks=2).combine(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))
    tensor([0.2000, 0.4000])
"""

from __future__ import annotations

from components.config.methods import MGDA
from components.gradients.base import GradientMethod, aggregation


def build(settings: MGDA, n_tasks: int) -> GradientMethod:
    """The method with its configured settings."""
    return GradientMethod(aggregation().MGDA(), aggregation().MGDAWeighting())
