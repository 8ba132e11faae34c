"""What every stage module shares: the project's file layout, checked parameters, JSON
reports, and stage timings."""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from components.atomic import write_atomically
from components.config import Params, ParamsError, load_params
from components.config.methods import Equal, Sum
from components.io.invocation import invocation
from components.tasks import check_tasks

REPORTS = Path("reports")
TIMINGS = REPORTS / "timings"
CURVES = REPORTS / "curves"
BASELINES_DIR = Path("models/baselines")
MTL_DIR = Path("models/mtl")
BASELINES_REPORT = REPORTS / "baselines.json"
MTL_REPORT = REPORTS / "train_mtl.json"
SELECTION_REPORT = REPORTS / "selection.json"
METRICS_REPORT = REPORTS / "metrics.json"
PLOTS = REPORTS / "plots"
REGISTRATION_REPORT = REPORTS / "registration.json"
VALIDATION_REPORT = REPORTS / "validation.json"
METHODS_REPORT = REPORTS / "methods.md"
#: what a training (a baseline, one seed of the MTL model) leaves beside its checkpoints for the caller
TRAINING_RESULT = "result.json"
STAGES = ("prepare", "validate", "baselines", "train_mtl", "select", "register")

StageFunction = TypeVar("StageFunction", bound=Callable[..., Any])


def training_seeds(params: Params) -> list[int]:
    """The seeds each model trains with (``training.seeds`` of them, from ``seed`` up)."""
    return [params.seed + k for k in range(params.training.seeds)]


def seed_dir(directory: Path, params: Params, seed: int) -> Path:
    """Where the training with ``seed`` keeps its checkpoints: ``directory`` for the first
    seed (so one seed keeps the layout it always had), ``directory/seed-<seed>`` for others."""
    return directory if seed == params.seed else directory / f"seed-{seed}"


def remove_other_seeds(directory: Path, params: Params) -> None:
    """Deletes the folders of seeds ``params`` no longer trains (``training.seeds`` lowered),
    so nothing reads a stale training beside the current ones."""
    kept = {seed_dir(directory, params, seed) for seed in training_seeds(params)}
    for folder in directory.glob("seed-*"):
        if folder not in kept:
            shutil.rmtree(folder)


def load_checked_params(path: str | Path, root: str | Path | None = None) -> Params:
    """``params.yaml`` with every rule checked, the task types' included, and every path it
    names inside the project at ``root`` (the file's folder by default) once symbolic links
    are resolved, unless ``allow_external_paths``."""
    params = load_params(path)
    check_tasks(params, str(path))
    project = Path(root) if root is not None else Path(path).parent
    leaving = {} if params.allow_external_paths else params.paths_leaving(project)
    if leaving:
        key, target = next(iter(leaving.items()))
        raise ParamsError(
            f"{path}: {key}: {params.paths()[key]!r} leads outside the project (to {target}, through a symbolic "
            "link); use a path inside it, or set allow_external_paths: true"
        )
    return params


def write_json(path: Path, payload: object) -> None:
    """Sorted, indented JSON, written whole or not at all; parent folders created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    """A report a stage wrote; a missing one names the stage to run."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run the stage that writes it first")
    return json.loads(path.read_text())


def record_timing(stage: str, seconds: float, root: Path) -> None:
    """Wall time of ``stage`` under ``reports/timings/`` (rank 0 only), with the pipeline
    invocation it ran in and when it finished, so a summary never adds up timings of
    different runs (``dvc repro`` leaves the files of the stages it skips)."""
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 reports
        record = {
            "stage": stage,
            "seconds": round(seconds, 2),
            "invocation": invocation(),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        write_json(root / TIMINGS / f"{stage}.json", record)


def timed(stage: str) -> Callable[[StageFunction], StageFunction]:
    """Records the wall time of a stage entry ``run(params, root, ...)``."""

    def wrap(function: StageFunction) -> StageFunction:
        @functools.wraps(function)
        def run(params: Params, root: Path, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = function(params, root, *args, **kwargs)
            record_timing(stage, time.perf_counter() - started, root)
            return result

        return cast(StageFunction, run)

    return wrap


def mtl_dir(root: Path, params: Params, seed: int) -> Path:
    """Where the MTL training with ``seed`` keeps its checkpoints and result."""
    return seed_dir(root / MTL_DIR, params, seed)


def baseline_dir(root: Path, params: Params, task_name: str, seed: int) -> Path:
    """Where the baseline of ``task_name`` trained with ``seed`` keeps its checkpoint."""
    return seed_dir(root / BASELINES_DIR / task_name, params, seed)


def baseline_params(params: Params) -> Params:
    """The MTL settings a single task keeps: hard sharing, plain loss, plain gradient."""
    return params.model_copy(
        update={
            "model": params.model.model_copy(update={"sharing": "hard"}),
            "training": params.training.model_copy(update={"loss_weighting": Equal(), "gradient": Sum()}),
        }
    )
