"""``mtl``: one command per pipeline stage, as ``dvc.yaml`` runs them.

Bad parameters and bad data end with a clear message and exit code 1, never a traceback;
a failing training stage marks the open MLflow pipeline run as failed.

Example::

    $ mtl prepare && mtl validate && mtl baselines && mtl train-mtl && mtl select && mtl register
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from components import compare as comparison
from components import distributed, registry, stages, tracking
from components.config import GRADIENT_METHODS, LOSS_WEIGHTINGS, SAMPLINGS, Params, ParamsError, load_params
from components.report import console as results_console
from components.report import versions_table
from components.validation import DataValidationError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Multi-task learning pipeline stages.")
errors = Console(stderr=True)
METHODS_REPORT = Path("reports/methods.md")

ParamsOption = typer.Option(Path("params.yaml"), "--params", "-p", help="Parameters file.")
RootOption = typer.Option(Path("."), "--root", help="Project root holding data/, models/ and reports/.")


def _run(params_path: Path, action: Callable[[Params], object], tracked: bool = False) -> None:
    try:
        params = load_params(params_path)
    except ParamsError as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    try:
        action(params)
    except (DataValidationError, FileNotFoundError, registry.RegistryError, distributed.DistributedLaunchError) as error:
        if tracked:
            tracking.fail_open_pipeline_run(params.registry.experiment)
        errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except BaseException:
        if tracked:
            tracking.fail_open_pipeline_run(params.registry.experiment)
        raise


def _parent(params: Params) -> str:
    return tracking.open_pipeline_run(params.registry.experiment)


@app.command()
def prepare(params: Path = ParamsOption, root: Path = RootOption) -> None:
    """Build the train/val/test splits under data/."""
    _run(params, lambda p: stages.prepare(p, root))


@app.command()
def validate(params: Path = ParamsOption, root: Path = RootOption) -> None:
    """Validate the splits with pandera and Great Expectations; write Data Docs."""
    _run(params, lambda p: stages.validate(p, root))


ParentRunOption = typer.Option(
    None, "--parent-run-id", help="MLflow pipeline run to nest under; default: the open one, else a new one."
)


def _training(stage: Callable[[Params, str], object]) -> Callable[[Params], object]:
    """Runs a training stage, inside the torchrun process group when torchrun started us."""

    def action(p: Params, parent_run_id: str | None = None) -> object:
        distributed.init_from_env(p.training.device)
        try:
            return stage(p, parent_run_id or _parent(p))
        finally:
            distributed.shutdown()

    return action


@app.command()
def baselines(params: Path = ParamsOption, root: Path = RootOption) -> None:
    """Train one single-task baseline per task."""
    _run(params, _training(lambda p, parent: stages.baselines(p, root, parent)), tracked=True)


@app.command("train-baseline")
def train_baseline(
    task: str = typer.Option(..., "--task", help="The task to train alone."),
    params: Path = ParamsOption,
    root: Path = RootOption,
    parent_run_id: str = ParentRunOption,
) -> None:
    """Train the single-task baseline of one task (the baselines stage runs one per task)."""

    def action(p: Params) -> None:
        if task not in p.tasks:
            raise typer.BadParameter(f"unknown task {task!r}; valid: {', '.join(p.tasks)}", param_hint="--task")
        run = _training(lambda q, parent: stages.train_baseline(q, root, task, parent))
        run(p, parent_run_id)

    _run(params, action, tracked=True)


@app.command("train-mtl")
def train_mtl(params: Path = ParamsOption, root: Path = RootOption, parent_run_id: str = ParentRunOption) -> None:
    """Train the multi-task model, keeping a checkpoint per epoch."""
    run = _training(lambda p, parent: stages.train_mtl(p, root, parent))
    _run(params, lambda p: run(p, parent_run_id), tracked=True)


@app.command()
def select(params: Path = ParamsOption, root: Path = RootOption) -> None:
    """Score every MTL checkpoint against the baselines and pick one under the acceptance policy."""
    _run(params, lambda p: stages.select(p, root))


@app.command()
def register(params: Path = ParamsOption, root: Path = RootOption) -> None:
    """Register the chosen model in MLflow, move aliases, and print the results table."""

    def action(p: Params) -> None:
        parent = _parent(p)
        stages.register(p, root, parent)
        tracking.end_run(parent)
        results_console().print(stages.summary(p, root))

    _run(params, action, tracked=True)


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
) -> None:
    """Train the MTL model with each method over several seeds; write reports/methods.md and .png."""

    def action(p: Params) -> None:
        chosen_weightings = _choices(weightings, LOSS_WEIGHTINGS, "--weightings")
        chosen_gradients = _choices(gradients, GRADIENT_METHODS, "--gradients")
        chosen_samplings = _choices(samplings, SAMPLINGS, "--samplings") if samplings else []
        if chosen_samplings and not p.data.datasets:
            raise typer.BadParameter("sampling mixes separate datasets; params.yaml declares no data.datasets", param_hint="--samplings")
        summaries = comparison.summarize(
            comparison.compare_methods(
                p, root, chosen_weightings, chosen_gradients, list(range(seeds)), samplings=chosen_samplings
            )
        )
        goals = stages.objectives(p)
        table = comparison.methods_markdown(summaries, goals)
        (root / METHODS_REPORT).write_text(f"# MTL methods on {p.registry.experiment}, {seeds} seed(s)\n\n{table}")
        comparison.plot_methods(summaries, goals, root / METHODS_REPORT.with_suffix(".png"))
        results_console().print(table)

    _run(params, action)


def _choices(value: str, valid: tuple[str, ...], option: str) -> list[str]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in valid]
    if unknown or not chosen:
        raise typer.BadParameter(f"unknown {', '.join(unknown) or 'empty list'}; valid: {', '.join(valid)}", param_hint=option)
    return chosen


@app.command()
def status(params: Path = ParamsOption) -> None:
    """Table of registered versions: aliases, verdict, Δm, per-task test metrics, data version."""
    _run(params, lambda p: results_console().print(
        versions_table(p.registry.model_name, registry.version_rows(p.registry.model_name))
    ))


@app.command()
def promote(
    version: str = typer.Option(..., "--version", help="Registered version to promote."),
    force: bool = typer.Option(False, "--force", help="Promote even if the policy says no."),
    reason: str = typer.Option(None, "--reason", help="Why; required with --force, recorded as a tag."),
    params: Path = ParamsOption,
    root: Path = RootOption,
) -> None:
    """Re-evaluate VERSION and the champion on the frozen test split; move 'champion' if the policy passes."""

    def action(p: Params) -> None:
        result = stages.promote(p, root, version, force=force, reason=reason)
        verb = "is champion" if result["promoted"] else "is not promoted"
        results_console().print(f"{p.registry.model_name} v{version} {verb}: {result['reason']}")
        if not result["promoted"]:
            raise typer.Exit(1)

    _run(params, action)


@app.command()
def rollback(params: Path = ParamsOption) -> None:
    """Point 'champion' back at 'previous-champion' (a second rollback undoes the first)."""

    def action(p: Params) -> None:
        moved_from, moved_to = registry.rollback(p.registry.model_name)
        results_console().print(f"{p.registry.model_name}: champion v{moved_from} -> v{moved_to}")

    _run(params, action)


@app.command()
def summary(params: Path = ParamsOption, root: Path = RootOption) -> None:
    """Print the results table of the last run again."""
    _run(params, lambda p: results_console().print(stages.summary(p, root)))


def main() -> None:
    app(prog_name="mtl")


if __name__ == "__main__":
    sys.exit(main())
