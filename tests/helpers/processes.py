"""Real processes to fault: one SIGKILLed when a condition holds, one holding the project lock,
a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.helpers.projects import REPO


def sigkill_when(command: list[str], root: Path, env: dict, ready: Callable[[], bool], limit_s: float = 600) -> bool:
    """Starts ``command`` in its own process group and SIGKILLs the group as soon as ``ready()``
    holds; False when the command ended (or ``limit_s`` passed) first. The kill is of the
    process this started, by its PID."""
    return _signal_when(command, root, env, ready, limit_s, lambda pid: os.killpg(pid, signal.SIGKILL)) is not None


def sigterm_when(
    command: list[str], root: Path, env: dict, ready: Callable[[], bool], limit_s: float = 600
) -> subprocess.CompletedProcess | None:
    """``command`` sent SIGTERM (as ``timeout`` sends it: to the process it started, by its
    PID) as soon as ``ready()`` holds; its exit status and output once it has ended, or None
    when it ended (or ``limit_s`` passed) first."""
    return _signal_when(command, root, env, ready, limit_s, lambda pid: os.kill(pid, signal.SIGTERM))


def _signal_when(
    command: list[str], root: Path, env: dict, ready: Callable[[], bool], limit_s: float, send: Callable[[int], None]
) -> subprocess.CompletedProcess | None:
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, cwd=root, env=env, start_new_session=True, stdout=out, stderr=err)
        deadline = time.monotonic() + limit_s
        try:
            while time.monotonic() < deadline and process.poll() is None:
                if ready():
                    send(process.pid)
                    process.wait(timeout=120)
                    out.seek(0), err.seek(0)
                    return subprocess.CompletedProcess(command, process.returncode, out.read(), err.read())
                time.sleep(0.02)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


HOLD_PROJECT = """
import sys, time
from pathlib import Path
from components.io.project_lock import project_lock
with project_lock(Path(sys.argv[1]), "the other pipeline"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@contextlib.contextmanager
def hold_project(root: Path, seconds: float = 120):
    """A real process holding the project at ``root`` (``components.io.project_lock``)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_PROJECT, str(root), str(seconds)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
