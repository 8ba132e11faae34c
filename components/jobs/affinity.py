"""``mtl affinity``: which tasks help one another, measured on a short multi-task training.

Trains the configured multi-task model for ``affinity.epochs`` epochs on the prepared
training split and, before every ``affinity.every``-th step, measures how a step on each
task alone changes every task's loss (``components.affinity``, Fifty et al. 2021). The
averaged matrix, the best grouping for each number of groups, the tasks that suffer
negative transfer, and what they mean for the last acceptance verdict
(``reports/selection.json``, when there is one) go to ``reports/affinity.md``, ``.json``
and a heatmap ``.png``, and to an MLflow run tagged ``mtl.role: affinity``.

    $ mtl affinity
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from components.affinity import (
    SCORE_SLACK,
    Grouping,
    best_groupings,
    lookahead_affinity,
    negative_transfer,
    recommend,
)
from components.config import Params, ParamsError
from components.io import tracking
from components.jobs.inputs import load_tensor_splits
from components.jobs.layout import REPORTS, SELECTION_REPORT, read_json, write_json
from components.jobs.trainings import seeded_model
from components.models import MultiTaskNetwork
from components.tasks import Task, build_tasks
from components.training.agreement import agreement_line, mean_over_epochs
from components.training.loop import train

AFFINITY_REPORT = REPORTS / "affinity.json"


#: an affinity counts as measured, not noise, when its mean is this many standard errors from 0
SIGNIFICANT_SE = 2.0


class AffinityMeter:
    """Sums the per-step affinity matrices of one training, and their squares."""

    def __init__(self, tasks: dict[str, Task], lr: float, every: int) -> None:
        self.tasks, self.lr, self.every = tasks, lr, every
        self.total = torch.zeros(len(tasks), len(tasks), dtype=torch.float64)
        self.squares = torch.zeros_like(self.total)
        self.steps = 0
        self._seen = 0

    def __call__(self, model: MultiTaskNetwork, inputs: Tensor, targets: list[Tensor]) -> None:
        self._seen += 1
        if (self._seen - 1) % self.every == 0:
            step = lookahead_affinity(model, self.tasks, inputs, targets, self.lr).double()
            self.total += step
            self.squares += step**2
            self.steps += 1

    def mean(self) -> Tensor:
        return (self.total / max(self.steps, 1)).float()

    def standard_error(self) -> Tensor:
        """Of each mean, over the measured steps (steps treated as independent draws)."""
        if self.steps < 2:
            return torch.full_like(self.total, float("inf")).float()
        mean = self.total / self.steps
        variance = ((self.squares - self.steps * mean**2) / (self.steps - 1)).clamp_min(0)
        return (variance / self.steps).sqrt().float()


@dataclass(frozen=True)
class AffinityReport:
    tasks: list[str]
    #: affinity[i][j]: relative loss decrease of task j after a step on task i alone
    affinity: list[list[float]]
    #: the standard error of each mean over the measured steps
    standard_error: list[list[float]]
    steps: int
    epochs: int
    lookahead_lr: float
    groupings: list[Grouping]
    recommended: Grouping
    #: tasks whose mean affinity from the others is negative, with that mean
    negative_transfer: dict[str, float]
    gradient_cosine: dict[str, float]
    gradient_conflict: dict[str, float]
    #: what the affinities say about the last acceptance verdict, one line per task it failed
    verdict: list[str]


def significant(mean: Tensor, standard_error: Tensor) -> Tensor:
    """Which affinities lie at least :data:`SIGNIFICANT_SE` standard errors from zero."""
    return mean.abs() >= SIGNIFICANT_SE * standard_error


def measured_only(mean: Tensor, standard_error: Tensor) -> Tensor:
    """The affinities, with those within :data:`SIGNIFICANT_SE` standard errors of zero set
    to zero: a grouping should rest on transfer that was measured, not on noise."""
    return torch.where(significant(mean, standard_error), mean, torch.zeros_like(mean))


def _group_of(task: str, grouping: Grouping) -> list[str]:
    return next(group for group in grouping.groups if task in group)


def verdict_lines(
    selection: dict[str, Any] | None, names: list[str], matrix: Tensor, recommended: Grouping
) -> list[str]:
    """For each task the last verdict found regressing: the affinity onto it from each other
    task and what the recommended grouping does with it."""
    if selection is None:
        return ["no acceptance verdict yet (reports/selection.json): run the pipeline to link the two"]
    results = selection.get("tasks", {})
    if set(results) != set(names):
        return ["the last verdict (reports/selection.json) was on other tasks; not linked"]
    lines = []
    for j, name in enumerate(names):
        result = results[name]
        if result["passed"]:
            continue
        onto = ", ".join(f"from {names[i]} {matrix[i, j].item():+.2%}" for i in range(len(names)) if i != j)
        group = [task for task in _group_of(name, recommended) if task != name]
        advice = f"train it with {', '.join(group)}" if group else "train it alone"
        lines.append(
            f"{name} regresses (Δ {result['relative_change']:+.2%}, tolerance -{result['tolerance']:.0%}); "
            f"affinity onto it: {onto} → {advice}"
        )
    return lines or [f"the last verdict ({selection.get('verdict')}) found no task regressing beyond tolerance"]


def measure(params: Params, root: Path) -> AffinityReport:
    """The short training and its affinities."""
    tasks = build_tasks(params.tasks)
    names = list(tasks)
    if len(names) < 2:
        raise ParamsError(f"affinity compares tasks; params.yaml declares one ({names[0]})")
    config = params.affinity
    model = seeded_model(params, tasks, root)
    if not model.shared_parameters():
        raise ParamsError(
            f"affinity measures a step on shared parameters; model.sharing {params.model.sharing} shares none"
        )
    splits = load_tensor_splits(params, root, ("train", "val"))
    # one process: the measurement is a diagnostic, not the model that ships
    training = params.training.model_copy(update={"max_epochs": config.epochs, "devices": 1})
    lookahead_lr = config.lookahead_lr or params.training.shared_lr or params.training.lr
    meter = AffinityMeter(tasks, lookahead_lr, config.every)
    with tempfile.TemporaryDirectory() as scratch:
        history = train(
            model, tasks, splits["train"], splits["val"], training, params.seed, Path(scratch), label="affinity",
            probe=meter,
        )  # fmt: skip
    matrix, error = meter.mean(), meter.standard_error()
    measured = measured_only(matrix, error)
    groupings = best_groupings(measured, names, config.max_groups)
    recommended = recommend(measured, names, config.max_groups)
    path = root / SELECTION_REPORT
    selection = read_json(path) if path.exists() else None
    return AffinityReport(
        tasks=names,
        affinity=matrix.tolist(),
        standard_error=error.tolist(),
        steps=meter.steps,
        epochs=config.epochs,
        lookahead_lr=lookahead_lr,
        groupings=groupings,
        recommended=recommended,
        negative_transfer=negative_transfer(matrix, names),
        gradient_cosine=mean_over_epochs([r.gradient_cosine for r in history]),
        gradient_conflict=mean_over_epochs([r.gradient_conflict for r in history]),
        verdict=verdict_lines(selection, names, matrix, recommended),
    )


def markdown(report: AffinityReport) -> str:
    """The report a person reads: the matrix, the groupings, and what to do."""
    names = report.tasks
    lines = [
        "# Inter-task affinity",
        "",
        f"Lookahead affinity (Fifty et al. 2021) over {report.steps} steps of a {report.epochs}-epoch multi-task "
        f"training (η = {report.lookahead_lr:g}). A cell is how much a step on the row's task alone lowers the "
        "column's task loss on the same batch: positive helps, negative hurts. A value in parentheses is "
        f"within {SIGNIFICANT_SE:g} standard errors of zero: no transfer was measured, and groupings count it as 0.",
        "",
        "| step on ↓ · loss of → | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    measured = significant(torch.tensor(report.affinity), torch.tensor(report.standard_error))
    for i, source in enumerate(names):
        cells = [f"{value:+.3%}" if measured[i, j] else f"({value:+.3%})" for j, value in enumerate(report.affinity[i])]
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    lines += ["", "| groups | grouping | score |", "|---|---|---|"]
    for grouping in report.groupings:
        mark = " **(recommended)**" if grouping.groups == report.recommended.groups else ""
        groups = " · ".join("{" + ", ".join(group) + "}" for group in grouping.groups)
        lines.append(f"| {len(grouping.groups)} | {groups}{mark} | {grouping.score:+.2%} |")
    lines += [
        "",
        "A grouping's score sums, over tasks, the mean affinity onto each from its group's other members. "
        f"Recommended: the fewest groups within {SCORE_SLACK:.0%} of the best score (each group is one more "
        "model to train and serve) in which every task that shares a model gains from its group.",
        "",
    ]
    if report.negative_transfer:
        suffering = ", ".join(f"{task} ({value:+.2%})" for task, value in report.negative_transfer.items())
        lines.append(f"Negative transfer: the other tasks' steps raise the loss of {suffering}.")
    else:
        lines.append("Negative transfer: none; every task's loss falls, on average, when the others step.")
    if report.gradient_cosine:
        agreement = agreement_line(report.gradient_cosine, report.gradient_conflict)
        lines += ["", f"Gradient agreement in the same run: {agreement}."]
    lines += ["", "## The last acceptance verdict", "", *[f"- {line}" for line in report.verdict], ""]
    return "\n".join(lines)


def plot(report: AffinityReport, path: Path) -> None:
    """The matrix as a heatmap, coloured on the off-diagonal range (a task's step on itself is
    larger and would wash the others out)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = report.tasks
    values = torch.tensor(report.affinity) * 100
    off_diagonal = values[~torch.eye(len(names), dtype=torch.bool)]
    limit = float(off_diagonal.abs().max()) or 1.0
    size = 1.1 * len(names) + 2.2
    figure, axis = plt.subplots(figsize=(size + 1.2, size))
    shown = values.clone()
    shown.fill_diagonal_(float("nan"))  # drawn grey: a task's step on itself is off this scale
    colormap = matplotlib.colormaps["RdBu"].with_extremes(bad="0.85")
    image = axis.imshow(shown.numpy(), cmap=colormap, vmin=-limit, vmax=limit)
    measured = significant(torch.tensor(report.affinity), torch.tensor(report.standard_error))
    for i in range(len(names)):
        for j in range(len(names)):
            value = float(values[i, j])
            text = f"{value:+.3f}" if measured[i, j] else f"({value:+.3f})"
            dark = i != j and abs(value) > 0.6 * limit
            axis.text(j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black")
    axis.set_xticks(range(len(names)), names, rotation=30, ha="right")
    axis.set_yticks(range(len(names)), names)
    axis.set_xlabel("loss of task")
    axis.set_ylabel("step on task")
    axis.set_title(
        f"Inter-task affinity, % loss decrease ({report.steps} steps)\n(in parentheses: not distinguishable from 0)"
    )
    figure.colorbar(image, ax=axis, label="% loss decrease of the column task (blue helps, red hurts)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def run(params: Params, root: Path) -> str:
    """Measures, writes ``reports/affinity.{json,md,png}``, logs them to MLflow; returns the markdown."""
    run_id = tracking.start_pipeline_run(params.registry.experiment, role="affinity")
    try:
        report = measure(params, root)
    except BaseException:
        tracking.end_run(run_id, failed=True)
        raise
    text = markdown(report)
    json_path = root / AFFINITY_REPORT
    write_json(json_path, asdict(report))
    json_path.with_suffix(".md").write_text(text)
    plot(report, json_path.with_suffix(".png"))
    tracking.log_params(run_id, {"affinity." + key: value for key, value in params.affinity.model_dump().items()})
    names = report.tasks
    tracking.log_metrics(
        run_id,
        {
            f"affinity/{source} to {target}": report.affinity[i][j]
            for i, source in enumerate(names)
            for j, target in enumerate(names)
        },
    )
    for suffix in (".json", ".md", ".png"):
        tracking.client().log_artifact(run_id, str(json_path.with_suffix(suffix)))
    tracking.set_tags(run_id, {"recommended_grouping": " | ".join(",".join(g) for g in report.recommended.groups)})
    tracking.end_run(run_id)
    return text
