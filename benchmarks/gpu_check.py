"""What ``benchmarks/gpu_check.sh`` runs: every check of the CUDA path, in order, each
reported as passed or failed with its time, then a summary; exit 1 if any failed.

1. the device (name, memory, capability) and the torch and CUDA versions;
2. the CUDA-only tests (bf16 autocast on and off through a real training) and
   ``training.compile``'s test (compiled steps match eager ones, also for PCGrad);
3. one epoch of the default demo configuration on CUDA with bf16 autocast and without,
   from the same seed: the validation metrics must agree within 0.02 accuracy and 5%
   relative MAE (bf16 rounds; it must not change what the model learns);
4. the step benchmark (``benchmarks/step.py --compile``) with ``torch.cuda.synchronize()``
   timings: every method, the CNN in NCHW against channels-last, and compiled steps;
5. the text Transformer backbone's model FLOP utilisation: a training step's FLOPs
   (``torch.utils.flop_counter``) per second, eager and compiled, against the FLOP/s of a
   large bf16 matrix product on the same device (what the device reaches, not its data sheet);
6. one epoch of the scenes example (image files, an HF ResNet with an FPN decoder, four
   vision tasks) with bf16 and channels-last, eager and compiled: images per second of each;
7. a data-parallel training through torchrun on one GPU over NCCL.

Without a CUDA device it prints why and exits 0.

    $ bash benchmarks/gpu_check.sh
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def describe_device() -> None:
    """Prints the device and the versions the rest runs on."""
    import torch

    properties = torch.cuda.get_device_properties(0)
    print(
        f"device: {properties.name}, {properties.total_memory / 2**30:.0f} GiB, capability "
        f"{properties.major}.{properties.minor}, {torch.cuda.device_count()} visible · torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}, bf16 supported: {torch.cuda.is_bf16_supported()}"
    )


def command(*arguments: str) -> Callable[[], None]:
    """A check that runs ``arguments`` and passes when they exit 0."""

    def run() -> None:
        subprocess.run(arguments, cwd=REPO, check=True)

    return run


def bf16_matches_fp32(device: str = "cuda") -> None:
    """One epoch of the default configuration with and without bf16 autocast, same seed
    (``device`` cpu runs the same code with autocast off, to check the check)."""
    sys.path.insert(0, str(REPO))
    from components.config import load_params
    from components.jobs import prepare
    from components.jobs.inputs import load_tensor_splits
    from components.jobs.trainings import seeded_model
    from components.tasks import build_tasks
    from components.training.loop import train

    defaults = load_params(REPO / "params.yaml")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        prepare.run(defaults, root)
        found = {}
        for bf16 in (True, False):
            training = defaults.training.model_copy(update={"device": device, "bf16": bf16, "max_epochs": 1})
            params = defaults.model_copy(update={"training": training})
            tasks = build_tasks(params.tasks)
            splits = load_tensor_splits(params, root, ("train", "val"))
            history = train(
                seeded_model(params, tasks, root),
                tasks,
                splits["train"],
                splits["val"],
                training,
                params.seed,
                root / f"bf16-{bf16}",
                label=f"bf16 {bf16}",
            )
            found[bf16] = history[-1]
    for task, value in found[False].val_metrics.items():
        other = found[True].val_metrics[task]
        tolerance = 0.02 if tasks[task].higher_is_better else 0.05 * abs(value)
        print(f"  {task}: fp32 {value:.4f}, bf16 {other:.4f} (tolerance {tolerance:.4f})")
        assert math.isfinite(other) and abs(other - value) <= tolerance, f"{task}: bf16 {other} vs fp32 {value}"
    speedup = found[False].step_seconds / found[True].step_seconds
    print(
        f"  step: fp32 {found[False].step_seconds * 1000:.1f} ms, bf16 {found[True].step_seconds * 1000:.1f} ms "
        f"({speedup:.2f}x)"
    )


def scenes_epoch(device: str = "cuda", rows: int | None = None) -> None:
    """Two epochs of the scenes example (examples/scenes: image files, an HF ResNet under its
    FPN decoder, four vision tasks) with bf16 autocast on CUDA and the network in the
    channels-last layout, eager and under ``torch.compile``: images per second of each in
    the second epoch, once compiled (``device`` cpu and a few ``rows`` run the same code in
    fp32, to check the check)."""
    sys.path.insert(0, str(REPO))
    import torch

    from components.config import load_params
    from components.config.base import SplitSizes
    from components.jobs import prepare
    from components.jobs.inputs import load_tensor_splits
    from components.jobs.trainings import seeded_model
    from components.tasks import build_tasks
    from components.training.loop import train

    defaults = load_params(REPO / "examples/scenes/params.yaml")
    if rows is not None:
        scenes = defaults.data.scenes.model_copy(update={"rows": SplitSizes(train=rows, val=rows // 4, test=rows // 4)})
        defaults = defaults.model_copy(update={"data": defaults.data.model_copy(update={"scenes": scenes})})
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        prepare.run(defaults, root)
        tasks = build_tasks(defaults.tasks)
        splits = load_tensor_splits(defaults, root, ("train", "val"))
        for compiled in (False, True):
            training = defaults.training.model_copy(
                # two epochs: the second one's steps are timed, after compilation
                update={"device": device, "bf16": device == "cuda", "max_epochs": 2, "compile": compiled}
            )
            model = seeded_model(defaults, tasks, root).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            first, record = train(
                model, tasks, splits["train"], splits["val"], training, defaults.seed, root / f"compiled-{compiled}"
            )
            wall = first.seconds
            rate = training.batch_size / record.step_seconds
            scores = ", ".join(f"{task} {value:.3f}" for task, value in record.val_metrics.items())
            print(
                f"  {'compiled' if compiled else 'eager':>8}: {rate:,.0f} images/s "
                f"in the second epoch ({record.step_seconds * 1000:.1f} ms a step of {training.batch_size}); the first "
                f"epoch, compilation included, {wall:.1f} s · val {scores}"
            )


def _synchronize(device: str) -> None:
    """Waits for ``device``'s queued kernels (CUDA runs them asynchronously; a CPU has none)."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def matmul_flops_per_second(device: str = "cuda", size: int = 8192, repeats: int = 20) -> float:
    """What one large bf16 (CUDA) or float32 (CPU) matrix product reaches on ``device``."""
    import torch

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def _classifier_step(model: Any, optimizer: Any, tokens: Any, labels: Any, autocast: Any) -> None:
    """One training step of a classifier on token ids."""
    import torch

    with autocast:
        loss = torch.nn.functional.cross_entropy(model(tokens), labels)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def text_transformer_mfu(device: str = "cuda", batch: int = 256, steps: int = 20) -> None:
    """Model FLOP utilisation of a training step of the text Transformer backbone with a
    classification head, bf16 autocast on CUDA, eager and under ``torch.compile``
    (``device`` cpu: float32, small and eager only, to check the check in seconds)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(REPO))
    from components.config import TextTransformerConfig
    from components.models.backbones import TextTransformerBackbone

    config = TextTransformerConfig(d_model=512, heads=8, layers=6, feedforward=2048, max_length=128)
    if device != "cuda":
        config, batch, steps = TextTransformerConfig(), 16, 2
    peak = matmul_flops_per_second(device, size=8192 if device == "cuda" else 1024)
    tokens = torch.randint(1, config.vocab_size, (batch, config.max_length), device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")
    for compiled in (False, True) if device == "cuda" else (False,):
        torch.manual_seed(0)
        backbone = TextTransformerBackbone(config)
        model = torch.nn.Sequential(backbone, torch.nn.Linear(backbone.out_features, 10)).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        if compiled:
            model.compile()  # in place: the FLOP counter's module hooks then fire once
        for _ in range(3):  # warm-up (and compilation)
            _classifier_step(model, optimizer, tokens, labels, autocast)
        with FlopCounterMode(display=False) as counter:
            _classifier_step(model, optimizer, tokens, labels, autocast)
        _synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            _classifier_step(model, optimizer, tokens, labels, autocast)
        _synchronize(device)
        seconds = (time.perf_counter() - started) / steps
        achieved = counter.get_total_flops() / seconds
        print(
            f"  {'compiled' if compiled else 'eager':>8}: {counter.get_total_flops() / 1e9:.1f} GFLOP a step, "
            f"{seconds * 1000:.1f} ms, {achieved / 1e12:.2f} TFLOP/s = {achieved / peak:.1%} of the "
            f"{peak / 1e12:.1f} TFLOP/s a large matrix product reaches here"
        )


def nccl_torchrun(device: str = "cuda") -> None:
    """``mtl train-mtl`` in one torchrun process on the GPU: NCCL initialises, a run is
    logged (``device`` cpu: the same over gloo, to check the check)."""
    import yaml

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["training"].update(device=device, max_epochs=1)
    raw["data"]["images"] = {"train": 1000, "val": 300, "test": 300}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "params.yaml").write_text(yaml.safe_dump(raw))
        env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
        mtl = [sys.executable, "-m", "components.cli"]
        arguments = ["--params", str(root / "params.yaml"), "--root", str(root)]
        subprocess.run([*mtl, "prepare", *arguments], cwd=REPO, env=env, check=True)
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1"]
        subprocess.run([*launcher, "-m", "components.cli", "train-mtl", *arguments], cwd=REPO, env=env, check=True)
        assert (root / "reports/train_mtl.json").exists(), "the torchrun training wrote no report"


def main() -> int:
    """Runs every check; 0 when all passed or there is no CUDA device."""
    import torch

    if not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        print(f"gpu_check: no CUDA device (torch {torch.__version__}, {build}): nothing checked, skipped")
        return 0
    python = sys.executable
    checks: dict[str, Callable[[], None]] = {
        "device": describe_device,
        "CUDA-only tests": command(
            python,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-n",
            "0",
            "-q",
            "tests/training/test_loop.py",
            "-k",
            "cuda or compiled",
        ),
        "bf16 autocast matches fp32 after one epoch": bf16_matches_fp32,
        "step benchmark on CUDA": command(
            python, "benchmarks/step.py", "--rounds", "10", "--tasks", "2,4,8", "--compile"
        ),
        "text Transformer model FLOP utilisation": text_transformer_mfu,
        "scenes example: one epoch, bf16 and channels-last, eager and compiled": scenes_epoch,
        "torchrun over NCCL on one GPU": nccl_torchrun,
    }
    outcomes = {}
    for name, check in checks.items():
        print(f"\n== {name}", flush=True)
        started = time.perf_counter()
        try:
            check()
            outcomes[name] = "passed"
        except Exception as error:  # a failed check is reported; the others still run
            outcomes[name] = f"FAILED: {error}"
        print(f"== {name}: {outcomes[name]} ({time.perf_counter() - started:.0f} s)", flush=True)
    print("\nsummary:")
    for name, outcome in outcomes.items():
        print(f"  {outcome.split(':')[0]:<7} {name}")
    return 0 if all(o == "passed" for o in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
