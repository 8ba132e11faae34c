"""``fixed``: Σ c_i L_i with constant weights c_i from ``training.loss_weighting.weights``
(torchjd ``Constant``); a task not listed weighs 1.

Example::

    >>> weighting = build(Fixed(weights={"aux": 0.3}), ["main", "aux"], shared_layer=[])
    >>> weighting(torch.tensor([1.0, 2.0]))
    tensor(1.6000)
"""

from __future__ import annotations

import torch
from torch import nn

from components.config.methods import Fixed
from components.weighting.base import LossWeighting, ScalarizerWeighting, scalarization


def build(settings: Fixed, task_names: list[str], shared_layer: list[nn.Parameter]) -> LossWeighting:
    """The weighted sum with each task's configured weight."""
    weights = torch.tensor([settings.weights.get(name, 1.0) for name in task_names])
    return ScalarizerWeighting(scalarization().Constant(weights))
