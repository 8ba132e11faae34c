"""Stage ``baselines``: one single-task model per task, with the same backbone, optimizer and
epochs as the MTL model; each keeps its best epoch by its validation metric.

Sharing, loss weighting and gradient handling have nothing to balance with one task, so a
baseline is the backbone with one head, trained on its plain loss. A killed baseline
continues from its last complete epoch when started again.

With ``training.seeds: N`` each task trains N times (seeds ``seed`` … ``seed + N - 1``);
the report holds each task's mean over seeds and every seed's own numbers.

    $ mtl baselines          # every task and seed, one after the other, in one process
    $ mtl train-baseline --task left [--seed 1]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.config import Params
from components.jobs.baseline_training import BaselineResult, summarize, train_one
from components.jobs.inputs import check_validated, load_tensor_splits, write_curves
from components.jobs.layout import (
    BASELINES_DIR,
    BASELINES_REPORT,
    CURVES,
    remove_other_seeds,
    timed,
    training_seeds,
    write_json,
)
from components.jobs.trainings import launches_processes
from components.training import distributed

__all__ = ["BaselineResult", "run", "summarize", "train_one"]  # the CLI and flows train one through this stage


TrainOne = Callable[[str, int], BaselineResult | None]


@timed("baselines")
def run(params: Params, root: Path, parent_run_id: str, train_task: TrainOne | None = None) -> dict[str, Any]:
    """Every task's baseline with every seed, one after the other (each seeded alone, so the
    results do not depend on the order or on what ran before), then ``reports/baselines.json``
    and the learning curves. ``train_task(task, seed)`` trains one elsewhere (a Prefect work
    pool)."""
    check_validated(params, root)
    if train_task is None:
        # read once for every baseline, unless each is handed to its own torchrun processes
        splits = None if launches_processes(params) else load_tensor_splits(params, root)

        def train_task(name: str, seed: int) -> BaselineResult | None:
            return train_one(params, root, name, parent_run_id, splits, seed)

    for name in params.tasks:
        remove_other_seeds(root / BASELINES_DIR / name, params)
    results = [train_task(name, seed) for seed in training_seeds(params) for name in params.tasks]
    if not distributed.current().is_main:  # under torchrun, rank 0 reports
        return {}
    report = summarize([r for r in results if r is not None])
    write_json(root / BASELINES_REPORT, report)
    first = {r.task: r.curve for r in results if r is not None and r.seed == params.seed}
    write_curves(root / CURVES / "baselines.csv", first)
    return report
