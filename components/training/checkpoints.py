"""Checkpoints: one file per kept epoch with model, optimizer, epoch and RNG state, and a
manifest of the epochs with each file's sha256.

Example::

    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> model = torch.nn.Linear(2, 1)
    >>> with tempfile.TemporaryDirectory() as scratch:
    ...     path = Path(scratch) / "epoch_001.pt"
    ...     digest = save_checkpoint(path, model, torch.optim.SGD(model.parameters(), lr=0.1), 1, {"y": 0.5})
    ...     load_checkpoint(path, digest)["val_metrics"]
    {'y': 0.5}
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

MANIFEST = "checkpoints.json"


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states, to resume a training's randomness."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int, val_metrics: dict[str, float]
) -> str:
    """Writes one checkpoint; returns its sha256."""
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch,
            "rng": rng_state(),
            "val_metrics": val_metrics,
        },
        path,
    )
    return sha256_file(path)


def load_checkpoint(path: Path, expected_sha256: str | None = None) -> dict[str, Any]:
    """Loads a checkpoint, refusing one whose bytes no longer match the recorded sha256."""
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise RuntimeError(f"{path}: sha256 does not match the manifest; the checkpoint was modified")
    return torch.load(path, map_location="cpu", weights_only=False)


def write_manifest(directory: Path, records: Sequence[object]) -> None:
    """The epochs of a training (dataclass records) as ``checkpoints.json``."""
    entries = [asdict(record) for record in records if is_dataclass(record) and not isinstance(record, type)]
    (directory / MANIFEST).write_text(json.dumps(entries, indent=2))


def read_manifest(directory: Path) -> list[dict[str, Any]]:
    """The entries :func:`write_manifest` wrote."""
    return json.loads((directory / MANIFEST).read_text())
