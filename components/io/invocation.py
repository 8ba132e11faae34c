"""Which pipeline invocation a process belongs to: apart from ``components.io.tracking`` so
that a stage's timing record names its invocation without importing MLflow.

Example::

    >>> owner, started = invocation().split("@")
    >>> int(owner) > 0 and float(started) > 0
    True
"""

from __future__ import annotations

from pathlib import Path

import psutil


def invocation() -> str:
    """Which pipeline invocation this process belongs to, as ``pid@start time`` of the
    process that owns it: the ``dvc`` process running this as a stage (every stage of one
    ``dvc repro`` or ``dvc exp run`` shares it), else this process's parent (stages typed
    one after another in one shell share that)."""
    me = psutil.Process()
    ancestors = me.parents()
    owner = next((p for p in ancestors if _is_dvc(p)), ancestors[0] if ancestors else me)
    return f"{owner.pid}@{owner.create_time():.3f}"


def _is_dvc(process: psutil.Process) -> bool:
    try:
        return process.name() == "dvc" or any(Path(arg).name == "dvc" for arg in process.cmdline()[:2])
    except psutil.Error:
        return False
