"""``imtl_g``: IMTL-G (Liu et al. 2021, "Towards Impartial Multi-task Learning"), torchjd
``IMTLG``: the update whose projections on every task's unit gradient are equal.

Example::

    >>> import torch
    >>> update = build(IMTLG(), n_tasks=2).combine(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    >>> update
    tensor([0.6667, 0.6667])
"""

from __future__ import annotations

from components.config.methods import IMTLG
from components.gradients.base import GradientMethod, aggregation


def build(settings: IMTLG, n_tasks: int) -> GradientMethod:
    """The method with its configured settings."""
    return GradientMethod(aggregation().IMTLG(), aggregation().IMTLGWeighting())
