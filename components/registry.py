"""Registration and promotion in the MLflow model registry, through aliases.

``challenger`` always moves to the newest version. ``champion`` moves only when the new
version was accepted against its baselines and regresses on no task beyond tolerance
against the current champion's recorded test metrics. A rejected model never becomes
champion.

Example::

    >>> decision = promotion_decision("accepted", {"left": 0.95}, {"left": 0.96}, objectives)
    >>> decision.promote, decision.reason
    (True, 'accepted; within tolerance of champion v3')
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml
from mlflow.exceptions import MlflowException

from components.selection import Objective, champion_regressions
from components.tracking import client

CHAMPION = "champion"
CHALLENGER = "challenger"
TEST_METRIC_TAG = "test."


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def promotion_decision(
    verdict: str,
    candidate_test: dict[str, float],
    champion_test: dict[str, float] | None,
    objectives: dict[str, Objective],
    champion_version: str | None = None,
) -> PromotionDecision:
    if verdict != "accepted":
        return PromotionDecision(False, f"verdict is {verdict}; a rejected model never becomes champion")
    if champion_test is None:
        return PromotionDecision(True, "accepted; no champion yet")
    regressions = champion_regressions(candidate_test, champion_test, objectives)
    if regressions:
        detail = ", ".join(
            f"{c.task} {c.relative_change:+.2%} vs champion (tolerance -{c.tolerance:.0%})" for c in regressions
        )
        return PromotionDecision(False, f"regresses against champion v{champion_version}: {detail}")
    return PromotionDecision(True, f"accepted; within tolerance of champion v{champion_version}")


def current_champion(model_name: str) -> tuple[str, dict[str, float]] | None:
    """The champion's version and its recorded per-task test metrics, if there is one."""
    try:
        version = client().get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None
    metrics = {
        key[len(TEST_METRIC_TAG) :]: float(value)
        for key, value in version.tags.items()
        if key.startswith(TEST_METRIC_TAG)
    }
    return version.version, metrics


def data_version(root: Path, data_dir: str) -> str:
    """The md5 DVC recorded for the data directory in ``dvc.lock``, else a content hash."""
    lock = root / "dvc.lock"
    if lock.exists():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for out in stages.get("prepare", {}).get("outs", []):
            if out.get("path") == data_dir and "md5" in out:
                return f"dvc:{out['md5']}"
    digest = hashlib.sha256()
    for path in sorted((root / data_dir).glob("*.parquet")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return f"sha256:{digest.hexdigest()[:32]}"


def git_commit(root: Path) -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def apply_aliases(model_name: str, version: str, decision: PromotionDecision) -> list[str]:
    tracker = client()
    tracker.set_registered_model_alias(model_name, CHALLENGER, version)
    tracker.set_model_version_tag(model_name, version, "promotion", decision.reason)
    if decision.promote:
        tracker.set_registered_model_alias(model_name, CHAMPION, version)
    return sorted(tracker.get_model_version(model_name, version).aliases)
