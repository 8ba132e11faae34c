"""Stage ``select``: every MTL checkpoint scored on **validation** against the baselines, one
chosen under the acceptance policy (``components.selection``), its **test** metrics
reported in ``reports/selection.json`` with each task's trivial level and what the run's
measurements suggest trying (``components.diagnosis``).

    $ mtl select
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from components.bootstrap import paired_intervals, resample_counts
from components.config import Params
from components.data.encoders import encoder_dir, fitted_input_width
from components.diagnosis import diagnose, trivial_levels
from components.errors import PipelineError
from components.jobs.baselines import baseline_params
from components.jobs.common import (
    BASELINES_DIR,
    BASELINES_REPORT,
    CURVES,
    METRICS_REPORT,
    MTL_DIR,
    PLOTS,
    SELECTION_REPORT,
    objectives,
    read_json,
    timed,
    write_json,
)
from components.jobs.trainings import load_targets, load_tensor_splits, read_curves, write_curves
from components.models import build_model
from components.selection import Candidate, SelectionReport, choose_checkpoint, other_rule
from components.tasks import Task, build_tasks
from components.training.agreement import mean_over_epochs
from components.training.checkpoints import load_checkpoint, read_manifest
from components.training.evaluation import evaluate, predictions
from components.training.loader import TensorSplit
from components.training.loop import resolve_device


class NonFiniteMetrics(PipelineError):
    """The chosen checkpoint or a baseline scores NaN or infinity: nothing to select."""


@timed("select")
def run(params: Params, root: Path) -> SelectionReport:
    """Chooses the checkpoint, writes and returns the report."""
    baseline = read_json(root / BASELINES_REPORT)
    manifest = read_manifest(root / MTL_DIR)
    tasks = build_tasks(params.tasks)
    goals = objectives(params)
    splits = load_tensor_splits(params, root, ("val", "test"))
    device = resolve_device(params.training.device)
    fitted = encoder_dir(root / params.data.dir)
    width = fitted_input_width(params, fitted)
    model = build_model(params, tasks, fitted, width).to(device)
    batch = params.training.batch_size

    def load(entry: dict) -> None:
        checkpoint = load_checkpoint(root / MTL_DIR / entry["checkpoint"], entry["sha256"])
        model.load_state_dict(checkpoint["model"])

    rules = params.selection
    val = splits["val"]
    paired = None
    if rules.bootstrap_samples:
        counts = resample_counts(len(val.inputs), rules.bootstrap_samples, params.seed)
        paired = (counts, baseline_statistics(params, root, tasks, val, device, width))

    def candidate(entry: dict) -> Candidate:
        load(entry)
        # one pass over validation gives the metrics and the row statistics the bootstrap resamples
        found = predictions(model, tasks, val, batch, device)
        metrics = {name: task.score(found[name], val.targets[name])[task.metric_name] for name, task in tasks.items()}
        if paired is None:
            return Candidate(entry["checkpoint"], entry["epoch"], metrics)
        counts, base = paired
        intervals, mean = paired_intervals(tasks, base, row_statistics(tasks, found, val), counts, rules.confidence)
        return Candidate(entry["checkpoint"], entry["epoch"], metrics, intervals, mean)

    candidates = [candidate(e) for e in manifest]
    baseline_val = {name: baseline[name]["val"] for name in tasks}
    choice = choose_checkpoint(candidates, baseline_val, goals, rules.min_delta_m, rules.rule)
    other = choose_checkpoint(candidates, baseline_val, goals, rules.min_delta_m, other_rule(rules.rule))
    chosen_entry = next(e for e in manifest if e["checkpoint"] == choice.chosen.checkpoint)
    load(chosen_entry)
    report = SelectionReport.build(
        choice,
        chosen_entry["sha256"],
        goals,
        evaluate(model, tasks, splits["test"], batch, device),
        {name: baseline[name]["test"] for name in tasks},
        params.selection.min_delta_m,
        trivial_levels(tasks, load_targets(params, root, "train"), val),
        rules.rule,
        rules.confidence if paired else None,
    )
    conflict = mean_over_epochs([e.get("gradient_conflict", {}) for e in manifest])
    cosine = mean_over_epochs([e.get("gradient_cosine", {}) for e in manifest])
    low = report.delta_m_interval[0] if rules.rule == "lower_bound" and report.delta_m_interval else None
    findings = diagnose(
        report.tasks, manifest[0].get("train_loss", {}), conflict, cosine, (report.delta_m, low), rules.min_delta_m
    )
    report = replace(report, diagnosis=findings, other_rule_verdict=other.verdict if paired else None)
    broken = report.non_finite()
    if broken:  # a NaN model is never reported as a candidate, let alone registered
        raise NonFiniteMetrics(
            f"select: {report.checkpoint} has non-finite metrics: {', '.join(broken)}; the training or "
            "a baseline diverged: lower training.lr and run again"
        )
    write_json(root / SELECTION_REPORT, report.to_dict())
    write_json(root / METRICS_REPORT, report.flat_metrics())
    write_task_plots(root, list(tasks))
    print(f"select: {report.verdict}, {report.checkpoint} (Δm {report.delta_m:+.2%})")
    for finding in report.diagnosis:
        print(f"  {'why' if not report.accepted else 'note'}: {finding}")
    return report


def row_statistics(tasks: dict[str, Task], found: dict[str, torch.Tensor], split: TensorSplit) -> dict[str, Any]:
    """Each task's per-row statistics of ``found`` predictions on ``split`` (None where the
    task's metric has none)."""
    return {name: task.row_statistics(found[name], split.targets[name]) for name, task in tasks.items()}


def baseline_statistics(
    params: Params, root: Path, tasks: dict[str, Task], split: TensorSplit, device: torch.device, width: int | None
) -> dict[str, Any]:
    """Each single-task baseline's per-row statistics on ``split``, from its best checkpoint:
    what the MTL checkpoints are paired with (``width``: the fitted feature width)."""
    fitted = encoder_dir(root / params.data.dir)
    single = baseline_params(params)
    found = {}
    for name, task in tasks.items():
        model = build_model(single, {name: task}, fitted, width).to(device)
        model.load_state_dict(load_checkpoint(root / BASELINES_DIR / name / "best.pt")["model"])
        found[name] = task.row_statistics(
            predictions(model, {name: task}, split, params.training.batch_size, device)[name], split.targets[name]
        )
    return found


def write_task_plots(root: Path, tasks: list[str]) -> None:
    """``reports/plots/<task>.csv``: one task's validation curve, baseline against MTL, the
    series ``dvc plots show`` draws for whichever tasks ``params.yaml`` configures."""
    baseline, mtl = read_curves(root / CURVES / "baselines.csv"), read_curves(root / CURVES / "mtl.csv")
    for stale in (root / PLOTS).glob("*.csv"):
        stale.unlink()  # a task no longer configured
    for task in tasks:
        write_curves(root / PLOTS / f"{task}.csv", {"baseline": baseline[task], "MTL": mtl[task]})


def read_report(root: Path) -> SelectionReport:
    """The report the last ``select`` wrote."""
    return SelectionReport.from_dict(read_json(root / SELECTION_REPORT))
