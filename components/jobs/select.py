"""Stage ``select``: every MTL checkpoint scored on **validation** against the baselines, one
chosen under the acceptance policy (``components.selection``), its **test** metrics
reported in ``reports/selection.json`` with each task's trivial level and what the run's
measurements suggest trying (``components.diagnosis``). Every compared training's ending
(``reports/baselines.json``, ``reports/train_mtl.json``) is checked first: a verdict on a
training that ended while still improving is ``inconclusive``.

    $ mtl select
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from components.bootstrap import pooled_intervals, resample_counts
from components.config import Params
from components.data.encoders import encoder_dir, fitted_input_width
from components.diagnosis import diagnose, trivial_levels
from components.errors import PipelineError
from components.jobs.baselines import baseline_dir, baseline_params
from components.jobs.common import (
    BASELINES_REPORT,
    CURVES,
    METRICS_REPORT,
    MTL_DIR,
    MTL_REPORT,
    PLOTS,
    SELECTION_REPORT,
    objectives,
    read_json,
    timed,
    training_seeds,
    write_json,
)
from components.jobs.train_mtl import mtl_dir
from components.jobs.trainings import load_targets, load_tensor_splits, read_curves, write_curves
from components.models import build_model
from components.selection import (
    Candidate,
    Objective,
    SeedResult,
    SelectionReport,
    choose_checkpoint,
    judge_convergence,
    other_rule,
    score_checkpoint,
)
from components.tasks import Task, build_tasks
from components.training.agreement import mean_over_epochs
from components.training.checkpoints import load_checkpoint, read_manifest
from components.training.evaluation import evaluate, predictions
from components.training.loader import TensorSplit
from components.training.loop import resolve_device
from components.training.stopping import Ending


class NonFiniteMetrics(PipelineError):
    """The chosen checkpoint or a baseline scores NaN or infinity: nothing to select."""


@timed("select")
def run(params: Params, root: Path) -> SelectionReport:
    """Chooses the checkpoint, writes and returns the report.

    With ``training.seeds`` > 1 an epoch is judged on the mean over seeds of its checkpoints'
    validation metrics against the baselines' seed means, with intervals pooled over seeds
    (``components.bootstrap.pooled_intervals``); of the chosen epoch's checkpoints, the seed
    that scores best on validation is the one reported on test and registered."""
    baseline = read_json(root / BASELINES_REPORT)
    seeds = training_seeds(params)
    folders = {seed: mtl_dir(root, params, seed) for seed in seeds}
    epochs = aligned_epochs({seed: read_manifest(folder) for seed, folder in folders.items()}, root)
    tasks = build_tasks(params.tasks)
    goals = objectives(params)
    splits = load_tensor_splits(params, root, ("val", "test"))
    device = resolve_device(params.training.device)
    fitted = encoder_dir(root / params.data.dir)
    width = fitted_input_width(params, fitted)
    model = build_model(params, tasks, fitted, width).to(device)
    batch = params.training.batch_size

    def load(seed: int, entry: dict) -> None:
        checkpoint = load_checkpoint(folders[seed] / entry["checkpoint"], entry["sha256"])
        model.load_state_dict(checkpoint["model"])

    rules = params.selection
    val = splits["val"]
    counts = resample_counts(len(val.inputs), rules.bootstrap_samples, params.seed) if rules.bootstrap_samples else None
    references = (
        [baseline_statistics(params, root, tasks, val, device, width, seed) for seed in seeds]
        if counts is not None
        else []
    )
    seed_metrics: dict[int, dict[int, dict[str, float]]] = {}  # epoch -> seed -> validation metric per task

    def candidate(entries: dict[int, dict]) -> Candidate:
        """One epoch's checkpoints (one per seed), judged on their mean."""
        by_seed, resampled = {}, []
        for seed, entry in entries.items():
            load(seed, entry)
            # one pass over validation gives the metrics and the row statistics the bootstrap resamples
            found = predictions(model, tasks, val, batch, device)
            by_seed[seed] = {
                name: task.score(found[name], val.targets[name])[task.metric_name] for name, task in tasks.items()
            }
            if counts is not None:
                resampled.append(row_statistics(tasks, found, val))
        first = entries[seeds[0]]
        seed_metrics[first["epoch"]] = by_seed
        metrics = seed_mean(list(by_seed.values()))
        if counts is None:
            return Candidate(first["checkpoint"], first["epoch"], metrics)
        intervals, mean = pooled_intervals(tasks, references, resampled, counts, rules.confidence, params.seed)
        return Candidate(first["checkpoint"], first["epoch"], metrics, intervals, mean)

    candidates = [candidate(e) for e in epochs]
    baseline_val = {name: baseline[name]["val"] for name in tasks}
    endings = training_endings(baseline, read_json(root / MTL_REPORT))
    unconverged = [f"{label} {ending.describe()}" for label, ending in endings.items() if not ending.converged]
    choice = judge_convergence(
        choose_checkpoint(candidates, baseline_val, goals, rules.min_delta_m, rules.rule),
        unconverged,
        rules.unconverged,
    )
    other = judge_convergence(
        choose_checkpoint(candidates, baseline_val, goals, rules.min_delta_m, other_rule(rules.rule)),
        unconverged,
        rules.unconverged,
    )
    chosen = next(e for e in epochs if e[seeds[0]]["epoch"] == choice.chosen.epoch)
    tests = {}
    for seed, entry in chosen.items():
        load(seed, entry)
        tests[seed] = evaluate(model, tasks, splits["test"], batch, device)
    seed = best_seed(seed_metrics[choice.chosen.epoch], baseline_val, goals)
    report = SelectionReport.build(
        choice,
        chosen[seed]["sha256"],
        goals,
        tests[seed],
        {name: baseline[name]["test"] for name in tasks},
        params.selection.min_delta_m,
        trivial_levels(tasks, load_targets(params, root, "train"), val),
        rules.rule,
        rules.confidence if counts is not None else None,
    )
    first_manifest = [e[seeds[0]] for e in epochs]
    conflict = mean_over_epochs([e.get("gradient_conflict", {}) for e in first_manifest])
    cosine = mean_over_epochs([e.get("gradient_cosine", {}) for e in first_manifest])
    low = report.delta_m_interval[0] if rules.rule == "lower_bound" and report.delta_m_interval else None
    findings = diagnose(
        report.tasks,
        first_manifest[0].get("train_loss", {}),
        conflict,
        cosine,
        (report.delta_m, low),
        rules.min_delta_m,
        unconverged,
        params.training.max_epochs,
    )
    report = replace(
        report,
        checkpoint=(folders[seed] / chosen[seed]["checkpoint"]).relative_to(root / MTL_DIR).as_posix(),
        diagnosis=findings,
        other_rule_verdict=other.verdict if counts is not None else None,
        seed=seed,
        seeds=[seed_result(s, seed_metrics[choice.chosen.epoch][s], tests[s], baseline) for s in seeds]
        if len(seeds) > 1
        else [],
        unconverged=unconverged,
        endings={label: ending.describe() for label, ending in endings.items()},
        max_epochs=params.training.max_epochs,
        tuning_trials=params.tuning.trials,
    )
    broken = report.non_finite()
    if broken:  # a NaN model is never reported as a candidate, let alone registered
        raise NonFiniteMetrics(
            f"select: {report.checkpoint} has non-finite metrics: {', '.join(broken)}; the training or "
            "a baseline diverged: lower training.lr and run again"
        )
    write_json(root / SELECTION_REPORT, report.to_dict())
    write_json(root / METRICS_REPORT, report.flat_metrics())
    write_task_plots(root, list(tasks))
    over = f", seed {seed} of {len(seeds)}" if len(seeds) > 1 else ""
    print(f"select: {report.verdict}, {report.checkpoint}{over} (Δm {report.delta_m:+.2%})")
    if report.verdict == "inconclusive":
        print(f"  inconclusive: {report.reason()}")
    for finding in report.diagnosis:
        print(f"  {'why' if not report.accepted else 'note'}: {finding}")
    return report


def training_endings(baselines: dict[str, Any], mtl: dict[str, Any]) -> dict[str, Ending]:
    """How every baseline and MTL training (every seed) ended, by its label, from
    ``reports/baselines.json`` and ``reports/train_mtl.json``."""
    trainings = [
        (f"baseline {task}" + (f" seed {run['seed']}" if len(entry["seeds"]) > 1 else ""), run["ending"])
        for task, entry in baselines.items()
        for run in entry["seeds"]
    ]
    trainings += [
        ("MTL" + (f" seed {run['seed']}" if len(mtl["seeds"]) > 1 else ""), run["ending"]) for run in mtl["seeds"]
    ]
    return {label: Ending(**ending) for label, ending in trainings}


class UnequalTrainings(PipelineError):
    """The seeds' trainings did not keep the same epochs: one is stale or unfinished."""


def aligned_epochs(manifests: dict[int, list[dict[str, Any]]], root: Path) -> list[dict[int, dict[str, Any]]]:
    """Each epoch's manifest entry of every seed, epoch by epoch."""
    epochs = {seed: [e["epoch"] for e in manifest] for seed, manifest in manifests.items()}
    first, *_ = epochs.values()
    if any(found != first for found in epochs.values()):
        listed = "; ".join(f"seed {seed}: {found}" for seed, found in epochs.items())
        raise UnequalTrainings(
            f"select: the MTL trainings under {root / MTL_DIR} kept different epochs ({listed}); run train_mtl again"
        )
    return [dict(zip(manifests, entries, strict=True)) for entries in zip(*manifests.values(), strict=True)]


def seed_mean(metrics: list[dict[str, float]]) -> dict[str, float]:
    """Each task's metric averaged over seeds."""
    return {name: statistics.fmean(m[name] for m in metrics) for name in metrics[0]}


def best_seed(by_seed: dict[int, dict[str, float]], baseline: dict[str, float], goals: dict[str, Objective]) -> int:
    """The seed whose checkpoint scores best on validation against the baselines (the
    policy's weighted score; the first seed on a tie)."""
    scores = {seed: score_checkpoint("", 0, metrics, baseline, goals, 0.0).score for seed, metrics in by_seed.items()}
    return max(scores, key=lambda seed: (scores[seed] if math.isfinite(scores[seed]) else -math.inf, -seed))


def seed_result(seed: int, val: dict[str, float], test: dict[str, float], baseline: dict[str, Any]) -> SeedResult:
    """One seed's MTL and baseline metrics (the baselines' from ``reports/baselines.json``)."""
    own = {
        name: next(s for s in entry["seeds"] if s["seed"] == seed) for name, entry in baseline.items() if name in val
    }
    return SeedResult(seed, val, test, {n: s["val"] for n, s in own.items()}, {n: s["test"] for n, s in own.items()})


def row_statistics(tasks: dict[str, Task], found: dict[str, torch.Tensor], split: TensorSplit) -> dict[str, Any]:
    """Each task's per-row statistics of ``found`` predictions on ``split`` (None where the
    task's metric has none)."""
    return {name: task.row_statistics(found[name], split.targets[name]) for name, task in tasks.items()}


def baseline_statistics(
    params: Params,
    root: Path,
    tasks: dict[str, Task],
    split: TensorSplit,
    device: torch.device,
    width: int | None,
    seed: int,
) -> dict[str, Any]:
    """Each single-task baseline's per-row statistics on ``split``, from the best checkpoint
    of its training with ``seed``: what the MTL checkpoints are paired with (``width``: the
    fitted feature width)."""
    fitted = encoder_dir(root / params.data.dir)
    single = baseline_params(params)
    found = {}
    for name, task in tasks.items():
        model = build_model(single, {name: task}, fitted, width).to(device)
        model.load_state_dict(load_checkpoint(baseline_dir(root, params, name, seed) / "best.pt")["model"])
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
