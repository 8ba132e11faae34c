"""``uncertainty``: homoscedastic uncertainty weighting (Kendall et al. 2018, "Multi-Task
Learning Using Uncertainty to Weigh Losses for Scene Geometry and Semantics"), torchjd ``UW``.

One form for every task: ½·e^(−s_i)·L_i + ½·s_i with learned s_i = log σ_i², Kendall et
al.'s regression form (as torchjd and LibMTL implement it). Their classification form,
e^(−s_i)·L_i + ½·s_i, only doubles the loss term's weight; one form keeps tasks of
different types on one scale. The s_i train with the network's optimizer.

Example::

    >>> import torch
    >>> weighting = build(Uncertainty(), ["main", "aux"], shared_layer=[])
    >>> weighting(torch.tensor([1.0, 2.0]))   # s = 0: half of each loss
    tensor(1.5000, grad_fn=<SumBackward0>)
"""

from __future__ import annotations

from torch import nn

from components.config.methods import Uncertainty
from components.weighting.base import LossWeighting, ScalarizerWeighting, scalarization


def build(settings: Uncertainty, task_names: list[str], shared_layer: list[nn.Parameter]) -> LossWeighting:
    """Uncertainty weighting with one log-variance per task, starting at 0."""
    return ScalarizerWeighting(scalarization().UW(len(task_names)))
