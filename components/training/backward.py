"""How one training step fills every ``.grad``: one strategy per path, each with one
:meth:`~Backward.backward`, chosen once when the training starts (:func:`backward_for`).

- :class:`SumBackward`: plain backpropagation of the weighted loss sum (``gradient: sum``);
  under several processes the model is DDP-wrapped and averages during the pass.
- :class:`JacobianBackward`: the exact method on the shared parameters' Jacobian, one row
  per task (``compare_on: parameters``): T backward passes.
- :class:`FeatureBackward`: MGDA-UB on the shared representation (``compare_on: features``):
  the Gramian of the tasks' gradients there gives task weights, then one backward pass.

Each strategy saves what its gradient method carries between steps (Nash-MTL's solution),
so a resumed training continues as an uninterrupted one would.

Example::

    >>> from components.config import TrainingConfig
    >>> type(backward_for(TrainingConfig(), n_tasks=2)).__name__
    'SumBackward'
    >>> type(backward_for(TrainingConfig(gradient={"name": "upgrad", "compare_on": "features"}), 2)).__name__
    'FeatureBackward'
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from components.config import TrainingConfig
from components.gradients import GradientMethod, build_gradient_method
from components.gradients.jacobian import backward_per_task, backward_through_features, shared_jacobian
from components.training import distributed
from components.training.agreement import GradientAgreement

if TYPE_CHECKING:
    from components.models import MultiTaskNetwork
    from components.weighting import LossWeighting


@dataclass
class StepGradients:
    """What a step's backward pass works on."""

    model: MultiTaskNetwork
    weighting: LossWeighting
    context: distributed.Context
    #: the weighted loss the weighting produced (plus any regularization)
    combined: Tensor
    #: each task's weighted loss
    weighted: Tensor
    #: step 1, 2, … of the epoch
    step: int
    #: the features every task reads (``compare_on: features``); None where there are none
    representation: Tensor | None
    #: measures how the tasks' shared gradients agree; None when switched off
    agreement: GradientAgreement | None
    #: the model under DistributedDataParallel, whose backward averages the gradients; None otherwise
    replicated: nn.Module | None


class Backward(ABC):
    """Fills every ``.grad`` of one step, averaged over data-parallel processes."""

    #: the gradient method whose state a resumed training needs; None for the plain sum
    method: GradientMethod | None = None

    @abstractmethod
    def backward(self, step: StepGradients) -> None:
        """Fills every ``.grad`` of ``step``."""

    def state_dict(self) -> dict[str, Any]:
        """What the gradient method carries between steps."""
        return self.method.state_dict() if self.method is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores what :meth:`state_dict` saved."""
        if self.method is not None:
            self.method.load_state_dict(state)


class SumBackward(Backward):
    """Backpropagation of the weighted loss sum, once."""

    def backward(self, step: StepGradients) -> None:
        agreement = step.agreement
        if agreement is not None and agreement.due(step.step):  # T extra backward passes, on sampled steps only
            agreement.record(shared_jacobian(list(step.weighted), step.model.shared_parameters()))
        step.combined.backward()  # under DDP, the model's gradients are averaged during this pass
        averaged_already = step.replicated is not None
        step.context.average_gradients(
            [*([] if averaged_already else step.model.parameters()), *step.weighting.trainable()]
        )


def _weighting_gradients(step: StepGradients) -> None:
    """The weighting's own parameters (e.g. uncertainty's log-variances) learn from the
    scalarised objective, which the per-task paths do not backpropagate as such."""
    trainable = step.weighting.trainable()
    if trainable:
        grads = torch.autograd.grad(step.combined, trainable, retain_graph=True, allow_unused=True)
        for parameter, grad in zip(trainable, grads):
            if grad is not None:
                parameter.grad = grad


def _specific(model: MultiTaskNetwork) -> list[nn.Parameter]:
    return [p for task in model.heads for p in model.task_parameters(task)]


@dataclass
class JacobianBackward(Backward):
    """The gradient method on the shared parameters' Jacobian; the heads get their own gradients."""

    method: GradientMethod

    def backward(self, step: StepGradients) -> None:
        _weighting_gradients(step)
        specific = _specific(step.model)
        observe = step.agreement.record if step.agreement is not None else None  # free: the rows are built anyway
        # the shared Jacobian is averaged inside, before the tasks are combined
        backward_per_task(
            list(step.weighted),
            step.model.shared_parameters(),
            specific,
            self.method.combine,
            step.context.mean,
            observe,
        )
        step.context.average_gradients([*specific, *step.weighting.trainable()])


@dataclass
class FeatureBackward(Backward):
    """MGDA-UB: task weights from the Gramian on the shared representation, one backward pass."""

    method: GradientMethod

    def backward(self, step: StepGradients) -> None:
        if step.representation is None:
            raise RuntimeError("gradient compare_on features: the model's tasks read no common representation")
        _weighting_gradients(step)
        context = step.context

        def global_gramian(gramian: Tensor) -> Tensor:
            """The global batch's: the local ones summed, each of gradients 1/W of the global loss's."""
            return context.mean(gramian) / context.world_size

        shared, specific = step.model.shared_parameters(), _specific(step.model)
        observe = step.agreement.record if step.agreement is not None else None
        backward_through_features(
            list(step.weighted), step.representation, shared, specific, self.method.weigh, global_gramian, observe
        )
        context.average_gradients([*shared, *specific, *step.weighting.trainable()])


def backward_for(config: TrainingConfig, n_tasks: int) -> Backward:
    """The strategy ``config.gradient`` asks for."""
    settings = config.gradient
    if settings.name == "sum":
        return SumBackward()
    method = build_gradient_method(settings, n_tasks)
    return FeatureBackward(method) if settings.compare_on == "features" else JacobianBackward(method)
