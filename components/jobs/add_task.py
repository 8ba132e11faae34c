"""``mtl add-task NAME``: a new task on the registered champion, without retraining it.

The champion's network stays frozen: its encoder and trunk compute, once, the features of
every row that the task ``add_task.reads`` names, and a head for NAME (behind an optional
residual adapter, ``add_task.adapter``) trains on them as its baseline trains: ``training``'s
settings and early stopping, on the plain loss (no MTL weighting or gradient method). NAME's
own single-task baseline trains as the baselines stage trains it (``models/baselines/NAME``),
untuned like the head: both sides get the same tuning effort.
The result:

- the gate, ``selection``'s policy on validation: the new head against its baseline
  (``selection.rule``, with paired bootstrap intervals under ``lower_bound``); a side that
  stopped before converging makes the verdict inconclusive under ``selection.unconverged``;
- the old tasks unchanged: the new version, loaded from the files about to be registered,
  must give every old task's validation predictions bit-identical to the champion's, or
  nothing is registered;
- a new registered version (champion's tasks + NAME), tagged ``added_task`` and
  ``base_version``; ``champion`` moves only under the champion guard, as ``register``'s.

    $ mtl validate && mtl add-task college       # college's settings under tasks: first
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import torch

from components.bootstrap import pooled_intervals, resample_counts
from components.config import Params
from components.data.encoders import encoder_dir, fitted_features
from components.data.splits import SPLITS, read_split
from components.errors import PipelineError
from components.io import registry, tracking
from components.io.dvc import data_version, git_commit
from components.io.serving import MultiTaskPyfunc, write_model_files
from components.jobs.baseline_training import BaselineResult, summarize, train_one
from components.jobs.evidence import baseline_statistics
from components.jobs.inputs import check_validated, load_tensor_splits
from components.jobs.layout import (
    BASELINES_REPORT,
    REPORTS,
    VALIDATION_REPORT,
    baseline_params,
    read_json,
    timed,
    training_seeds,
    write_json,
)
from components.jobs.trainings import epoch_logger, resume_key, training_params, training_run
from components.jobs.versions import champion_intervals, log_and_register
from components.models import MultiTaskNetwork
from components.models.added import AddedTasksModel, FeatureHeads, adapters_for
from components.selection import bracket, promotion_decision, score_checkpoint
from components.tasks import Task, build_tasks, task_objectives
from components.training.checkpoints import load_checkpoint
from components.training.device import resolve_device
from components.training.evaluation import predictions
from components.training.loader import TensorSplit
from components.training.loop import train, training_ending
from components.training.seeding import seed_everything
from components.training.stopping import Ending

ADDED_DIR = Path("models/added")
ADD_TASK_REPORT = REPORTS / "add_task.json"


class AddTaskError(PipelineError):
    """``mtl add-task`` cannot add this task as asked; the message says what to change."""


@dataclass(frozen=True)
class Judged:
    """The gate's judgement of the new head against its baseline."""

    verdict: str
    reason: str
    metric: str
    head_val: float
    baseline_val: float
    head_test: float
    baseline_test: float
    interval: list[float] | None
    #: Δ of the new task's validation metric against its baseline's (positive: better)
    relative_change: float
    #: how each side's training ended, by its label (``Ending.describe``)
    endings: dict[str, str]


@dataclass(frozen=True)
class AddedTask(Judged):
    """What ``mtl add-task`` did, as ``reports/add_task.json`` holds it."""

    task: str
    reads: str
    base_version: str
    version: str
    promotion: str
    champion_moved: bool
    #: each old task's validation metric, the champion's and the new version's (equal)
    old_tasks_val: dict[str, float]


@timed("add_task")
def run(params: Params, root: Path, name: str, parent_run_id: str) -> AddedTask:
    """Trains, judges, checks and registers ``name`` on the champion (see the module)."""
    _check_task(params, root, name)
    champion_version, champion = _champion_without(params, name)
    reads = params.add_task.reads or next(iter(champion.tasks))
    if reads not in champion.tasks:
        raise AddTaskError(
            f"add_task.reads: the champion v{champion_version} has no task {reads!r}; "
            f"valid: {', '.join(champion.tasks)}"
        )
    reads = champion.added.get(reads, {}).get("reads", reads)  # an added task reads its own task's features
    tasks = build_tasks({name: params.tasks[name]})
    if tasks[name].dense:
        raise AddTaskError(
            f"task {name!r} is a {params.tasks[name].type} task, which reads the backbone's dense features; "
            "add-task puts heads on the pooled features a task reads: retrain with `dvc repro` instead"
        )
    frames = {split: read_split(root / params.data.dir, split) for split in SPLITS}
    # the frozen trunk's features and the new labels, through the champion's own encoder
    splits = {
        split: TensorSplit(champion.task_features(frame, reads), {name: tasks[name].targets(frame, champion.encoder)})
        for split, frame in frames.items()
    }
    entry = {"reads": reads, "width": splits["train"].inputs.shape[1], "adapter": params.add_task.adapter}
    head, history, best, run_id = _train_head(params, root, name, entry, tasks, splits, champion_version, parent_run_id)
    # the same tuning effort on both sides: none, as the head is not tuned
    untuned = params.model_copy(update={"tuning": params.tuning.model_copy(update={"trials": 0})})
    found = [train_one(untuned, root, name, parent_run_id, seed=seed) for seed in training_seeds(params)]
    trained = [result for result in found if result is not None]
    if len(trained) < len(found):
        raise AddTaskError(f"a baseline of {name} did not report a result")
    # beside the other tasks' baselines: `mtl promote` judges the new version against them all
    write_json(root / BASELINES_REPORT, read_json(root / BASELINES_REPORT) | summarize(trained))
    judged = _judge(params, root, name, tasks, head, splits, trained, training_ending(history, params.training))
    stored = champion.params.model_dump(mode="json")  # the version: the champion's settings and the new task
    version_params = Params.model_validate(
        stored | {"tasks": stored["tasks"] | {name: params.tasks[name].model_dump(mode="json")}}
    )
    network, added = _extended(champion, name, head, entry)
    with tempfile.TemporaryDirectory() as scratch:
        artifacts = write_model_files(
            {"model": network.state_dict()}, version_params, Path(scratch), champion.inputs_dir, added
        )
        candidate = MultiTaskPyfunc()
        candidate.load_context(SimpleNamespace(artifacts=artifacts))
        old_val = _old_tasks_unchanged(champion, candidate, frames["val"], champion_version)
        key = registry.registration_key(
            data_version(root, params.data.dir), version_params.fingerprint(), str(best.get("sha256", ""))
        )
        result = _register(
            params, version_params, root, name, reads, champion_version, champion, candidate, artifacts,
            frames["test"], judged, old_val, run_id, key,
        )  # fmt: skip
    write_json(root / ADD_TASK_REPORT, asdict(result))
    return result


def _train_head(
    params: Params,
    root: Path,
    name: str,
    entry: dict[str, Any],
    tasks: dict[str, Task],
    splits: dict[str, TensorSplit],
    champion_version: str,
    parent_run_id: str,
) -> tuple[FeatureHeads, list[Any], dict[str, Any], str | None]:
    """The new head trained on the cached features under its own MLflow run (resumed when
    killed, reused when finished): the head at its best epoch, the history, that epoch's
    checkpoint and the run."""
    single = baseline_params(params)  # one task: its plain loss and gradient, as its baseline trains
    seed_everything(params.seed)
    head = FeatureHeads({name: tasks[name].head(entry["width"])}, adapters_for({name: entry}))
    directory = root / ADDED_DIR / name
    label = f"add-task-{name}-on-v{champion_version}"
    key = resume_key(params, root, f"{label}-{params.add_task.model_dump_json()}")  # the fingerprint leaves it out
    with training_run(
        parent_run_id, label, training_params(params) | {"task": name, "reads": entry["reads"]}, directory,
        key, (params, root),
    ) as resume:  # fmt: skip
        history = train(
            head, tasks, splits["train"], splits["val"], single.training, params.seed, directory,
            keep_best_for=name, label=f"add-task {name}", on_epoch=epoch_logger(resume.run_id), resume=resume,
        )  # fmt: skip
    best = load_checkpoint(directory / "best.pt")
    head.load_state_dict(best["model"])
    return head, history, best, resume.run_id


def _extended(
    champion: MultiTaskPyfunc, name: str, head: FeatureHeads, entry: dict[str, Any]
) -> tuple[AddedTasksModel, dict[str, dict[str, Any]]]:
    """The champion's network with the new head, and the record that rebuilds it; a
    champion that is itself an extended one keeps its trunk and its added heads beside it."""
    network: MultiTaskNetwork = champion.network
    base, adapters = network, {}
    if isinstance(network, AddedTasksModel):
        base, adapters = network.base, dict(network.adapters.items())
    added = champion.added | {name: entry}
    heads = {task: network.heads[task] for task in champion.added} | dict(head.heads.items())
    reads = {task: record["reads"] for task, record in added.items()}
    return AddedTasksModel(base, heads, reads, adapters | dict(head.adapters.items())), added


def _check_task(params: Params, root: Path, name: str) -> None:
    """``name`` must be configured, and its labels validated on the data as it is now."""
    if name not in params.tasks:
        raise AddTaskError(
            f"params.yaml has no task {name!r} under tasks:; add its settings there (type, label, tolerance), "
            f"run `mtl validate`, then add it; tasks there: {', '.join(params.tasks)}"
        )
    check_validated(params, root)
    validated = read_json(root / VALIDATION_REPORT).get("tasks", [])
    if name not in validated:
        raise AddTaskError(
            f"{VALIDATION_REPORT} checked the labels of {', '.join(validated) or 'other tasks'}, not {name!r}'s: "
            "run `mtl validate` so they are checked before anything trains on them"
        )


def _champion_without(params: Params, name: str) -> tuple[str, MultiTaskPyfunc]:
    """The champion, which must exist and lack ``name``."""
    model_name = params.registry.model_name
    champion_version = registry.alias_version(model_name, registry.CHAMPION)
    if champion_version is None:
        raise AddTaskError(
            f"{model_name} has no champion to add {name!r} to (registry.model_name); register one first (`dvc repro`)"
        )
    champion = registry.load_version(model_name, champion_version).unwrap_python_model()
    if name in champion.tasks:
        raise AddTaskError(
            f"the champion {model_name} v{champion_version} already has task {name!r} "
            f"(its tasks: {', '.join(champion.tasks)}); name a new one"
        )
    return champion_version, champion


def _judge(
    params: Params,
    root: Path,
    name: str,
    tasks: dict[str, Task],
    head: FeatureHeads,
    splits: dict[str, TensorSplit],
    baselines: list[BaselineResult],
    ending: Ending,
) -> Judged:
    """``selection``'s policy on validation, the new head against its baseline (the mean of
    its ``training.seeds`` trainings, pooled in the intervals, as ``select`` judges)."""
    device = resolve_device(params.training.device)
    head = head.to(device)
    task = tasks[name]
    found = {
        split: predictions(head, tasks, splits[split], params.training.batch_size, device)[name]
        for split in ("val", "test")
    }
    scores = {split: task.score(found[split], splits[split].targets[name])[task.metric_name] for split in found}
    rules = params.selection
    objectives = {name: task_objectives(params)[name]}
    intervals: dict[str, tuple[float, float]] = {}
    if rules.rule == "lower_bound":  # paired with the baseline on the same validation rows
        val = load_tensor_splits(params, root, ("val",))["val"]
        features = fitted_features(params, encoder_dir(root / params.data.dir))
        references = [baseline_statistics(params, root, tasks, val, device, features, b.seed) for b in baselines]
        ours = {name: task.row_statistics(found["val"], splits["val"].targets[name])}
        counts = resample_counts(len(val), rules.bootstrap_samples, params.seed)
        intervals, _ = pooled_intervals(tasks, references, [ours], counts, rules.confidence, params.seed)
    baseline = summarize(baselines)[name]
    scored = score_checkpoint(
        f"add-task {name}", 0, {name: scores["val"]}, {name: baseline["val"]}, objectives, rules.min_delta_m,
        rules.rule, intervals,
    )  # fmt: skip
    comparison = scored.comparisons[name]
    endings = {"the new head": ending} | {f"baseline {name} seed {b.seed}": Ending(**b.ending) for b in baselines}
    unconverged = [f"{side} {end.describe()}" for side, end in endings.items() if not end.converged]
    change = f"{name} {comparison.relative_change:+.2%} against its baseline (tolerance -{comparison.tolerance:.0%})"
    if unconverged and rules.unconverged == "inconclusive":
        verdict, reason = "inconclusive", f"{change}; not judged: {'; '.join(unconverged)} (raise training.max_epochs)"
    else:
        # an interval straddling the bar decides nothing, as in `select`
        verdict = "accepted" if scored.accepted else "rejected" if scored.decided else "inconclusive"
        reason = change
    interval = list(intervals[name]) if name in intervals else None
    return Judged(
        verdict, reason, task.metric_name, scores["val"], baseline["val"], scores["test"], baseline["test"], interval,
        comparison.relative_change, {side: end.describe() for side, end in endings.items()},
    )  # fmt: skip


class OldTasksChanged(PipelineError):
    """The new version's answers for the champion's own tasks differ from the champion's."""


def _old_tasks_unchanged(
    champion: MultiTaskPyfunc, candidate: MultiTaskPyfunc, val: pd.DataFrame, champion_version: str
) -> dict[str, float]:
    """Every old task's validation predictions, champion against the new version built from
    the files about to be registered: bit-identical, or :class:`OldTasksChanged`. Returns
    their validation metrics."""
    old = list(champion.tasks)
    theirs, ours = champion.predictions(val, old), candidate.predictions(val, old)
    changed = [task for task in old if not torch.equal(theirs[task], ours[task])]
    if changed:
        raise OldTasksChanged(
            f"adding the task changed the champion v{champion_version}'s predictions for {', '.join(changed)} "
            "on validation; nothing was registered"
        )
    metrics = {}
    for task in old:
        own = champion.tasks[task]
        metrics[task] = own.score(theirs[task], own.targets(val, champion.encoder))[own.metric_name]
    return metrics


def _register(
    params: Params,
    version_params: Params,
    root: Path,
    name: str,
    reads: str,
    champion_version: str,
    champion: MultiTaskPyfunc,
    candidate: MultiTaskPyfunc,
    artifacts: dict[str, str],
    test: pd.DataFrame,
    judged: Judged,
    old_val: dict[str, float],
    run_id: str | None,
    key: str,
) -> AddedTask:
    """Logs and registers the new version once (by ``key``), tags it, and moves aliases under the champion guard."""
    model_name = params.registry.model_name
    candidate_test = candidate.score(test)
    objectives = task_objectives(version_params)
    rules = params.selection
    against_champion = (
        champion_intervals(params, test, candidate, champion)
        if rules.rule == "lower_bound" and judged.verdict == "accepted"
        else None
    )
    champion_test = registry.current_champion(model_name)
    decision = promotion_decision(
        judged.verdict, candidate_test, champion_test[1] if champion_test else None, objectives, champion_version,
        rules.rule, against_champion,
    )  # fmt: skip
    with registry.registration_lock(registry.lock_path(root)):
        existing = registry.version_with_key(model_name, key)
        if existing is not None and registry.INCOMPLETE not in existing.tags:
            version = str(existing.version)
            promotion = existing.tags.get("promotion", "")
            return _result(name, reads, champion_version, version, judged, promotion, False, old_val)
        if existing is not None:
            version = str(existing.version)
        else:
            version = log_and_register(version_params, artifacts, test, run_id, key)
        tracker = tracking.client()
        tags = {
            "verdict": judged.verdict,
            registry.REASON_TAG: judged.reason,
            "delta_m": f"{judged.relative_change:.6f}",  # the new task's: the old ones' changes are zero
            "data_version": data_version(root, params.data.dir),
            "git_commit": git_commit(root),
            "params_hash": version_params.fingerprint(),
            "added_task": name,
            "base_version": champion_version,
            "reads": reads,
        } | {f"{registry.TEST_METRIC_TAG}{t}": f"{v:.6f}" for t, v in candidate_test.items()}
        if judged.interval:
            tags[f"interval.{name}"] = ",".join(f"{v:.6f}" for v in judged.interval)
        for tag, value in tags.items():
            tracker.set_model_version_tag(model_name, version, tag, value)
        tracker.update_model_version(
            model_name, version, description=_card(name, reads, champion_version, judged, decision.reason, old_val)
        )
        tracker.set_registered_model_tag(model_name, "tasks", ",".join(version_params.tasks))
        aliases = registry.apply_aliases(model_name, version, decision)
    return _result(name, reads, champion_version, version, judged, decision.reason, "champion" in aliases, old_val)


def _result(
    name: str, reads: str, base: str, version: str, judged: Judged, promotion: str, moved: bool, old: dict[str, float]
) -> AddedTask:
    return AddedTask(
        **asdict(judged), task=name, reads=reads, base_version=base, version=version, promotion=promotion,
        champion_moved=moved, old_tasks_val=old,
    )  # fmt: skip


def _card(name: str, reads: str, base: str, judged: Judged, promotion: str, old: dict[str, float]) -> str:
    """The version's description in the MLflow UI."""
    lines = [
        f"# {name} added to v{base}",
        "",
        f"A head for **{name}** on v{base}'s frozen features (those of task {reads}); v{base}'s tasks are "
        "unchanged, their validation predictions checked bit-identical before registering.",
        "",
        f"**Verdict: {judged.verdict}**: {judged.reason}. Champion: {promotion}.",
        "",
        "Trainings: " + " · ".join(f"{side} {how}" for side, how in judged.endings.items()) + ".",
        "",
        "| task | metric | baseline (val) | this version (val) | Δ (val) | baseline (test) | this version (test) |",
        "|---|---|---|---|---|---|---|",
        f"| {name} (new) | {judged.metric} | {judged.baseline_val:.4f} | {judged.head_val:.4f} | "
        f"{judged.relative_change:+.2%}{bracket(judged.interval)} | {judged.baseline_test:.4f} | "
        f"{judged.head_test:.4f} |",
    ] + [f"| {task} (v{base}'s) | | | {value:.4f} | bit-identical | | |" for task, value in old.items()]
    return "\n".join(lines) + "\n"
