"""The scenes example end to end: each stage's cost, and single-task against shared on test.

``examples/scenes/params.yaml`` through the pipeline's own stages, each ``mtl <stage>`` in a
fresh process of a scratch project (so nothing is reused from an earlier run): ``prepare``
draws and writes the PNG scenes and decodes them back, ``baselines`` trains one model per
task, ``train-mtl`` the shared one, ``select`` judges it, ``register`` logs it. Reported:
each stage's wall time and peak memory (max RSS), each task's baseline and MTL test metric,
the gate's verdict on validation, and how every training ended.

    $ python benchmarks/scenes.py            # ~3 min on 2 cores

Writes ``reports/benchmarks/scenes.json`` and ``.md``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from census import stage
from common import REPO, machine, markdown_table, write_report

from components.objectives import relative_change

EXAMPLE = REPO / "examples" / "scenes" / "params.yaml"
STAGES = ("prepare", "validate", "baselines", "train-mtl", "select", "register")


def run() -> dict:
    """Every stage in a scratch copy of the example; the selection report it ends with."""
    root = Path(tempfile.mkdtemp(prefix="scenes-benchmark-"))
    try:
        shutil.copy(EXAMPLE, root / "params.yaml")
        costs = {name: stage(root, name) for name in STAGES}
        report = json.loads((root / "reports" / "selection.json").read_text())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    tasks = report["tasks"]
    return {
        "costs": costs,
        "verdict": report["verdict"],
        "delta_m": report["delta_m"],
        "tasks": {
            name: {
                "metric": entry["metric"],
                "higher_is_better": entry["higher_is_better"],
                "baseline_test": entry["baseline_test"],
                "mtl_test": entry["test"],
            }
            for name, entry in tasks.items()
        },
        "endings": report["endings"],
    }


def tables(found: dict) -> str:
    """The results, the endings and the stage costs, as markdown."""
    rows = []
    for name, entry in found["tasks"].items():
        change = relative_change(entry["mtl_test"], entry["baseline_test"], entry["higher_is_better"])
        arrow = "↑" if entry["higher_is_better"] else "↓"
        rows.append(
            [
                name,
                f"{entry['metric']} {arrow}",
                f"{entry['baseline_test']:.4f}",
                f"{entry['mtl_test']:.4f}",
                f"{change:+.1%}",
            ]
        )
    endings = [[label, ending] for label, ending in found["endings"].items()]
    costs = [[name, f"{cost['seconds']:.0f} s", f"{cost['peak_mb']} MB"] for name, cost in found["costs"].items()]
    total = sum(cost["seconds"] for cost in found["costs"].values())
    return (
        f"{markdown_table(['task', 'metric', 'single-task test', 'shared test', 'Δ test'], rows)}\n\n"
        f"Gate (validation): **{found['verdict']}**, Δm {found['delta_m']:+.2%}.\n\n"
        f"{markdown_table(['training', 'how it ended'], endings)}\n\n"
        f"{markdown_table(['stage', 'time', 'peak memory'], costs)}\n\n"
        f"All stages: {total:.0f} s."
    )


def main() -> None:
    """Runs the example's stages and writes the report."""
    about = machine()
    found = run()
    command = "python benchmarks/scenes.py " + " ".join(sys.argv[1:])
    write_report("scenes", "The scenes example: vision tasks on one backbone", command, about, found, tables(found))


if __name__ == "__main__":
    main()
