"""Start-up settings: what ``configure`` promises holds in a process that begins without them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from components.startup import ENVIRONMENT

PROBE = """
import json
from components.startup import configure
configure()
from dvc.analytics import is_enabled as dvc_analytics
from prefect.settings import get_current_settings
print(json.dumps({"dvc": dvc_analytics(), "prefect": get_current_settings().server.analytics_enabled}))
"""


def test_configure_turns_dvc_and_prefect_analytics_off_in_a_bare_environment(tmp_path):
    # make, the Dockerfile and this suite's conftest set these too; the probe starts without
    # them, as `mtl` does when a user runs it outside make
    bare = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT and key != "DVC_TEST"}
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, env=bare, capture_output=True, text=True, timeout=120
    )
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout.strip().splitlines()[-1]) == {"dvc": False, "prefect": False}
