"""The default demo end to end: ``dvc repro`` in a fresh clone, timed per stage, and the
share of the time spent outside training and evaluation.

Clones the repository's committed state into ``--workdir`` (a temporary folder by default),
runs ``dvc repro`` there with this environment's ``python`` first on PATH and its own
MLflow database, and timestamps every line DVC prints: a stage's wall time runs from its
"Running stage" line to the next. Inside each stage, ``reports/timings/<stage>.json``
holds the time of the stage function itself; the rest of the wall time is interpreter
start-up, imports and DVC's own bookkeeping. Training and evaluation are the functions of
``baselines``, ``train_mtl`` and ``select``; everything else is overhead.

    $ python benchmarks/e2e.py [--workdir /tmp/demo --keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, machine, markdown_table, write_report

TRAINING_AND_EVALUATION = ("baselines", "train_mtl", "select")
STAGE_LINE = re.compile(r"Running stage '([^']+)'")


def main() -> None:
    """Runs the demo in a clone; writes the per-stage table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="where to clone (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the clone (serve and input read it)")
    options = parser.parse_args()
    about = machine()
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="mtl-e2e-"))
    if workdir.exists():
        shutil.rmtree(workdir)
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(workdir)], check=True)
    bin_dir = Path(sys.executable).parent
    # unbuffered: DVC and the stage commands write to a pipe, and each line's timestamp must be when it was said
    env = os.environ | {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)  # the clone's own sqlite:///mlflow.db
    marks: list[tuple[str, float]] = []
    started = time.perf_counter()
    with subprocess.Popen(
        [str(bin_dir / "dvc"), "repro"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            found = STAGE_LINE.search(line)
            if found:
                marks.append((found.group(1), time.perf_counter() - started))
    total = time.perf_counter() - started
    if process.returncode:
        sys.exit(f"dvc repro failed in {workdir} (exit {process.returncode})")
    ends = [at for _, at in marks[1:]] + [total]
    wall = {stage: end - at for (stage, at), end in zip(marks, ends)}
    inside = {}
    for stage in wall:
        timing = workdir / "reports/timings" / f"{stage}.json"
        inside[stage] = json.loads(timing.read_text())["seconds"] if timing.exists() else 0.0
    core = sum(inside.get(stage, 0.0) for stage in TRAINING_AND_EVALUATION)
    rows = [
        [stage, f"{wall[stage]:.1f} s", f"{inside[stage]:.1f} s", f"{wall[stage] - inside[stage]:.1f} s"]
        for stage in wall
    ]
    rows.append(["total", f"{total:.1f} s", f"{sum(inside.values()):.1f} s", f"{total - sum(inside.values()):.1f} s"])
    outside = (total - core) / total
    table = markdown_table(["stage", "wall (process)", "stage function", "start-up, imports, DVC"], rows) + (
        f"\n\n`dvc repro` of the default demo took {total:.0f} s (target ≤ 150 s); training and evaluation "
        f"(the baselines, train_mtl and select functions) {core:.0f} s, so {outside:.0%} went elsewhere "
        "(target ≤ 10%)."
    )
    write_report(
        "e2e",
        "The default demo, dvc repro in a fresh clone",
        "python benchmarks/e2e.py",
        about,
        {"total_seconds": total, "wall": wall, "inside": inside, "outside_share": outside},
        table,
    )
    if not options.keep:
        shutil.rmtree(workdir)
    else:
        print(f"kept: {workdir}")


if __name__ == "__main__":
    main()
