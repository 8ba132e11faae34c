"""Checkpoint signatures: an integrity record that whoever can write ``models/`` cannot forge.

A sha256 kept beside a checkpoint catches corruption, not tampering: anyone who can
rewrite the checkpoint can rewrite its hash. With ``MTL_SIGNING_KEY`` set in the
environment of the trainings and of ``select``/``register`` (a secret the project folder
does not hold: a CI secret, a vault), every checkpoint and resume state gets a
``<file>.sig`` holding HMAC-SHA256(key, its sha256), and loading one refuses a missing or
wrong signature. Without the key nothing is signed and the sha256 alone is checked
(docs/reliability.md, "Threat model"). Written here because it is ten lines over :mod:`hmac`.

Example::

    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from unittest import mock
    >>> with tempfile.TemporaryDirectory() as scratch, mock.patch.dict(os.environ, {SIGNING_KEY_ENV: "s3cret"}):
    ...     path = Path(scratch) / "epoch_001.pt"
    ...     sign(path, "ab" * 32)
    ...     verify(path, "ab" * 32)              # signed with this key: passes
    ...     try:
    ...         verify(path, "cd" * 32)          # other bytes than were signed
    ...     except CheckpointError as error:
    ...         print(str(error).split(": ")[1].split(";")[0])
    signature does not match
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from components.errors import PipelineError

SIGNING_KEY_ENV = "MTL_SIGNING_KEY"
SIGNATURE_SUFFIX = ".sig"


class CheckpointError(PipelineError):
    """A checkpoint that was modified, or holds anything but plain tensors and containers."""


def signature_path(path: Path) -> Path:
    """Where the signature of ``path`` lives."""
    return path.with_name(path.name + SIGNATURE_SUFFIX)


def _key() -> bytes | None:
    key = os.environ.get(SIGNING_KEY_ENV, "")
    return key.encode() if key else None


def _mac(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


def sign(path: Path, digest: str) -> None:
    """Writes the signature of ``digest`` (the sha256 of ``path``'s content) when a key is set."""
    key = _key()
    if key is not None:
        signature_path(path).write_text(_mac(key, digest))


def verify(path: Path, digest: str) -> None:
    """Refuses ``path`` (whose content hashes to ``digest``) unless its signature matches,
    when a key is set."""
    key = _key()
    if key is None:
        return
    try:
        recorded = signature_path(path).read_text().strip()
    except FileNotFoundError:
        raise CheckpointError(
            f"{path}: not signed, and {SIGNING_KEY_ENV} is set; it was not written by a training that had the key"
        ) from None
    if not hmac.compare_digest(recorded, _mac(key, digest)):
        raise CheckpointError(
            f"{path}: signature does not match; the file was modified, or signed with another {SIGNING_KEY_ENV}"
        )
