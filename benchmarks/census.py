"""Census-income (KDD): single-task, hard sharing, MMoE and PLE, and what each stage costs.

The MMoE paper's comparison (Ma et al. 2018, §6.3, task group 1: income > $50K and
"never married") on ``examples/census/params.yaml``, through the pipeline's own stages,
each ``mtl <stage>`` in a fresh process of a scratch project:

- **comparison**: ``training.seeds`` seeds (3 by default) of the single-task baselines and
  of the MTL model under each ``model.sharing``, every training stopped by early stopping,
  all untuned (``tuning.trials: 0`` on both sides: the same effort). Reported: test AUC
  mean ± std over seeds per task, and the gate's verdict for each sharing.
- **scale**: each stage's wall time and peak memory (the process's max RSS) at a cut of the
  rows (``--small-rows`` per file) and at all 299,285, one seed, hard sharing: what grows
  with the rows.

    $ python benchmarks/census.py                      # ~15 min on 2 cores
    $ python benchmarks/census.py --quick --seeds 2 --small-rows 2500   # a smoke run, ~4 min

Writes ``reports/benchmarks/census.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from common import REPO, machine, markdown_table, write_report

EXAMPLE = REPO / "examples" / "census" / "params.yaml"
STAGES = ("prepare", "validate", "baselines", "train-mtl", "select", "register")
#: runs a stage and prints its peak RSS last, whatever the stage's exit
MEASURED = (
    "import resource, runpy, sys\n"
    "sys.argv = ['mtl', sys.argv[1]]\n"
    "try:\n    runpy.run_module('components.cli', run_name='__main__')\n"
    "finally:\n    print('max_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
)


def stage(root: Path, name: str) -> dict[str, float]:
    """``mtl <name>`` in ``root``: its wall seconds and peak memory; a failure stops the study."""
    import time

    env = os.environ | {
        "PYTHONPATH": str(REPO),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "MLFLOW_REGISTRY_URI": f"sqlite:///{root / 'mlflow.db'}",
    }
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURED, name], cwd=root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"mtl {name} failed in {root}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    rss = int(done.stderr.rsplit("max_rss_kb", 1)[1].split()[0])
    return {"seconds": round(seconds, 1), "peak_mb": round(rss / 1024)}


def project(work: Path, name: str, **changes: object) -> tuple[Path, dict]:
    """A scratch project on the example's parameters with ``changes`` (dotted keys)."""
    root = work / name
    root.mkdir(parents=True)
    raw = yaml.safe_load(EXAMPLE.read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        section = raw
        for parent in parents:
            section = section[parent]
        section[key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return root, raw


def set_sharing(root: Path, raw: dict, sharing: str) -> None:
    """``model.sharing`` of the scratch project's params.yaml."""
    raw["model"]["sharing"] = sharing
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def scale(work: Path, rows: int | None) -> dict[str, dict[str, float]]:
    """Every stage's cost with ``rows`` per file (None: all), one seed, hard sharing."""
    root, _ = project(work, f"scale-{rows or 'all'}", **{"data.max_rows": rows, "training.seeds": 1})
    return {name: stage(root, name) for name in STAGES}


def comparison(work: Path, seeds: int, sharings: list[str], rows: int | None) -> dict:
    """Baselines once; then each sharing's MTL trainings and select against them."""
    root, raw = project(work, "comparison", **{"training.seeds": seeds, "data.max_rows": rows})
    costs = {name: stage(root, name) for name in ("prepare", "validate", "baselines")}
    found: dict = {"costs": costs, "sharings": {}}
    for sharing in sharings:
        set_sharing(root, raw, sharing)
        trained, selected = stage(root, "train-mtl"), stage(root, "select")
        report = json.loads((root / "reports" / "selection.json").read_text())
        per_seed = report["seeds"] or [_one_seed(report)]
        found["sharings"][sharing] = {
            "verdict": report["verdict"],
            "delta_m": report["delta_m"],
            "train_seconds": trained["seconds"],
            "select_seconds": selected["seconds"],
            "test": {task: [s["mtl_test"][task] for s in per_seed] for task in report["tasks"]},
        }
        found["single_task"] = {task: [s["baseline_test"][task] for s in per_seed] for task in report["tasks"]}
        found["endings"] = found.get("endings", {}) | {sharing: report["endings"]}
    return found


def _one_seed(report: dict) -> dict:
    tasks = report["tasks"]
    return {
        "mtl_test": {t: v["test"] for t, v in tasks.items()},
        "baseline_test": {t: v["baseline_test"] for t, v in tasks.items()},
    }


def spread(values: list[float]) -> str:
    """Mean ± sample std over seeds (the mean alone for one seed)."""
    mean = statistics.fmean(values)
    return f"{mean:.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{mean:.4f}"


def tables(found: dict) -> str:
    """The comparison and the stage costs, as markdown."""
    compared = found["comparison"]
    tasks = list(compared["single_task"])
    rows = [["single-task", *(spread(compared["single_task"][t]) for t in tasks), "(the baselines)", "", ""]]
    for sharing, entry in compared["sharings"].items():
        rows.append(
            [
                sharing,
                *(spread(entry["test"][t]) for t in tasks),
                entry["verdict"],
                f"{entry['delta_m']:+.2%}",
                f"{entry['train_seconds']:.0f} s",
            ]
        )
    headers = ["model", *(f"{t} test AUC" for t in tasks), "gate verdict (val)", "Δm (val)", "MTL training"]
    cost_rows = [
        [name, *(f"{found['scale'][size][name]['seconds']:.0f} s / {found['scale'][size][name]['peak_mb']} MB"
                 for size in found["scale"])]
        for name in STAGES
    ]  # fmt: skip
    sizes = [f"{size} rows per file" if size != "all" else "all 299,285 rows" for size in found["scale"]]
    endings = compared["endings"]  # per sharing, how each training of the comparison ended
    labels = list(dict.fromkeys(label for found_ in endings.values() for label in found_))
    ending_rows = [[label, *(endings[sharing].get(label, "") for sharing in endings)] for label in labels]
    return (
        f"{markdown_table(headers, rows)}\n\n"
        f"Seeds: {found['seeds']} (mean ± std over seeds). Baselines: {found['comparison']['costs']['baselines']}.\n\n"
        f"How each training ended (early stopping), by sharing:\n\n"
        f"{markdown_table(['training', *endings], ending_rows)}\n\n"
        f"{markdown_table(['stage (time / peak memory)', *sizes], cost_rows)}"
    )


def main() -> None:
    """Runs the scale and comparison studies and writes the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--small-rows", type=int, default=30_000, help="data.max_rows of the smaller scale run")
    parser.add_argument("--sharings", nargs="+", default=["hard", "mmoe", "ple"])
    parser.add_argument("--quick", action="store_true", help="3,000 rows per file everywhere: a smoke run")
    options = parser.parse_args()
    large = 3000 if options.quick else None
    about = machine()
    work = Path(tempfile.mkdtemp(prefix="census-benchmark-"))
    try:
        found = {
            "seeds": options.seeds,
            "scale": {str(rows or "all"): scale(work, rows) for rows in (options.small_rows, large)},
            "comparison": comparison(work, options.seeds, options.sharings, large),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = "python benchmarks/census.py " + " ".join(sys.argv[1:])
    write_report("census", "Census-income: single-task vs MTL sharing, and stage costs", command, about, found,
                 tables(found))  # fmt: skip


if __name__ == "__main__":
    main()
