"""Resuming a killed training from its last complete epoch.

After every epoch the training writes ``resume.pt`` beside its checkpoints: the model
weights, the optimizer, the loss weighting's state (DWA's loss history, FAMO's logits and
Adam state, GradNorm's weights), the gradient method's state (Nash-MTL's previous α), the
loss guard's first losses, the data order's generator, every global RNG, the epoch records
so far and the tracking run's id. It is replaced atomically (written aside, then
``os.replace``), so a kill leaves either the previous epoch's state or this one, never a
torn file, and it holds plain tensors and containers only (read with ``weights_only=True``).

The next start with the same key (parameters, data, code, training) continues at the
following epoch and ends bit-identical to an uninterrupted run on the same machine; a state
with another key is ignored and the training starts over. A finished training deletes it
and leaves ``finished.json`` instead: its key and run. A later start with the same key (the
stage rerun after a crash in a later training, or forced) reuses that training's
checkpoints and epoch records rather than repeating it, once their hashes match the
manifest; the same key means the same result on the same machine, and the code is part of
the key, so a changed trainer never reuses an old result.
Written here because the loop is hand-written (``components.training.loop``): no library
knows which of its parts hold state.

Example::

    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> model = torch.nn.Linear(2, 1)
    >>> with tempfile.TemporaryDirectory() as scratch:
    ...     directory = Path(scratch)
    ...     save_state(directory, {"key": "abc", "epoch": 3, "model": model.state_dict()})
    ...     found = find_state(directory, "abc")
    ...     (found["epoch"], find_state(directory, "another key"))
    (3, None)
"""

from __future__ import annotations

import functools
import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from components.atomic import write_atomically
from components.training.checkpoints import MANIFEST, checkpoint_digest, read_manifest, sha256_file, torch_bytes
from components.training.integrity import CheckpointError, sign, signature_path, verify

STATE_FILE = "resume.pt"
FINISHED_FILE = "finished.json"


def state_path(directory: Path) -> Path:
    """Where the resume state of the training writing to ``directory`` lives."""
    return directory / STATE_FILE


def training_key(*parts: str) -> str:
    """What a resume state must match: a hash of the parameters, data and training that made it."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


@functools.cache
def code_version() -> str:
    """A hash of the pipeline's own source (``components/**/*.py``): part of every training's
    key, so neither a resume state nor a finished training outlives a change to the code."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def save_state(directory: Path, state: dict[str, Any]) -> None:
    """Replaces the resume state atomically: a kill mid-write leaves the previous one."""
    path = state_path(directory)
    data = torch_bytes(state)
    # signed before it is in place: a kill between the two leaves a state whose signature does
    # not match, which find_state treats as no state (the training starts over), never as valid
    sign(path, hashlib.sha256(data).hexdigest())
    write_atomically(path, data)


def find_state(directory: Path, key: str) -> dict[str, Any] | None:
    """The resume state left in ``directory`` for ``key``; None when there is none, it was
    made with other parameters or data, or (with ``MTL_SIGNING_KEY``) its signature does not
    match. A state that is not plain tensors is refused."""
    path = state_path(directory)
    if not path.exists():
        return None
    try:
        verify(path, sha256_file(path))
    except CheckpointError:  # with a signing key, a state it did not sign is never loaded
        return None
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise CheckpointError(f"{path}: refused, not a resume state of plain tensors ({reason})") from None
    return state if state.get("key") == key else None


def _delete_signed(path: Path) -> None:
    """Deletes ``path`` and its signature, if any."""
    path.unlink(missing_ok=True)
    signature_path(path).unlink(missing_ok=True)


def clear_state(directory: Path) -> None:
    """Deletes the resume state: the training it belonged to finished."""
    _delete_signed(state_path(directory))


@dataclass(frozen=True)
class Finished:
    """A training that ran to its end with the same key: what reusing it needs."""

    #: the tracking run that trained it
    run_id: str | None
    #: its epoch records, as the manifest holds them
    history: list[dict[str, Any]]


def _finished_digest(directory: Path) -> str:
    """What the signature of ``finished.json`` covers: the file and the manifest it vouches for."""
    return hashlib.sha256(
        bytes.fromhex(sha256_file(directory / FINISHED_FILE)) + bytes.fromhex(sha256_file(directory / MANIFEST))
    ).hexdigest()


def mark_finished(directory: Path, key: str, run_id: str | None) -> None:
    """Records that the training in ``directory`` (its manifest written) finished with ``key``."""
    path = directory / FINISHED_FILE
    write_atomically(path, json.dumps({"key": key, "run_id": run_id}).encode())
    sign(path, _finished_digest(directory))


def find_finished(directory: Path, key: str) -> Finished | None:
    """The training that finished in ``directory`` with ``key``, if its manifest and every
    checkpoint it kept are as it left them (and, with ``MTL_SIGNING_KEY``, it signed them);
    None otherwise, and the training runs again."""
    path = directory / FINISHED_FILE
    try:
        marker = json.loads(path.read_text())
        if marker.get("key") != key:
            return None
        verify(path, _finished_digest(directory))
        history = read_manifest(directory)
        kept = {entry["checkpoint"]: entry["sha256"] for entry in history if entry.get("checkpoint")}
        if not history or any(checkpoint_digest(directory / name) != sha for name, sha in kept.items()):
            return None
    except (OSError, ValueError, KeyError, CheckpointError):  # missing, unreadable or altered
        return None
    return Finished(marker.get("run_id"), history)


def clear_finished(directory: Path) -> None:
    """Deletes the record of a finished training: a new one starts in ``directory``."""
    _delete_signed(directory / FINISHED_FILE)


@dataclass(frozen=True)
class Resume:
    """How one training records its progress, and where it continues from."""

    #: what a state must match to be resumed (:func:`training_key`)
    key: str
    #: the tracking run of this training, recorded so that a later start can end it as killed
    run_id: str | None = None
    #: the state :func:`find_state` found: the training continues after its epoch
    state: dict[str, Any] | None = None
    #: the finished training :func:`find_finished` found: it is reused, not repeated
    finished: Finished | None = None
