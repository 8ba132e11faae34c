"""The pipeline as one Prefect flow: a task per stage, baselines trained concurrently.

Thin orchestration over ``components.stages``, the same functions ``dvc.yaml`` runs, so
both write the same outputs. The results table is attached as a markdown artifact. With
``orchestration.gpu_pool`` set, the trainings run as ``train`` deployments on that work
pool (``flows/train.py``); otherwise in this process.

    $ .venv/bin/python -m flows.pipeline [--params params.yaml]
"""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import typer  # noqa: E402
from prefect import flow  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.deployments import run_deployment  # noqa: E402
from prefect.states import Failed  # noqa: E402

from components import stages, tracking  # noqa: E402
from components.config import Params, load_params  # noqa: E402
from components.report import console as results_console, results_markdown  # noqa: E402
from components.validation import DataValidationError  # noqa: E402
from flows.common import ParamsOption, RootOption, run_from_cli, stage_task  # noqa: E402


@stage_task
def prepare(params_path: str, root: str):
    try:
        return stages.prepare(load_params(params_path), Path(root))
    except DataValidationError as error:  # a split file that cannot be read
        return Failed(message=str(error))


@stage_task
def validate(params_path: str, root: str):
    try:
        return stages.validate(load_params(params_path), Path(root))
    except DataValidationError as error:
        return Failed(message=str(error))


def _on_training_pool(params: Params, params_path: str, root: str, parameters: dict) -> None:
    """Runs the ``train`` deployment on the GPU pool and waits; the training writes its
    result under ``root``, which that pool's workers share."""
    run = run_deployment(
        params.orchestration.train_deployment,
        parameters={"params_path": str(Path(params_path).resolve()), "root": str(Path(root).resolve()), **parameters},
        timeout=None,
    )
    if not run.state.is_completed():
        raise RuntimeError(
            f"{params.orchestration.train_deployment} run {run.name} on pool {params.orchestration.gpu_pool} "
            f"ended {run.state.name}: {run.state.message}"
        )


@stage_task
def train_baseline(params_path: str, root: str, task_name: str, parent_run_id: str) -> dict:
    params = load_params(params_path)
    if params.orchestration.gpu_pool:
        _on_training_pool(params, params_path, root, {"kind": "baseline", "task": task_name, "parent_run_id": parent_run_id})
        return stages.read_json(Path(root) / stages.BASELINES_DIR / task_name / stages.BASELINE_RESULT)
    return stages.train_baseline(params, Path(root), task_name, parent_run_id)


@stage_task
def train_mtl(params_path: str, root: str, parent_run_id: str) -> dict:
    params = load_params(params_path)
    if params.orchestration.gpu_pool:
        _on_training_pool(params, params_path, root, {"kind": "mtl", "parent_run_id": parent_run_id})
        return stages.read_json(Path(root) / stages.MTL_REPORT)
    return stages.train_mtl(params, Path(root), parent_run_id)


@stage_task
def select(params_path: str, root: str) -> dict:
    return stages.select(load_params(params_path), Path(root))


@stage_task
def register(params_path: str, root: str, parent_run_id: str) -> dict:
    return stages.register(load_params(params_path), Path(root), parent_run_id)


@flow(name="mtl-pipeline", log_prints=True)
def pipeline(params_path: str = "params.yaml", root: str = ".", prepare_data: bool = True):
    """Every stage; ``prepare_data=False`` keeps the data already in ``data.dir`` (a refresh put it there)."""
    params = load_params(params_path)
    if prepare_data:
        preparation = prepare(params_path, root, return_state=True)
        if preparation.is_failed():
            return Failed(message=preparation.message)
    validation = validate(params_path, root, return_state=True)
    if validation.is_failed():
        return Failed(message=validation.message)

    parent = tracking.start_pipeline_run(params.registry.experiment)
    try:
        started = time.perf_counter()
        futures = [train_baseline.submit(params_path, root, name, parent) for name in params.tasks]
        stages.summarize_baselines(params, Path(root), [future.result() for future in futures])
        stages.record_timing("baselines", time.perf_counter() - started, Path(root))
        train_mtl(params_path, root, parent)
        selection = select(params_path, root)
        registration = register(params_path, root, parent)
    except BaseException:
        tracking.end_run(parent, failed=True)
        raise
    tracking.end_run(parent)
    create_markdown_artifact(
        markdown=results_markdown(selection, registration),
        key="mtl-results",
        description="MTL against single-task baselines, and the registered version",
    )
    results_console().print(stages.summary(params, Path(root)))
    return registration


def main(params: Path = ParamsOption, root: Path = RootOption) -> None:
    run_from_cli(pipeline, params, root)


if __name__ == "__main__":
    typer.run(main)
