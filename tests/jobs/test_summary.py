"""``mtl summary`` adds up the stage times of one pipeline run, and says which stages that
run skipped, never the times other runs left in reports/timings/."""

from __future__ import annotations

import json

from components.io.registry import NotRegistered, Registration
from components.jobs.summary import last_run_timings


def write_timing(root, stage: str, seconds: float, invocation: str, finished: str) -> None:
    path = root / "reports/timings" / f"{stage}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"stage": stage, "seconds": seconds, "invocation": invocation, "finished": finished}
    path.write_text(json.dumps(record))


def test_the_timings_come_from_the_last_run_alone(tmp_path):
    write_timing(tmp_path, "prepare", 2.0, "100@1.0", "2026-11-26 03:00:00 UTC")
    write_timing(tmp_path, "baselines", 100.0, "100@1.0", "2026-11-26 03:02:00 UTC")
    write_timing(tmp_path, "validate", 10.0, "200@2.0", "2026-11-27 05:00:00 UTC")
    write_timing(tmp_path, "register", 1.0, "200@2.0", "2026-11-27 05:00:04 UTC")
    registration = Registration("m", "2", ["champion"], False, "accepted", "run-7", "models:/m/2")
    timings, line = last_run_timings(tmp_path, registration)
    assert timings == {"validate": 10.0, "register": 1.0}
    assert line == (
        "pipeline run run-7, finished 2026-11-27 05:00:04 UTC; "
        "not re-run (unchanged, times left out): prepare, baselines"
    )


def test_an_experiment_that_registered_nothing_still_names_its_run(tmp_path):
    write_timing(tmp_path, "register", 1.0, "300@3.0", "2026-11-27 06:00:00 UTC")
    timings, line = last_run_timings(tmp_path, NotRegistered("not registered: DVC experiment x"))
    assert timings == {"register": 1.0} and line == "last pipeline run, finished 2026-11-27 06:00:00 UTC"
    assert last_run_timings(tmp_path / "nothing", None) == ({}, None)
