"""Gradient handling: how per-task gradients on the shared parameters become one update.

``sum`` is plain backpropagation of the (weighted) loss sum. Every other method works on
the Jacobian of the shared parameters, one row per task, and task-specific parameters
(the heads) always get their own task's gradient:

- ``normalize``: each task's shared gradient rescaled to the mean norm, then summed
  (a simple balance; written here because no library ships it as such).
- torchjd aggregators (Quinton & Rey 2024, "Jacobian Descent for Multi-Objective
  Optimization"): ``pcgrad`` (Yu et al. 2020), ``cagrad`` (Liu et al. 2021), ``mgda``
  (Sener & Koltun 2018), ``upgrad`` (Quinton & Rey 2024), ``nash_mtl`` (Navon et al. 2022),
  ``imtl_g`` (Liu et al. 2021), ``aligned_mtl`` (Senushkin et al. 2023), ``graddrop``
  (Chen et al. 2020).

With ``training.gradient_on: features`` the Gramian-based methods run as MGDA-UB does
(Sener & Koltun 2018, "Multi-Task Learning as Multi-Objective Optimization", §3.3): the
tasks are compared on their gradients with respect to the shared representation, which
cost T backward passes through the heads only; torchjd's weighting turns that Gramian into
task weights; and one backward pass from the representation carries the weighted sum of
those gradients through the backbone (:func:`backward_through_features`).

Example::

    >>> jacobian = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])   # two conflicting task gradients
    >>> jacobian_combiner("pcgrad", n_tasks=2)(jacobian)
    tensor([0.5000, 1.5000])
    >>> jacobian_combiner("sum", n_tasks=2) is None            # plain backpropagation
    True
    >>> jacobian_combiner("cagrad", n_tasks=2, config=TrainingConfig(cagrad_c=0.0))(jacobian)
    tensor([0.0000, 0.5000])

The methods' own settings (``cagrad_c``, ``nash_mtl_update_every``) come from the
training config; the rest stay torchjd's defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, cast

import torch
from torch import Tensor, nn

from components.config import GRADIENT_METHODS, GRAMIAN_METHODS, TrainingConfig

Combiner = Callable[[Tensor], Tensor]


def _aggregation() -> ModuleType:
    """torchjd's aggregators, imported when a method is built: importing torchjd loads cvxpy
    (0.7 s with it), which the stages that only read trainings (select, register, promote,
    the health check) need not pay."""
    from torchjd import aggregation

    return aggregation


AGGREGATORS: dict[str, Callable[[int, TrainingConfig], Combiner]] = {
    "pcgrad": lambda n, config: _aggregation().PCGrad(),
    "cagrad": lambda n, config: _aggregation().CAGrad(c=config.cagrad_c),
    "mgda": lambda n, config: _aggregation().MGDA(),
    "upgrad": lambda n, config: _aggregation().UPGrad(),
    "nash_mtl": lambda n, config: _aggregation().NashMTL(n_tasks=n, update_weights_every=config.nash_mtl_update_every),
    "imtl_g": lambda n, config: _aggregation().IMTLG(),
    "aligned_mtl": lambda n, config: _aggregation().AlignedMTL(),
    "graddrop": lambda n, config: _aggregation().GradDrop(),
}


GRAMIAN_WEIGHTINGS: dict[str, Callable[[TrainingConfig], Callable[[Tensor], Tensor]]] = {
    "pcgrad": lambda config: _aggregation().PCGradWeighting(),
    "cagrad": lambda config: _aggregation().CAGradWeighting(c=config.cagrad_c),
    "mgda": lambda config: _aggregation().MGDAWeighting(),
    "upgrad": lambda config: _aggregation().UPGradWeighting(),
    "imtl_g": lambda config: _aggregation().IMTLGWeighting(),
    "aligned_mtl": lambda config: _aggregation().AlignedMTLWeighting(),
}


def normalize_weights(gramian: Tensor) -> Tensor:
    """``normalize`` from the Gramian: each task weighed by the mean gradient norm over its own."""
    norms = gramian.diagonal().clamp_min(1e-24).sqrt()
    return norms.mean() / norms


def gramian_weighting(method: str, config: TrainingConfig | None = None) -> Callable[[Tensor], Tensor]:
    """Task weights from the Gramian of the tasks' gradients, for ``method``: the same
    weights torchjd's aggregator of that name applies to the Jacobian's rows. ``config``
    holds the method's settings (its defaults when None)."""
    if method == "normalize":
        return normalize_weights
    if method in GRAMIAN_WEIGHTINGS:
        return GRAMIAN_WEIGHTINGS[method](config or TrainingConfig())
    raise ValueError(f"gradient method {method!r} needs the Jacobian; on features: {', '.join(GRAMIAN_METHODS)}")


def backward_through_features(
    task_losses: Sequence[Tensor],
    representation: Tensor,
    shared: Sequence[nn.Parameter],
    specific: Sequence[nn.Parameter],
    weighting: Callable[[Tensor], Tensor],
    reduce_gramian: Callable[[Tensor], Tensor] | None = None,
    observe: Callable[[Tensor], None] | None = None,
) -> Tensor:
    """Fills ``.grad`` as MGDA-UB does: the shared parameters get Σ_t w_t ∇L_t with the
    weights the Gramian of the tasks' gradients on ``representation`` gives, the
    task-specific parameters their own task's gradient. Returns the weights.

    ``reduce_gramian`` sums the Gramian over data-parallel processes (every process then
    weighs alike); ``observe`` sees the tasks' gradients on the representation.
    """
    # float32 whatever the autocast: the weightings solve small programs on the Gramian
    rows = torch.stack(
        [torch.autograd.grad(loss, representation, retain_graph=True)[0].reshape(-1).float() for loss in task_losses]
    )
    if observe is not None:
        observe(rows)
    gramian = rows @ rows.T
    if reduce_gramian is not None:
        gramian = reduce_gramian(gramian)
    weights = weighting(gramian).to(rows.dtype)
    losses = torch.stack(list(task_losses))
    # the heads through their own losses (a short pass), keeping the graph for the one pass
    # from the weighted sum that reaches every shared parameter, also any between the
    # representation and a head (a pooling layer when it is the dense features)
    torch.autograd.backward(losses.sum(), inputs=list(specific), retain_graph=True)
    torch.autograd.backward((weights * losses).sum(), inputs=list(shared))
    return weights


def normalize_and_sum(jacobian: Tensor) -> Tensor:
    """Rows rescaled to their mean norm, then summed: no task dominates by gradient scale."""
    norms = jacobian.norm(dim=1).clamp_min(1e-12)
    return (norms.mean() / norms) @ jacobian  # one pass over the Jacobian, no rescaled copy of it


def jacobian_combiner(method: str, n_tasks: int, config: TrainingConfig | None = None) -> Combiner | None:
    """How ``method`` combines the shared Jacobian; None for ``sum``, which needs no
    Jacobian: the training step backpropagates the weighted loss sum once. ``config``
    holds the method's settings (its defaults when None)."""
    if method == "sum":
        return None
    if method == "normalize":
        return normalize_and_sum
    if method in AGGREGATORS:
        return AGGREGATORS[method](n_tasks, config or TrainingConfig())
    raise ValueError(f"unknown gradient method {method!r}; valid: {', '.join(GRADIENT_METHODS)}")


def shared_jacobian(task_losses: Sequence[Tensor], shared: Sequence[nn.Parameter]) -> Tensor:
    """The gradient of each task loss on the shared parameters, one flattened row per task;
    the graph is kept for the backward passes that follow.

    Built with one ``autograd.grad`` per task rather than torchjd's ``mtl_backward``: at
    four tasks on a small CNN the sequential calls measured 2.8x a single-task step against
    4.3x for the vmap-based Jacobian.
    """
    rows = []
    for loss in task_losses:
        grads = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
        rows.append(
            torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, shared)])
        )
    return torch.stack(rows)


def backward_per_task(
    task_losses: Sequence[Tensor],
    shared: Sequence[nn.Parameter],
    specific: Sequence[nn.Parameter],
    combiner: Combiner,
    reduce_jacobian: Callable[[Tensor], Tensor] | None = None,
    observe: Callable[[Tensor], None] | None = None,
) -> None:
    """Fills ``.grad``: shared parameters get the combined Jacobian, the rest plain gradients.

    ``reduce_jacobian`` averages the Jacobian over data-parallel processes before it is
    combined, so every process combines the same per-task gradients; ``observe`` sees that
    Jacobian (e.g. to measure how the tasks agree) before it is combined.
    """
    jacobian = shared_jacobian(task_losses, shared)
    if reduce_jacobian is not None:
        jacobian = reduce_jacobian(jacobian)
    if observe is not None:
        observe(jacobian)
    combined = combiner(jacobian)
    offset = 0
    for parameter in shared:
        size = parameter.numel()
        update = combined[offset : offset + size].view_as(parameter)
        parameter.grad = update.clone() if parameter.grad is None else parameter.grad + update
        offset += size
    # Each head depends on its own task's loss only, so the sum gives each its own gradient.
    torch.autograd.backward(torch.stack(list(task_losses)).sum(), inputs=list(specific))


def combiner_state(combiner: Combiner | None) -> dict[str, Tensor]:
    """What a stateful combiner carries between steps, for a resumed training: Nash-MTL's
    step count and previous α (read from torchjd's attributes: the aggregator has no state
    dict of its own); empty for the stateless methods."""
    if combiner is None or not isinstance(combiner, _aggregation().NashMTL):
        return {}
    nash: Any = cast(Any, combiner).weighting  # its state is numpy arrays, which torchjd's typing does not know
    return {
        "step": torch.tensor(nash.step),
        "prvs_alpha": torch.from_numpy(nash.prvs_alpha.copy()),
        "normalization_factor": torch.from_numpy(nash.normalization_factor.copy()),
    }


def load_combiner_state(combiner: Combiner | None, state: dict[str, Tensor]) -> None:
    """Restores what :func:`combiner_state` saved."""
    if not state or not isinstance(combiner, _aggregation().NashMTL):
        return
    nash: Any = cast(Any, combiner).weighting
    nash.step = float(state["step"])
    nash.prvs_alpha = state["prvs_alpha"].numpy().copy()
    nash.normalization_factor = state["normalization_factor"].numpy().copy()
    if nash.step > 0:  # the solver's problem is built on step 0, which is past
        nash._init_optim_problem()
