"""The pipeline as one Prefect flow: a task per stage.

Thin orchestration over ``components/jobs/``, the same functions ``dvc.yaml`` runs through
``mtl``, so both write the same outputs. The results table is attached as a markdown
artifact. With ``orchestration.gpu_pool`` set, each training runs as a ``train``
deployment on that work pool (``flows/train.py``); otherwise in this process. The flow holds
the project while it runs (``components.io.project_lock``): a second pipeline in the same
directory fails with a message naming the first.

    $ .venv/bin/python -m flows.pipeline [--params params.yaml]
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

import typer
from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.states import Failed, State

from components.config import Params
from components.io import tracking
from components.io.registry import NotRegistered, Registration
from components.jobs import (
    baselines,
    prepare,
    register,
    select,
    summary,
    train_mtl,
    validate,
)
from components.jobs.layout import (
    TRAINING_RESULT,
    baseline_dir,
    load_checked_params,
    mtl_dir,
    read_json,
    training_seeds,
)
from components.report import console as results_console
from components.report import results_markdown
from components.selection import SelectionReport
from components.startup import configure
from components.validation.report import DataValidationError
from flows.common import ParamsOption, RootOption, holding_project, run_from_cli, stage_task

Result = TypeVar("Result")


@stage_task
def prepare_splits(params_path: str, root: str) -> Any:
    """Stage ``prepare``; an unreadable source file fails the task with its message."""
    try:
        return prepare.run(load_checked_params(params_path), Path(root))
    except DataValidationError as error:  # a split file that cannot be read
        return Failed(message=str(error))


@stage_task
def validate_splits(params_path: str, root: str) -> Any:
    """Stage ``validate``; bad data fails the task with file, column, rule and examples."""
    try:
        return validate.run(load_checked_params(params_path), Path(root))
    except DataValidationError as error:
        return Failed(message=str(error))


def _on_training_pool(params: Params, params_path: str, root: str, parameters: dict[str, Any]) -> None:
    """Runs the ``train`` deployment on the GPU pool and waits; the training writes its
    result under ``root``, which that pool's workers share."""
    run = cast(
        FlowRun,
        run_deployment(
            params.orchestration.train_deployment,
            parameters={
                "params_path": str(Path(params_path).resolve()),
                "root": str(Path(root).resolve()),
                "held_by_pipeline": True,  # this flow holds the project while it waits
                **parameters,
            },
            timeout=None,
        ),
    )
    state = run.state
    if state is None or not state.is_completed():
        raise RuntimeError(
            f"{params.orchestration.train_deployment} run {run.name} on pool {params.orchestration.gpu_pool} "
            f"ended {state.name if state else 'without a state'}: {state.message if state else ''}"
        )


def _started_together(train: Callable[..., Result], keys: list[tuple[Any, ...]]) -> Callable[..., Result]:
    """A stand-in for ``train`` that, when the stage asks for its first result, starts
    ``train`` for every key at once, in threads that each wait on a deployment run (the
    pool's workers decide how many train at a time), then hands back each key's result in
    whatever order the stage asks for them. Started on the first call, not before: the
    stage's own timing covers the trainings."""
    futures: dict[tuple[Any, ...], Future[Result]] = {}

    def result(*key: Any) -> Result:
        if not futures:
            with ThreadPoolExecutor(max_workers=len(keys)) as pool:
                futures.update({k: pool.submit(train, *k) for k in keys})
        return futures[key].result()

    return result


@stage_task
def train_baselines(params_path: str, root: str, parent_run_id: str) -> dict[str, Any]:
    """Stage ``baselines``, each training in this process, or all at once on the GPU pool."""
    params = load_checked_params(params_path)
    if not params.orchestration.gpu_pool:
        return baselines.run(params, Path(root), parent_run_id)

    def on_pool(task_name: str, seed: int) -> baselines.BaselineResult:
        _on_training_pool(
            params,
            params_path,
            root,
            {"kind": "baseline", "task": task_name, "seed": seed, "parent_run_id": parent_run_id},
        )
        return baselines.BaselineResult.read(baseline_dir(Path(root), params, task_name, seed) / TRAINING_RESULT)

    keys = [(name, seed) for seed in training_seeds(params) for name in params.tasks]
    return baselines.run(params, Path(root), parent_run_id, train_task=_started_together(on_pool, keys))


@stage_task
def train_multitask(params_path: str, root: str, parent_run_id: str) -> dict[str, Any]:
    """Stage ``train_mtl``, every seed in this process, or all at once on the GPU pool."""
    params = load_checked_params(params_path)
    if not params.orchestration.gpu_pool:
        return train_mtl.run(params, Path(root), parent_run_id)

    def on_pool(seed: int) -> dict[str, Any]:
        _on_training_pool(params, params_path, root, {"kind": "mtl", "seed": seed, "parent_run_id": parent_run_id})
        return dict(read_json(mtl_dir(Path(root), params, seed) / TRAINING_RESULT))

    keys = [(seed,) for seed in training_seeds(params)]
    return train_mtl.run(params, Path(root), parent_run_id, train_seed=_started_together(on_pool, keys))


@stage_task
def select_checkpoint(params_path: str, root: str) -> Any:
    """Stage ``select``."""
    return select.run(load_checked_params(params_path), Path(root))


@stage_task
def register_model(params_path: str, root: str, parent_run_id: str) -> Any:
    """Stage ``register``."""
    return register.run(load_checked_params(params_path), Path(root), parent_run_id)


@flow(name="mtl-pipeline", log_prints=True)
def pipeline(params_path: str = "params.yaml", root: str = ".", prepare_data: bool = True) -> Any:
    """Every stage; ``prepare_data=False`` keeps the data already in ``data.dir`` (a refresh put it there)."""
    configure()
    params = load_checked_params(params_path)
    return holding_project(params, root, "flow mtl-pipeline", lambda: _stages(params, params_path, root, prepare_data))


def _stages(params: Params, params_path: str, root: str, prepare_data: bool) -> Any:
    """The pipeline's tasks, in order, while this flow holds the project."""
    if prepare_data:
        preparation: State = prepare_splits(params_path, root, return_state=True)
        if preparation.is_failed():
            return Failed(message=preparation.message)
    validation: State = validate_splits(params_path, root, return_state=True)
    if validation.is_failed():
        return Failed(message=validation.message)

    parent = tracking.start_pipeline_run(params.registry.experiment)
    try:
        train_baselines(params_path, root, parent)
        train_multitask(params_path, root, parent)
        selection = cast(SelectionReport, select_checkpoint(params_path, root))
        registration = cast(Registration | NotRegistered, register_model(params_path, root, parent))
    except BaseException:
        tracking.end_run(parent, failed=True)
        raise
    tracking.end_run(parent)
    create_markdown_artifact(
        markdown=results_markdown(selection, registration),
        key="mtl-results",
        description="MTL against single-task baselines, and the registered version",
    )
    results_console().print(summary.run(params, Path(root)))
    return registration


def main(params: Path = ParamsOption, root: Path = RootOption) -> None:
    """``python -m flows.pipeline``."""
    run_from_cli(pipeline, params, root)


if __name__ == "__main__":
    typer.run(main)
