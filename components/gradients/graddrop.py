"""``graddrop``: GradDrop (Chen et al. 2020, "Just Pick a Sign: Optimizing Deep Multitask
Models with Gradient Sign Dropout"), torchjd ``GradDrop``: per coordinate, the gradients of
one sign are kept, drawn by how much they agree. It needs the Jacobian itself.

Example::

    >>> import torch
    >>> build(GradDrop(), n_tasks=2).combine(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))   # no conflict: the sum
    tensor([4., 6.])
"""

from __future__ import annotations

from components.config.methods import GradDrop
from components.gradients.base import GradientMethod, aggregation


def build(settings: GradDrop, n_tasks: int) -> GradientMethod:
    """The method with its configured settings."""
    return GradientMethod(aggregation().GradDrop())
