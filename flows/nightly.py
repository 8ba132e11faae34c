"""Nightly retraining: refresh the data, skip when nothing changed, else run the pipeline,
register, and push data and artifacts to the DVC remote.

Deployed as ``nightly-retrain`` by ``prefect.yaml`` (cron and timezone from
``orchestration.nightly`` in params.yaml; one run at a time, a new one is cancelled while
one is active). An unchanged night ends Completed with the state name ``Skipped``.

    $ .venv/bin/python -m flows.nightly [--force]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import typer
from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, Failed, State

from components.config import Params
from components.jobs import refresh
from components.jobs.layout import load_checked_params
from components.startup import configure
from flows.common import ParamsOption, RootOption, holding_project, run_from_cli, stage_task
from flows.pipeline import pipeline


@stage_task
def refresh_data(params_path: str, root: str) -> str:
    """The data refresh ``orchestration.refresh`` names."""
    return refresh.refresh_data(load_checked_params(params_path), Path(root))


@stage_task
def retrain_decision(params_path: str, root: str) -> refresh.RetrainDecision:
    """Whether data or params changed since the newest registered version."""
    return refresh.retrain_decision(load_checked_params(params_path), Path(root))


@stage_task
def push_artifacts(params_path: str, root: str) -> str:
    """``dvc commit`` and ``dvc push``."""
    return refresh.push_artifacts(load_checked_params(params_path), Path(root))


@flow(name="nightly-retrain", log_prints=True)
def nightly_retrain(params_path: str = "params.yaml", root: str = ".", force: bool = False) -> Any:
    """Refresh, skip if unchanged, else the pipeline, register, push."""
    configure()
    params = load_checked_params(params_path)
    return holding_project(params, root, "flow nightly-retrain", lambda: _retrain(params, params_path, root, force))


def _retrain(params: Params, params_path: str, root: str, force: bool) -> Any:
    """The refresh, the decision, the pipeline and the push, while this flow holds the project."""
    try:
        print(f"refresh: {refresh_data(params_path, root)}")
    except refresh.OperationError as error:
        return Failed(message=f"refresh failed: {error}")
    decision = retrain_decision(params_path, root)
    if not decision.retrain and not force:
        create_markdown_artifact(markdown=f"Skipped: {decision.reason}", key="nightly-retrain")
        return Completed(message=f"skipped: {decision.reason}", name="Skipped")
    print(f"retrain: {decision.reason if decision.retrain else 'forced'}")

    state = cast(State, pipeline(params_path, root, prepare_data=False, return_state=True))
    if state.is_failed():
        return Failed(message=state.message)
    registration = state.result()
    if params.orchestration.push:
        try:
            print(push_artifacts(params_path, root))
        except refresh.OperationError as error:
            return Failed(message=f"registered v{registration.version}, but the push failed: {error}")
    create_markdown_artifact(
        markdown=f"Retrained ({decision.reason}): v{registration.version}, aliases {registration.aliases}",
        key="nightly-retrain",
    )
    return registration


def main(
    params: Path = ParamsOption,
    root: Path = RootOption,
    force: bool = typer.Option(False, "--force", help="Retrain even if data and params are unchanged."),
) -> None:
    """``python -m flows.nightly``."""
    run_from_cli(nightly_retrain, params, root, force)


if __name__ == "__main__":
    typer.run(main)
