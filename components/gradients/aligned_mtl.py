"""``aligned_mtl``: Aligned-MTL (Senushkin et al. 2023, "Independent Component Alignment
for Multi-Task Learning"), torchjd ``AlignedMTL``: the tasks' gradients aligned by the
condition number of their Gramian.

Example::

    >>> import torch
    >>> build(AlignedMTL(), n_tasks=2).combine(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    tensor([0.5000, 0.5000])
"""

from __future__ import annotations

from components.config.methods import AlignedMTL
from components.gradients.base import GradientMethod, aggregation


def build(settings: AlignedMTL, n_tasks: int) -> GradientMethod:
    """The method with its configured settings."""
    return GradientMethod(aggregation().AlignedMTL(), aggregation().AlignedMTLWeighting())
