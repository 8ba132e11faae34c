"""Gradient methods: how per-task gradients on the shared parameters become one update.

``sum`` is plain backpropagation of the (weighted) loss sum. Every other method works on the
tasks' gradients, one row per task, and task-specific parameters (the heads) always get
their own task's gradient. One module per method, named as ``training.gradient.name`` names
it, each with a ``build(settings, n_tasks)``; the methods and their settings are listed
once, in ``components.config.methods``. Most are torchjd aggregators (Quinton & Rey 2024,
"Jacobian Descent for Multi-Objective Optimization"); each module cites its paper.

With ``training.gradient.compare_on: features`` the Gramian-based methods run as MGDA-UB
does (Sener & Koltun 2018, "Multi-Task Learning as Multi-Objective Optimization", §3.3): the
tasks are compared on their gradients with respect to the shared representation, which
costs T backward passes through the heads only; the method's weighting turns that Gramian
into task weights; and one backward pass from the representation carries the weighted sum
of those gradients through the backbone (``components.gradients.jacobian``).

Example::

    >>> import torch
    >>> from components.config import gradient_method
    >>> jacobian = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])   # two conflicting task gradients
    >>> build_gradient_method(gradient_method("pcgrad"), n_tasks=2).combine(jacobian)
    tensor([0.5000, 1.5000])
"""

from __future__ import annotations

import importlib

from components.config import GradientSettings
from components.gradients.base import GradientMethod


def build_gradient_method(settings: GradientSettings, n_tasks: int) -> GradientMethod:
    """The gradient method ``settings`` names, for ``n_tasks`` tasks."""
    module = importlib.import_module(f"components.gradients.{settings.name}")
    built: GradientMethod = module.build(settings, n_tasks)
    return built


__all__ = ["GradientMethod", "build_gradient_method"]
