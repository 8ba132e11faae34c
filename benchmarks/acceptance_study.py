"""The acceptance study: how often each selection rule accepts a model that regresses beyond
tolerance on the test split it never saw, over several seeds of the default demo.

Each seed rebuilds the demo's data (the seed draws the digit pools and composites), trains
the baselines and the MTL model once, then runs ``select`` under ``selection.rule: point``
and again under ``lower_bound`` on the same checkpoints. A rule "admits a test regression"
when it accepts a model whose Δ_t on test is below -tolerance for some task.

    $ python benchmarks/acceptance_study.py --seeds 10     # about 3 minutes a seed on 2 cores

Writes ``reports/benchmarks/acceptance.json`` and ``.md`` (a table per seed and the totals).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "reports" / "benchmarks"


def main() -> None:
    """Runs every seed, prints each as it ends, writes the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=None, help="override training.max_epochs (quicker)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="acceptance-") as work:  # ~50 MB a seed, gone once the tables are out
        write(study(Path(work), options.seeds, options.epochs))


def study(work: Path, seeds: int, epochs: int | None) -> list[dict]:
    """One row per seed, each printed as it ends; the runs and checkpoints go under ``work``."""
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"  # the study's runs stay out of the project
    sys.path.insert(0, str(REPO))
    from components.config import load_params
    from components.io import tracking
    from components.jobs import baselines, prepare, select, train_mtl
    from components.startup import configure

    configure()
    base = load_params(REPO / "params.yaml")
    if epochs:
        base = base.model_copy(update={"training": base.training.model_copy(update={"max_epochs": epochs})})
    rows = []
    for seed in range(seeds):
        started = time.perf_counter()
        params = base.model_copy(update={"seed": seed})
        root = work / f"seed-{seed}"
        prepare.run(params, root)
        parent = tracking.start_pipeline_run(params.registry.experiment)
        baselines.run(params, root, parent)
        train_mtl.run(params, root, parent)
        tracking.end_run(parent)
        row: dict = {"seed": seed}
        for rule in ("point", "lower_bound"):
            ruled = params.model_copy(update={"selection": params.selection.model_copy(update={"rule": rule})})
            report = select.run(ruled, root)
            row[rule] = {
                "verdict": report.verdict,
                "delta_m": report.delta_m,
                "delta_m_interval": report.delta_m_interval,
                "val": {t: r.relative_change for t, r in report.tasks.items()},
                "intervals": {t: r.interval for t, r in report.tasks.items()},
                "test": report.test_changes(),
                "test_regressions": sorted(report.test_regressions()),
            }
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def admitted(rows: list[dict], rule: str) -> tuple[int, int]:
    """(accepted, accepted while regressing beyond tolerance on test) under ``rule``."""
    accepted = [r for r in rows if r[rule]["verdict"] == "accepted"]
    return len(accepted), sum(bool(r[rule]["test_regressions"]) for r in accepted)


def write(rows: list[dict]) -> None:
    """``reports/benchmarks/acceptance.{json,md}``: every seed, then each rule's totals."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "acceptance.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| seed | Δm val [90% interval] | point: verdict, test regressions | lower_bound: verdict, test regressions |",
        "|---|---|---|---|",
    ]

    def verdict(r: dict, rule: str) -> str:
        beyond = ", ".join(f"{t} {r[rule]['test'][t]:+.2%}" for t in r[rule]["test_regressions"])
        return f"{r[rule]['verdict']}" + (f" ({beyond})" if beyond else "")

    for r in rows:
        low, high = r["lower_bound"]["delta_m_interval"] or (float("nan"), float("nan"))
        lines.append(
            f"| {r['seed']} | {r['point']['delta_m']:+.2%} [{low:+.2%}, {high:+.2%}] | {verdict(r, 'point')} "
            f"| {verdict(r, 'lower_bound')} |"
        )
    lines.append("")
    for rule in ("point", "lower_bound"):
        accepted, bad = admitted(rows, rule)
        lines.append(f"- `{rule}`: accepted {accepted} of {len(rows)}; {bad} of those regress beyond tolerance on test")
    (OUT / "acceptance.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
