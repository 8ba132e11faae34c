"""Multi-objective checkpoint selection under a regression-tolerance acceptance policy.

Relative change of task t, sign-aware (Maninis et al. 2019, "Attentive Single-Tasking of
Multiple Tasks")::

    Δ_t = (-1)^{l_t} (M_mtl,t - M_base,t) / |M_base,t|      l_t = 1 if lower is better

    Δm  = (1/T) Σ_t Δ_t

A checkpoint passes when every Δ_t >= -max_relative_regression_t and Δm >= min_delta_m.
Among passing checkpoints the best weighted mean of Δ_t wins (ties go to the earlier
epoch); if none passes, the verdict is ``rejected`` and the best-scoring one is reported.

Example::

    >>> relative_change(mtl=0.95, baseline=0.94, higher_is_better=True)
    0.010638...
    >>> relative_change(mtl=0.50, baseline=0.40, higher_is_better=False)   # MAE got worse
    -0.25
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Objective:
    """What selection needs to know about one task."""

    metric: str
    higher_is_better: bool
    max_relative_regression: float
    weight: float = 1.0


@dataclass(frozen=True)
class TaskComparison:
    task: str
    metric: str
    baseline: float
    mtl: float
    relative_change: float
    tolerance: float
    passed: bool


@dataclass(frozen=True)
class CheckpointScore:
    checkpoint: str
    epoch: int
    comparisons: dict[str, TaskComparison]
    delta_m: float
    score: float
    accepted: bool

    def failures(self) -> list[TaskComparison]:
        return [c for c in self.comparisons.values() if not c.passed]


def relative_change(mtl: float, baseline: float, higher_is_better: bool) -> float:
    if baseline == 0:
        raise ValueError("relative change is undefined for a baseline metric of 0")
    sign = 1.0 if higher_is_better else -1.0
    return sign * (mtl - baseline) / abs(baseline)


def compare_tasks(
    mtl: dict[str, float], baseline: dict[str, float], objectives: dict[str, Objective]
) -> dict[str, TaskComparison]:
    comparisons = {}
    for task, objective in objectives.items():
        change = relative_change(mtl[task], baseline[task], objective.higher_is_better)
        comparisons[task] = TaskComparison(
            task=task,
            metric=objective.metric,
            baseline=baseline[task],
            mtl=mtl[task],
            relative_change=change,
            tolerance=objective.max_relative_regression,
            passed=change >= -objective.max_relative_regression,
        )
    return comparisons


def delta_m(comparisons: dict[str, TaskComparison]) -> float:
    """Mean relative change over tasks (Maninis et al. 2019)."""
    return sum(c.relative_change for c in comparisons.values()) / len(comparisons)


def score_checkpoint(
    checkpoint: str,
    epoch: int,
    val_metrics: dict[str, float],
    baseline_val: dict[str, float],
    objectives: dict[str, Objective],
    min_delta_m: float,
) -> CheckpointScore:
    comparisons = compare_tasks(val_metrics, baseline_val, objectives)
    total_weight = sum(o.weight for o in objectives.values())
    if total_weight <= 0:
        raise ValueError("selection weights sum to 0; give at least one task a positive weight")
    score = sum(objectives[t].weight * c.relative_change for t, c in comparisons.items()) / total_weight
    mean_change = delta_m(comparisons)
    accepted = all(c.passed for c in comparisons.values()) and mean_change >= min_delta_m
    return CheckpointScore(checkpoint, epoch, comparisons, mean_change, score, accepted)


def select_checkpoint(scores: list[CheckpointScore]) -> tuple[CheckpointScore, str]:
    """Returns the chosen checkpoint and the verdict, ``accepted`` or ``rejected``."""
    if not scores:
        raise ValueError("no checkpoints to select from")
    passing = [s for s in scores if s.accepted]
    pool = passing or scores
    chosen = max(pool, key=lambda s: (s.score, -s.epoch))
    return chosen, "accepted" if passing else "rejected"


def champion_regressions(
    candidate_test: dict[str, float],
    champion_test: dict[str, float],
    objectives: dict[str, Objective],
) -> list[TaskComparison]:
    """Tasks on which the candidate regresses beyond tolerance against the current champion.

    Tasks the champion has no recorded metric for are not compared.
    """
    shared = {t: o for t, o in objectives.items() if t in champion_test}
    comparisons = compare_tasks(candidate_test, champion_test, shared)
    return [c for c in comparisons.values() if not c.passed]
