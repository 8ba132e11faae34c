"""``normalize``: each task's shared gradient rescaled to the mean norm, then summed, so no
task dominates by gradient scale. Written here because no library ships this simple
balance as such; from the Gramian, each task weighs mean norm over its own norm.

Example::

    >>> import torch
    >>> build(Normalize(), n_tasks=2).combine(torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
    tensor([1.8000, 5.4000])
"""

from __future__ import annotations

from torch import Tensor

from components.config.methods import Normalize
from components.gradients.base import GradientMethod


def build(settings: Normalize, n_tasks: int) -> GradientMethod:
    """The method with its configured settings."""
    return GradientMethod(normalize_and_sum, normalize_weights)


def normalize_and_sum(jacobian: Tensor) -> Tensor:
    """Rows rescaled to their mean norm, then summed: no task dominates by gradient scale."""
    norms = jacobian.norm(dim=1).clamp_min(1e-12)
    return (norms.mean() / norms) @ jacobian  # one pass over the Jacobian, no rescaled copy of it


def normalize_weights(gramian: Tensor) -> Tensor:
    """``normalize`` from the Gramian: each task weighed by the mean gradient norm over its own."""
    norms = gramian.diagonal().clamp_min(1e-24).sqrt()
    return norms.mean() / norms
