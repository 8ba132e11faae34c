"""What measuring gradient agreement costs a ``gradient: sum`` training step.

On a measured step the T task gradients on the backbone are computed before the usual
backward pass. Steps with and without the measurement are interleaved round by round in
one process on the default CNN, tasks and batch (random canvases: the cost does not depend
on the pixels); the script prints the median ratio and what it means at
``training.gradient_stats_every`` = k, where one step in k pays it.

    $ python benchmarks/gradient_agreement.py --rounds 15
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    """Interleaves plain and measured steps; prints the median ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=5, help="steps per variant per round")
    options = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import torch

    from components.config import load_params
    from components.models import build_model
    from components.tasks import build_tasks
    from components.training.agreement import GradientAgreement
    from components.training.loader import TensorSplit
    from components.training.loop import make_trainer, train_step

    params = load_params(REPO / "params.yaml")
    tasks = build_tasks(params.tasks)
    batch = params.training.batch_size
    size = params.data.canvas_size
    inputs = torch.rand(batch, 1, size, size)
    targets = [torch.randint(0, 10, (batch,)), torch.randint(0, 10, (batch,)), torch.randint(0, 19, (batch,)).float()]
    split = TensorSplit(inputs, dict(zip(tasks, targets)))
    torch.manual_seed(0)
    trainer = make_trainer(build_model(params, tasks), tasks, split, params.training)
    measuring = GradientAgreement(list(tasks), every=1)

    def steps(agreement: GradientAgreement | None) -> float:
        trainer.agreement = agreement
        started = time.perf_counter()
        for step in range(options.steps):
            train_step(trainer, inputs, targets, epoch=1, step=step + 1)
        return (time.perf_counter() - started) / options.steps

    steps(None), steps(measuring)  # warm-up
    ratios = []
    for _ in range(options.rounds):
        plain = steps(None)
        measured = steps(measuring)
        ratios.append(measured / plain)
    ratio = statistics.median(ratios)
    print(f"device cpu, {torch.get_num_threads()} threads, batch {batch}, T={len(tasks)}, {options.rounds} rounds")
    print(f"a measured sum step costs {ratio:.2f}x a plain one (median; range {min(ratios):.2f}-{max(ratios):.2f})")
    for every in (1, 10, 50):
        print(f"  gradient_stats_every {every:>3}: {1 + (ratio - 1) / every:.3f}x a plain step on average")


if __name__ == "__main__":
    main()
