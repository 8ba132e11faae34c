"""``nash_mtl``: Nash-MTL (Navon et al. 2022, "Multi-Task Learning as a Bargaining Game"),
torchjd ``NashMTL``: the Nash bargaining solution between the tasks' gradients, solved every
``update_every``-th step (a cvxpy call, 13 ms here) and reused in between. It needs the
Jacobian itself. Its step count and last solution are in its ``state_dict``.

Example::

    >>> import torch
    >>> method = build(NashMTL(update_every=3), n_tasks=2)
    >>> _ = method.combine(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    >>> float(method.state_dict()["step"])
    1.0
"""

from __future__ import annotations

from typing import Any

from components import torchjd_state
from components.config.methods import NashMTL
from components.gradients.base import GradientMethod, aggregation


class NashMTLMethod(GradientMethod):
    """Nash-MTL, whose bargaining state a resumed training gets back."""

    def __init__(self, aggregator: Any) -> None:
        super().__init__(aggregator)
        self.aggregator = aggregator

    def state_dict(self) -> dict[str, Any]:
        return torchjd_state.nash_mtl_state(self.aggregator)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            torchjd_state.load_nash_mtl_state(self.aggregator, state)


def build(settings: NashMTL, n_tasks: int) -> GradientMethod:
    """Nash-MTL for ``n_tasks``, solving every ``settings.update_every``-th step."""
    return NashMTLMethod(aggregation().NashMTL(n_tasks=n_tasks, update_weights_every=settings.update_every))
