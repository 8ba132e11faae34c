"""What ``select`` and ``promote`` measure from saved checkpoints: every MTL epoch's
checkpoints (one per seed) scored on validation, with the per-row statistics the paired
bootstrap resamples against the single-task baselines' best checkpoints, the chosen epoch's
test metrics, how every compared training ended (``reports/baselines.json``,
``reports/train_mtl.json``), and each task's validation curve, baseline against MTL.

The acceptance policy (``components.selection``) judges what this gathers; nothing here
decides a verdict.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from components.bootstrap import pooled_intervals, resample_counts
from components.config import Params
from components.data.encoders import FittedFeatures, encoder_dir, fitted_features
from components.diagnosis import trivial_levels
from components.errors import PipelineError
from components.jobs.inputs import load_targets, load_tensor_splits, read_curves, write_curves
from components.jobs.layout import (
    BASELINES_REPORT,
    CURVES,
    MTL_DIR,
    MTL_REPORT,
    PLOTS,
    baseline_dir,
    baseline_params,
    mtl_dir,
    read_json,
    training_seeds,
)
from components.models import MultiTaskNetwork, build_model
from components.objectives import Objective
from components.selection import Candidate, SeedResult, score_checkpoint
from components.tasks import Task, build_tasks, task_objectives
from components.training.agreement import mean_over_epochs
from components.training.checkpoints import load_checkpoint, read_manifest
from components.training.device import resolve_device
from components.training.evaluation import evaluate, predictions
from components.training.loader import TensorSplit
from components.training.stopping import Ending


class NonFiniteMetrics(PipelineError):
    """The chosen checkpoint or a baseline scores NaN or infinity: nothing to select."""


class UnequalTrainings(PipelineError):
    """The seeds' trainings did not keep the same epochs: one is stale or unfinished."""


@dataclass
class Evidence:
    """The MTL checkpoints of every seed, epoch by epoch, judged on validation."""

    params: Params
    root: Path
    tasks: dict[str, Task]
    goals: dict[str, Objective]
    #: each epoch's manifest entry of every seed
    epochs: list[dict[int, dict[str, Any]]]
    candidates: list[Candidate]
    #: epoch -> seed -> validation metric per task
    seed_metrics: dict[int, dict[int, dict[str, float]]]
    #: ``reports/baselines.json``
    baselines: dict[str, Any]
    #: how every baseline and MTL training ended, by its label
    endings: dict[str, Ending]
    #: where intervals were computed (``selection.bootstrap_samples`` > 0)
    bootstrapped: bool
    _model: MultiTaskNetwork = field(repr=False)
    _splits: dict[str, TensorSplit] = field(repr=False)
    _device: torch.device = field(repr=False)

    @property
    def seeds(self) -> list[int]:
        return training_seeds(self.params)

    @property
    def baseline_val(self) -> dict[str, float]:
        return {name: self.baselines[name]["val"] for name in self.tasks}

    @property
    def baseline_test(self) -> dict[str, float]:
        return {name: self.baselines[name]["test"] for name in self.tasks}

    def unconverged(self) -> list[str]:
        """Every compared training that ended before it converged, with how it ended."""
        return [f"{label} {ending.describe()}" for label, ending in self.endings.items() if not ending.converged]

    def chosen(self, epoch: int) -> dict[int, dict[str, Any]]:
        """The manifest entries, one per seed, of ``epoch``."""
        return next(e for e in self.epochs if e[self.seeds[0]]["epoch"] == epoch)

    def test_metrics(self, epoch: int) -> dict[int, dict[str, float]]:
        """Each seed's checkpoint of ``epoch`` on the test split."""
        tests = {}
        for seed, entry in self.chosen(epoch).items():
            self._load(seed, entry)
            tests[seed] = evaluate(self._model, self.tasks, self._splits["test"], self._batch, self._device)
        return tests

    def best_seed(self, epoch: int) -> int:
        """The seed whose checkpoint of ``epoch`` scores best on validation against the
        baselines (the policy's weighted score; the first seed on a tie)."""
        by_seed = self.seed_metrics[epoch]
        scores = {
            seed: score_checkpoint("", 0, metrics, self.baseline_val, self.goals, 0.0).score
            for seed, metrics in by_seed.items()
        }
        return max(scores, key=lambda seed: (scores[seed] if math.isfinite(scores[seed]) else -math.inf, -seed))

    def seed_results(self, epoch: int, tests: dict[int, dict[str, float]]) -> list[SeedResult]:
        """Every seed's MTL and baseline metrics, where more than one seed trains."""
        if len(self.seeds) == 1:
            return []
        return [seed_result(s, self.seed_metrics[epoch][s], tests[s], self.baselines) for s in self.seeds]

    def checkpoint_path(self, epoch: int, seed: int) -> str:
        """The checkpoint of ``epoch`` trained with ``seed``, relative to ``models/mtl``."""
        folder = mtl_dir(self.root, self.params, seed)
        return (folder / self.chosen(epoch)[seed]["checkpoint"]).relative_to(self.root / MTL_DIR).as_posix()

    def trivial_levels(self) -> dict[str, float | None]:
        """Each task's metric on validation of the constant answer fitted on train."""
        return trivial_levels(self.tasks, load_targets(self.params, self.root, "train"), self._splits["val"])

    def gradient_agreement(self) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
        """The first seed's first-epoch training losses and its mean gradient conflict and
        cosine per task pair over epochs: what the diagnosis reads."""
        manifest = [e[self.seeds[0]] for e in self.epochs]
        conflict = mean_over_epochs([e.get("gradient_conflict", {}) for e in manifest])
        cosine = mean_over_epochs([e.get("gradient_cosine", {}) for e in manifest])
        return manifest[0].get("train_loss", {}), conflict, cosine

    @property
    def _batch(self) -> int:
        return self.params.training.batch_size

    def _load(self, seed: int, entry: dict[str, Any]) -> None:
        folder = mtl_dir(self.root, self.params, seed)
        self._model.load_state_dict(load_checkpoint(folder / entry["checkpoint"], entry["sha256"])["model"])


def gather(params: Params, root: Path) -> Evidence:
    """Scores every MTL epoch on validation: each seed's metrics, their mean, and (with
    ``selection.bootstrap_samples``) intervals pooled over rows and seeds against the
    baselines' checkpoints of the same seeds (``components.bootstrap.pooled_intervals``)."""
    seeds = training_seeds(params)
    epochs = aligned_epochs({seed: read_manifest(mtl_dir(root, params, seed)) for seed in seeds}, root)
    tasks = build_tasks(params.tasks)
    splits = load_tensor_splits(params, root, ("val", "test"))
    device = resolve_device(params.training.device)
    fitted = encoder_dir(root / params.data.dir)
    features = fitted_features(params, fitted)
    model = build_model(params, tasks, fitted, features).to(device)
    rules, val = params.selection, splits["val"]
    counts = resample_counts(len(val.inputs), rules.bootstrap_samples, params.seed) if rules.bootstrap_samples else None
    references = (
        [baseline_statistics(params, root, tasks, val, device, features, seed) for seed in seeds]
        if counts is not None
        else []
    )
    baselines = read_json(root / BASELINES_REPORT)
    evidence = Evidence(
        params=params,
        root=root,
        tasks=tasks,
        goals=task_objectives(params),
        epochs=epochs,
        candidates=[],
        seed_metrics={},
        baselines=baselines,
        endings=training_endings(baselines, read_json(root / MTL_REPORT)),
        bootstrapped=counts is not None,
        _model=model,
        _splits=splits,
        _device=device,
    )
    for entries in epochs:
        by_seed, resampled = {}, []
        for seed, entry in entries.items():
            evidence._load(seed, entry)
            # one pass over validation gives the metrics and the row statistics the bootstrap resamples
            found = predictions(model, tasks, val, params.training.batch_size, device)
            by_seed[seed] = {n: task.score(found[n], val.targets[n])[task.metric_name] for n, task in tasks.items()}
            if counts is not None:
                resampled.append({n: task.row_statistics(found[n], val.targets[n]) for n, task in tasks.items()})
        first = entries[seeds[0]]
        evidence.seed_metrics[first["epoch"]] = by_seed
        metrics = seed_mean(list(by_seed.values()))
        if counts is None:
            evidence.candidates.append(Candidate(first["checkpoint"], first["epoch"], metrics))
        else:
            intervals, mean = pooled_intervals(tasks, references, resampled, counts, rules.confidence, params.seed)
            evidence.candidates.append(Candidate(first["checkpoint"], first["epoch"], metrics, intervals, mean))
    return evidence


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


def aligned_epochs(manifests: dict[int, list[dict[str, Any]]], root: Path) -> list[dict[int, dict[str, Any]]]:
    """Each epoch's manifest entry of every seed, for the epochs every seed kept: early
    stopping ends each seed's training when that seed converges, so the seed means are
    judged up to the shortest one."""
    epochs = {seed: [e["epoch"] for e in manifest] for seed, manifest in manifests.items()}
    common = set.intersection(*(set(found) for found in epochs.values()))
    if not common:
        listed = "; ".join(f"seed {seed}: {found}" for seed, found in epochs.items())
        raise UnequalTrainings(
            f"select: the MTL trainings under {root / MTL_DIR} kept no epoch in common ({listed}); run train_mtl again"
        )
    kept = {seed: [e for e in manifest if e["epoch"] in common] for seed, manifest in manifests.items()}
    return [dict(zip(kept, entries, strict=True)) for entries in zip(*kept.values(), strict=True)]


def seed_mean(metrics: list[dict[str, float]]) -> dict[str, float]:
    """Each task's metric averaged over seeds."""
    return {name: statistics.fmean(m[name] for m in metrics) for name in metrics[0]}


def seed_result(seed: int, val: dict[str, float], test: dict[str, float], baseline: dict[str, Any]) -> SeedResult:
    """One seed's MTL and baseline metrics (the baselines' from ``reports/baselines.json``)."""
    own = {
        name: next(s for s in entry["seeds"] if s["seed"] == seed) for name, entry in baseline.items() if name in val
    }
    return SeedResult(seed, val, test, {n: s["val"] for n, s in own.items()}, {n: s["test"] for n, s in own.items()})


def baseline_statistics(
    params: Params,
    root: Path,
    tasks: dict[str, Task],
    split: TensorSplit,
    device: torch.device,
    features: FittedFeatures | None,
    seed: int,
) -> dict[str, Any]:
    """Each single-task baseline's per-row statistics on ``split``, from the best checkpoint
    of its training with ``seed``: what the MTL checkpoints are paired with (``features``: the
    fitted feature columns)."""
    fitted = encoder_dir(root / params.data.dir)
    single = baseline_params(params)
    found = {}
    for name, task in tasks.items():
        model = build_model(single, {name: task}, fitted, features).to(device)
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
