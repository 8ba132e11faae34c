"""``mtl promote``: move ``champion`` to a registered version if it passes the acceptance
policy on the frozen test split, against the baselines' and the current champion's metrics
measured now, under ``selection.rule`` (with ``lower_bound``, on the lower ends of paired
bootstrap intervals over the test rows); ``--force`` moves it regardless and records the reason.

    $ mtl promote --version 3
    $ mtl promote --version 2 --force --reason "v3 misreads rotated digits"
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.bootstrap import pooled_intervals, resample_counts
from components.config import Params
from components.data.encoders import encoder_dir, fitted_features
from components.data.splits import read_split
from components.io import registry
from components.io.serving import MultiTaskPyfunc
from components.jobs.evidence import baseline_statistics
from components.jobs.inputs import load_tensor_splits
from components.jobs.layout import BASELINES_REPORT, read_json, training_seeds
from components.jobs.versions import champion_intervals
from components.selection import PromotionDecision, bracket, promotion_decision, score_checkpoint
from components.tasks import build_tasks, task_objectives
from components.training.device import resolve_device


@dataclass(frozen=True)
class Promotion:
    version: str
    promoted: bool
    reason: str
    candidate_test: dict[str, float] | None = None
    champion_test: dict[str, float] | None = None
    delta_m_vs_baselines: float | None = None


def baseline_intervals(
    params: Params, root: Path, frame: pd.DataFrame, candidate: MultiTaskPyfunc
) -> tuple[dict[str, tuple[float, float]], tuple[float, float] | None]:
    """Paired intervals of each task's change and of Δm, candidate against the single-task
    baselines' checkpoints (pooled over their seeds), on the test rows (``frame`` is the
    test split, in file order)."""
    tasks = build_tasks(params.tasks)
    device = resolve_device(params.training.device)
    features = fitted_features(params, encoder_dir(root / params.data.dir))
    test = load_tensor_splits(params, root, ("test",))["test"]
    references = [
        baseline_statistics(params, root, tasks, test, device, features, seed) for seed in training_seeds(params)
    ]
    rules = params.selection
    counts = resample_counts(len(frame), rules.bootstrap_samples, params.seed)
    return pooled_intervals(tasks, references, [candidate.row_statistics(frame)], counts, rules.confidence, params.seed)


def _on_tasks_of(params: Params, candidate: MultiTaskPyfunc, version: str) -> Params:
    """``params`` judging the version's own tasks: ``tasks:`` may name one more (added to the
    champion by ``mtl add-task``, or before a retrain) or fewer."""
    unknown = [task for task in candidate.tasks if task not in params.tasks]
    if unknown:
        raise registry.RegistryError(
            f"v{version} has the task(s) {', '.join(unknown)}, which params.yaml's tasks: lacks; "
            "restore their settings there to judge it (their tolerances are part of the policy)"
        )
    return params.model_copy(update={"tasks": {task: params.tasks[task] for task in candidate.tasks}})


def run(params: Params, root: Path, version: str, force: bool = False, reason: str | None = None) -> Promotion:
    """Applies the policy (or the forced move) and tags the decision on the version."""
    registry.check_version(version)
    if force and not reason:
        raise registry.RegistryError("--force needs --reason, recorded on the version")
    name = params.registry.model_name
    frame = read_split(root / params.data.dir, "test")
    champion_version = registry.alias_version(name, registry.CHAMPION)
    if champion_version == version:
        return Promotion(version, True, "already champion")
    candidate_model = registry.load_version(name, version).unwrap_python_model()
    params = _on_tasks_of(params, candidate_model, version)
    goals = task_objectives(params)
    champion_model = (
        registry.load_version(name, champion_version).unwrap_python_model() if champion_version is not None else None
    )
    candidate = candidate_model.score(frame)
    champion = champion_model.score(frame) if champion_model is not None else None
    baseline = read_json(root / BASELINES_REPORT)
    rules = params.selection
    against_baselines: dict[str, tuple[float, float]] = {}
    delta_m_interval = against_champion = None
    if rules.rule == "lower_bound":  # paired intervals on the test rows, as select's on validation
        against_baselines, delta_m_interval = baseline_intervals(params, root, frame, candidate_model)
        if champion_model is not None:
            against_champion = champion_intervals(params, frame, candidate_model, champion_model)
    # the same acceptance policy as `select`, on test metrics measured now
    policy = score_checkpoint(
        f"v{version}",
        0,
        candidate,
        {t: baseline[t]["test"] for t in goals},
        goals,
        rules.min_delta_m,
        rules.rule,
        against_baselines,
        delta_m_interval,
    )
    if not policy.accepted:
        detail = (
            ", ".join(f"{c.task} {c.relative_change:+.2%}{bracket(c.interval)}" for c in policy.failures())
            or f"Δm {policy.delta_m:+.2%}{bracket(delta_m_interval)}"
        )
        decision = PromotionDecision(False, f"fails the policy against the baselines ({rules.rule}): {detail}")
    else:
        decision = promotion_decision(
            "accepted", candidate, champion, goals, champion_version, rules.rule, against_champion
        )
    if force and not decision.promote:
        decision = PromotionDecision(True, f"forced: {reason} (policy said: {decision.reason})")
    registry.record_promotion(name, version, decision, forced=force, reason=reason)
    return Promotion(version, decision.promote, decision.reason, candidate, champion, policy.delta_m)
