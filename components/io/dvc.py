"""Versions of what a model came from: the DVC md5 of the data, the git commit, the
``dvc`` commands the scheduled runs call, and the params ``dvc.yaml`` reads.

Example::

    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as scratch:
    ...     root = Path(scratch); (root / "data").mkdir(); _ = (root / "data" / "a.txt").write_text("a")
    ...     data_version(root, "data")
    'dvc:1710014904e6b7e979d3965269bd0f83.dir'
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from components.errors import PipelineError


class DvcError(PipelineError, RuntimeError):
    """A ``dvc`` command failed; the message says which and why."""


def experiment_name() -> str | None:
    """The name of the DVC experiment this stage runs in (``dvc exp run``, ``--temp``, a
    queued one), from the environment DVC gives its stages; None for ``dvc repro``."""
    return os.environ.get("DVC_EXP_NAME") or None


def data_version(root: Path, data_dir: str) -> str:
    """The md5 DVC gives the data directory (as ``dvc.lock`` records it), from its contents.

    Computed here rather than read from ``dvc.lock``, which is stale whenever the data
    changed outside ``dvc repro`` (a nightly refresh): same files, same version.
    """
    return f"dvc:{content_md5(root / data_dir)}"


def content_md5(path: Path) -> str:
    """The md5 DVC gives ``path``: a file's bytes, or, for a directory, the md5 of its
    sorted ``{md5, relpath}`` listing plus ``.dir``."""
    if path.is_file():
        return hashlib.md5(path.read_bytes()).hexdigest()
    listing = [
        {"md5": hashlib.md5(file.read_bytes()).hexdigest(), "relpath": file.relative_to(path).as_posix()}
        for file in sorted(path.rglob("*"))
        if file.is_file()
    ]
    return f"{hashlib.md5(json.dumps(listing, sort_keys=True).encode()).hexdigest()}.dir"


def params_dvc_lacks(root: Path) -> list[str]:
    """The ``params.yaml`` keys that ``dvc.yaml``'s stages read but the file does not hold,
    each with the first stage that reads it. DVC checks a stage's params only when it
    reaches that stage, after the trainings before it; the typed config fills defaults,
    DVC does not."""
    dvc_file, params_file = root / "dvc.yaml", root / "params.yaml"
    if not dvc_file.exists() or not params_file.exists():
        return []
    stages = (yaml.safe_load(dvc_file.read_text()) or {}).get("stages", {})
    values = yaml.safe_load(params_file.read_text()) or {}
    lacking: dict[str, str] = {}
    for stage, spec in stages.items():
        for key in spec.get("params", []):
            if isinstance(key, str) and not _holds(values, key.split(".")):
                lacking.setdefault(key, stage)
    return [f"{key} (stage {stage})" for key, stage in lacking.items()]


def _holds(values: object, path: list[str]) -> bool:
    for part in path:
        if not isinstance(values, dict) or part not in values:
            return False
        values = values[part]
    return True


def git_commit(root: Path) -> str:
    """The commit checked out at ``root``, or ``unknown`` outside git."""
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def dvc(root: Path, *args: str) -> str:
    """Runs ``dvc args`` in ``root``; returns its output, raises :class:`DvcError` on failure."""
    # the venv's dvc when running from it: DVC is not necessarily on PATH
    local = Path(sys.executable).parent / "dvc"
    command = [str(local) if local.exists() else "dvc", *args]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise DvcError(f"`dvc {' '.join(args)}` failed in {root}: {' '.join(detail)}")
    return result.stdout
