"""``mtl summary``: the results table of the last run, its registration and stage timings.

$ mtl summary
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Group

from components.config import Params
from components.io.registry import Registration
from components.jobs.common import REGISTRATION_REPORT, STAGES, TIMINGS, read_json
from components.jobs.select import read_report
from components.report import render_summary


def run(params: Params, root: Path) -> Group:
    """The table, rendered for a terminal."""
    timings = {
        stage: read_json(root / TIMINGS / f"{stage}.json")["seconds"]
        for stage in STAGES
        if (root / TIMINGS / f"{stage}.json").exists()
    }
    return render_summary(read_report(root), Registration.read(root / REGISTRATION_REPORT), timings)
