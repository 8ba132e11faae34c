"""``mtl summary``: the results table of the last run, its registration, and the timings of
the stages that ran in that run.

$ mtl summary
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group

from components.config import Params
from components.io.registry import NotRegistered, Registration
from components.jobs.layout import REGISTRATION_REPORT, SELECTION_REPORT, STAGES, TIMINGS, read_json
from components.report import render_summary
from components.selection import SelectionReport


def run(params: Params, root: Path) -> Group:
    """The table, rendered for a terminal."""
    registration = Registration.read(root / REGISTRATION_REPORT) or NotRegistered.read(root / REGISTRATION_REPORT)
    timings, run_line = last_run_timings(root, registration)
    return render_summary(
        SelectionReport.from_dict(read_json(root / SELECTION_REPORT)), registration, timings, run_line
    )


def last_run_timings(
    root: Path, registration: Registration | NotRegistered | None
) -> tuple[dict[str, float], str | None]:
    """The wall time of each stage that ran in the last pipeline run (the invocation of the
    stage that finished last), and a line naming that run, its end, and the stages it did
    not re-run (unchanged: their outputs, and times, are from an earlier run)."""
    records: dict[str, dict[str, Any]] = {
        stage: read_json(root / TIMINGS / f"{stage}.json")
        for stage in STAGES
        if (root / TIMINGS / f"{stage}.json").exists()
    }
    if not records:
        return {}, None
    last = max(records.values(), key=lambda record: record.get("finished", ""))
    ran = {s: r["seconds"] for s, r in records.items() if r.get("invocation") == last.get("invocation")}
    name = f"pipeline run {registration.run_id}" if isinstance(registration, Registration) else "last pipeline run"
    line = f"{name}, finished {last.get('finished', '?')}"
    skipped = [stage for stage in records if stage not in ran]
    if skipped:
        line += f"; not re-run (unchanged, times left out): {', '.join(skipped)}"
    return ran, line
