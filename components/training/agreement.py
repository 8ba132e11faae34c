"""Do the tasks pull the shared parameters the same way? Pairwise gradient cosines.

Yu et al. 2020 ("Gradient Surgery for Multi-Task Learning") call two task gradients on the
shared parameters *conflicting* when their cosine similarity is negative: a step for one
then undoes part of the other's. :class:`GradientAgreement` keeps, per pair of tasks and
epoch, the mean cosine and the share of measured steps on which the pair conflicted.
Those land in MLflow as ``grad_cosine/<a> vs <b>`` and ``grad_conflict/<a> vs <b>``.

Gradient methods build the per-task Jacobian anyway, so it is measured on every step at
the cost of a T×T Gram matrix. With plain ``sum`` it costs T extra backward passes, so it is
sampled every ``training.gradient_stats_every`` steps. Written here because torchjd exposes
the Jacobian but keeps no statistics of it.

Example::

    >>> agreement = GradientAgreement(["a", "b", "c"], every=1)
    >>> agreement.record(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 1.0]]))
    >>> cosine, conflict = agreement.summary()
    >>> {pair: round(value, 3) for pair, value in cosine.items()}
    {'a vs b': -1.0, 'a vs c': 0.707, 'b vs c': -0.707}
    >>> conflict
    {'a vs b': 1.0, 'a vs c': 0.0, 'b vs c': 1.0}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import torch
from torch import Tensor


def pair_name(first: str, second: str) -> str:
    """How a pair of tasks is named in metrics and reports."""
    return f"{first} vs {second}"


class GradientAgreement:
    """Accumulates pairwise cosines of the per-task shared gradients over one epoch."""

    def __init__(self, tasks: list[str], every: int) -> None:
        self.pairs = list(combinations(range(len(tasks)), 2))
        self.names = [pair_name(tasks[i], tasks[j]) for i, j in self.pairs]
        self.every = every
        self.reset()

    def reset(self) -> None:
        self._cosine_sums = torch.zeros(len(self.pairs), dtype=torch.float64)
        self._conflicts = torch.zeros(len(self.pairs), dtype=torch.float64)
        self._counts = torch.zeros(len(self.pairs), dtype=torch.float64)

    def due(self, step: int) -> bool:
        """Whether step ``step`` (1, 2, … within its epoch) is sampled, with ``sum``, where
        measuring costs backward passes: the 1st, (1+k)th, … of every epoch, so a resumed
        training samples the steps an uninterrupted one would."""
        return (step - 1) % self.every == 0

    def record(self, jacobian: Tensor) -> None:
        """One step's Jacobian, a row per task. A task without labeled rows in the batch has a
        zero gradient, which has no direction: its pairs are not counted on that step."""
        rows = jacobian.detach().double()
        norms = rows.norm(dim=1)
        cosines = (rows @ rows.T) / (norms[:, None] * norms[None, :]).clamp_min(1e-30)
        first, second = (torch.tensor(side) for side in zip(*self.pairs))
        measured = ((norms[first] > 0) & (norms[second] > 0)).double().cpu()
        pair_cosines = cosines[first, second].cpu() * measured
        self._cosine_sums += pair_cosines
        self._conflicts += (pair_cosines < 0).double()
        self._counts += measured

    def summary(self) -> tuple[dict[str, float], dict[str, float]]:
        """Mean cosine and conflict share per pair since the last :meth:`reset`; pairs never
        measured are left out."""
        cosine, conflict = {}, {}
        for index, name in enumerate(self.names):
            count = float(self._counts[index])
            if count:
                cosine[name] = float(self._cosine_sums[index]) / count
                conflict[name] = float(self._conflicts[index]) / count
        return cosine, conflict


def mean_over_epochs(per_epoch: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each pair's value averaged over the epochs that measured it."""
    pairs = {pair for epoch in per_epoch for pair in epoch}
    return {
        pair: sum(values) / len(values)
        for pair in sorted(pairs)
        if (values := [epoch[pair] for epoch in per_epoch if pair in epoch])
    }


def partner_value(values: Mapping[str, float], task: str, other: str) -> float | None:
    """The value of the pair ``task``/``other`` in either order; None if never measured."""
    return values.get(pair_name(task, other), values.get(pair_name(other, task)))


def agreement_line(cosine: Mapping[str, float], conflict: Mapping[str, float]) -> str:
    """One terminal line: each pair's mean cosine and conflict share."""
    return "  ".join(f"{pair} cos {cosine[pair]:+.2f}, conflict {conflict[pair]:.0%}" for pair in cosine)
