"""GradNorm (Chen et al. 2018, "GradNorm: Gradient Normalization for Adaptive Loss
Balancing in Deep Multitask Networks").

Written here because torchjd has no GradNorm. The task weights w are learned so that each
task's weighted gradient norm on the last shared layer W tracks a common target::

    G_i   = || ∇_W (w_i L_i) ||                             (W may span several tensors)
    r_i   = (L_i / L_i(0)) / mean_j (L_j / L_j(0))        relative inverse training rate
    target_i = mean_j(G_j) · r_i^α                          (held constant)
    L_grad = Σ_i | G_i − target_i |

L_grad updates only w; the network gets Σ w_i L_i. After each step the weights are
renormalised to sum to the number of tasks.

Example::

    >>> gradnorm_targets(torch.tensor([2.0, 4.0]), torch.tensor([1.0, 0.5]), torch.tensor([2.0, 2.0]), alpha=1.0)
    tensor([4., 2.])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from components.config.methods import GradNorm as GradNormSettings
from components.weighting.base import LossWeighting


def gradnorm_targets(grad_norms: Tensor, losses: Tensor, initial_losses: Tensor, alpha: float) -> Tensor:
    """target_i = mean(G) · r_i^α, the norm each weighted gradient should have."""
    ratios = losses / initial_losses
    relative_rates = ratios / ratios.mean()
    return grad_norms.mean() * relative_rates**alpha


class GradNorm(LossWeighting):
    """Task weights learned so each weighted gradient norm tracks its target."""

    initial_losses: Tensor

    def __init__(self, n_tasks: int, alpha: float, shared_layer: list[nn.Parameter]) -> None:
        super().__init__()
        self.alpha = alpha
        self.shared_layer = list(shared_layer)  # a plain list, so not registered as our parameters
        self.task_weights = nn.Parameter(torch.ones(n_tasks))
        self.register_buffer("initial_losses", torch.zeros(n_tasks))

    @property
    def weights(self) -> Tensor:
        return self.task_weights.detach()

    def learn(self, losses: Tensor) -> None:
        """w learns from L_grad alone: its gradient is set here, before the step's backward."""
        if not self.initial_losses.any():
            self.initial_losses.copy_(losses.detach())
        norms = torch.stack([self._grad_norm(self.task_weights[i] * loss) for i, loss in enumerate(losses)])
        targets = gradnorm_targets(norms, losses.detach(), self.initial_losses, self.alpha).detach()
        gradnorm_loss = (norms - targets).abs().sum()
        self.task_weights.grad = torch.autograd.grad(gradnorm_loss, self.task_weights, retain_graph=True)[0]

    def forward(self, losses: Tensor) -> Tensor:
        """Σ w_i L_i, the network seeing w as constants."""
        return (self.weights * losses).sum()

    def _grad_norm(self, weighted_loss: Tensor) -> Tensor:
        grads = torch.autograd.grad(weighted_loss, self.shared_layer, retain_graph=True, create_graph=True)
        return torch.sqrt(torch.stack([(g**2).sum() for g in grads]).sum())

    def after_step(self, losses_after: Tensor | None) -> None:
        with torch.no_grad():
            self.task_weights.clamp_(min=1e-3)
            self.task_weights.mul_(len(self.task_weights) / self.task_weights.sum())


def build(settings: GradNormSettings, task_names: list[str], shared_layer: list[nn.Parameter]) -> LossWeighting:
    """GradNorm on ``shared_layer`` (the model's last shared layer) with the configured α."""
    return GradNorm(len(task_names), settings.alpha, shared_layer)
