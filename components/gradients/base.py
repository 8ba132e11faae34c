"""What every gradient method provides to the training step, and the adapter of a torchjd
aggregator (and, where torchjd has one, its Gramian weighting) that most methods are."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from torch import Tensor


def aggregation() -> ModuleType:
    """torchjd's aggregators, imported when a method is built: importing torchjd loads cvxpy
    (0.7 s with it), which the stages that only read trainings (select, register, promote,
    the health check) need not pay."""
    from torchjd import aggregation

    return aggregation


class GradientMethod:
    """Combines the tasks' gradients: the Jacobian's rows into one update of the shared
    parameters (``compare_on: parameters``), or their Gramian into task weights
    (``compare_on: features``); holds whatever a resumed training needs of it."""

    def __init__(self, combine: Callable[[Tensor], Tensor], weigh: Callable[[Tensor], Tensor] | None = None) -> None:
        self._combine, self._weigh = combine, weigh

    def combine(self, jacobian: Tensor) -> Tensor:
        """The update of the shared parameters from the tasks' gradients, one row per task."""
        return self._combine(jacobian)

    def weigh(self, gramian: Tensor) -> Tensor:
        """Task weights from the Gramian of the tasks' gradients."""
        if self._weigh is None:
            raise ValueError("this gradient method needs the Jacobian itself, not its Gramian")
        return self._weigh(gramian)

    def state_dict(self) -> dict[str, Any]:
        """What the method carries between steps (nothing, unless it says otherwise)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores what :meth:`state_dict` saved."""
