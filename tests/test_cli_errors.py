"""The CLI never shows a traceback unless asked: expected failures print one error line,
anything else its type and message with a pointer to --debug, which shows the traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.helpers.projects import MTL, REPO, VENV_BIN, run, tiny_params_dict


def _status(tmp_path, *options: str) -> subprocess.CompletedProcess:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict()))
    env = os.environ | {
        "MLFLOW_TRACKING_URI": "nosuchscheme://nowhere",
        "MLFLOW_REGISTRY_URI": "nosuchscheme://nowhere",
    }
    return subprocess.run(
        [sys.executable, "-m", "components.cli", *options, "status", "--params", str(params)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path):
    plain = _status(tmp_path)
    assert plain.returncode == 1
    assert "Traceback" not in plain.stderr
    assert "error: unexpected UnsupportedModelRegistryStoreURIException" in plain.stderr
    assert "mtl --debug" in plain.stderr

    debug = _status(tmp_path, "--debug")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "UnsupportedModelRegistryStoreURIException" in debug.stderr


def test_registry_commands_answer_without_loading_torch(tmp_path, mlflow_db):
    """`mtl status` reads names from params.yaml and the registry: the task types' rules
    (which import torch and torchmetrics, seconds of start-up) are not needed for it."""
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict()))
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['mtl', 'status', '--params', {str(params)!r}]\n"
        "try:\n    runpy.run_module('components.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print('torch loaded' if 'torch' in sys.modules else 'no torch')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "no torch", result.stdout + result.stderr


def test_a_stage_run_by_a_python_without_the_packages_says_what_to_do():
    """``python -S``: no site-packages, as with a system ``python`` ahead of the project's."""
    result = subprocess.run(
        [sys.executable, "-S", "-m", "components.cli", "status"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "lacks the project's packages" in result.stderr and "source .venv/bin/activate" in result.stderr
    assert "Traceback" not in result.stderr


def test_affinity_before_the_data_is_prepared_names_the_stage_to_run(tmp_path, mlflow_db):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict()))
    result = subprocess.run(
        [sys.executable, "-m", "components.cli", "affinity", "--params", str(params), "--root", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "train.parquet: not found; prepare the data first (`dvc repro prepare` or `mtl prepare`)" in result.stderr


def test_a_deliberate_exit_code_is_not_reported_as_a_crash(tmp_path, capsys):
    """``mtl promote`` on a version the policy refuses exits 1 after its answer; it used to
    add ``error: unexpected Exit: 1``, as if it had crashed (typer.Exit is not click's)."""
    import typer

    from components import cli

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict()))

    def refuses(_params) -> None:
        print("multimnist-mtl v4 is not promoted: rejected")
        raise typer.Exit(1)

    with pytest.raises(typer.Exit) as exited:
        cli._run(params, refuses, task_rules=False)
    assert exited.value.exit_code == 1
    assert "unexpected" not in capsys.readouterr().err


@pytest.mark.parametrize("version", ["abc", "0", "1.5"])
def test_a_version_that_is_not_a_whole_number_is_named_as_such(tmp_path, mlflow_db, version):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict()))
    command = [sys.executable, "-m", "components.cli", "promote", "--version", version, "--params", str(params)]
    result = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        env=os.environ | {"MLFLOW_TRACKING_URI": mlflow_db, "MLFLOW_REGISTRY_URI": mlflow_db},
    )
    assert result.returncode == 1
    assert f"version {version!r} is not a registered version: versions are whole numbers" in result.stderr
    assert "stage" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["status", "register"])
def test_a_corrupt_registry_database_is_a_clear_error(tmp_path, command):
    """``truncate -s 16384 mlflow.db`` made ``mtl register`` print a traceback (issue 25, case 16)."""
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict()))
    database = tmp_path / "mlflow.db"
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{database}", "MLFLOW_REGISTRY_URI": f"sqlite:///{database}"}

    def mtl(name: str) -> subprocess.CompletedProcess:
        options = ["--params", str(params)] + (["--root", str(tmp_path)] if name == "register" else [])
        return subprocess.run(
            [sys.executable, "-m", "components.cli", name, *options], cwd=REPO, env=env, capture_output=True, text=True
        )

    first = mtl("status")  # creates a real, empty registry
    assert database.stat().st_size > 0 and "no registered model named 'tiny-mtl'" in first.stderr
    with open(database, "r+b") as handle:
        handle.truncate(16384)
        handle.seek(0)
        handle.write(b"\0" * 100)  # the SQLite header gone, as a crash mid-copy leaves it
    result = mtl(command)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"the MLflow database sqlite:///{database} cannot be read" in " ".join(result.stderr.split())


def test_mtl_refuses_a_project_copy_whose_components_it_does_not_run(tmp_path):
    """``mtl`` (an editable install) ran the original checkout's code in a copied project
    (issue 25, also found); ``python -m components.cli``, as dvc.yaml runs it, is the copy's."""
    shutil.copytree(REPO / "components", tmp_path / "components", ignore=shutil.ignore_patterns("__pycache__"))
    copied = run([str(VENV_BIN / "mtl"), "--help"], tmp_path, os.environ.copy())
    assert copied.returncode == 1 and "Traceback" not in copied.stderr
    message = " ".join(copied.stderr.split())
    assert f"this folder has its own {tmp_path / 'components'}, but `mtl` runs the one installed from" in message
    assert run([str(VENV_BIN / "mtl"), "--help"], REPO, os.environ.copy()).returncode == 0
    assert run([*MTL, "--help"], tmp_path, os.environ.copy()).returncode == 0
