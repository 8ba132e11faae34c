"""One single-task baseline's training: what the ``baselines`` stage runs per task and seed,
and what ``mtl add-task`` runs for the task it adds. A baseline is the backbone with one
head, trained on its plain loss with the MTL model's optimizer and epochs; it keeps its
best epoch by its validation metric, and a killed one continues from its last complete
epoch when started again.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from components.config import Params
from components.io import tracking
from components.jobs import tuning
from components.jobs.inputs import load_tensor_splits
from components.jobs.layout import TRAINING_RESULT, baseline_dir, baseline_params, read_json, write_json
from components.jobs.trainings import (
    EpochHook,
    epoch_logger,
    launch,
    launches_processes,
    resume_key,
    seeded_model,
    training_params,
    training_run,
    with_hook,
)
from components.tasks import build_tasks
from components.training.checkpoints import load_checkpoint
from components.training.device import resolve_device
from components.training.evaluation import evaluate
from components.training.loader import TensorSplit
from components.training.loop import train, training_ending


@dataclass(frozen=True)
class BaselineResult:
    """One baseline training: its best epoch's validation metric, its test metric, and its curve."""

    task: str
    metric: str
    best_epoch: int
    val: float
    test: float
    run_id: str | None
    curve: list[float] = field(default_factory=list)
    seed: int = 0
    #: how the training ended (``components.training.stopping.Ending`` as a dict)
    ending: dict[str, Any] = field(default_factory=dict)
    #: the study that chose it (``components.jobs.tuning``); empty when untuned
    tuning: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> BaselineResult:
        """What :func:`train_one` wrote under the baseline's folder."""
        return cls(**read_json(path))


def train_one(
    params: Params,
    root: Path,
    task_name: str,
    parent_run_id: str,
    splits: dict[str, TensorSplit] | None = None,
    seed: int | None = None,
) -> BaselineResult | None:
    """The baseline of ``task_name`` trained with ``seed`` (default ``params.seed``), tuned
    first when ``tuning.trials`` (``components.jobs.tuning``); ``splits`` lets a caller
    training several read the data once. None on torchrun processes other than rank 0."""
    seed = params.seed if seed is None else seed
    directory = baseline_dir(root, params, task_name, seed)
    if launches_processes(params):
        command = ["train-baseline", "--task", task_name, "--seed", str(seed), "--parent-run-id", parent_run_id]
        launch(params, root, command)
        return BaselineResult.read(directory / TRAINING_RESULT)
    splits = splits or load_tensor_splits(params, root)
    # the tuning objective, higher is better: the baseline's own metric, signed
    sign = 1.0 if build_tasks({task_name: params.tasks[task_name]})[task_name].higher_is_better else -1.0

    def fit(
        variant: Params, folder: Path, suffix: str, after_epoch: EpochHook | None
    ) -> tuple[BaselineResult | None, float]:
        result = _fit(variant, root, task_name, parent_run_id, splits, seed, folder, suffix, after_epoch)
        return result, sign * result.val if result is not None else float("nan")

    if not params.tuning.trials:
        return fit(params, directory, "", None)[0]
    side = tuning.Side(
        f"baseline-{task_name}",
        baseline_dir(root, params, task_name, params.seed),
        lambda record: sign * record.val_metrics[task_name],
    )
    key = resume_key(baseline_params(params), root, side.name)
    result, study = tuning.tuned_training(params, root, side, key, fit, seed, directory)
    if result is None:
        return None
    result = replace(result, tuning=study)
    write_json(directory / TRAINING_RESULT, asdict(result))
    return result


def _fit(
    params: Params,
    root: Path,
    task_name: str,
    parent_run_id: str,
    splits: dict[str, TensorSplit],
    seed: int,
    directory: Path,
    name_suffix: str,
    after_epoch: EpochHook | None,
) -> BaselineResult | None:
    """One training of the baseline with ``params`` in ``directory``, its run named with
    ``name_suffix``; ``after_epoch`` sees each epoch once it is logged."""
    tasks = build_tasks({task_name: params.tasks[task_name]})
    baseline = baseline_params(params).model_copy(update={"seed": seed})
    model = seeded_model(baseline, tasks, root)
    metric = tasks[task_name].metric_name
    run_params = training_params(baseline) | {"task": task_name}
    name = f"baseline-{task_name}" + (f"-seed{seed}" if params.training.seeds > 1 else "") + name_suffix
    key = resume_key(baseline, root, f"baseline-{task_name}")
    with training_run(parent_run_id, name, run_params, directory, key, (params, root)) as resume:
        run_id = resume.run_id
        history = train(
            model,
            tasks,
            splits["train"],
            splits["val"],
            baseline.training,
            seed,
            directory,
            keep_best_for=task_name,
            label=f"baseline {task_name}" + (f" seed {seed}" if params.training.seeds > 1 else "") + name_suffix,
            on_epoch=with_hook(epoch_logger(run_id), after_epoch, run_id),
            resume=resume,
        )
        if run_id is None:  # not rank 0: that process reports
            return None
        best = load_checkpoint(directory / "best.pt")
        model.load_state_dict(best["model"])
        device = resolve_device(params.training.device)
        test = evaluate(model.to(device), tasks, splits["test"], params.training.batch_size, device)[task_name]
        tracking.log_metrics(run_id, {f"test/{task_name}.{metric}": test})
    result = BaselineResult(
        task=task_name,
        metric=metric,
        best_epoch=best["epoch"],
        val=best["val_metrics"][task_name],
        test=test,
        run_id=run_id,
        curve=[r.val_metrics[task_name] for r in history],
        seed=seed,
        ending=asdict(training_ending(history, baseline.training)),
    )
    # on disk too: a training on another worker or under torchrun hands its result back this way
    write_json(directory / TRAINING_RESULT, asdict(result))
    return result


def summarize(results: list[BaselineResult]) -> dict[str, Any]:
    """``reports/baselines.json``: per task the first seed's training (epoch, run), ``val``
    and ``test`` as the mean over seeds (what select and promote compare against), and
    every seed's own numbers under ``seeds``."""
    report: dict[str, Any] = {}
    for result in results:
        entry = report.setdefault(
            result.task, {k: v for k, v in asdict(result).items() if k not in ("curve", "seed", "ending")}
        )
        entry.setdefault("seeds", []).append(
            {"seed": result.seed, "val": result.val, "test": result.test, "ending": result.ending}
        )
    for entry in report.values():
        for split in ("val", "test"):
            entry[split] = statistics.fmean(s[split] for s in entry["seeds"])
    return report
