"""What every flow module shares: the task decorator for stages, and running a flow from
the command line with a clean error (exit code 1, no traceback) on bad params or failure.

    $ .venv/bin/python -m flows.pipeline       # main() -> run_from_cli(pipeline, params, root)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed
from rich.console import Console

from components.config import Params, ParamsError
from components.io.project_lock import ProjectBusy, project_lock
from components.startup import configure

# Stages write files and MLflow runs: never skip one on a cached result.
stage_task = task(cache_policy=NO_CACHE, persist_result=False)

ParamsOption = typer.Option(Path("params.yaml"), "--params", "-p", help="Parameters file.")
RootOption = typer.Option(Path("."), "--root", help="Project root.")


def holding_project(params: Params, root: str, holder: str, body: Callable[[], Any]) -> Any:
    """``body()`` while this flow holds the project at ``root``; a Failed state naming the
    holder when another run has it (``components.io.project_lock``)."""
    try:
        with project_lock(Path(root), holder, params.orchestration.project_lock_wait_s):
            return body()
    except ProjectBusy as error:
        return Failed(message=str(error))


def run_from_cli(flow: Callable[..., Any], params: Path, root: Path, *args: Any, label: str = "error") -> None:
    """Runs ``flow(params, root, *args)``; prints its final state's message when it fails."""
    from components.jobs.layout import load_checked_params

    configure()
    console = Console(stderr=True)
    try:
        load_checked_params(params, root)
    except ParamsError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    state = flow(str(params), str(root), *args, return_state=True)
    if state.is_failed():
        console.print(f"[bold red]{label}:[/] {state.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if state.message:
        console.print(f"{state.name}: {state.message}", highlight=False, soft_wrap=True)
