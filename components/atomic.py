"""Files written whole or not at all: the bytes go to ``<name>.partial``, are flushed to
disk, and only then replace ``<name>``. A kill or a full disk mid-write leaves the previous
file (or none), never a truncated one that a later stage would load (checkpoints, resume
states, reports).

Callers make the bytes in memory first, so that a full disk surfaces as the ``OSError`` of a
plain write (ENOSPC), named as such, and not as, say, torch's zip writer's
``RuntimeError: unexpected pos``.

Example::

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as scratch:
    ...     path = Path(scratch) / "result.json"
    ...     write_atomically(path, b"{}")
    ...     path.read_bytes(), sorted(p.name for p in path.parent.iterdir())
    (b'{}', ['result.json'])
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from components.errors import PipelineError


class DiskFull(PipelineError):
    """A file did not fit on its device; nothing half written is left."""


def write_atomically(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` once this returns, and its previous content if it raises."""
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before it replaces the previous file
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(
                f"no space left on device: {path.parent} (writing {path.name}, {len(data) / 1e6:.1f} MB): free "
                "space there and run the stage again; nothing half written is left (a training keeps the last "
                "good one)"
            ) from None
        raise
