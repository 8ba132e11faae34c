"""What the serving feature cache saves: two calls on the same rows asking for different tasks.

Loads the champion the demo registered (``make demo`` first) and times, on the same test
rows, round by round in one process: a call for ``left`` then one for ``sum`` with the
cache off, and the same two calls with the cache on (emptied each round, so the first call
misses and the second hits). Prints medians and ratios.

    $ python benchmarks/serving_cache.py --rows 1000 --rounds 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    """Interleaves cached and uncached call pairs; prints medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    options = parser.parse_args()
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{REPO / 'mlflow.db'}")
    import mlflow
    import pandas as pd
    import torch

    from components.config import load_params
    from components.io.feature_cache import FeatureCache

    params = load_params(REPO / "params.yaml")
    model = mlflow.pyfunc.load_model(f"models:/{params.registry.model_name}@champion")
    python = model.unwrap_python_model()
    frame = pd.read_parquet(REPO / params.data.dir / "test.parquet").head(options.rows)
    rows = frame.filter(like="px_").astype("float64")
    limit = int(params.serving.feature_cache_mb * 2**20)

    def timed(tasks: list[str]) -> float:
        started = time.perf_counter()
        model.predict(rows, params={"tasks": tasks})
        return time.perf_counter() - started

    samples: dict[str, list[float]] = {"off: left": [], "off: sum": [], "on: left (miss)": [], "on: sum (hit)": []}
    for round_ in range(options.rounds + 1):  # the first round warms up
        python.feature_cache = None
        off = timed(["left"]), timed(["sum"])
        python.feature_cache = FeatureCache(limit)
        on = timed(["left"]), timed(["sum"])
        if round_:
            for key, value in zip(samples, (*off, *on)):
                samples[key].append(value)
    median = {key: statistics.median(values) for key, values in samples.items()}
    print(f"{len(rows)} rows, {options.rounds} rounds, {torch.get_num_threads()} threads, cache {limit >> 20} MiB")
    for key, value in median.items():
        print(f"  {key:<17} {value * 1000:8.1f} ms")
    pair_off = median["off: left"] + median["off: sum"]
    pair_on = median["on: left (miss)"] + median["on: sum (hit)"]
    print(f"a hit call costs {median['on: sum (hit)'] / median['off: sum']:.2f}x an uncached one")
    print(f"a miss call costs {median['on: left (miss)'] / median['off: left']:.2f}x an uncached one (hashing, copies)")
    print(f"the two calls together: {pair_on / pair_off:.2f}x uncached")
    print(f"held: {python.feature_cache.stats() if python.feature_cache else None}")


if __name__ == "__main__":
    main()
