"""One pipeline per project directory at a time.

Two runs in one project would both rewrite ``data/``, ``models/`` and ``reports/`` and
register from each other's files. Every stage that writes there (a ``mtl`` stage command,
the Prefect flows) holds ``.mtl/pipeline.lock`` while it runs: an exclusive ``flock``, which
the kernel releases when the holder dies however it dies, so a killed run never leaves a
stale lock. The file records the holder's PID, start time and command, so a second start
can say who holds it; it waits ``orchestration.project_lock_wait_s`` seconds, then stops
with :class:`ProjectBusy`. Written here because ``flock`` is all it takes: DVC's own lock
covers ``dvc`` commands only, not a Prefect flow beside them.

Holding is re-entrant within one call chain (the nightly flow runs the pipeline flow) and
for the holder's child processes (torchrun workers), which inherit it through the
environment.

Example::

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as root:
    ...     with project_lock(Path(root), "first"):
    ...         with project_lock(Path(root), "nested"):     # the same call chain: re-entrant
    ...             holder(Path(root))["command"]
    'first'
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.errors import PipelineError

LOCK_FILE = Path(".mtl/pipeline.lock")
#: ``<pid>:<lock path>`` of the holder, for its child processes
HOLDER_ENV = "MTL_PROJECT_LOCK_HOLDER"

_held: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("held_project_locks", default=frozenset())


class ProjectBusy(PipelineError):
    """Another run holds the project."""


def lock_path(root: Path) -> Path:
    """The lock file of the project at ``root``."""
    return (root / LOCK_FILE).resolve()


def holder(root: Path) -> dict[str, Any]:
    """What the holder recorded: ``pid``, ``started``, ``command`` (empty if never held)."""
    try:
        return dict(json.loads(lock_path(root).read_text() or "{}"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _inherited(path: Path) -> bool:
    """A child process of the holder (the environment names it, and it is not us)."""
    pid, _, held = os.environ.get(HOLDER_ENV, "").partition(":")
    return held == str(path) and pid != str(os.getpid())


@contextlib.contextmanager
def project_lock(root: Path, command: str | None = None, wait_s: float = 0.0) -> Iterator[None]:
    """Holds the project at ``root`` for the block; waits up to ``wait_s`` seconds for a
    holder to finish, then raises :class:`ProjectBusy` naming it."""
    path = lock_path(root)
    if str(path) in _held.get() or _inherited(path):
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ProjectBusy(_busy_message(root, wait_s)) from None
                time.sleep(0.5)
        record = {
            "pid": os.getpid(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command or " ".join(sys.argv),
        }
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(record))
        handle.flush()
        try:
            with _holding(path):
                yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def held_by_caller(root: Path) -> Iterator[None]:
    """Runs the block under a hold another process took and keeps while it waits for this
    one: a training the pipeline flow hands to a GPU worker. Child processes share it too."""
    with _holding(lock_path(root)):
        yield


@contextlib.contextmanager
def _holding(path: Path) -> Iterator[None]:
    """Marks ``path`` held for this call chain and, through the environment, for child processes."""
    token = _held.set(_held.get() | {str(path)})
    previous = os.environ.get(HOLDER_ENV)
    os.environ[HOLDER_ENV] = f"{os.getpid()}:{path}"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(HOLDER_ENV, None)
        else:
            os.environ[HOLDER_ENV] = previous
        _held.reset(token)


def _busy_message(root: Path, wait_s: float) -> str:
    found = holder(root)
    who = (
        f"PID {found.get('pid')} ({found.get('command')}), started {found.get('started')}"
        if found
        else "another process"
    )
    waited = f" after waiting {wait_s:g} s" if wait_s else ""
    return (
        f"project {root.resolve()} is busy{waited}: {who} holds {lock_path(root)}. One pipeline runs per "
        "project at a time; wait for it to finish or stop it (a stopped holder releases the lock), or set "
        "orchestration.project_lock_wait_s to wait"
    )
