"""Stage ``baselines``: one single-task model per task, with the same backbone, optimizer and
epochs as the MTL model; each keeps its best epoch by its validation metric.

Sharing, loss weighting and gradient handling have nothing to balance with one task, so a
baseline is the backbone with one head, trained on its plain loss. A killed baseline
continues from its last complete epoch when started again.

    $ mtl baselines          # every task, one after the other, in one process
    $ mtl train-baseline --task left
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from components.config import Params
from components.io import tracking
from components.jobs.common import (
    BASELINE_RESULT,
    BASELINES_DIR,
    BASELINES_REPORT,
    CURVES,
    read_json,
    timed,
    write_json,
)
from components.jobs.trainings import (
    epoch_logger,
    launch,
    launches_processes,
    load_tensor_splits,
    resume_key,
    seeded_model,
    training_params,
    training_run,
    write_curves,
)
from components.tasks import build_tasks
from components.training import distributed
from components.training.checkpoints import load_checkpoint
from components.training.evaluation import evaluate
from components.training.loader import TensorSplit
from components.training.loop import resolve_device, train


@dataclass(frozen=True)
class BaselineResult:
    """One baseline: its best epoch's validation metric, its test metric, and its curve."""

    task: str
    metric: str
    best_epoch: int
    val: float
    test: float
    run_id: str | None
    curve: list[float] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> BaselineResult:
        """What :func:`train_one` wrote under the baseline's folder."""
        return cls(**read_json(path))


def baseline_params(params: Params) -> Params:
    """The MTL settings a single task keeps: hard sharing, plain loss, plain gradient."""
    return params.model_copy(
        update={
            "model": params.model.model_copy(update={"sharing": "hard"}),
            "training": params.training.model_copy(update={"loss_weighting": "equal", "gradient": "sum"}),
        }
    )


def train_one(
    params: Params, root: Path, task_name: str, parent_run_id: str, splits: dict[str, TensorSplit] | None = None
) -> BaselineResult | None:
    """The baseline of ``task_name``; ``splits`` lets a caller training several read the data
    once. None on torchrun processes other than rank 0."""
    directory = root / BASELINES_DIR / task_name
    if launches_processes(params):
        launch(params, root, ["train-baseline", "--task", task_name, "--parent-run-id", parent_run_id])
        return BaselineResult.read(directory / BASELINE_RESULT)
    tasks = build_tasks({task_name: params.tasks[task_name]})
    baseline = baseline_params(params)
    splits = splits or load_tensor_splits(params, root)
    model = seeded_model(baseline, tasks, root)
    metric = tasks[task_name].metric_name
    run_params = training_params(baseline) | {"task": task_name}
    key = resume_key(baseline, root, f"baseline-{task_name}")
    with training_run(parent_run_id, f"baseline-{task_name}", run_params, directory, key, (params, root)) as resume:
        run_id = resume.run_id
        history = train(
            model,
            tasks,
            splits["train"],
            splits["val"],
            baseline.training,
            params.seed,
            directory,
            keep_best_for=task_name,
            label=f"baseline {task_name}",
            on_epoch=epoch_logger(run_id),
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
    )
    # on disk too: a training on another worker or under torchrun hands its result back this way
    write_json(directory / BASELINE_RESULT, asdict(result))
    return result


TrainOne = Callable[[str], BaselineResult | None]


@timed("baselines")
def run(params: Params, root: Path, parent_run_id: str, train_task: TrainOne | None = None) -> dict[str, Any]:
    """Every task's baseline, one after the other (each seeded alone, so the results do not
    depend on the order or on what ran before), then ``reports/baselines.json`` and the
    learning curves. ``train_task`` trains one elsewhere (a Prefect work pool)."""
    if train_task is None:
        # read once for every baseline, unless each is handed to its own torchrun processes
        splits = None if launches_processes(params) else load_tensor_splits(params, root)

        def train_task(name: str) -> BaselineResult | None:
            return train_one(params, root, name, parent_run_id, splits)

    results = [train_task(name) for name in params.tasks]
    if not distributed.current().is_main:  # under torchrun, rank 0 reports
        return {}
    by_task = {r.task: r for r in results if r is not None}
    report = {name: {k: v for k, v in asdict(r).items() if k != "curve"} for name, r in by_task.items()}
    write_json(root / BASELINES_REPORT, report)
    write_curves(root / CURVES / "baselines.csv", {name: r.curve for name, r in by_task.items()})
    return report
