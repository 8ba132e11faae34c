"""Hourly health check of the serving champion: its metric per task on a canary sample of
the frozen test split, against the test metric recorded when it was registered.

Writes a Prefect table artifact (``champion-health``) and fails when a task falls below
its reference by more than ``tasks.<t>.max_relative_regression``. Deployed as
``health-check`` by ``prefect.yaml`` (schedule from ``orchestration.health.schedule``).

    $ .venv/bin/python -m flows.health
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect.states import Failed

from components.io import registry
from components.jobs import health
from components.jobs.layout import load_checked_params
from components.startup import configure
from flows.common import ParamsOption, RootOption, run_from_cli


@flow(name="health-check", log_prints=True)
def health_check(params_path: str = "params.yaml", root: str = ".") -> Any:
    """The champion on the canary rows; Failed when a task falls below tolerance."""
    configure()
    params = load_checked_params(params_path)
    try:
        version, report = health.champion_health(params, Path(root))
    except registry.RegistryError as error:
        return Failed(message=str(error))
    rows = [
        {
            "task": item.task,
            "metric": item.metric,
            "canary": round(item.mtl, 4),
            "registered test": round(item.baseline, 4),
            "change": f"{item.relative_change:+.2%}",
            "tolerance": f"-{item.tolerance:.0%}",
            "status": "ok" if item.passed else "BELOW TOLERANCE",
        }
        for item in report
    ]
    create_table_artifact(
        table=rows,
        key="champion-health",
        description=f"{params.registry.model_name} v{version} on {params.orchestration.health.canary_rows} canary rows",
    )
    failing = [item for item in report if not item.passed]
    if failing:
        detail = ", ".join(
            f"{i.task} {i.metric} {i.mtl:.4f} vs {i.baseline:.4f} ({i.relative_change:+.2%})" for i in failing
        )
        return Failed(message=f"{params.registry.model_name} v{version} below tolerance: {detail}")
    print(f"{params.registry.model_name} v{version} healthy on every task")
    return rows


def main(params: Path = ParamsOption, root: Path = RootOption) -> None:
    """``python -m flows.health``."""
    run_from_cli(health_check, params, root, label="unhealthy")


if __name__ == "__main__":
    typer.run(main)
