"""The acceptance policy, written once: checkpoint choice, the verdict, the champion guard.

Relative change of task t, sign-aware (Maninis et al. 2019, "Attentive Single-Tasking of
Multiple Tasks")::

    Δ_t = (-1)^{l_t} (M_mtl,t - M_base,t) / |M_base,t|      l_t = 1 if lower is better

    Δm  = (1/T) Σ_t Δ_t

A task passes when Δ_t >= -max_relative_regression_t (:func:`task_passes`), and never when
either metric is not a finite number; a checkpoint
passes when every task passes and Δm >= min_delta_m. Under ``selection.rule: lower_bound``
the lower ends of their bootstrap intervals (``components.bootstrap``) must pass instead:
a checkpoint passes only when the evidence says it does not regress, not when its point
estimate happens to; it fails *decisively* only when an interval lies wholly beyond the bar.
Among passing checkpoints the best weighted mean of Δ_t wins (ties go to the earlier
epoch). If none passes the verdict is ``rejected``, or ``inconclusive`` where some
checkpoint's intervals straddle the bar (the evidence cannot tell it from the tolerance),
and the best-scoring one is reported (:func:`choose_checkpoint`). A verdict on trainings
that ended while still improving measured the budget, not the sharing:
:func:`judge_convergence` makes it ``inconclusive``. The same
rule judges a candidate against the current champion (:func:`promotion_decision`) and the
champion's health against its registered metrics. Pure: no I/O.

Example::

    >>> relative_change(mtl=0.95, baseline=0.94, higher_is_better=True)
    0.010638...
    >>> round(relative_change(mtl=0.50, baseline=0.40, higher_is_better=False), 4)   # MAE got worse
    -0.25
    >>> goals = {"left": Objective("accuracy", True, 0.02)}
    >>> choice = choose_checkpoint([Candidate("epoch_001.pt", 1, {"left": 0.95})], {"left": 0.96}, goals, 0.0)
    >>> choice.verdict, round(choice.chosen.delta_m, 4)
    ('rejected', -0.0104)
    >>> judge_convergence(choice, ["baseline left: budget exhausted while improving"], "inconclusive").verdict
    'inconclusive'
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from components.objectives import Objective, relative_change, weighted_score


@dataclass(frozen=True)
class TaskComparison:
    """One task's metric against its reference (a baseline, the champion, a registered value)."""

    task: str
    metric: str
    baseline: float
    mtl: float
    relative_change: float
    tolerance: float
    passed: bool
    #: the bootstrap interval of the relative change, where one was computed
    interval: tuple[float, float] | None = None


@dataclass(frozen=True)
class CheckpointScore:
    checkpoint: str
    epoch: int
    comparisons: dict[str, TaskComparison]
    delta_m: float
    score: float
    accepted: bool
    delta_m_interval: tuple[float, float] | None = None
    #: the evidence settles the verdict: accepted, or some task or Δm fails wholly beyond the
    #: bar (always, under ``point``); False where a failing interval straddles the bar
    decided: bool = True

    def failures(self) -> list[TaskComparison]:
        """The tasks that regress beyond their tolerance."""
        return [c for c in self.comparisons.values() if not c.passed]


@dataclass(frozen=True)
class Candidate:
    """A checkpoint to judge: its file, epoch, and primary metric per task."""

    checkpoint: str
    epoch: int
    metrics: dict[str, float]
    #: bootstrap intervals of each task's Δ_t and of Δm, where computed
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    delta_m_interval: tuple[float, float] | None = None


def bracket(bounds: tuple[float, float] | list[float] | None) -> str:
    """`` [low, high]`` of an interval of relative changes, or nothing without one."""
    return f" [{bounds[0]:+.2%}, {bounds[1]:+.2%}]" if bounds else ""


def other_rule(rule: str) -> str:
    """The selection rule that is not ``rule``: point or lower_bound."""
    return "point" if rule == "lower_bound" else "lower_bound"


def task_passes(change: float, tolerance: float) -> bool:
    """The rule every comparison uses: a task may regress by at most its tolerance; a
    non-finite change (a NaN metric on either side) never passes."""
    return math.isfinite(change) and change >= -tolerance


def compare_tasks(
    mtl: dict[str, float], baseline: dict[str, float], objectives: dict[str, Objective]
) -> dict[str, TaskComparison]:
    """Each task of ``objectives``: ``mtl`` against ``baseline``, and whether it passes."""
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
            passed=task_passes(change, objective.max_relative_regression),
        )
    return comparisons


def delta_m(comparisons: dict[str, TaskComparison]) -> float:
    """Mean relative change over tasks (Maninis et al. 2019)."""
    return sum(c.relative_change for c in comparisons.values()) / len(comparisons)


def score_checkpoint(
    checkpoint: str,
    epoch: int,
    metrics: dict[str, float],
    baseline: dict[str, float],
    objectives: dict[str, Objective],
    min_delta_m: float,
    rule: str = "point",
    intervals: dict[str, tuple[float, float]] | None = None,
    delta_m_interval: tuple[float, float] | None = None,
) -> CheckpointScore:
    """One checkpoint under the policy: per-task comparisons, Δm, weighted score, accepted.
    With ``rule`` ``lower_bound``, a task with an interval passes on its lower end, and Δm
    on its interval's lower end when there is one."""
    comparisons = compare_tasks(metrics, baseline, objectives)
    intervals = intervals or {}
    comparisons = {
        task: replace(
            c,
            interval=intervals.get(task),
            passed=task_passes(intervals[task][0], c.tolerance) and c.passed
            if rule == "lower_bound" and task in intervals
            else c.passed,
        )
        for task, c in comparisons.items()
    }
    score = weighted_score(metrics, baseline, objectives)
    mean_change = delta_m(comparisons)
    judged = delta_m_interval[0] if rule == "lower_bound" and delta_m_interval else mean_change
    accepted = (
        all(c.passed for c in comparisons.values())
        and math.isfinite(mean_change)
        and mean_change >= min_delta_m
        and judged >= min_delta_m
    )
    decided = (
        accepted or rule != "lower_bound" or _fails_decisively(comparisons, mean_change, delta_m_interval, min_delta_m)
    )
    return CheckpointScore(checkpoint, epoch, comparisons, mean_change, score, accepted, delta_m_interval, decided)


def _fails_decisively(
    comparisons: dict[str, TaskComparison],
    mean_change: float,
    delta_m_interval: tuple[float, float] | None,
    min_delta_m: float,
) -> bool:
    """Some task, or Δm, fails with its whole interval beyond the bar (a value without an
    interval fails on its point; a NaN always fails)."""
    for c in comparisons.values():
        if not c.passed and (c.interval is None or not task_passes(c.interval[1], c.tolerance)):
            return True
    if not math.isfinite(mean_change):
        return True
    high = delta_m_interval[1] if delta_m_interval else mean_change
    return high < min_delta_m


@dataclass(frozen=True)
class Choice:
    """The checkpoint the policy chose, its verdict, and every candidate's score."""

    chosen: CheckpointScore
    verdict: str
    scores: list[CheckpointScore]


def choose_checkpoint(
    candidates: list[Candidate],
    baseline: dict[str, float],
    objectives: dict[str, Objective],
    min_delta_m: float,
    rule: str = "point",
) -> Choice:
    """Scores every candidate under ``rule``; picks the best passing one (``accepted``), else
    the best one whose intervals straddle the bar (``inconclusive``), else the best one
    (``rejected``)."""
    scores = [
        score_checkpoint(
            c.checkpoint, c.epoch, c.metrics, baseline, objectives, min_delta_m, rule, c.intervals, c.delta_m_interval
        )
        for c in candidates
    ]
    if not scores:
        raise ValueError("no checkpoints to select from")
    passing = [s for s in scores if s.accepted]
    undecided = [s for s in scores if not s.decided]
    chosen = max(
        passing or undecided or scores, key=lambda s: (s.score if math.isfinite(s.score) else -math.inf, -s.epoch)
    )
    return Choice(chosen, "accepted" if passing else "inconclusive" if undecided else "rejected", scores)


def raise_budget(max_epochs: int | None) -> str:
    """The remedy for a training that ended still improving, naming the budget it had."""
    return "raise training.max_epochs" + (f" (now {max_epochs})" if max_epochs else "")


def judge_convergence(choice: Choice, unconverged: Sequence[str], mode: str) -> Choice:
    """``choice`` made ``inconclusive`` when a compared training ended while still improving
    (``unconverged`` describes each) and ``selection.unconverged`` is ``inconclusive``; a
    verdict between models that had not converged compares their budgets, not the sharing."""
    if unconverged and mode == "inconclusive":
        return replace(choice, verdict="inconclusive")
    return choice


# --- the champion guard -----------------------------------------------------------------


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def champion_regressions(
    candidate_test: dict[str, float],
    champion_test: dict[str, float],
    objectives: dict[str, Objective],
    rule: str = "point",
    intervals: dict[str, tuple[float, float]] | None = None,
) -> list[TaskComparison]:
    """Tasks on which the candidate regresses beyond tolerance against the current champion,
    under ``rule`` as :func:`score_checkpoint` applies it: with ``lower_bound``, a task with
    a paired interval (candidate against champion, on the same test rows) must pass on its
    lower end too.

    Tasks the champion has no recorded metric for are not compared.
    """
    shared = {t: o for t, o in objectives.items() if t in champion_test}
    judged = score_checkpoint("candidate", 0, candidate_test, champion_test, shared, -math.inf, rule, intervals)
    return judged.failures()


def promotion_decision(
    verdict: str,
    candidate_test: dict[str, float],
    champion_test: dict[str, float] | None,
    objectives: dict[str, Objective],
    champion_version: str | None = None,
    rule: str = "point",
    intervals: dict[str, tuple[float, float]] | None = None,
) -> PromotionDecision:
    """Whether ``champion`` moves to an accepted candidate: never for a rejected one, and
    only when no task regresses beyond tolerance against the champion's test metrics (under
    ``rule``, with the paired ``intervals`` of candidate against champion)."""
    if verdict != "accepted":
        return PromotionDecision(False, f"verdict is {verdict}; only an accepted model becomes champion")
    if champion_test is None:
        return PromotionDecision(True, "accepted; no champion yet")
    regressions = champion_regressions(candidate_test, champion_test, objectives, rule, intervals)
    if regressions:
        detail = ", ".join(
            f"{c.task} {c.relative_change:+.2%}{bracket(c.interval)} vs champion (tolerance -{c.tolerance:.0%})"
            for c in regressions
        )
        return PromotionDecision(False, f"regresses against champion v{champion_version}: {detail}")
    return PromotionDecision(True, f"accepted; within tolerance of champion v{champion_version}")


# --- the selection report ---------------------------------------------------------------


@dataclass(frozen=True)
class TaskResult:
    """One task of the chosen checkpoint: validation comparison and test metrics."""

    metric: str
    higher_is_better: bool
    baseline: float
    mtl: float
    relative_change: float
    tolerance: float
    passed: bool
    test: float
    baseline_test: float
    #: the metric on validation of a constant answer (majority class, median); None where
    #: the task type has none
    trivial: float | None = None
    #: the bootstrap interval of the relative change on validation, where computed
    interval: list[float] | None = None


@dataclass(frozen=True)
class SeedResult:
    """One seed's numbers at the chosen epoch (``training.seeds``): its MTL model's and its
    baselines' primary metric per task, on validation and test."""

    seed: int
    mtl_val: dict[str, float]
    mtl_test: dict[str, float]
    baseline_val: dict[str, float]
    baseline_test: dict[str, float]


@dataclass(frozen=True)
class CandidateSummary:
    checkpoint: str
    epoch: int
    delta_m: float
    score: float
    accepted: bool


@dataclass(frozen=True)
class SelectionReport:
    """What ``select`` decided, as ``reports/selection.json`` holds it."""

    verdict: str
    checkpoint: str
    sha256: str
    epoch: int
    delta_m: float
    score: float
    min_delta_m: float
    tasks: dict[str, TaskResult]
    candidates: list[CandidateSummary] = field(default_factory=list)
    #: what the run's own measurements suggest trying (``components.diagnosis``)
    diagnosis: list[str] = field(default_factory=list)
    #: point or lower_bound (``selection.rule``), the intervals' level, and Δm's interval
    rule: str = "point"
    confidence: float | None = None
    delta_m_interval: list[float] | None = None
    #: the verdict the other rule (point or lower_bound) gives on the same checkpoints
    other_rule_verdict: str | None = None
    #: the seed of the chosen checkpoint, and with ``training.seeds`` > 1 every seed's
    #: numbers (validation metrics and Δ then are seed means, and so are the baselines' test)
    seed: int | None = None
    seeds: list[SeedResult] = field(default_factory=list)
    #: each compared training that ended while still improving, with how it ended
    unconverged: list[str] = field(default_factory=list)
    #: how every compared training ended, by its label ("baseline left", "MTL", …)
    endings: dict[str, str] = field(default_factory=dict)
    #: the ``training.max_epochs`` the trainings ran under
    max_epochs: int | None = None
    #: ``tuning.trials``: the search every baseline and the MTL model had; 0 untuned
    tuning_trials: int = 0

    @property
    def other_rule(self) -> str:
        return other_rule(self.rule)

    @property
    def accepted(self) -> bool:
        return self.verdict == "accepted"

    def non_finite(self) -> list[str]:
        """``task (metric)`` for every value of the chosen checkpoint that is not a finite number."""
        return [
            f"{name} ({label})"
            for name, result in self.tasks.items()
            for label, value in (
                ("MTL val", result.mtl),
                ("baseline val", result.baseline),
                ("MTL test", result.test),
                ("baseline test", result.baseline_test),
            )
            if not math.isfinite(value)
        ]

    def straddling(self) -> list[str]:
        """The failing tasks whose interval reaches back over the bar: what keeps the verdict
        under ``lower_bound`` from being a rejection."""
        return [
            name
            for name, r in self.tasks.items()
            if not r.passed and r.interval is not None and task_passes(r.interval[1], r.tolerance)
        ]

    def resolution(self) -> str:
        """For an inconclusive verdict, the one setting that would settle it."""
        if self.unconverged:
            return f"{raise_budget(self.max_epochs)} so that every training converges"
        untuned = "; tuning.trials, as both sides are untuned" if not self.tuning_trials else ""
        return f"more validation rows or more training.seeds narrow the intervals{untuned}"

    def reason(self) -> str:
        """Why the verdict is what it is, in one line: for an inconclusive one, what could not
        be told and the setting that would settle it; else the tasks beyond tolerance and Δm
        against its minimum, on validation, where the policy judged."""
        if self.verdict == "inconclusive" and self.unconverged:
            return (
                f"{len(self.unconverged)} training(s) ended while still improving ({'; '.join(self.unconverged)}): "
                f"the comparison measures the budget, not the sharing; {self.resolution()}"
            )
        if self.verdict == "inconclusive":
            tasks = ", ".join(
                f"{name} {self.tasks[name].relative_change:+.2%}{self._bounds(self.tasks[name].interval)} "
                f"(tolerance -{self.tasks[name].tolerance:.0%})"
                for name in self.straddling()
            )
            what = f"the intervals straddle the bar: {tasks}" if tasks else "Δm's interval straddles its minimum"
            return f"{what}; {self.resolution()}"
        failing = [
            f"{name} {r.relative_change:+.2%}{self._bounds(r.interval)} (tolerance -{r.tolerance:.0%})"
            for name, r in self.tasks.items()
            if not r.passed
        ]
        judged = self.delta_m_interval[0] if self.rule == "lower_bound" and self.delta_m_interval else self.delta_m
        low_mean = not (math.isfinite(self.delta_m) and min(self.delta_m, judged) >= self.min_delta_m)
        if not failing and not low_mean:
            within = "every task's lower bound" if self.rule == "lower_bound" else "every task"
            return (
                f"{within} within tolerance and Δm {self.delta_m:+.2%}{self._bounds(self.delta_m_interval)} "
                f"≥ {self.min_delta_m:+.2%} on validation"
            )
        verb = "may regress" if self.rule == "lower_bound" else "regresses"
        parts = [f"{verb} on validation: {', '.join(failing)}"] if failing else []
        if low_mean:
            parts.append(
                f"Δm {self.delta_m:+.2%}{self._bounds(self.delta_m_interval)} below the minimum {self.min_delta_m:+.2%}"
            )
        return "; ".join(parts)

    def _bounds(self, bounds: list[float] | None) -> str:
        """`` [lo, hi] at 90%`` where the lower-bound rule judged on an interval."""
        if self.rule != "lower_bound" or not bounds:
            return ""
        return f" [{bounds[0]:+.2%}, {bounds[1]:+.2%} at {self.confidence:.0%}]"

    def test_changes(self) -> dict[str, float]:
        """Δ_t on the test split: the chosen checkpoint's test metric against the baseline's."""
        return {name: relative_change(r.test, r.baseline_test, r.higher_is_better) for name, r in self.tasks.items()}

    def test_regressions(self) -> dict[str, float]:
        """Δ_t on test of the tasks that regress beyond their tolerance there: what a reader
        must not miss. The verdict stays the policy's, made on validation;
        :meth:`test_contradictions` are those of them that validation passed."""
        return {
            name: change
            for name, change in self.test_changes().items()
            if not task_passes(change, self.tasks[name].tolerance)
        }

    def test_contradictions(self) -> list[str]:
        """The tasks that regress beyond tolerance on test though they passed on validation:
        evidence from the test split against the verdict."""
        return [name for name in self.test_regressions() if self.tasks[name].passed]

    def test_warnings(self, names: list[str] | None = None) -> list[str]:
        """:meth:`test_regressions` in words (only ``names``, when given)."""
        return [
            f"{name} {change:+.2%} on test (tolerance -{self.tasks[name].tolerance:.0%})"
            for name, change in self.test_regressions().items()
            if names is None or name in names
        ]

    def test_metrics(self) -> dict[str, float]:
        """The chosen checkpoint's test metric per task."""
        return {name: result.test for name, result in self.tasks.items()}

    def seed_spread(self, side: str) -> dict[str, tuple[float, float]]:
        """Each task's mean and standard deviation over seeds of one ``side`` of
        :class:`SeedResult` (``mtl_test``, ``baseline_val``, ...); empty with one seed."""
        if len(self.seeds) < 2:
            return {}
        values = {name: [getattr(s, side)[name] for s in self.seeds] for name in self.tasks}
        return {name: (statistics.fmean(v), statistics.stdev(v)) for name, v in values.items()}

    def flat_metrics(self) -> dict[str, float]:
        """Numbers only, one level deep (``reports/metrics.json``, what ``dvc metrics diff`` and
        ``dvc exp show`` compare): per task the validation metrics and Δ_t the verdict rests
        on and the test metrics (with several seeds, also the MTL test mean and std over
        seeds), then Δm and the verdict as 1 (accepted) or 0."""
        flat: dict[str, float] = {}
        spread = self.seed_spread("mtl_test")
        for name, result in self.tasks.items():
            flat |= {
                f"{name}.baseline_val": result.baseline,
                f"{name}.mtl_val": result.mtl,
                f"{name}.delta": result.relative_change,
                f"{name}.baseline_test": result.baseline_test,
                f"{name}.mtl_test": result.test,
            }
            if name in spread:
                flat |= {f"{name}.mtl_test_seed_mean": spread[name][0], f"{name}.mtl_test_seed_std": spread[name][1]}
        return flat | {
            "delta_m": self.delta_m,
            "accepted": int(self.accepted),
            "inconclusive": int(self.verdict == "inconclusive"),
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``reports/selection.json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SelectionReport:
        """Reads back what :meth:`to_dict` wrote."""
        return cls(
            **{k: v for k, v in raw.items() if k not in ("tasks", "candidates", "seeds")},
            tasks={name: TaskResult(**entry) for name, entry in raw["tasks"].items()},
            candidates=[CandidateSummary(**entry) for entry in raw.get("candidates", [])],
            seeds=[SeedResult(**entry) for entry in raw.get("seeds", [])],
        )

    @classmethod
    def build(
        cls,
        choice: Choice,
        sha256: str,
        objectives: dict[str, Objective],
        test: dict[str, float],
        baseline_test: dict[str, float],
        min_delta_m: float,
        trivial: dict[str, float | None] | None = None,
        rule: str = "point",
        confidence: float | None = None,
    ) -> SelectionReport:
        """The report of the chosen checkpoint, with its test metrics and, if given, each
        task's trivial level on validation."""
        chosen = choice.chosen
        return cls(
            verdict=choice.verdict,
            checkpoint=chosen.checkpoint,
            sha256=sha256,
            epoch=chosen.epoch,
            delta_m=chosen.delta_m,
            score=chosen.score,
            min_delta_m=min_delta_m,
            tasks={
                name: TaskResult(
                    metric=c.metric,
                    higher_is_better=objectives[name].higher_is_better,
                    baseline=c.baseline,
                    mtl=c.mtl,
                    relative_change=c.relative_change,
                    tolerance=c.tolerance,
                    passed=c.passed,
                    test=test[name],
                    baseline_test=baseline_test[name],
                    trivial=(trivial or {}).get(name),
                    interval=list(c.interval) if c.interval else None,
                )
                for name, c in chosen.comparisons.items()
            },
            rule=rule,
            confidence=confidence,
            delta_m_interval=list(chosen.delta_m_interval) if chosen.delta_m_interval else None,
            candidates=[CandidateSummary(s.checkpoint, s.epoch, s.delta_m, s.score, s.accepted) for s in choice.scores],
        )
