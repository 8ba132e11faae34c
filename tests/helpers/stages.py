"""The pipeline run in this process: its stages, one tiny real training, a baselines report,
the selection report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from components.config import Params
from components.io import tracking
from components.io.registry import Registration
from components.jobs import baselines, layout, prepare, register, select, train_mtl, validate
from components.selection import SelectionReport


def write_baselines_report(root: Path, params: Params, value: float = 0.5) -> None:
    """A ``reports/baselines.json`` with every task's baseline at ``value``: the reference the
    MTL model's early stopping measures against, for tests that train the MTL model alone."""
    entry = {"val": value, "test": value, "seeds": [{"seed": params.seed, "val": value, "test": value}]}
    layout.write_json(root / layout.BASELINES_REPORT, {name: entry for name in params.tasks})


def run_until_select(params: Params, root: Path) -> str:
    """The pipeline's stages up to ``select`` in this process; returns the pipeline run."""
    prepare.run(params, root)
    validate.run(params, root)
    parent = tracking.start_pipeline_run(params.registry.experiment)
    baselines.run(params, root, parent)
    train_mtl.run(params, root, parent)
    select.run(params, root)
    return parent


def read_selection(root: Path) -> SelectionReport:
    """The report the last ``select`` wrote."""
    return SelectionReport.from_dict(layout.read_json(root / layout.SELECTION_REPORT))


def run_stages(params: Params, root: Path) -> Registration:
    """The pipeline's stages in this process, as the flow runs them."""
    parent = run_until_select(params, root)
    registration = register.run(params, root, parent)
    tracking.end_run(parent)
    assert isinstance(registration, Registration), registration
    return registration


def targets(frame, config, encoder=None):
    """The targets a task of ``config`` makes of ``frame``."""
    from components.tasks import build_task

    return build_task("task", config).targets(frame, encoder)


def tensor_split(params: Params, frame: pd.DataFrame):
    """A MultiMNIST ``frame`` as the tensors a training reads, with the targets of ``params``' tasks."""
    from components.data.encoders import PixelEncoder
    from components.training.loader import TensorSplit

    return TensorSplit(PixelEncoder(36).encode(frame), {n: targets(frame, t) for n, t in params.tasks.items()})


def train_tiny(params: Params, frames: dict, directory: Path, **kwargs):
    """A real training of ``params`` on MultiMNIST ``frames``; returns (model, history)."""
    from components.models import build_model
    from components.tasks import build_tasks
    from components.training.loop import train
    from components.training.seeding import seed_everything

    def tensors(frame):
        return tensor_split(params, frame)

    tasks = build_tasks(params.tasks)
    seed_everything(params.seed)  # initial weights from the seed alone, not from earlier tests in this worker
    model = build_model(params, tasks)
    history = train(
        model,
        tasks,
        tensors(frames["train"]),
        tensors(frames["val"]),
        params.training,
        params.seed,
        directory,
        log=lambda _: None,
        **kwargs,
    )
    return model, history
