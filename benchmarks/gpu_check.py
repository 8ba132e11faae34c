"""What ``benchmarks/gpu_check.sh`` runs: every check of the CUDA path, in order, each
reported as passed or failed with its time, then a summary; exit 1 if any failed.

1. the device (name, memory, capability) and the torch and CUDA versions;
2. the CUDA-only tests (bf16 autocast on and off through a real training);
3. one epoch of the default demo configuration on CUDA with bf16 autocast and without,
   from the same seed: the validation metrics must agree within 0.02 accuracy and 5%
   relative MAE (bf16 rounds; it must not change what the model learns);
4. the step benchmark (``benchmarks/step.py``) with ``torch.cuda.synchronize()`` timings;
5. a data-parallel training through torchrun on one GPU over NCCL.

Not yet here: ``torch.compile`` and channels-last (no setting uses them yet) and the text
backbone's model FLOP utilisation. Without a CUDA device it prints why and exits 0.

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
    from components.jobs.trainings import load_tensor_splits, seeded_model
    from components.tasks import build_tasks
    from components.training.loop import train

    defaults = load_params(REPO / "params.yaml")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        prepare.run(defaults, root)
        found = {}
        for bf16 in (True, False):
            training = defaults.training.model_copy(update={"device": device, "bf16": bf16, "epochs": 1})
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


def nccl_torchrun(device: str = "cuda") -> None:
    """``mtl train-mtl`` in one torchrun process on the GPU: NCCL initialises, a run is
    logged (``device`` cpu: the same over gloo, to check the check)."""
    import yaml

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["training"].update(device=device, epochs=1)
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
            "cuda",
        ),
        "bf16 autocast matches fp32 after one epoch": bf16_matches_fp32,
        "step benchmark on CUDA": command(python, "benchmarks/step.py", "--rounds", "10", "--tasks", "2,4,8"),
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
