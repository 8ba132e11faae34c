"""``sum``: plain backpropagation of the (weighted) loss sum, the baselines' method. The
training step backpropagates once; :meth:`combine` is the same sum of the Jacobian's rows.

Example::

    >>> import torch
    >>> build(Sum(), n_tasks=2).combine(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))
    tensor([0., 1.])
"""

from __future__ import annotations

from components.config.methods import Sum
from components.gradients.base import GradientMethod


def build(settings: Sum, n_tasks: int) -> GradientMethod:
    """The method with its configured settings."""
    return GradientMethod(lambda jacobian: jacobian.sum(dim=0))
