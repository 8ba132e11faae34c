"""The CLI never shows a traceback unless asked: expected failures print one error line,
anything else its type and message with a pointer to --debug, which shows the traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from tests.helpers import REPO, tiny_params_dict


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
