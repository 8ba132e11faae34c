"""``health``: the champion's metric per task on a canary sample of the frozen test split,
against the test metric recorded when it was registered, under the same rule as the
acceptance policy (a task may fall by at most its ``max_relative_regression``).

    $ .venv/bin/python -m flows.health           # the hourly deployment runs this
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from components.config import Params
from components.data.encoders import DATASET_COLUMN
from components.data.splits import read_split
from components.io import registry
from components.jobs.versions import score_version
from components.selection import TaskComparison, compare_tasks
from components.tasks import task_objectives


def canary_frame(params: Params, root: Path) -> pd.DataFrame:
    """A fixed sample of the frozen test split (every row when the split is smaller); with
    several datasets, that many rows of each, so every task is measured."""
    frame = read_split(root / params.data.dir, "test")
    parts = [part for _, part in frame.groupby(DATASET_COLUMN, sort=False)] if params.data.datasets else [frame]
    rows = params.orchestration.health.canary_rows
    return pd.concat([part.sample(n=rows, random_state=params.seed) if rows < len(part) else part for part in parts])


def champion_health(params: Params, root: Path) -> tuple[str, list[TaskComparison]]:
    """The champion's version and, per task, its canary metric (``mtl``) against its
    registered test metric (``baseline``); ``passed`` is False below tolerance: the served
    model, its environment or the data moved."""
    champion = registry.current_champion(params.registry.model_name)
    if champion is None:
        raise registry.RegistryError(f"{params.registry.model_name} has no champion to check")
    version, reference = champion
    goals = task_objectives(params)
    missing = [name for name in goals if name not in reference]
    if missing:
        raise registry.RegistryError(
            f"{params.registry.model_name} v{version} has no recorded test.{missing[0]} metric"
        )
    measured = score_version(params, version, canary_frame(params, root))
    return version, list(compare_tasks(measured, reference, goals).values())
