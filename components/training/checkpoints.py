"""Checkpoints that cannot run code when loaded: per kept epoch, the weights as
``<name>.safetensors`` and the rest of the state (optimizer, epoch, RNG state, validation
metrics) as ``<name>.pt`` of plain tensors and containers, read with
``torch.load(weights_only=True)``; a manifest lists the epochs with a sha256 of both files.

A pickle is a program: ``weights_only=False`` would run whatever a crafted ``.pt`` file
holds at ``select`` or ``register``. Here a file that is anything but tensors, numbers,
strings and containers is refused (:class:`CheckpointError`), and the sha256 catches
accidental corruption; it lives beside the files, so only a signature
(``components.training.integrity``, with ``MTL_SIGNING_KEY`` set) stops someone who can
write them (docs/reliability.md, "Threat model").

Example::

    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> model = torch.nn.Linear(2, 1)
    >>> with tempfile.TemporaryDirectory() as scratch:
    ...     path = Path(scratch) / "epoch_001.pt"
    ...     digest = save_checkpoint(path, model, torch.optim.SGD(model.parameters(), lr=0.1), 1, {"y": 0.5})
    ...     loaded = load_checkpoint(path, digest)
    ...     sorted(path.parent.iterdir()) == [path, weights_path(path)], loaded["val_metrics"], sorted(loaded["model"])
    (True, {'y': 0.5}, ['bias', 'weight'])
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from components.atomic import write_atomically
from components.training.integrity import CheckpointError, sign, verify
from components.training.seeding import rng_state

MANIFEST = "checkpoints.json"
WEIGHTS_SUFFIX = ".safetensors"


def weights_path(path: Path) -> Path:
    """Where the weights of checkpoint ``path`` (``epoch_001.pt``) live."""
    return path.with_suffix(WEIGHTS_SUFFIX)


def checkpoint_digest(path: Path) -> str:
    """sha256 over the weights file and the state file of one checkpoint."""
    return _combined(sha256_file(weights_path(path)), sha256_file(path))


def _combined(weights_sha256: str, state_sha256: str) -> str:
    """The checkpoint's sha256 from its two files' (how :func:`checkpoint_digest` reads them)."""
    return hashlib.sha256(bytes.fromhex(weights_sha256) + bytes.fromhex(state_sha256)).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def torch_bytes(value: Any) -> bytes:
    """``value`` as ``torch.save`` writes it, made in memory (``components.atomic``)."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int, val_metrics: dict[str, float]
) -> str:
    """Writes one checkpoint (``path`` and its ``.safetensors``); returns its sha256."""
    weights = save({name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()})
    state = torch_bytes(
        {"optimizer": optimizer.state_dict(), "epoch": epoch, "rng": rng_state(), "val_metrics": val_metrics}
    )
    write_atomically(weights_path(path), weights)
    write_atomically(path, state)
    # hashed from the bytes just written, not read back from disk each epoch
    digest = _combined(hashlib.sha256(weights).hexdigest(), hashlib.sha256(state).hexdigest())
    sign(path, digest)
    return digest


def load_checkpoint(path: Path, expected_sha256: str | None = None) -> dict[str, Any]:
    """The checkpoint's state with its weights under ``model``; refuses one whose bytes no
    longer match ``expected_sha256`` or that holds anything a ``weights_only`` load refuses."""
    try:
        digest = checkpoint_digest(path)
        if expected_sha256 is not None and digest != expected_sha256:
            raise CheckpointError(f"{path}: sha256 does not match the manifest; the checkpoint was modified")
        verify(path, digest)
        state = torch.load(path, map_location="cpu", weights_only=True)
        return {"model": load_file(weights_path(path)), **state}
    except FileNotFoundError as error:
        raise CheckpointError(f"{path}: missing {Path(str(error.filename)).name}; run the training again") from None
    except (pickle.UnpicklingError, SafetensorError, RuntimeError) as error:
        reason = str(error).splitlines()[0][:200]
        raise CheckpointError(f"{path}: refused, not a checkpoint of plain tensors ({reason})") from None


def write_manifest(directory: Path, records: Sequence[object]) -> None:
    """The epochs of a training (dataclass records) as ``checkpoints.json``."""
    entries = [asdict(record) for record in records if is_dataclass(record) and not isinstance(record, type)]
    write_atomically(directory / MANIFEST, json.dumps(entries, indent=2).encode())


def read_manifest(directory: Path) -> list[dict[str, Any]]:
    """The entries :func:`write_manifest` wrote."""
    return json.loads((directory / MANIFEST).read_text())
