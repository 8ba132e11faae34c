"""One training as its own flow: what the ``train`` deployment runs on a GPU work pool.

With ``orchestration.gpu_pool`` set, the pipeline flow starts each baseline and the MTL
training through ``run_deployment`` on that pool instead of in its own process. The
worker must see the same project directory (``root``) and MLflow store: results travel
back as files under ``root`` (``result.json`` beside each training's checkpoints), as they
do between DVC stages.

    $ .venv/bin/python -m flows.train --kind baseline --task left
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer
from prefect import flow

from components.io import tracking
from components.io.project_lock import held_by_caller, project_lock
from components.jobs import baselines, train_mtl
from components.jobs.layout import load_checked_params
from components.startup import configure
from flows.common import ParamsOption, RootOption, run_from_cli


@flow(name="mtl-train", log_prints=True)
def train(
    params_path: str = "params.yaml",
    root: str = ".",
    kind: Literal["baseline", "mtl"] = "mtl",
    task: str | None = None,
    parent_run_id: str | None = None,
    held_by_pipeline: bool = False,
    seed: int | None = None,
) -> Any:
    """Trains one baseline (``kind="baseline"``, ``task``) or the MTL model, with ``seed``
    (default: a baseline with the seed of the parameters, the MTL model with every seed
    ``training.seeds`` asks for), nested under
    ``parent_run_id`` (default: the open pipeline run, else a new one). Holds the project
    while it trains, unless the pipeline flow that started it holds it (``held_by_pipeline``)."""
    configure()
    params = load_checked_params(params_path)
    if kind == "baseline" and task not in params.tasks:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(params.tasks)}")
    hold = (
        held_by_caller(Path(root))
        if held_by_pipeline
        else project_lock(Path(root), f"flow mtl-train {kind}", params.orchestration.project_lock_wait_s)
    )
    with hold:
        parent = parent_run_id or tracking.open_pipeline_run(params.registry.experiment)
        if kind == "baseline":
            assert task is not None
            return baselines.train_one(params, Path(root), task, parent, seed=seed)
        if seed is None:  # run on its own: every seed, and the stage's report
            return train_mtl.run(params, Path(root), parent)
        return train_mtl.train_one(params, Path(root), parent, seed)


def main(
    kind: str = typer.Option("mtl", help="baseline or mtl."),
    task: str = typer.Option(None, help="The task, for a baseline."),
    params: Path = ParamsOption,
    root: Path = RootOption,
) -> None:
    """``python -m flows.train``."""
    run_from_cli(train, params, root, kind, task)


if __name__ == "__main__":
    typer.run(main)
