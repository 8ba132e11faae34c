"""``mtl``: one command per job, as ``dvc.yaml`` and the flows run them.

Thin: each command loads ``params.yaml`` (every rule checked) and calls one function in
``components/jobs/``, imported inside the command so ``mtl --help`` loads no ML library.
Bad parameters and bad data end with a clear message and exit code 1, never a traceback;
a failing training stage marks the open MLflow pipeline run as failed.

Example::

    $ mtl prepare && mtl validate && mtl baselines && mtl train-mtl && mtl select && mtl register
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    import click
    import typer
    from rich.console import Console
except ModuleNotFoundError as missing:  # a stage command run by a `python` outside the project's environment
    sys.exit(
        f"error: {sys.executable} lacks the project's packages ({missing.name} is missing): "
        "activate its environment first (`source .venv/bin/activate`), or run `make demo`"
    )

from components.config import (
    GRADIENT_METHODS,
    LOSS_WEIGHTINGS,
    SAMPLINGS,
    Params,
    ParamsError,
)
from components.errors import PipelineError, Terminated, stop_on_sigterm
from components.startup import DEFAULT_TRACKING_URI, configure

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Multi-task learning pipeline stages.")
errors = Console(stderr=True)

#: set (``--debug``) to see the traceback of an unexpected error
DEBUG_ENV = "MTL_DEBUG"

ParamsOption = typer.Option(Path("params.yaml"), "--params", "-p", help="Parameters file.")
RootOption = typer.Option(Path("."), "--root", help="Project root holding data/, models/ and reports/.")
ParentRunOption = typer.Option(
    None, "--parent-run-id", help="MLflow pipeline run to nest under; default: the open one, else a new one."
)
SeedOption = typer.Option(None, "--seed", help="Train with this seed only; default: the seed of params.yaml.")


def _run(
    params_path: Path,
    action: Callable[[Params], object],
    tracked: bool = False,
    root: Path | None = None,
    task_rules: bool = True,
) -> None:
    """Loads the parameters, runs ``action`` (holding the project at ``root`` when given:
    one pipeline per project). Expected failures print one clear message; an unexpected
    one prints its type and message, and its traceback only with ``--debug``.
    ``task_rules=False`` checks the structure only, for commands that read nothing but the
    registry's names: the task types' rules import torch, seconds before the answer."""
    try:
        params = _load(params_path, task_rules, root)
    except ParamsError as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    try:
        if root is None:
            action(params)
        else:
            from components.io.project_lock import project_lock

            command = " ".join(["mtl", *sys.argv[1:]])
            with project_lock(root, command, params.orchestration.project_lock_wait_s):
                action(params)
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, typer.Exit):
        raise  # click's and typer's own: usage errors and deliberate exit codes (typer.Exit is not click's)
    except (PipelineError, FileNotFoundError) as error:
        if tracked:
            _fail_pipeline_run(params, error)
        errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except Exception as error:
        broken = _broken_database(error)
        if broken is not None:  # nothing can be marked failed in it either
            errors.print(f"[bold red]error:[/] {broken}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        if tracked:
            _fail_pipeline_run(params, error)
        if os.environ.get(DEBUG_ENV):
            raise
        errors.print(
            f"[bold red]error:[/] unexpected {type(error).__name__}: {error}\n"
            f"(run `mtl --debug ...` or set {DEBUG_ENV}=1 for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    except Terminated as error:  # timeout, kill, a scheduler: what ran is kept for the next start
        if tracked:
            _fail_pipeline_run(params, error)
        errors.print(
            f"[bold red]error:[/] {error}: runs ended KILLED; a training continues from its last complete "
            "epoch when started again",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(128 + signal.SIGTERM) from None
    except BaseException as error:
        if tracked:
            _fail_pipeline_run(params, error)
        raise


@app.callback()
def options(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an unexpected error."),
) -> None:
    """Multi-task learning pipeline stages."""
    if debug:
        os.environ[DEBUG_ENV] = "1"  # the environment, so torchrun workers show it too


def _load(params_path: Path, task_rules: bool, root: Path | None) -> Params:
    if not task_rules:
        from components.config import load_params

        return load_params(params_path)
    from components.jobs.layout import load_checked_params

    return load_checked_params(params_path, root)


def _broken_database(error: BaseException) -> str | None:
    """What to say when the MLflow database itself cannot be read (SQLAlchemy's
    ``DatabaseError``: a truncated or overwritten ``mlflow.db``); None for any other error.
    Matched by name, so that commands which never reach the registry do not import SQLAlchemy."""
    if not any(c.__module__ == "sqlalchemy.exc" and c.__name__ == "DatabaseError" for c in type(error).__mro__):
        return None
    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)
    cause = getattr(error, "orig", None) or error
    return (
        f"the MLflow database {uri} cannot be read ({cause}); restore it from a backup, or move it aside to start "
        "an empty registry. Nothing was registered and no alias moved"
    )


def _fail_pipeline_run(params: Params, error: BaseException) -> None:
    """Ends the open pipeline run FAILED, or KILLED when ``error`` stopped it from outside."""
    from components.io.tracking import fail_open_pipeline_run, stopped

    try:
        fail_open_pipeline_run(params.registry.experiment, killed=stopped(error))
    except Exception as error:
        if _broken_database(error) is None:
            raise  # a broken database cannot hold the mark: the error already said what happened


def _training(stage: Callable[[Params, str], object], parent_run_id: str | None = None) -> Callable[[Params], object]:
    """Runs a training stage under the open pipeline run, inside the torchrun process group
    when torchrun started us."""

    def action(params: Params) -> object:
        from components.io.tracking import open_pipeline_run
        from components.training import distributed

        distributed.init_from_env(params.training.device)
        try:
            return stage(params, parent_run_id or open_pipeline_run(params.registry.experiment))
        finally:
            distributed.shutdown()

    return action


def _console() -> Console:
    from components.report import console

    return console()


@app.command()
def init(
    data_file: Path = typer.Argument(..., help="Your table: a CSV or Parquet file inside the project."),
    task: list[str] = typer.Option(
        [], "--task", "-t", help="A label column to learn (repeat); NAME=COL1,COL2,... for a multilabel task."
    ),
    inputs: list[str] = typer.Option(
        [], "--input", "-i", help="A column the model reads (repeat); default: the text column, else all features."
    ),
    max_rows: int = typer.Option(None, "--max-rows", min=1, help="Use at most this many rows (a quick first run)."),
    output: Path = typer.Option(Path("params.yaml"), "--params", "-p", help="The parameters file to write."),
    force: bool = typer.Option(False, "--force", help="Replace an existing parameters file."),
    root: Path = RootOption,
) -> None:
    """Write a commented params.yaml for DATA_FILE: column roles, task types and validation limits from the data."""
    from components.jobs import init as job

    try:
        params = job.run(data_file, task, output, root, force, inputs, max_rows)
    except (PipelineError, ValueError, FileNotFoundError) as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    tasks = ", ".join(f"{name} ({task.type})" for name, task in params.tasks.items())
    spec = params.data.input
    beside = (
        f" with {len(spec.all_columns()) - 1} columns beside it" if spec.kind == "text" and spec.feature_part() else ""
    )
    _console().print(f"wrote {output}: tasks {tasks}; input {spec.kind}{beside}. Next: dvc repro")


@app.command()
def sources(params: Path = ParamsOption, root: Path = RootOption) -> None:
    """Fingerprint the raw data prepare reads (reports/sources.json): prepare re-runs when it changes."""
    from components.jobs import sources as job

    _run(params, lambda p: job.run(p, root), root=root, task_rules=False)


@app.command()
def prepare(params: Path = ParamsOption, root: Path = RootOption) -> None:
    """Build the train/val/test splits under data/."""
    from components.jobs import prepare as job

    _run(params, lambda p: job.run(p, root), root=root)


@app.command()
def validate(params: Path = ParamsOption, root: Path = RootOption) -> None:
    """Validate the splits with pandera and Great Expectations; write Data Docs."""
    from components.jobs import validate as job

    _run(params, lambda p: job.run(p, root), root=root)


@app.command()
def baselines(params: Path = ParamsOption, root: Path = RootOption) -> None:
    """Train one single-task baseline per task."""
    from components.jobs import baselines as job

    _run(params, _training(lambda p, parent: job.run(p, root, parent)), tracked=True, root=root)


@app.command("train-baseline")
def train_baseline(
    task: str = typer.Option(..., "--task", help="The task to train alone."),
    seed: int = SeedOption,
    params: Path = ParamsOption,
    root: Path = RootOption,
    parent_run_id: str = ParentRunOption,
) -> None:
    """Train the single-task baseline of one task (the baselines stage runs one per task and seed)."""
    from components.jobs import baselines as job

    def action(p: Params) -> object:
        if task not in p.tasks:
            raise typer.BadParameter(f"unknown task {task!r}; valid: {', '.join(p.tasks)}", param_hint="--task")
        return _training(lambda q, parent: job.train_one(q, root, task, parent, seed=seed), parent_run_id)(p)

    _run(params, action, tracked=True, root=root)


@app.command("train-mtl")
def train_mtl(
    seed: int = typer.Option(
        None, "--seed", help="Train with this seed only; default: every seed training.seeds asks for."
    ),
    params: Path = ParamsOption,
    root: Path = RootOption,
    parent_run_id: str = ParentRunOption,
) -> None:
    """Train the multi-task model, keeping a checkpoint per epoch."""
    from components.jobs import train_mtl as job

    def stage(p: Params, parent: str) -> object:
        return job.run(p, root, parent) if seed is None else job.train_one(p, root, parent, seed)

    _run(params, _training(stage, parent_run_id), tracked=True, root=root)


@app.command()
def select(params: Path = ParamsOption, root: Path = RootOption) -> None:
    """Score every MTL checkpoint against the baselines and pick one under the acceptance policy."""
    from components.jobs import select as job

    _run(params, lambda p: job.run(p, root), root=root)


@app.command()
def register(params: Path = ParamsOption, root: Path = RootOption) -> None:
    """Register the chosen model in MLflow, move aliases, and print the results table."""
    from components.io import tracking
    from components.jobs import register as job
    from components.jobs import summary

    def action(p: Params) -> None:
        parent = tracking.open_pipeline_run(p.registry.experiment)
        job.run(p, root, parent)
        tracking.end_run(parent)
        _console().print(summary.run(p, root))

    _run(params, action, tracked=True, root=root)


@app.command("add-task")
def add_task(
    name: str = typer.Argument(..., help="The task to add: its settings under tasks: in params.yaml."),
    params: Path = ParamsOption,
    root: Path = RootOption,
) -> None:
    """Train a head for a new task on the champion's frozen features, against its own baseline; register it."""
    from dataclasses import asdict

    from components.io import tracking
    from components.jobs import add_task as job
    from components.report import added_task_table

    def stage(p: Params, parent: str) -> None:
        result = job.run(p, root, name, parent)
        tracking.end_run(parent)
        _console().print(added_task_table(asdict(result)))

    _run(params, _training(stage), tracked=True, root=root)


@app.command()
def compare(
    params: Path = ParamsOption,
    root: Path = RootOption,
    weightings: str = typer.Option(",".join(LOSS_WEIGHTINGS), help="Loss weightings to compare, comma-separated."),
    gradients: str = typer.Option(",".join(GRADIENT_METHODS), help="Gradient methods to compare, comma-separated."),
    seeds: int = typer.Option(3, min=1, help="Seeds per method (0, 1, ...)."),
    samplings: str = typer.Option(
        "", help="Dataset sampling strategies to compare, comma-separated (tasks from separate datasets only)."
    ),
    on_features: bool = typer.Option(
        False, "--on-features", help="Also run each Gramian-based gradient method with compare_on: features."
    ),
) -> None:
    """Train the MTL model with each method over several seeds; write reports/methods.md and .png."""
    from components.jobs import compare as job

    def action(p: Params) -> None:
        chosen_weightings = _choices(weightings, LOSS_WEIGHTINGS, "--weightings")
        chosen_gradients = _choices(gradients, GRADIENT_METHODS, "--gradients")
        chosen_samplings = _choices(samplings, SAMPLINGS, "--samplings") if samplings else []
        if chosen_samplings and not p.data.datasets:
            raise typer.BadParameter(
                "sampling mixes separate datasets; params.yaml declares no data.datasets", param_hint="--samplings"
            )
        _console().print(job.run(p, root, chosen_weightings, chosen_gradients, seeds, chosen_samplings, on_features))

    _run(params, action, root=root)


@app.command()
def affinity(params: Path = ParamsOption, root: Path = RootOption) -> None:
    """Measure which tasks help one another on a short training; write reports/affinity.md, .json and .png."""
    from components.jobs import affinity as job

    def action(p: Params) -> None:
        from rich.markdown import Markdown

        _console().print(Markdown(job.run(p, root)))
        _console().print(f"wrote {root / job.AFFINITY_REPORT.with_suffix('.md')} and the heatmap .png beside it")

    _run(params, action, root=root)


def _choices(value: str, valid: tuple[str, ...], option: str) -> list[str]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in valid]
    if unknown or not chosen:
        raise typer.BadParameter(
            f"unknown {', '.join(unknown) or 'empty list'}; valid: {', '.join(valid)}", param_hint=option
        )
    return chosen


@app.command()
def status(params: Path = ParamsOption) -> None:
    """Table of registered versions: aliases, verdict, Δm, per-task test metrics, data version."""
    from components.io import registry
    from components.report import versions_table

    _run(
        params,
        lambda p: _console().print(versions_table(p.registry.model_name, registry.version_rows(p.registry.model_name))),
        task_rules=False,
    )


@app.command()
def promote(
    version: str = typer.Option(..., "--version", help="Registered version to promote."),
    force: bool = typer.Option(False, "--force", help="Promote even if the policy says no."),
    reason: str = typer.Option(None, "--reason", help="Why; required with --force, recorded as a tag."),
    params: Path = ParamsOption,
    root: Path = RootOption,
) -> None:
    """Re-evaluate VERSION and the champion on the frozen test split; move 'champion' if the policy passes."""
    from components.jobs import promote as job

    def action(p: Params) -> None:
        result = job.run(p, root, version, force=force, reason=reason)
        verb = "is champion" if result.promoted else "is not promoted"
        _console().print(f"{p.registry.model_name} v{version} {verb}: {result.reason}")
        if not result.promoted:
            raise typer.Exit(1)

    _run(params, action)


@app.command()
def serve(
    model: str = typer.Option(
        None, "--model", "-m", help="Model URI; default: models:/<registry.model_name>@champion."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(5000, "--port", help="Port to listen on."),
    params: Path = ParamsOption,
) -> None:
    """Serve a registered model over HTTP (/invocations, /ping): MLflow's scoring server behind
    limits on body size and JSON depth, whose errors quote no request data."""

    def action(p: Params) -> None:
        import uvicorn

        from components.io import tracking
        from components.io.serving_app import guarded_app

        tracking.client()  # the tracking and registry URIs, as every other command sets them
        uri = model or f"models:/{p.registry.model_name}@champion"
        app = guarded_app(uri)
        _console().print(f"serving {uri} on http://{host}:{port}/invocations")
        uvicorn.run(app, host=host, port=port, log_level="warning")

    _run(params, action, task_rules=False)


@app.command()
def rollback(params: Path = ParamsOption) -> None:
    """Point 'champion' back at 'previous-champion' (a second rollback undoes the first)."""
    from components.io import registry

    def action(p: Params) -> None:
        moved_from, moved_to = registry.rollback(p.registry.model_name)
        _console().print(f"{p.registry.model_name}: champion v{moved_from} -> v{moved_to}")

    _run(params, action, task_rules=False)


@app.command()
def summary(params: Path = ParamsOption, root: Path = RootOption) -> None:
    """Print the results table of the last run again."""
    from components.jobs import summary as job

    _run(params, lambda p: _console().print(job.run(p, root)))


def other_checkout(folder: Path) -> Path | None:
    """The ``components`` package of ``folder`` when it is not the one this process runs: a
    copy of a project, whose ``mtl`` (an editable install) still runs the original's code."""
    own = folder / "components" / "cli.py"
    running = Path(__file__)
    if own.is_file() and not own.samefile(running):
        return own.parent
    return None


def main() -> Any:
    """The ``mtl`` entry point: process settings once, then the command. It refuses to run
    in a project folder whose own ``components/`` is not the code it would run."""
    configure()
    stop_on_sigterm()
    copy = other_checkout(Path.cwd())
    if copy is not None:
        errors.print(
            f"[bold red]error:[/] this folder has its own {copy}, but `mtl` runs the one installed from "
            f"{Path(__file__).parent} (a copy of the project?). Install this copy (`pip install -e .` here), "
            "or run `python -m components.cli ...`, as dvc.yaml does",
            highlight=False,
            soft_wrap=True,
        )
        return 1
    return app(prog_name="mtl")


if __name__ == "__main__":
    sys.exit(main())
