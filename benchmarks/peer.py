"""This project's training step against its peers on the same backbone, data and batch:
LibMTL 1.1.5 (EW and PCGrad, its own step: ``model.backward(losses)``) and torchjd's own
``mtl_backward`` + ``jac_to_grad`` (PCGrad and UPGrad), beside this project's trainer
(``sum``, ``pcgrad`` and ``upgrad`` on parameters, and on features).

Every variant starts from the same initial weights (copies of one model: the default CNN
with T classification heads), steps AdamW on the same random batch, round by round in one
process; the table shows each one's median ratio to a single-task step of this project.

LibMTL 1.1.5 on torch 2 needs two things handled here, not in the product: its shared
gradients are zeroed with ``set_to_none=True`` by torch 2's default, after which its
``_reset_grad`` writes into ``None``, so the composed model zeroes them to 0 instead (as
torch 1 did); and it imports ``torchvision`` for a ResNet this benchmark does not use, so
an empty stand-in module satisfies that import (``benchmarks/requirements.txt`` says why
torchvision itself is not installed).

    $ python benchmarks/peer.py --tasks 4 --batch 256 --rounds 15
"""

from __future__ import annotations

import argparse
import copy
import sys
import types
from collections.abc import Callable

from common import REPO, interleaved, machine, markdown_table, write_report

STAND_INS = ("torchvision", "torchvision.models", "torchvision.models.utils")


def import_libmtl() -> types.ModuleType:
    """LibMTL, its ``model/resnet.py`` imports served by empty stand-ins that are removed
    again at once (torchmetrics probes for torchvision and must keep finding none)."""
    for name in STAND_INS:
        sys.modules[name] = types.ModuleType(name)
    sys.modules["torchvision.models.utils"].load_state_dict_from_url = None  # type: ignore[attr-defined]
    try:
        import LibMTL
    finally:
        for name in STAND_INS:
            del sys.modules[name]
    return LibMTL


def main() -> None:
    """Times every variant round by round; writes the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=2, help="steps per variant per round")
    options = parser.parse_args()
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torchjd import aggregation
    from torchjd.autojac import jac_to_grad, mtl_backward

    from components.config import Params, load_params
    from components.models import build_model
    from components.tasks import build_tasks
    from components.training.loader import TensorSplit
    from components.training.loop import make_trainer, train_step

    libmtl_package = import_libmtl()
    HPS = libmtl_package.architecture.HPS
    EW, PCGrad = libmtl_package.weighting.EW, libmtl_package.weighting.PCGrad
    about = machine()
    defaults = load_params(REPO / "params.yaml").model_dump(mode="json")
    size = defaults["data"]["canvas_size"]
    inputs = torch.rand(options.batch, 1, size, size)

    def params_for(count: int, **training: object) -> Params:
        raw = {**defaults, "tasks": {}}
        raw["training"] = {**defaults["training"], "batch_size": options.batch, "gradient_stats_every": 0, **training}
        for index in range(count):
            raw["tasks"][f"t{index}"] = {"type": "classification", "label": f"t{index}", "num_classes": 10}
        return Params.model_validate(raw)

    reference = params_for(options.tasks)
    tasks = build_tasks(reference.tasks)
    names = list(tasks)
    targets = [torch.randint(0, 10, (options.batch,)) for _ in names]
    torch.manual_seed(0)
    initial = build_model(reference, tasks)  # every variant starts from copies of these weights

    def optimizer_for(parameters) -> torch.optim.Optimizer:
        return torch.optim.AdamW(parameters, lr=reference.training.lr, weight_decay=reference.training.weight_decay)

    def ours(count: int, **training: object) -> Callable[[], None]:
        params = params_for(count, **training)
        own = build_tasks(params.tasks)
        model = copy.deepcopy(initial) if count == options.tasks else build_model(params, own)
        trainer = make_trainer(model, own, TensorSplit(inputs, dict(zip(own, targets))), params.training)
        trainer.weighting.start_epoch(1)
        counter = iter(range(1, 10**9))
        batch_targets = targets[:count]

        def run() -> None:
            for _ in range(options.steps):
                train_step(trainer, inputs, batch_targets, epoch=1, step=next(counter))

        return run

    def libmtl(weighting: type) -> Callable[[], None]:
        backbone = copy.deepcopy(initial.backbone)
        heads = nn.ModuleDict({name: copy.deepcopy(initial.heads[name]) for name in names})

        class Composed(HPS, weighting):  # type: ignore[misc,valid-type]  # as LibMTL's Trainer composes architecture and weighting
            def __init__(self) -> None:
                super().__init__(names, lambda: backbone, heads, False, False, torch.device("cpu"))
                self.init_param()

            def zero_grad_share_params(self) -> None:
                self.encoder.zero_grad(set_to_none=False)

        model = Composed()
        model.train()
        optimizer = optimizer_for(model.parameters())

        def run() -> None:
            for _ in range(options.steps):
                optimizer.zero_grad(set_to_none=False)
                outputs = model(inputs)
                losses = torch.stack([F.cross_entropy(outputs[n], t) for n, t in zip(names, targets)])
                model.backward(losses)
                optimizer.step()

        return run

    def torchjd_own(aggregator: aggregation.Aggregator) -> Callable[[], None]:
        model = copy.deepcopy(initial)
        model.train()
        optimizer = optimizer_for(model.parameters())
        shared = model.shared_parameters()

        def run() -> None:
            for _ in range(options.steps):
                optimizer.zero_grad()
                features = model.backbone(inputs)  # type: ignore[operator]
                losses = [F.cross_entropy(model.heads[n](features), t) for n, t in zip(names, targets)]
                mtl_backward(losses, features=features)
                jac_to_grad(shared, aggregator)
                optimizer.step()

        return run

    variants = {
        "this project: single task": ours(1),
        "this project: sum": ours(options.tasks),
        "this project: pcgrad on parameters": ours(options.tasks, gradient="pcgrad"),
        "this project: upgrad on parameters": ours(options.tasks, gradient="upgrad"),
        "this project: pcgrad on features": ours(options.tasks, gradient={"name": "pcgrad", "compare_on": "features"}),
        "this project: upgrad on features": ours(options.tasks, gradient={"name": "upgrad", "compare_on": "features"}),
        "LibMTL 1.1.5: EW": libmtl(EW),
        "LibMTL 1.1.5: PCGrad": libmtl(PCGrad),
        "torchjd mtl_backward: PCGrad": torchjd_own(aggregation.PCGrad()),
        "torchjd mtl_backward: UPGrad": torchjd_own(aggregation.UPGrad()),
    }
    found = interleaved(variants, "this project: single task", options.rounds)
    rows = [
        [
            label,
            f"{r['seconds'] * 1000 / options.steps:.0f} ms",
            f"{r['ratio']:.2f}×",
            f"{r['ratio_low']:.2f}–{r['ratio_high']:.2f}",
        ]
        for label, r in found.items()
    ]
    pcgrad = found["this project: pcgrad on parameters"]["ratio"] / found["LibMTL 1.1.5: PCGrad"]["ratio"]
    ew = found["this project: sum"]["ratio"] / found["LibMTL 1.1.5: EW"]["ratio"]
    table = markdown_table(["variant", "step (median)", "vs single task", "range"], rows) + (
        f"\n\nT = {options.tasks}, batch {options.batch}, {options.rounds} rounds of {options.steps} steps. "
        f"Against LibMTL in the same run: our PCGrad step takes {pcgrad:.2f}× LibMTL's PCGrad step, "
        f"our sum {ew:.2f}× LibMTL's EW."
    )
    write_report(
        "peer",
        f"Against LibMTL and torchjd's own loop, T = {options.tasks}",
        f"python benchmarks/peer.py --tasks {options.tasks} --batch {options.batch} --rounds {options.rounds}",
        about,
        {"tasks": options.tasks, "batch": options.batch, "results": found},
        table,
    )


if __name__ == "__main__":
    main()
