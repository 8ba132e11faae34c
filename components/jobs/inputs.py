"""What the stages read besides checkpoints: the prepared splits as tensors, one split's
targets, and the per-task learning curves (``reports/curves/*.csv``). Light on purpose: a
stage that only evaluates (``select``, ``promote``) reads these without depending on the
training loop.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import torch

from components.config import Params
from components.data.encoders import DATASET_COLUMN, encoder_dir, load_encoder
from components.data.images import images_path
from components.data.splits import SPLITS, read_split
from components.errors import PipelineError
from components.io.dvc import data_version
from components.jobs.layout import VALIDATION_REPORT, read_json
from components.tasks import build_tasks
from components.training.loader import TensorSplit


class UnvalidatedData(PipelineError):
    """The prepared data a training would read is not what ``validate`` passed."""


def check_validated(params: Params, root: Path) -> None:
    """Training reads only data ``validate`` passed: ``reports/validation.json`` must record
    a pass on the data directory as it is now (its version, the md5 DVC gives it). A split
    edited after validation (a pixel of 1e300, a label of 42) would otherwise train, diverge
    and be blamed on the learning rate."""
    path, data = root / VALIDATION_REPORT, root / params.data.dir
    rerun = "run `mtl validate` (or `dvc repro`), which checks the splits before any training"
    try:
        report = read_json(path)
    except (OSError, ValueError):
        raise UnvalidatedData(f"{path} is missing or unreadable: {rerun}") from None
    now = data_version(root, params.data.dir)
    if not report.get("passed"):
        raise UnvalidatedData(f"{path}: the data in {data} failed validation: fix it, then {rerun}")
    if report.get("data_version") != now:
        validated = str(report.get("data_version"))
        raise UnvalidatedData(
            f"{data} changed after validation passed it (validated {validated[:20]}, now {now[:20]}): {rerun}"
        )


def load_tensor_splits(params: Params, root: Path, splits: tuple[str, ...] = SPLITS) -> dict[str, TensorSplit]:
    """The splits as model-ready tensors: inputs through the fitted encoder, targets per task."""
    encoder = load_encoder(params, encoder_dir(root / params.data.dir))
    tasks = build_tasks(params.tasks)
    names = tuple(params.data.datasets)
    tensors = {}
    for split in splits:
        frame = read_split(root / params.data.dir, split)
        targets = {name: task.targets(frame, encoder) for name, task in tasks.items()}
        groups = torch.tensor(frame[DATASET_COLUMN].map(names.index).to_numpy()) if names else None
        augment = params.data.augment if split == "train" else ()
        inputs = stored_images(root / params.data.dir, split) if params.data.input.kind == "image" else None
        tensors[split] = TensorSplit(
            encoder.encode(frame) if inputs is None else inputs, targets, groups, names, augment
        )
    return tensors


def stored_images(data_dir: Path, split: str) -> torch.Tensor:
    """The images ``prepare`` decoded for ``split``, memory-mapped as uint8 (rows, channels,
    side, side): pages are read as batches touch them, never the whole split at once. The
    mapping is copy-on-write, so nothing can change the file."""
    path = images_path(data_dir, split)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; prepare the data first (`dvc repro prepare` or `mtl prepare`)")
    return torch.from_numpy(np.load(path, mmap_mode="c"))


def load_targets(params: Params, root: Path, split: str) -> dict[str, torch.Tensor]:
    """One split's targets per task, without encoding its inputs (what statistics of the
    labels need, e.g. the trivial levels)."""
    encoder = load_encoder(params, encoder_dir(root / params.data.dir))
    frame = read_split(root / params.data.dir, split)
    return {name: task.targets(frame, encoder) for name, task in build_tasks(params.tasks).items()}


def write_curves(path: Path, curves: dict[str, list[float]]) -> None:
    """Validation metric per epoch and task, as the CSV ``dvc plots`` reads; a curve shorter
    than the others (a baseline trained for fewer epochs) leaves its later cells empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", *curves])
        for epoch, values in enumerate(itertools.zip_longest(*curves.values()), start=1):
            writer.writerow([epoch, *("" if v is None else f"{v:.6f}" for v in values)])


def read_curves(path: Path) -> dict[str, list[float]]:
    """What :func:`write_curves` wrote: each column's values by epoch."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = [c for c in (rows[0] if rows else {}) if c != "epoch"]
    return {column: [float(row[column]) for row in rows if row[column]] for column in columns}
