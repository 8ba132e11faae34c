"""One training step of the default CNN and batch, for every way of training T tasks
together, against one single-task step.

Variants, at T = 2, 4 and 8 classification heads on one backbone (``params.yaml``'s CNN,
batch and optimizer; random canvases and labels: a step's cost does not depend on them):
the single-task baseline; MTL ``sum``; every loss weighting that costs more than a
constant (uncertainty, dwa, famo, gradnorm); every gradient method on the shared
parameters (the exact method: T backward passes); and every Gramian-based one with
``training.gradient.compare_on: features`` (MGDA-UB: one backward pass). More price the settings:
the single-task step with ``model.cnn.channels_last: true`` (NHWC), Nash-MTL with
``training.gradient: {name: nash_mtl, update_every: 10}``, and with ``--compile`` the sum and PCGrad steps
under ``training.compile``. Gradient agreement is
off: ``benchmarks/gradient_agreement.py`` prices it. Each round steps every variant in
turn; the table shows the median ratio to the single-task step of the same round.

    $ python benchmarks/step.py --rounds 15
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from common import REPO, interleaved, machine, markdown_table, write_report

WEIGHTINGS = ("uncertainty", "dwa", "famo", "gradnorm")
#: issue targets on a 2-core CPU at T = 4 (ratio to a single-task step)
TARGETS = {"sum": 1.05, "parameters": 2.5, "features": 1.15}


def main() -> None:
    """Steps every variant at every task count, round by round; writes the ratio table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=2, help="steps per variant per round")
    parser.add_argument("--tasks", default="2,4,8", help="task counts, comma-separated")
    parser.add_argument("--compile", action="store_true", help="add sum and PCGrad under training.compile")
    options = parser.parse_args()
    import torch

    from components.config import GRADIENT_METHODS, GRAMIAN_METHODS, Params, load_params
    from components.models import build_model
    from components.tasks import build_tasks
    from components.training.loader import TensorSplit
    from components.training.loop import make_trainer, train_step

    about = machine()
    defaults = load_params(REPO / "params.yaml").model_dump(mode="json")
    batch, size = defaults["training"]["batch_size"], defaults["data"]["canvas_size"]
    inputs = torch.rand(batch, 1, size, size)

    def stepper(count: int, channels_last: bool = False, **training: object) -> Callable[[], None]:
        """``options.steps`` steps of a model with ``count`` classification tasks."""
        raw = {**defaults, "tasks": {}, "training": {**defaults["training"], "gradient_stats_every": 0, **training}}
        raw["model"] = {**defaults["model"], "cnn": {**defaults["model"]["cnn"], "channels_last": channels_last}}
        for index in range(count):
            raw["tasks"][f"t{index}"] = {"type": "classification", "label": f"t{index}", "num_classes": 10}
        params = Params.model_validate(raw)
        tasks = build_tasks(params.tasks)
        targets = [torch.randint(0, 10, (batch,)) for _ in tasks]
        torch.manual_seed(0)
        trainer = make_trainer(
            build_model(params, tasks), tasks, TensorSplit(inputs, dict(zip(tasks, targets))), params.training
        )
        trainer.weighting.start_epoch(1)
        counter = iter(range(1, 10**9))

        def run() -> None:
            for _ in range(options.steps):
                train_step(trainer, inputs, targets, epoch=1, step=next(counter))

        return run

    counts = [int(t) for t in options.tasks.split(",")]
    labels: list[str] = []
    results: dict[int, dict[str, dict[str, float]]] = {}
    for count in counts:
        variants = {"single-task": stepper(1), "single-task, channels-last": stepper(1, channels_last=True)}
        variants["sum"] = stepper(count)
        if options.compile:
            variants |= {"sum, compiled": stepper(count, compile=True)}
            variants |= {"pcgrad on parameters, compiled": stepper(count, gradient="pcgrad", compile=True)}
        variants |= {f"{w} (sum)": stepper(count, loss_weighting=w) for w in WEIGHTINGS}
        variants |= {f"{g} on parameters": stepper(count, gradient=g) for g in GRADIENT_METHODS if g != "sum"}
        variants["nash_mtl on parameters, solved every 10th step"] = stepper(
            count, gradient={"name": "nash_mtl", "update_every": 10}
        )
        on_features = {g: {"name": g, "compare_on": "features"} for g in GRAMIAN_METHODS}
        variants |= {f"{g} on features": stepper(count, gradient=settings) for g, settings in on_features.items()}
        print(f"T = {count}: {len(variants)} variants x {options.rounds} rounds ...", flush=True)
        results[count] = interleaved(variants, "single-task", options.rounds)
        labels = list(variants)

    def target(label: str) -> str:
        kind = "sum" if label == "sum" else label.rsplit(" ", 1)[-1] if " on " in label else None
        return f"≤ {TARGETS[kind]:.2f}×" if kind in TARGETS else ""

    def cell(label: str, count: int) -> str:
        found = results[count][label]
        return f"{found['ratio']:.2f}× ({found['ratio_low']:.2f}–{found['ratio_high']:.2f})"

    headers = ["variant", *(f"T = {c}" for c in counts), "target at T = 4"]
    rows = [[label, *(cell(label, c) for c in counts), target(label)] for label in labels]
    single = {c: f"{results[c]['single-task']['seconds'] * 1000 / options.steps:.0f} ms" for c in counts}
    table = markdown_table(headers, rows) + (
        f"\n\nRatio to one single-task step in the same round: median over {options.rounds} rounds (range). "
        f"A single-task step took {', '.join(single.values())} (median) at batch {batch}."
    )
    write_report(
        "step",
        "Training step cost, relative to a single-task step",
        f"python benchmarks/step.py --rounds {options.rounds} --tasks {options.tasks}"
        + (" --compile" if options.compile else ""),
        about,
        {"batch_size": batch, "rounds": options.rounds, "steps_per_round": options.steps, "results": results},
        table,
    )


if __name__ == "__main__":
    main()
