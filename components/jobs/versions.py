"""Registered versions measured as served: a version's metrics on a frame, and the paired
bootstrap intervals of a candidate against the champion. Shared by ``register`` (the
champion guard), ``promote`` and the health check.
"""

from __future__ import annotations

import pandas as pd

from components.bootstrap import pooled_intervals, resample_counts
from components.config import Params
from components.io import registry
from components.io.serving import MultiTaskPyfunc


def score_version(params: Params, version: str, frame: pd.DataFrame) -> dict[str, float]:
    """Primary metric per task of a registered version's pyfunc on ``frame``, as served."""
    return registry.load_version(params.registry.model_name, version).unwrap_python_model().score(frame)


def champion_intervals(
    params: Params, frame: pd.DataFrame, candidate: MultiTaskPyfunc, champion: MultiTaskPyfunc
) -> dict[str, tuple[float, float]]:
    """The paired bootstrap interval of each task's change, candidate against champion, on
    the same test rows: what ``selection.rule: lower_bound`` judges the champion guard on."""
    rules = params.selection
    counts = resample_counts(len(frame), rules.bootstrap_samples, params.seed)
    theirs = champion.row_statistics(frame)
    shared = {name: task for name, task in candidate.tasks.items() if name in theirs}
    intervals, _ = pooled_intervals(shared, [theirs], [candidate.row_statistics(frame)], counts, rules.confidence)
    return intervals
