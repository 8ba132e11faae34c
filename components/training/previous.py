"""The last good training in a folder is kept until a new one finishes there.

A training starts by setting the files the previous one left (its checkpoints, manifest,
``result.json``, finished record and their signatures) aside in ``.previous/``. A training
that finishes discards them; one that fails puts them back and deletes its own partial
epochs, so ``select`` and ``register`` find the last good training as it was, never a
half-written one, and a diverged or crashed run destroys nothing. A killed run (SIGKILL)
leaves them aside: the next start resumes (and discards them on finishing) or, if it cannot
resume, deletes the killed run's epochs and keeps the set-aside ones.

Example::

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as scratch:
    ...     folder = Path(scratch)
    ...     _ = (folder / "epoch_001.pt").write_text("good")
    ...     set_aside(folder)
    ...     _ = (folder / "epoch_001.pt").write_text("diverged")
    ...     restore(folder)
    ...     (folder / "epoch_001.pt").read_text()
    'good'
"""

from __future__ import annotations

import shutil
from pathlib import Path

from components.training.resume import STATE_FILE

PREVIOUS = ".previous"


def _training_files(directory: Path) -> list[Path]:
    """The files of the training in ``directory``: all but the resume state, which a resumed
    run continues from, and the folders of other seeds."""
    resume = Path(STATE_FILE).stem + "."  # resume.pt, its signature, its partial write
    return [path for path in directory.iterdir() if path.is_file() and not path.name.startswith(resume)]


def set_aside(directory: Path) -> None:
    """Moves the previous training's files into ``directory/.previous``. If an earlier start
    already did (it was killed, or could not resume), those are the last good ones: they stay,
    and what lies in ``directory`` (that start's partial epochs) goes."""
    kept = directory / PREVIOUS
    if kept.is_dir():
        for path in _training_files(directory):
            path.unlink()
        return
    files = _training_files(directory)
    if not files:
        return
    # renamed into place at once; one a kill left half filled holds the first of the same files
    staging = directory / (PREVIOUS + ".partial")
    staging.mkdir(exist_ok=True)
    for path in files:
        path.rename(staging / path.name)
    staging.rename(kept)


def restore(directory: Path) -> None:
    """After a failed training: its files go and the previous training's come back."""
    for path in _training_files(directory):
        path.unlink()
    kept = directory / PREVIOUS
    if kept.is_dir():
        for path in kept.iterdir():
            path.rename(directory / path.name)
        kept.rmdir()


def discard(directory: Path) -> None:
    """After a finished training: the previous one is replaced for good."""
    shutil.rmtree(directory / PREVIOUS, ignore_errors=True)
