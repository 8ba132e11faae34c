"""``equal``: Σ L_i, every task's loss once (torchjd ``Sum``): the plain multi-task sum and
the baselines' weighting.

Example::

    >>> import torch
    >>> weighting = build(Equal(), ["main", "aux"], shared_layer=[])
    >>> weighting(torch.tensor([1.0, 2.0]))
    tensor(3.)
"""

from __future__ import annotations

from torch import nn

from components.config.methods import Equal
from components.weighting.base import LossWeighting, ScalarizerWeighting, scalarization


def build(settings: Equal, task_names: list[str], shared_layer: list[nn.Parameter]) -> LossWeighting:
    """The plain sum of the task losses."""
    return ScalarizerWeighting(scalarization().Sum())
