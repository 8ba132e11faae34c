"""``pcgrad``: PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning"), torchjd
``PCGrad``: each task's gradient projected off the others' it conflicts with.

Example::

    >>> import torch
    >>> build(PCGrad(), n_tasks=2).combine(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))
    tensor([0.5000, 1.5000])
"""

from __future__ import annotations

from components.config.methods import PCGrad
from components.gradients.base import GradientMethod, aggregation


def build(settings: PCGrad, n_tasks: int) -> GradientMethod:
    """The method with its configured settings."""
    return GradientMethod(aggregation().PCGrad(), aggregation().PCGradWeighting())
