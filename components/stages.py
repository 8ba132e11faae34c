"""The pipeline's stages, each written once: ``dvc.yaml`` calls them through the CLI and
the Prefect flow calls them as tasks.

Every stage reads its inputs from files under ``root`` and writes its outputs there, so
DVC can cache and version them; each also records its wall time under
``reports/timings/``.

Example::

    >>> params = load_params("params.yaml")
    >>> prepare(params, Path("."))
    >>> validate(params, Path("."))          # raises DataValidationError on bad data
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pandas as pd
import torch
import yaml

from components import distributed, registry, tracking
from components.config import Params
from components.data import SPLITS, build_splits, read_split, split_path, targets_tensor, write_splits
from components.inputs import DATASET_COLUMN, encoder_dir, fit_encoder, load_encoder, request_frame
from components.loaders import FileFormatError
from components.models import MultiTaskModel, build_model
from components.report import model_card, render_summary
from components.selection import Objective, score_checkpoint, select_checkpoint
# registered versions unpickle this class by its module path, so its name stays
from components.serving import MultiTaskModel as MultiTaskPyfunc, write_model_files
from components.tasks import Task, build_tasks
from components.training import (
    MANIFEST,
    EpochRecord,
    TensorSplit,
    evaluate,
    load_checkpoint,
    resolve_device,
    seed_everything,
    train,
)
from components.validation import DataValidationError, validate_splits

REPORTS = Path("reports")
TIMINGS = REPORTS / "timings"
BASELINES_DIR = Path("models/baselines")
MTL_DIR = Path("models/mtl")
BASELINES_REPORT = REPORTS / "baselines.json"
MTL_REPORT = REPORTS / "train_mtl.json"
SELECTION_REPORT = REPORTS / "selection.json"
REGISTRATION_REPORT = REPORTS / "registration.json"
VALIDATION_REPORT = REPORTS / "validation.json"
CURVES = REPORTS / "curves"
BASELINE_RESULT = "result.json"
STAGES = ("prepare", "validate", "baselines", "train_mtl", "select", "register")


def _write_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run the stage that writes it first")
    return json.loads(path.read_text())


def record_timing(stage: str, seconds: float, root: Path) -> None:
    if distributed.current().is_main:
        _write_json(root / TIMINGS / f"{stage}.json", {"stage": stage, "seconds": round(seconds, 2)})


def timed(stage: str) -> Callable:
    def wrap(function: Callable) -> Callable:
        @functools.wraps(function)
        def run(params: Params, root: Path, *args, **kwargs):
            started = time.perf_counter()
            result = function(params, root, *args, **kwargs)
            record_timing(stage, time.perf_counter() - started, root)
            return result

        return run

    return wrap


def objectives(params: Params) -> dict[str, Objective]:
    tasks = build_tasks(params.tasks)
    return {
        name: Objective(
            metric=task.metric_name,
            higher_is_better=task.higher_is_better,
            max_relative_regression=params.tasks[name].max_relative_regression,
            weight=params.tasks[name].selection_weight,
        )
        for name, task in tasks.items()
    }


def load_tensor_splits(params: Params, root: Path, splits: tuple[str, ...] = SPLITS) -> dict[str, TensorSplit]:
    encoder = load_encoder(params, encoder_dir(root / params.data.dir))
    names = tuple(params.data.datasets)
    tensors = {}
    for split in splits:
        frame = read_split(root / params.data.dir, split)
        targets = {name: targets_tensor(frame, task, encoder) for name, task in params.tasks.items()}
        groups = torch.tensor(frame[DATASET_COLUMN].map(names.index).to_numpy()) if names else None
        tensors[split] = TensorSplit(encoder.encode(frame), targets, groups, names)
    return tensors


# --- prepare / validate -------------------------------------------------------------------


@timed("prepare")
def prepare(params: Params, root: Path) -> dict[str, int]:
    """Builds the splits of ``data.source``, writes one Parquet file per split, and fits the
    input encoder (tokenizer, feature statistics) on the training split."""
    try:
        frames = build_splits(params, root)
    except FileFormatError as error:
        raise DataValidationError.for_file(error.file, "readable as its format", error.detail) from None
    write_splits(frames, root / params.data.dir)
    fit_encoder(params, frames["train"], encoder_dir(root / params.data.dir))
    rows = {split: len(frame) for split, frame in frames.items()}
    print(f"prepare: wrote {rows} to {root / params.data.dir}")
    return rows


def _read_for_validation(params: Params, root: Path) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    frames, files = {}, {}
    for split in SPLITS:
        path = split_path(root / params.data.dir, split)
        files[split] = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        try:
            frames[split] = pd.read_parquet(path)
        except FileNotFoundError:
            raise DataValidationError.for_file(files[split], "file exists", "not found") from None
        except Exception as error:  # a corrupt file is bad input, not a crash
            raise DataValidationError.for_file(files[split], "readable Parquet", str(error)[:200]) from None
    return frames, files


@timed("validate")
def validate(params: Params, root: Path) -> dict:
    """pandera + Great Expectations on every split; raises DataValidationError on failure."""
    frames, files = _read_for_validation(params, root)
    report = validate_splits(frames, params, files, root / params.validation.docs_dir)
    _write_json(root / VALIDATION_REPORT, report.to_dict())
    if not report.passed:
        raise DataValidationError(report)
    print(f"validate: {sum(report.rows.values())} rows passed pandera and GX; Data Docs at {report.data_docs}")
    return report.to_dict()


# --- training -----------------------------------------------------------------------------


def _training_params(params: Params) -> dict[str, object]:
    return {
        **tracking.flatten("training", params.training.model_dump(mode="json")),
        **tracking.flatten("model", params.model.model_dump(mode="json")),
        "seed": params.seed,
    }


def _epoch_logger(run_id: str, metric_names: dict[str, str]) -> Callable[[EpochRecord], None]:
    def log(record: EpochRecord) -> None:
        metrics = {f"train_loss.{task}": value for task, value in record.train_loss.items()}
        metrics |= {f"val.{task}.{metric_names[task]}": value for task, value in record.val_metrics.items()}
        metrics |= record.extra  # step_seconds, peak_memory_mb, weight.<task>, examples.<task>
        metrics["epoch_seconds"] = record.seconds
        tracking.log_metrics(run_id, metrics, step=record.epoch)

    return log


@contextlib.contextmanager
def _training_run(parent_run_id: str, name: str, run_params: dict[str, object]) -> Iterator[str | None]:
    """The nested MLflow run of one training, ended FINISHED or FAILED; ``None`` on the
    torchrun processes other than rank 0, which log nothing."""
    if not distributed.current().is_main:
        yield None
        return
    run_id = tracking.start_child_run(parent_run_id, name, run_params)
    try:
        yield run_id
    except BaseException:
        tracking.end_run(run_id, failed=True)
        raise
    tracking.end_run(run_id)


def _launches_processes(params: Params) -> bool:
    """``training.devices > 1`` and not yet inside the torchrun processes."""
    return params.training.devices > 1 and not distributed.current().is_distributed


def _launch(params: Params, root: Path, cli_args: list[str]) -> None:
    """Runs a training stage in ``training.devices`` torchrun processes, on these parameters."""
    with tempfile.TemporaryDirectory() as scratch:
        params_file = Path(scratch) / "params.yaml"
        params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")))
        distributed.launch(
            [*cli_args, "--params", str(params_file), "--root", str(root.resolve())], params.training.devices
        )


def seeded_model(params: Params, tasks: dict[str, Task]) -> MultiTaskModel:
    """Initial weights depend on the seed alone, not on what ran earlier in the process."""
    seed_everything(params.seed)
    return build_model(params, tasks)


def train_baseline(
    params: Params, root: Path, task_name: str, parent_run_id: str, splits: dict[str, TensorSplit] | None = None
) -> dict:
    """One single-task model: same backbone, optimizer and epochs as the MTL model.

    Sharing, loss weighting and gradient handling have nothing to balance with one task,
    so the baseline is the backbone with one head, trained on its plain loss. ``splits``
    lets a caller training several baselines read the data once.
    """
    tasks = build_tasks({task_name: params.tasks[task_name]})
    baseline = params.model_copy(
        update={
            "model": params.model.model_copy(update={"sharing": "hard"}),
            "training": params.training.model_copy(update={"loss_weighting": "equal", "gradient": "sum"}),
        }
    )
    directory = root / BASELINES_DIR / task_name
    if _launches_processes(params):
        _launch(params, root, ["train-baseline", "--task", task_name, "--parent-run-id", parent_run_id])
        return read_json(directory / BASELINE_RESULT)
    splits = splits or load_tensor_splits(params, root)
    model = seeded_model(baseline, tasks)
    run_params = _training_params(baseline) | {"task": task_name}
    with _training_run(parent_run_id, f"baseline-{task_name}", run_params) as run_id:
        history = train(
            model, tasks, splits["train"], splits["val"], baseline.training, params.seed, directory,
            keep_best_for=task_name, label=f"baseline {task_name}",
            on_epoch=_epoch_logger(run_id, {task_name: tasks[task_name].metric_name}),
        )
        if run_id is None:  # not rank 0: that process reports
            return {}
        best = load_checkpoint(directory / "best.pt")
        model.load_state_dict(best["model"])
        device = resolve_device(params.training.device)
        test = evaluate(model.to(device), tasks, splits["test"], params.training.batch_size, device)[task_name]
        tracking.log_metrics(run_id, {f"test.{task_name}.{tasks[task_name].metric_name}": test})
    result = {
        "task": task_name,
        "metric": tasks[task_name].metric_name,
        "best_epoch": best["epoch"],
        "val": best["val_metrics"][task_name],
        "test": test,
        "curve": [r.val_metrics[task_name] for r in history],
        "run_id": run_id,
    }
    # on disk too: a training on another worker or under torchrun hands its result back this way
    _write_json(directory / BASELINE_RESULT, result)
    return result


def _write_curves(path: Path, curves: dict[str, list[float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", *curves])
        for epoch, values in enumerate(zip(*curves.values()), start=1):
            writer.writerow([epoch, *(f"{v:.6f}" for v in values)])


def summarize_baselines(params: Params, root: Path, results: list[dict]) -> dict:
    """Writes the baselines' metrics (``reports/baselines.json``) and learning curves."""
    by_task = {r["task"]: r for r in results}
    _write_json(root / BASELINES_REPORT, {name: {k: v for k, v in r.items() if k != "curve"} for name, r in by_task.items()})
    _write_curves(root / CURVES / "baselines.csv", {name: r["curve"] for name, r in by_task.items()})
    return by_task


@timed("baselines")
def baselines(params: Params, root: Path, parent_run_id: str) -> dict:
    # read once for every baseline, unless each is handed to its own torchrun processes
    splits = None if _launches_processes(params) else load_tensor_splits(params, root)
    results = [train_baseline(params, root, name, parent_run_id, splits) for name in params.tasks]
    if not distributed.current().is_main:  # under torchrun, rank 0 reports
        return {}
    return summarize_baselines(params, root, results)


@timed("train_mtl")
def train_mtl(params: Params, root: Path, parent_run_id: str) -> dict:
    """The multi-task model with the configured sharing, loss weighting and gradient method;
    a checkpoint every epoch."""
    if _launches_processes(params):
        _launch(params, root, ["train-mtl", "--parent-run-id", parent_run_id])
        return read_json(root / MTL_REPORT)
    tasks = build_tasks(params.tasks)
    splits = load_tensor_splits(params, root, ("train", "val"))
    model = seeded_model(params, tasks)
    name = f"mtl-{params.model.sharing}-{params.training.loss_weighting}-{params.training.gradient}"
    with _training_run(parent_run_id, name, _training_params(params)) as run_id:
        history = train(
            model, tasks, splits["train"], splits["val"], params.training, params.seed, root / MTL_DIR,
            label="mtl", on_epoch=_epoch_logger(run_id, {n: t.metric_name for n, t in tasks.items()}),
        )
        if run_id is None:  # not rank 0: that process reports
            return {}
        tracking.client().log_artifact(run_id, str(root / MTL_DIR / MANIFEST))
    _write_curves(root / CURVES / "mtl.csv", {n: [r.val_metrics[n] for r in history] for n in tasks})
    summary = {
        "run_id": run_id,
        "epochs": len(history),
        "final_val": history[-1].val_metrics,
        "seconds_per_epoch": round(sum(r.seconds for r in history) / len(history), 2),
    }
    _write_json(root / MTL_REPORT, summary)
    return summary


# --- selection ----------------------------------------------------------------------------


@timed("select")
def select(params: Params, root: Path) -> dict:
    """Scores every MTL checkpoint on validation against the baselines; picks one under the policy."""
    baseline = read_json(root / BASELINES_REPORT)
    manifest = json.loads((root / MTL_DIR / MANIFEST).read_text())
    tasks = build_tasks(params.tasks)
    goals = objectives(params)
    splits = load_tensor_splits(params, root, ("val", "test"))
    device = resolve_device(params.training.device)
    model = build_model(params, tasks, encoder_dir(root / params.data.dir)).to(device)

    def metrics_of(entry: dict, split: str) -> dict[str, float]:
        checkpoint = load_checkpoint(root / MTL_DIR / entry["checkpoint"], entry["sha256"])
        model.load_state_dict(checkpoint["model"])
        return evaluate(model, tasks, splits[split], params.training.batch_size, device)

    baseline_val = {name: baseline[name]["val"] for name in tasks}
    scores = [
        score_checkpoint(e["checkpoint"], e["epoch"], metrics_of(e, "val"), baseline_val, goals, params.selection.min_delta_m)
        for e in manifest
    ]
    chosen, verdict = select_checkpoint(scores)
    chosen_entry = next(e for e in manifest if e["checkpoint"] == chosen.checkpoint)
    test = metrics_of(chosen_entry, "test")
    result = {
        "verdict": verdict,
        "checkpoint": chosen.checkpoint,
        "sha256": chosen_entry["sha256"],
        "epoch": chosen.epoch,
        "delta_m": chosen.delta_m,
        "score": chosen.score,
        "min_delta_m": params.selection.min_delta_m,
        "tasks": {
            name: {
                "metric": c.metric,
                "higher_is_better": goals[name].higher_is_better,
                "baseline": c.baseline,
                "mtl": c.mtl,
                "relative_change": c.relative_change,
                "tolerance": c.tolerance,
                "passed": c.passed,
                "test": test[name],
                "baseline_test": baseline[name]["test"],
            }
            for name, c in chosen.comparisons.items()
        },
        "candidates": [
            {"checkpoint": s.checkpoint, "epoch": s.epoch, "delta_m": s.delta_m, "score": s.score, "accepted": s.accepted}
            for s in scores
        ],
    }
    _write_json(root / SELECTION_REPORT, result)
    print(f"select: {verdict}, {chosen.checkpoint} (Δm {chosen.delta_m:+.2%})")
    return result


# --- registration -------------------------------------------------------------------------


@timed("register")
def register(params: Params, root: Path, parent_run_id: str) -> dict:
    """Logs the chosen checkpoint as a pyfunc model, registers it and moves the aliases."""
    tracker = tracking.client()  # also points the fluent API at the tracking URI
    selection = read_json(root / SELECTION_REPORT)
    checkpoint = load_checkpoint(root / MTL_DIR / selection["checkpoint"], selection["sha256"])
    name = params.registry.model_name
    test = {task: entry["test"] for task, entry in selection["tasks"].items()}
    champion = registry.current_champion(name)
    decision = registry.promotion_decision(
        selection["verdict"], test, champion[1] if champion else None, objectives(params),
        champion[0] if champion else None,
    )
    test_frame = read_split(root / params.data.dir, "test")
    # a few rows of every dataset, so the signature holds every input column
    rows = test_frame.groupby(DATASET_COLUMN).head(2) if params.data.datasets else test_frame.head(3)
    example = request_frame(params, rows)

    # The wrapped object is stateless until load_context, so cloudpickle's warning does not apply;
    # class predictions are integers by design, so the missing-values hint does not either.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
    with tempfile.TemporaryDirectory() as scratch, mlflow.start_run(run_id=parent_run_id):
        mlflow.log_params(tracking.flatten("", params.model_dump(mode="json")) | {"params_hash": params.fingerprint()})
        mlflow.log_metrics(
            {"delta_m": selection["delta_m"]}
            | {f"test.{t}.{e['metric']}": e["test"] for t, e in selection["tasks"].items()}
            | {f"relative_change.{t}": e["relative_change"] for t, e in selection["tasks"].items()}
        )
        mlflow.log_dict(selection, "selection.json")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=MultiTaskPyfunc(),
            artifacts=write_model_files(checkpoint, params, Path(scratch), encoder_dir(root / params.data.dir)),
            code_paths=[str(Path(__file__).parent)],
            # the example carries the optional `tasks` parameter into the signature
            input_example=(example, {"tasks": list(params.tasks)}),
            registered_model_name=name,
            pip_requirements=_pip_requirements(),
        )
    version = str(info.registered_model_version)
    tags = {
        "verdict": selection["verdict"],
        "delta_m": f"{selection['delta_m']:.6f}",
        "data_version": registry.data_version(root, params.data.dir),
        "git_commit": registry.git_commit(root),
        "params_hash": params.fingerprint(),
        "checkpoint": selection["checkpoint"],
    } | {f"{registry.TEST_METRIC_TAG}{t}": f"{v:.6f}" for t, v in test.items()}
    for key, value in tags.items():
        tracker.set_model_version_tag(name, version, key, value)
    methods = {
        "sharing": params.model.sharing,
        "loss weighting": params.training.loss_weighting,
        "gradient": params.training.gradient,
    }
    if params.data.datasets:
        methods["dataset sampling"] = params.training.sampling
    card = model_card(name, version, selection, tags, decision.reason, champion, methods)
    tracker.update_model_version(name, version, description=card)
    tracker.log_text(parent_run_id, card, "model_card.md")
    aliases = registry.apply_aliases(name, version, decision)
    result = {
        "model_name": name,
        "version": version,
        "aliases": aliases,
        "champion_moved": decision.promote,
        "reason": decision.reason,
        "run_id": parent_run_id,
        "model_uri": f"models:/{name}@{registry.CHALLENGER}",
        "tags": tags,
    }
    _write_json(root / REGISTRATION_REPORT, result)
    return result


def promote(params: Params, root: Path, version: str, force: bool = False, reason: str | None = None) -> dict:
    """Moves ``champion`` to ``version`` if it passes the acceptance policy on the frozen test
    split, against the baselines' and the current champion's metrics measured now.

    ``force`` moves it regardless and records ``reason``; the previous champion keeps
    ``previous-champion`` either way.
    """
    if force and not reason:
        raise registry.RegistryError("--force needs --reason, recorded on the version")
    name = params.registry.model_name
    tasks = build_tasks(params.tasks)
    goals = objectives(params)
    frame = read_split(root / params.data.dir, "test")
    champion_version = registry.alias_version(name, registry.CHAMPION)
    if champion_version == version:
        return {"version": version, "promoted": True, "reason": "already champion"}
    candidate = score_version(params, version, frame)
    champion = score_version(params, champion_version, frame) if champion_version is not None else None
    baseline = read_json(root / BASELINES_REPORT)
    # the same acceptance policy as `select`, on test metrics measured now
    policy = score_checkpoint(
        f"v{version}", 0, candidate, {t: baseline[t]["test"] for t in tasks}, goals, params.selection.min_delta_m
    )
    if not policy.accepted:
        detail = ", ".join(f"{c.task} {c.relative_change:+.2%}" for c in policy.failures()) or f"Δm {policy.delta_m:+.2%}"
        decision = registry.PromotionDecision(False, f"fails the policy against the baselines: {detail}")
    else:
        decision = registry.promotion_decision("accepted", candidate, champion, goals, champion_version)
    if force and not decision.promote:
        decision = registry.PromotionDecision(True, f"forced: {reason} (policy said: {decision.reason})")
    registry.record_promotion(name, version, decision, forced=force, reason=reason)
    return {
        "version": version,
        "promoted": decision.promote,
        "reason": decision.reason,
        "candidate_test": candidate,
        "champion_test": champion,
        "delta_m_vs_baselines": policy.delta_m,
    }


def score_version(params: Params, version: str, frame: pd.DataFrame) -> dict[str, float]:
    """Primary metric per task of a registered version's pyfunc on ``frame``, as served."""
    return registry.load_version(params.registry.model_name, version).unwrap_python_model().score(frame)


def _pip_requirements() -> list[str]:
    import numpy
    import pydantic
    import torchmetrics

    return [
        f"torch=={torch.__version__.split('+')[0]}",
        f"torchmetrics=={torchmetrics.__version__}",
        f"numpy=={numpy.__version__}",
        f"pandas=={pd.__version__}",
        f"pydantic=={pydantic.__version__}",
        f"mlflow=={mlflow.__version__}",
    ]


def summary(params: Params, root: Path) -> str:
    """The results table, the registration and the stage timings, rendered for a terminal."""
    timings = {
        stage: read_json(root / TIMINGS / f"{stage}.json")["seconds"]
        for stage in STAGES
        if (root / TIMINGS / f"{stage}.json").exists()
    }
    registration = read_json(root / REGISTRATION_REPORT) if (root / REGISTRATION_REPORT).exists() else None
    return render_summary(read_json(root / SELECTION_REPORT), registration, timings)
