"""One pipeline per project directory: real processes hold and contend for the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from components.io.project_lock import ProjectBusy, holder, project_lock
from tests.helpers.processes import HOLD_PROJECT, hold_project
from tests.helpers.projects import REPO, mtl, tiny_params_dict


@pytest.fixture
def other_holder(tmp_path):
    """A real process holding the project at ``tmp_path``."""
    with hold_project(tmp_path) as process:
        yield process


def test_a_second_start_names_the_holder_and_a_dead_holder_frees_the_project(tmp_path, other_holder):
    with pytest.raises(ProjectBusy, match=rf"busy: PID {other_holder.pid} \(the other pipeline\), started "):
        with project_lock(tmp_path, "second"):
            pass
    started = time.monotonic()
    with pytest.raises(ProjectBusy, match="after waiting 1 s"):
        with project_lock(tmp_path, "second", wait_s=1):
            pass
    assert time.monotonic() - started >= 1

    os.kill(other_holder.pid, signal.SIGKILL)  # no cleanup runs: the kernel releases the lock
    other_holder.wait()
    with project_lock(tmp_path, "after the crash"):
        assert holder(tmp_path)["pid"] == os.getpid()
    assert holder(tmp_path) == {}


def test_a_waiting_start_runs_once_the_holder_finishes(tmp_path, other_holder):
    threading.Timer(0.5, other_holder.kill).start()
    with project_lock(tmp_path, "patient", wait_s=30):
        assert holder(tmp_path)["command"] == "patient"


def test_a_second_run_in_the_same_process_is_refused_but_child_processes_share(tmp_path):
    refused: list[Exception] = []

    def second_run():
        try:
            with project_lock(tmp_path, "thread"):
                pass
        except ProjectBusy as error:
            refused.append(error)

    with project_lock(tmp_path, "first"):
        thread = threading.Thread(target=second_run)
        thread.start()
        thread.join()
        child = subprocess.run(
            [sys.executable, "-c", HOLD_PROJECT, str(tmp_path), "0"],
            cwd=REPO,
            capture_output=True,
            text=True,
            env=os.environ.copy(),
        )
    assert len(refused) == 1
    assert child.returncode == 0 and "held" in child.stdout  # e.g. a torchrun worker of this stage


def test_a_stage_command_in_a_busy_project_exits_cleanly_and_writes_nothing(tmp_path, other_holder):
    import yaml

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict()))
    result = mtl("prepare", params, tmp_path)
    assert result.returncode == 1
    assert "is busy" in result.stderr and str(other_holder.pid) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()
