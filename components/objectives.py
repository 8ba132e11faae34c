"""What each task's model is judged on: its primary metric, direction, tolerance and
selection weight (:class:`Objective`), the sign-aware relative change against a reference
(:func:`relative_change`, Maninis et al. 2019, "Attentive Single-Tasking of Multiple
Tasks") and the weighted score checkpoints are ranked by (:func:`weighted_score`).

Apart from the acceptance policy (``components.selection``) so that the trainings, whose
early stopping watches the same score, do not depend on the policy: a change to how a
verdict is reached re-runs ``select`` and ``register``, never a training. Pure, and
imports nothing (``components.tasks.task_objectives`` builds them from ``params.yaml``).

Example::

    >>> relative_change(mtl=0.95, baseline=0.94, higher_is_better=True)
    0.010638...
    >>> goals = {"left": Objective("accuracy", True, 0.02), "mae": Objective("mae", False, 0.02, weight=3.0)}
    >>> round(weighted_score({"left": 0.95, "mae": 0.5}, {"left": 0.95, "mae": 0.4}, goals), 4)
    -0.1875
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Objective:
    """What selection needs to know about one task."""

    metric: str
    higher_is_better: bool
    max_relative_regression: float
    weight: float = 1.0


def relative_change(mtl: float, baseline: float, higher_is_better: bool) -> float:
    """Δ_t: positive when the MTL metric is better than the baseline's; NaN when either is
    not a finite number (a NaN never passes, and makes Δm NaN). A baseline of exactly 0 (an
    F1 whose head never predicts a positive, a perfect error) has no relative scale: the
    change is then the plain difference, as if against a metric of scale 1, so that a gain
    over nothing counts and a loss against perfection fails."""
    if not (math.isfinite(mtl) and math.isfinite(baseline)):
        return math.nan
    sign = 1.0 if higher_is_better else -1.0
    return sign * (mtl - baseline) / (abs(baseline) or 1.0)


def weighted_score(
    metrics: Mapping[str, float], baseline: Mapping[str, float], objectives: Mapping[str, Objective]
) -> float:
    """The checkpoint score: the ``selection_weight``-weighted mean of Δ_t."""
    total_weight = sum(o.weight for o in objectives.values())
    if total_weight <= 0:
        raise ValueError("selection weights sum to 0; give at least one task a positive weight")
    changes = {t: relative_change(metrics[t], baseline[t], o.higher_is_better) for t, o in objectives.items()}
    return sum(objectives[t].weight * change for t, change in changes.items()) / total_weight
