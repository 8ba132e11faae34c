"""Serving cost: the MTL pyfunc answering one task, all tasks, and against the T
single-task baselines answering the same rows, with the feature cache missing and hitting.

Builds the pyfuncs in this process from a finished demo's checkpoints under ``--root``
(the MTL checkpoint ``select`` chose; each task's best baseline), exactly as
``load_context`` builds a registered version, and calls their ``predict`` on the same test
rows, round by round. The reference is the MTL model answering one task with the cache off.

    $ python benchmarks/serve.py --root . --rows 1000 --rounds 15
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from types import SimpleNamespace

from common import REPO, interleaved, machine, markdown_table, write_report


def main() -> None:
    """Times every variant at one row and at ``--rows`` rows; writes the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO, help="a project where the demo ran")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:  # the pyfuncs' model files, read once by load_context
        measure(options, Path(scratch))


def measure(options: argparse.Namespace, scratch: Path) -> None:
    """Builds the pyfuncs under ``scratch``, times them, writes the report."""
    import pandas as pd

    from components.config import load_params
    from components.data.encoders import encoder_dir
    from components.io.feature_cache import FeatureCache
    from components.io.serving import MultiTaskPyfunc, write_model_files
    from components.jobs.layout import MTL_DIR, baseline_dir, baseline_params, read_json
    from components.training.checkpoints import load_checkpoint

    about = machine()
    root = options.root.resolve()
    params = load_params(root / "params.yaml")
    fitted = encoder_dir(root / params.data.dir)

    def pyfunc(checkpoint: Path, model_params, name: str) -> MultiTaskPyfunc:
        model = MultiTaskPyfunc()
        files = write_model_files(load_checkpoint(checkpoint), model_params, scratch / name, fitted)
        model.load_context(SimpleNamespace(artifacts=files))
        model.feature_cache = None
        return model

    chosen = read_json(root / "reports/selection.json")["checkpoint"]
    mtl = pyfunc(root / MTL_DIR / chosen, params, "mtl")
    single = baseline_params(params)
    baselines = [
        pyfunc(
            baseline_dir(root, params, name, params.seed) / "best.pt",
            single.model_copy(update={"tasks": {name: params.tasks[name]}}),
            name,
        )
        for name in params.tasks
    ]
    cached = pyfunc(root / MTL_DIR / chosen, params, "cached")
    limit = int(params.serving.feature_cache_mb * 2**20)
    first, second = list(params.tasks)[:2]
    test = pd.read_parquet(root / params.data.dir / "test.parquet")
    columns = [c for c in test.columns if c.startswith("px_")]
    payload: dict[str, object] = {"tasks": list(params.tasks), "results": {}}
    rows_out = []
    for rows in (1, options.rows):
        frame = test[columns].head(rows).astype("float64")

        def miss(frame=frame) -> None:
            cached.feature_cache = FeatureCache(limit)  # empty: every row misses
            cached.predict(None, frame, {"tasks": [first]})

        variants = {
            f"MTL, one task ({first})": lambda frame=frame: mtl.predict(None, frame, {"tasks": [first]}),
            f"MTL, all {len(params.tasks)} tasks": lambda frame=frame: mtl.predict(None, frame),
            f"{len(baselines)} single-task models": lambda frame=frame: [b.predict(None, frame) for b in baselines],
            f"cache on, {first} (miss)": miss,
            f"cache on, then {second} (hit)": lambda frame=frame: cached.predict(None, frame, {"tasks": [second]}),
        }
        found = interleaved(variants, f"MTL, one task ({first})", options.rounds)
        payload["results"][rows] = found  # type: ignore[index]
        for label, result in found.items():
            rows_out.append(
                [
                    rows,
                    label,
                    f"{result['seconds'] * 1000:.1f} ms",
                    f"{rows / result['seconds']:,.0f}",
                    f"{result['ratio']:.2f}×",
                ]
            )
    table = markdown_table(["rows per call", "variant", "latency (median)", "rows/s", "vs one task"], rows_out)
    write_report(
        "serve",
        "Serving: one pyfunc for every task against one model per task",
        f"python benchmarks/serve.py --rows {options.rows} --rounds {options.rounds}",
        about,
        payload,
        table,
    )


if __name__ == "__main__":
    main()
