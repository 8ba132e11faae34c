"""Method comparison: the MTL model trained with each loss weighting and each gradient
method, over several seeds, against the pipeline's single-task baselines.

Methods vary one axis at a time: every loss weighting with ``gradient: sum``, every
gradient method with ``loss_weighting: equal`` (and, with ``on_features``, each Gramian-based
one again with ``compare_on: features``, beside its exact form), and, for tasks from
separate datasets, every dataset sampling strategy with ``equal`` and ``sum``. Each run picks its checkpoint on
validation exactly as the ``select`` stage does and reports that checkpoint's test
metrics; Δm here compares test metrics with the baselines' test metrics.

    $ mtl compare --weightings equal,uncertainty --gradients pcgrad --seeds 3

Example::

    >>> method_grid(["equal", "uncertainty"], ["sum", "pcgrad"])
    [('equal', 'sum'), ('uncertainty', 'sum'), ('equal', 'pcgrad')]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from components.config import GRAMIAN_METHODS, Params, gradient_method, loss_weighting
from components.io import tracking
from components.jobs.inputs import load_tensor_splits
from components.jobs.layout import (
    BASELINES_REPORT,
    METHODS_REPORT,
    read_json,
)
from components.jobs.trainings import epoch_logger, seeded_model, training_params
from components.selection import (
    Candidate,
    Objective,
    choose_checkpoint,
    compare_tasks,
    delta_m,
)
from components.tasks import build_tasks, task_objectives
from components.training.checkpoints import load_checkpoint
from components.training.device import resolve_device
from components.training.evaluation import evaluate
from components.training.loader import TensorSplit
from components.training.loop import train


@dataclass(frozen=True)
class MethodRun:
    method: str
    seed: int
    test: dict[str, float]
    delta_m: float
    step_seconds: float
    peak_memory_mb: float


@dataclass(frozen=True)
class MethodSummary:
    method: str
    seeds: int
    test_mean: dict[str, float]
    test_std: dict[str, float]
    delta_m_mean: float
    delta_m_std: float
    step_seconds: float
    peak_memory_mb: float


def method_grid(weightings: Sequence[str], gradients: Sequence[str]) -> list[tuple[str, str]]:
    """(loss_weighting, gradient) pairs varying one axis at a time, ``equal``/``sum`` once."""
    pairs = [(weighting, "sum") for weighting in weightings]
    pairs += [("equal", gradient) for gradient in gradients if ("equal", gradient) not in pairs]
    return pairs


def method_label(weighting: str, gradient: str, sampling: str | None = None, on: str = "parameters") -> str:
    """How a method reads in tables."""
    return (
        f"{weighting}+{gradient}"
        + (" on features" if on == "features" else "")
        + (f", {sampling} sampling" if sampling else "")
    )


def run_method(
    params: Params,
    splits: dict[str, TensorSplit],
    baseline: dict[str, dict[str, float]],
    weighting: str,
    gradient: str,
    seed: int,
    log: Callable[[str], None],
    root: Path,
    sampling: str | None = None,
    parent_run_id: str | None = None,
    on: str = "parameters",
) -> MethodRun:
    """One method with one seed: trained, its checkpoint chosen on validation, scored on test;
    under ``parent_run_id``, as a nested MLflow run with its curves and test metrics.
    ``on``: where the gradient method compares the tasks (``training.gradient.compare_on``);
    a method configured in ``params.yaml`` keeps its settings there."""
    configured = params.training

    def settings(kind: str, name: str) -> dict[str, object]:
        current = getattr(configured, kind)
        return current.model_dump() if current.name == name else {"name": name}

    update: dict[str, object] = {
        "loss_weighting": loss_weighting(settings("loss_weighting", weighting)),
        "gradient": gradient_method(settings("gradient", gradient) | ({"compare_on": on} if gradient != "sum" else {})),
    }
    update |= {"sampling": sampling} if sampling else {}
    training = params.training.model_copy(update=update)
    sampling = training.sampling if params.data.datasets else None  # named wherever it applies
    run_params = params.model_copy(update={"training": training, "seed": seed})
    tasks = build_tasks(params.tasks)
    goals = task_objectives(params)
    model = seeded_model(run_params, tasks, root)
    label = f"{method_label(weighting, gradient, sampling, on)} seed {seed}"
    run_id = None
    if parent_run_id is not None:
        run_id = tracking.start_child_run(parent_run_id, label, training_params(run_params), role="comparison")
    with tempfile.TemporaryDirectory() as scratch:
        history = train(
            model,
            tasks,
            splits["train"],
            splits["val"],
            training,
            seed,
            Path(scratch),
            label=label,
            log=log,
            on_epoch=epoch_logger(run_id),
        )
        # the checkpoint `select` would choose, on validation
        candidates = [Candidate(str(r.checkpoint), r.epoch, r.val_metrics) for r in history]
        baseline_val = {name: baseline[name]["val"] for name in tasks}
        chosen = choose_checkpoint(candidates, baseline_val, goals, params.selection.min_delta_m).chosen
        record = next(r for r in history if r.checkpoint == chosen.checkpoint)
        model.load_state_dict(load_checkpoint(Path(scratch) / str(record.checkpoint), record.sha256)["model"])
    device = resolve_device(training.device)
    test = evaluate(model.to(device), tasks, splits["test"], training.batch_size, device)
    changes = compare_tasks(test, {name: baseline[name]["test"] for name in tasks}, goals)
    if run_id is not None:
        tracking.log_metrics(
            run_id, {f"test/{t}.{goals[t].metric}": v for t, v in test.items()} | {"delta_m": delta_m(changes)}
        )
        tracking.end_run(run_id)
    return MethodRun(
        method=method_label(weighting, gradient, sampling, on),
        seed=seed,
        test=test,
        delta_m=delta_m(changes),
        step_seconds=statistics.fmean(r.step_seconds for r in history),
        peak_memory_mb=max(r.peak_memory_mb for r in history),
    )


def compare_methods(
    params: Params,
    root: Path,
    weightings: Sequence[str],
    gradients: Sequence[str],
    seeds: Sequence[int],
    log: Callable[[str], None] = print,
    samplings: Sequence[str] = (),
    parent_run_id: str | None = None,
    on_features: bool = False,
) -> list[MethodRun]:
    """Every method of the grid (and sampling strategy) over ``seeds``, saying before each
    which of how many it is and when the whole comparison should end; with ``on_features``
    each Gramian-based gradient method also with ``compare_on: features``."""
    if samplings and not params.data.datasets:
        raise ValueError("sampling strategies mix separate datasets; params.yaml declares no data.datasets")
    baseline = read_json(root / BASELINES_REPORT)
    splits = load_tensor_splits(params, root)
    plan: list[tuple[str, str, str | None, str]] = [
        (w, g, None, "parameters") for w, g in method_grid(weightings, gradients)
    ]
    plan += [("equal", g, None, "features") for g in gradients if on_features and g in GRAMIAN_METHODS]
    # the grid's equal+sum already ran with the configured sampling
    default_sampling = params.training.sampling if params.data.datasets else None
    covered = {method_label(w, g, default_sampling) for w, g, _, _ in plan}
    plan += [("equal", "sum", s, "parameters") for s in samplings if method_label("equal", "sum", s) not in covered]
    trainings = [(*method, seed) for method in plan for seed in seeds]
    runs: list[MethodRun] = []
    started = time.monotonic()
    for done, (weighting, gradient, sampling, on, seed) in enumerate(trainings):
        eta = ""
        if done:
            left = (time.monotonic() - started) / done * (len(trainings) - done)
            eta = f" · about {left / 60:.0f} min left" if left >= 90 else f" · about {left:.0f} s left"
        label = method_label(weighting, gradient, sampling, on)
        log(f"compare: {done + 1}/{len(trainings)} {label} seed {seed}{eta}")
        runs.append(
            run_method(params, splits, baseline, weighting, gradient, seed, log, root, sampling, parent_run_id, on)
        )
    return runs


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(runs: list[MethodRun]) -> list[MethodSummary]:
    """Mean and std over seeds per method, best Δm first."""
    by_method: dict[str, list[MethodRun]] = {}
    for run in runs:
        by_method.setdefault(run.method, []).append(run)
    summaries = []
    for method, group in by_method.items():
        tasks = list(group[0].test)
        summaries.append(
            MethodSummary(
                method=method,
                seeds=len(group),
                test_mean={t: statistics.fmean(r.test[t] for r in group) for t in tasks},
                test_std={t: _std([r.test[t] for r in group]) for t in tasks},
                delta_m_mean=statistics.fmean(r.delta_m for r in group),
                delta_m_std=_std([r.delta_m for r in group]),
                step_seconds=statistics.fmean(r.step_seconds for r in group),
                peak_memory_mb=max(r.peak_memory_mb for r in group),
            )
        )
    return sorted(summaries, key=lambda s: s.delta_m_mean, reverse=True)


def methods_markdown(summaries: list[MethodSummary], goals: dict[str, Objective]) -> str:
    """The comparison as a markdown table."""
    tasks = list(goals)
    header = ["method", "seeds"] + [f"{t} {goals[t].metric} {'↑' if goals[t].higher_is_better else '↓'}" for t in tasks]
    header += ["Δm (test)", "s / step", "peak MB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summaries:
        cells = [s.method, str(s.seeds)]
        cells += [f"{s.test_mean[t]:.4f} ± {s.test_std[t]:.4f}" for t in tasks]
        cells += [
            f"{s.delta_m_mean:+.2%} ± {s.delta_m_std:.2%}",
            f"{s.step_seconds * 1000:.1f} ms",
            f"{s.peak_memory_mb:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_methods(
    summaries: list[MethodSummary], goals: dict[str, Objective], path: Path, baseline_test: dict[str, float]
) -> None:
    """One panel per task: mean test metric by method, with the standard deviation over
    seeds, against the single-task baseline's test metric (the dashed line)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    tasks = list(goals)
    figure, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 0.4 * len(summaries) + 1.5), squeeze=False)
    labels = [s.method for s in summaries]
    for axis, task in zip(axes[0], tasks):
        means = [s.test_mean[task] for s in summaries]
        stds = [s.test_std[task] for s in summaries]
        # points, not bars: the axis is zoomed to the spread, where bar lengths would mislead
        axis.errorbar(means, range(len(labels)), xerr=stds, fmt="o", capsize=4, color="tab:blue", label="MTL")
        axis.axvline(baseline_test[task], color="tab:red", linestyle="--", label="single-task baseline")
        axis.set_yticks(range(len(labels)), labels)
        axis.grid(axis="x", alpha=0.3)
        low = min([m - e for m, e in zip(means, stds)] + [baseline_test[task]])
        high = max([m + e for m, e in zip(means, stds)] + [baseline_test[task]])
        margin = (high - low) * 0.2 or 0.01
        axis.set_xlim(low - margin, high + margin)
        direction = "higher is better" if goals[task].higher_is_better else "lower is better"
        axis.set_title(f"{task}: test {goals[task].metric} ({direction})")
        axis.invert_yaxis()
    axes[0][0].legend(loc="best", fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def run(
    params: Params,
    root: Path,
    weightings: Sequence[str],
    gradients: Sequence[str],
    seeds: int,
    samplings: Sequence[str] = (),
    on_features: bool = False,
) -> str:
    """Compares the methods, each method and seed a run nested under one comparison run in
    MLflow; writes ``reports/methods.md`` and ``.png``; returns the table."""
    parent = tracking.start_pipeline_run(params.registry.experiment, role="comparison")
    try:
        runs = compare_methods(
            params,
            root,
            weightings,
            gradients,
            list(range(seeds)),
            samplings=samplings,
            parent_run_id=parent,
            on_features=on_features,
        )
    except BaseException:
        tracking.end_run(parent, failed=True)
        raise
    tracking.end_run(parent)
    summaries = summarize(runs)
    goals = task_objectives(params)
    table = methods_markdown(summaries, goals)
    (root / METHODS_REPORT).parent.mkdir(parents=True, exist_ok=True)
    (root / METHODS_REPORT).write_text(f"# MTL methods on {params.registry.experiment}, {seeds} seed(s)\n\n{table}")
    baseline = read_json(root / BASELINES_REPORT)
    plot_methods(summaries, goals, root / METHODS_REPORT.with_suffix(".png"), {t: baseline[t]["test"] for t in goals})
    return table
