"""The input pipeline against what training consumes: rows per second from the stored
splits to model-ready tensors (once per stage), from those tensors to batches (every
step), and through a training step of the default MTL model (``sum``).

Each round draws ``--batches`` batches from the training loader alone, then trains on as
many; the ratio of their rows per second says how far input stays ahead of training.
Needs a prepared ``data.dir`` under ``--root`` (``make demo``, or ``mtl prepare``).

    $ python benchmarks/input_pipeline.py --root . --rounds 15
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from common import REPO, machine, markdown_table, write_report


def main() -> None:
    """Times loading, batching and training round by round; writes the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO, help="a project with prepared splits")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batches", type=int, default=10)
    options = parser.parse_args()
    import torch

    from components.config import load_params
    from components.jobs.inputs import load_tensor_splits
    from components.jobs.trainings import seeded_model
    from components.tasks import build_tasks
    from components.training.loader import make_loader
    from components.training.loop import make_trainer, train_step

    about = machine()
    root = options.root.resolve()
    params = load_params(root / "params.yaml")
    params = params.model_copy(update={"training": params.training.model_copy(update={"gradient_stats_every": 0})})
    tasks = build_tasks(params.tasks)
    started = time.perf_counter()
    split = load_tensor_splits(params, root, ("train",))["train"]
    load_seconds = time.perf_counter() - started
    rows = len(split.inputs)
    trainer = make_trainer(seeded_model(params, tasks, root), tasks, split, params.training)
    batch = params.training.batch_size

    def batches() -> list[list[torch.Tensor]]:
        loader = make_loader(split, list(tasks), batch, True, params.seed)
        drawn = []
        for index, (inputs, *targets) in enumerate(loader):
            drawn.append([inputs, *targets])
            if index + 1 == options.batches:
                break
        return drawn

    batches()  # warm-up
    loading, training = [], []
    for _ in range(options.rounds):
        started = time.perf_counter()
        drawn = batches()
        loading.append(options.batches * batch / (time.perf_counter() - started))
        started = time.perf_counter()
        for step, (inputs, *targets) in enumerate(drawn, start=1):
            train_step(trainer, inputs, targets, epoch=1, step=step)
        training.append(options.batches * batch / (time.perf_counter() - started))
    ratios = [a / b for a, b in zip(loading, training)]
    epoch_seconds = rows / statistics.median(training)
    result = {
        "rows": rows,
        "load_rows_per_second": rows / load_seconds,
        "batching_rows_per_second": statistics.median(loading),
        "training_rows_per_second": statistics.median(training),
        "batching_over_training": statistics.median(ratios),
        "load_share_of_one_epoch": load_seconds / epoch_seconds,
    }
    table = markdown_table(
        ["stage", "rows/s (median)", "against training"],
        [
            [
                "stored split → tensors (once per stage)",
                f"{result['load_rows_per_second']:,.0f}",
                f"{result['load_share_of_one_epoch']:.1%} of one epoch's training time",
            ],
            [
                "tensors → batches (every step)",
                f"{result['batching_rows_per_second']:,.0f}",
                f"{result['batching_over_training']:.0f}× ahead (target ≥ 5×)",
            ],
            [f"training step (MTL sum, batch {batch})", f"{result['training_rows_per_second']:,.0f}", "1×"],
        ],
    )
    write_report(
        "input",
        "Input pipeline against training",
        f"python benchmarks/input_pipeline.py --rounds {options.rounds}",
        about,
        result,
        table,
    )


if __name__ == "__main__":
    main()
