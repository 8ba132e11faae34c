"""``mtl promote``: move ``champion`` to a registered version if it passes the acceptance
policy on the frozen test split, against the baselines' and the current champion's metrics
measured now; ``--force`` moves it regardless and records the reason.

    $ mtl promote --version 3
    $ mtl promote --version 2 --force --reason "v3 misreads rotated digits"
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.config import Params
from components.data.splits import read_split
from components.io import registry
from components.jobs.common import BASELINES_REPORT, objectives, read_json
from components.selection import PromotionDecision, promotion_decision, score_checkpoint


@dataclass(frozen=True)
class Promotion:
    version: str
    promoted: bool
    reason: str
    candidate_test: dict[str, float] | None = None
    champion_test: dict[str, float] | None = None
    delta_m_vs_baselines: float | None = None


def score_version(params: Params, version: str, frame: pd.DataFrame) -> dict[str, float]:
    """Primary metric per task of a registered version's pyfunc on ``frame``, as served."""
    return registry.load_version(params.registry.model_name, version).unwrap_python_model().score(frame)


def run(params: Params, root: Path, version: str, force: bool = False, reason: str | None = None) -> Promotion:
    """Applies the policy (or the forced move) and tags the decision on the version."""
    if force and not reason:
        raise registry.RegistryError("--force needs --reason, recorded on the version")
    name = params.registry.model_name
    goals = objectives(params)
    frame = read_split(root / params.data.dir, "test")
    champion_version = registry.alias_version(name, registry.CHAMPION)
    if champion_version == version:
        return Promotion(version, True, "already champion")
    candidate = score_version(params, version, frame)
    champion = score_version(params, champion_version, frame) if champion_version is not None else None
    baseline = read_json(root / BASELINES_REPORT)
    # the same acceptance policy as `select`, on test metrics measured now
    policy = score_checkpoint(
        f"v{version}", 0, candidate, {t: baseline[t]["test"] for t in goals}, goals, params.selection.min_delta_m
    )
    if not policy.accepted:
        detail = (
            ", ".join(f"{c.task} {c.relative_change:+.2%}" for c in policy.failures()) or f"Δm {policy.delta_m:+.2%}"
        )
        decision = PromotionDecision(False, f"fails the policy against the baselines: {detail}")
    else:
        decision = promotion_decision("accepted", candidate, champion, goals, champion_version)
    if force and not decision.promote:
        decision = PromotionDecision(True, f"forced: {reason} (policy said: {decision.reason})")
    registry.record_promotion(name, version, decision, forced=force, reason=reason)
    return Promotion(version, decision.promote, decision.reason, candidate, champion, policy.delta_m)
