"""What every flow module shares: the task decorator for stages, and running a flow from
the command line with a clean error (exit code 1, no traceback) on bad params or failure.

    >>> run_from_cli(pipeline, Path("params.yaml"), Path("."))
"""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import typer  # noqa: E402
from prefect import task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from rich.console import Console  # noqa: E402

from components.config import ParamsError, load_params  # noqa: E402

# Stages write files and MLflow runs: never skip one on a cached result.
stage_task = task(cache_policy=NO_CACHE, persist_result=False)

ParamsOption = typer.Option(Path("params.yaml"), "--params", "-p", help="Parameters file.")
RootOption = typer.Option(Path("."), "--root", help="Project root.")


def run_from_cli(flow: Callable, params: Path, root: Path, *args, label: str = "error") -> None:
    """Runs ``flow(params, root, *args)``; prints its final state's message when it fails."""
    console = Console(stderr=True)
    try:
        load_params(params)
    except ParamsError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    state = flow(str(params), str(root), *args, return_state=True)
    if state.is_failed():
        console.print(f"[bold red]{label}:[/] {state.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if state.message:
        console.print(f"{state.name}: {state.message}", highlight=False, soft_wrap=True)
