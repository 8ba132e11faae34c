"""The gate's error rates, measured against ground truth on known-answer data.

Each run is the pipeline's baselines → MTL → select on the synthetic tasks of Ma et al. 2018
(MMoE, §3.2: ``data.source: synthetic``, ``examples/synthetic/params.yaml``) at one task
correlation, one validation size and one seed (the seed draws the function and the rows).
Every compared model is then scored on 100,000 fresh rows of the same tasks: its *truth*.

- a **false acceptance**: the rule accepts while the truth has some task beyond its
  tolerance, or Δm below ``selection.min_delta_m`` (rate: of the runs whose truth fails);
- a **false rejection**: the rule rejects while the truth passes (rate: of the runs whose
  truth passes);
- **inconclusive**: the rule would not say (a training still improving, or, under
  ``lower_bound``, an interval straddling the bar).

Each rule (``point``, ``lower_bound``) chooses its own checkpoint from the same trainings
and is judged on that checkpoint's truth. Rates come with Wilson 95% intervals.

    $ python benchmarks/gate_calibration.py --seeds 10          # make gate-study
    $ python benchmarks/gate_calibration.py --seeds 2 --quick   # a smoke run: fewer rows

Writes ``reports/benchmarks/gate_calibration.json`` and ``.md``; prints each run as it ends.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "reports" / "benchmarks"
CORRELATIONS = (1.0, 0.5, 0.0)
VALIDATION_ROWS = (500, 2000)
TRUTH_ROWS = 100_000
RULES = ("point", "lower_bound")


def main() -> None:
    """Runs the grid, prints each run as it ends, writes the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2,000 training rows and 20 features: a smoke run, whose MTL trainings can run out of max_epochs 100 "
        "(then every verdict is inconclusive, as it should be)",
    )
    parser.add_argument(
        "--mmoe", action="store_true", help="also train model.sharing mmoe at correlation 0.5 (the paper's comparison)"
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gate-calibration-") as work:
        rows = study(Path(work), options.seeds, options.quick, options.mmoe)
    write(rows)


def grid(seeds: int, mmoe: bool) -> list[tuple[str, float, int, int]]:
    """(sharing, correlation, validation rows, seed) of every run."""
    runs = [("hard", p, v, s) for p in CORRELATIONS for v in VALIDATION_ROWS for s in range(seeds)]
    if mmoe:
        runs += [("mmoe", 0.5, v, s) for v in VALIDATION_ROWS for s in range(seeds)]
    return runs


def study(work: Path, seeds: int, quick: bool, mmoe: bool) -> list[dict]:
    """One row per run; the runs and checkpoints go under ``work``."""
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"  # the study's runs stay out of the project
    sys.path.insert(0, str(REPO))
    from components.config import Params
    from components.startup import configure

    configure()
    raw = yaml.safe_load((REPO / "examples/synthetic/params.yaml").read_text())
    if quick:
        raw["data"]["synthetic"]["features"] = 20
        raw["data"]["synthetic"]["rows"]["train"] = 2000
    rows = []
    for sharing, correlation, val_rows, seed in grid(seeds, mmoe):
        started = time.perf_counter()
        variant = json.loads(json.dumps(raw))
        variant["seed"] = seed
        variant["model"]["sharing"] = sharing
        synthetic = variant["data"]["synthetic"]
        synthetic |= {"correlation": correlation, "seed": seed}
        synthetic["rows"] = synthetic["rows"] | {"val": val_rows}
        params = Params.model_validate(variant)
        root = work / f"{sharing}-p{correlation}-v{val_rows}-s{seed}"
        row = {"sharing": sharing, "correlation": correlation, "val_rows": val_rows, "seed": seed}
        row |= one_run(params, root)
        shutil.rmtree(root)  # ~75 MB of checkpoints a run: only the row is kept
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def one_run(params, root: Path) -> dict:
    """Baselines, MTL and select under both rules, then every compared model on the truth set."""
    from components.io import tracking
    from components.jobs import baselines, prepare, select, train_mtl

    prepare.run(params, root)
    parent = tracking.start_pipeline_run(params.registry.experiment)
    baselines.run(params, root, parent)
    train_mtl.run(params, root, parent)
    tracking.end_run(parent)
    truth_baseline = truth_of_baselines(params, root)
    found: dict = {"endings": None}
    for rule in RULES:
        ruled = params.model_copy(update={"selection": params.selection.model_copy(update={"rule": rule})})
        report = select.run(ruled, root)
        truth = truth_of_mtl(params, root, report.checkpoint)
        changes = {t: relative(truth[t], truth_baseline[t]) for t in truth}  # MAE: lower is better
        mean_change = statistics.fmean(changes.values())
        passes = all(c >= -params.tasks[t].max_relative_regression for t, c in changes.items())
        passes = passes and mean_change >= params.selection.min_delta_m
        found[rule] = {
            "verdict": report.verdict,
            "checkpoint": report.checkpoint,
            "val_delta_m": report.delta_m,
            "truth_delta_m": mean_change,
            "truth_changes": changes,
            "truth_passes": passes,
        }
        found["endings"] = report.endings
    return found


def relative(mtl_mae: float, baseline_mae: float) -> float:
    """Δ_t of an error metric: positive when the MTL model's error is lower."""
    return (baseline_mae - mtl_mae) / abs(baseline_mae)


def _truth_split(params, root: Path):
    """100,000 fresh rows of the run's tasks, through the run's fitted encoder."""
    from components.data.splits import split_path
    from components.data.synthetic import synthetic_rows
    from components.jobs.inputs import load_tensor_splits

    path = split_path(root / params.data.dir, "truth")
    if not path.exists():
        frame = synthetic_rows(params.data.synthetic, TRUTH_ROWS, stream=99)  # no split uses stream 99
        frame.insert(0, "id", [f"truth-{i:06d}" for i in range(len(frame))])
        frame.to_parquet(path)
    return load_tensor_splits(params, root, ("truth",))["truth"]


def truth_of_baselines(params, root: Path) -> dict[str, float]:
    """Each baseline's primary metric on the truth set (its best epoch)."""
    from components.data.encoders import encoder_dir, fitted_features
    from components.jobs.layout import baseline_dir, baseline_params
    from components.models import build_model
    from components.tasks import build_tasks
    from components.training.checkpoints import load_checkpoint
    from components.training.evaluation import evaluate

    split, fitted = _truth_split(params, root), encoder_dir(root / params.data.dir)
    single, found = baseline_params(params), {}
    for name, task in build_tasks(params.tasks).items():
        model = build_model(single, {name: task}, fitted, fitted_features(params, fitted))
        model.load_state_dict(load_checkpoint(baseline_dir(root, params, name, params.seed) / "best.pt")["model"])
        found[name] = evaluate(model, {name: task}, split, 4096, model_device())[name]
    return found


def truth_of_mtl(params, root: Path, checkpoint: str) -> dict[str, float]:
    """The chosen MTL checkpoint's primary metric per task on the truth set."""
    from components.data.encoders import encoder_dir, fitted_features
    from components.jobs.layout import MTL_DIR
    from components.models import build_model
    from components.tasks import build_tasks
    from components.training.checkpoints import load_checkpoint
    from components.training.evaluation import evaluate

    split, fitted, tasks = _truth_split(params, root), encoder_dir(root / params.data.dir), build_tasks(params.tasks)
    model = build_model(params, tasks, fitted, fitted_features(params, fitted))
    model.load_state_dict(load_checkpoint(root / MTL_DIR / checkpoint)["model"])
    return evaluate(model, tasks, split, 4096, model_device())


def model_device():
    """The truth is scored on CPU, wherever the study trained."""
    import torch

    return torch.device("cpu")


def wilson(hits: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a rate (Wilson 1927): sound at 0 or n hits, unlike the normal one.

    >>> [round(bound, 3) for bound in wilson(0, 10)]
    [0.0, 0.278]
    """
    if total == 0:
        return (math.nan, math.nan)
    rate = hits / total
    centre = (rate + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(rate * (1 - rate) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


def rates(runs: list[dict], rule: str) -> dict:
    """Counts and Wilson intervals of false acceptance, false rejection and inconclusive."""
    judged = [r[rule] for r in runs]
    false_accept = sum(j["verdict"] == "accepted" and not j["truth_passes"] for j in judged)
    false_reject = sum(j["verdict"] == "rejected" and j["truth_passes"] for j in judged)
    inconclusive = sum(j["verdict"] == "inconclusive" for j in judged)
    return {
        "runs": len(judged),
        "accepted": sum(j["verdict"] == "accepted" for j in judged),
        "rejected": sum(j["verdict"] == "rejected" for j in judged),
        "false_accept": false_accept,
        "false_reject": false_reject,
        "inconclusive": inconclusive,
        "truth_passes": sum(j["truth_passes"] for j in judged),
    }


def _cell(hits: int, total: int) -> str:
    if total == 0:
        return "0/0 (no such run)"
    low, high = wilson(hits, total)
    return f"{hits}/{total} [{low:.0%}, {high:.0%}]"


def write(rows: list[dict]) -> None:
    """``reports/benchmarks/gate_calibration.{json,md}``: per rule, correlation and validation size."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "gate_calibration.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| sharing | correlation | val rows | rule | false acceptance | false rejection | inconclusive "
        "| truth Δm (mean ± sd) | seconds a run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups = sorted({(r["sharing"], r["correlation"], r["val_rows"]) for r in rows}, key=lambda g: (g[0], -g[1], g[2]))
    for sharing, correlation, val_rows in groups:
        runs = [r for r in rows if (r["sharing"], r["correlation"], r["val_rows"]) == (sharing, correlation, val_rows)]
        for rule in RULES:
            found = rates(runs, rule)
            truth = [r[rule]["truth_delta_m"] for r in runs]
            spread = statistics.stdev(truth) if len(truth) > 1 else 0.0
            lines.append(
                f"| {sharing} | {correlation} | {val_rows} | `{rule}` "
                f"| {_cell(found['false_accept'], found['runs'] - found['truth_passes'])} "
                f"| {_cell(found['false_reject'], found['truth_passes'])} "
                f"| {_cell(found['inconclusive'], found['runs'])} "
                f"| {statistics.fmean(truth):+.2%} ± {spread:.2%} "
                f"| {statistics.fmean(r['seconds'] for r in runs):.0f} |"
            )
    lines.append("")
    for rule in RULES:
        found = rates(rows, rule)
        lines.append(
            f"- `{rule}` over all {found['runs']} runs: false acceptance "
            f"{_cell(found['false_accept'], found['runs'] - found['truth_passes'])} of the runs whose truth fails, "
            f"false rejection {_cell(found['false_reject'], found['truth_passes'])} of those whose truth passes, "
            f"inconclusive {_cell(found['inconclusive'], found['runs'])}"
        )
    (OUT / "gate_calibration.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
