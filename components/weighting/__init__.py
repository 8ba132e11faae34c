"""Loss weighting: how the per-task losses become the one scalar that is minimised.

One module per method, named as ``training.loss_weighting.name`` names it, each with a
``build(settings, task_names, shared_layer)``; the methods and their settings are listed
once, in ``components.config.methods``. A method keeps what a resumed training needs in its
``state_dict``. Adding one is its settings class in that union and its module here.

Example::

    >>> weighting = build_weighting(TrainingConfig(loss_weighting={"name": "fixed", "weights": {"aux": 0.3}}),
    ...                             ["main", "aux"], shared_layer=[])
    >>> weighting(torch.tensor([1.0, 2.0]))
    tensor(1.6000)
"""

from __future__ import annotations

import importlib

import torch
from torch import Tensor, nn

from components.config import TrainingConfig
from components.weighting.base import LossWeighting


def build_weighting(config: TrainingConfig, task_names: list[str], shared_layer: list[nn.Parameter]) -> LossWeighting:
    """The loss weighting ``config.loss_weighting`` names, for ``task_names`` in order."""
    settings = config.loss_weighting
    method = importlib.import_module(f"components.weighting.{settings.name}")
    built: LossWeighting = method.build(settings, task_names, shared_layer)
    return built


def effective_weights(combined: Tensor, losses: Tensor) -> Tensor:
    """∂(combined)/∂L_i: each task's weight in this step, whatever the method."""
    (weights,) = torch.autograd.grad(combined, losses, retain_graph=True)
    return weights.detach()


__all__ = ["LossWeighting", "build_weighting", "effective_weights"]
