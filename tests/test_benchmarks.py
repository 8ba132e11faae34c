"""The benchmark scripts' own machinery: ratios taken within a round, the GPU check's
clean skip on a machine without a CUDA device, and its FLOP utilisation check run on CPU."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers.projects import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402
from common import interleaved  # noqa: E402


def test_a_variant_twice_as_slow_in_every_round_is_two_times_the_reference():
    calls: list[str] = []

    def sleeper(name: str, seconds: float):
        def run() -> None:
            calls.append(name)
            time.sleep(seconds)

        return run

    found = interleaved({"fast": sleeper("fast", 0.01), "slow": sleeper("slow", 0.02)}, "fast", rounds=5)
    assert calls == ["fast", "slow"] * 6  # one warm-up round, then five, each variant in turn
    assert found["fast"]["ratio"] == 1.0
    assert 1.6 < found["slow"]["ratio"] < 2.6
    assert found["slow"]["ratio_low"] <= found["slow"]["ratio"] <= found["slow"]["ratio_high"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a CUDA device the check runs for minutes")
def test_the_gpu_check_skips_cleanly_without_a_cuda_device():
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh"],
        cwd=REPO,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no CUDA device" in done.stdout and "nothing checked, skipped" in done.stdout
    assert "Traceback" not in done.stderr


def test_the_mfu_check_counts_a_training_steps_flops_against_a_measured_peak(capsys):
    """The GPU check's model FLOP utilisation, run small and eager on the CPU to check the check."""
    gpu_check.text_transformer_mfu("cpu")
    out = capsys.readouterr().out
    found = re.search(r"eager: ([\d.]+) GFLOP a step, [\d.]+ ms, [\d.]+ TFLOP/s = ([\d.]+)% of the", out)
    assert found is not None, out
    assert float(found.group(1)) > 0 and 0 < float(found.group(2)) <= 100


def test_the_gate_study_counts_errors_against_the_truth_and_bounds_them_by_wilson():
    import gate_calibration

    def run(verdict: str, truth_passes: bool) -> dict:
        judged = {"verdict": verdict, "truth_passes": truth_passes}
        return {"point": judged, "lower_bound": judged}

    runs = [run("accepted", False), run("accepted", True), run("rejected", True), run("inconclusive", True)]
    found = gate_calibration.rates(runs, "point")
    assert (found["false_accept"], found["false_reject"], found["inconclusive"], found["truth_passes"]) == (1, 1, 1, 3)
    low, high = gate_calibration.wilson(0, 10)
    assert low == 0.0 and 0.27 < high < 0.28  # zero failures in ten still allows 28%
    assert gate_calibration._cell(0, 0) == "0/0 (no such run)"


@pytest.mark.slow
def test_the_scenes_check_times_eager_and_compiled_epochs_of_the_example(capsys):
    """The GPU check's scenes epochs, on a few CPU scenes to check the check: both variants
    train and report images per second after compilation."""
    gpu_check.scenes_epoch("cpu", rows=64)
    out = capsys.readouterr().out
    rates = re.findall(r"(eager|compiled): ([\d,]+) images/s in the second epoch", out)
    assert [name for name, _ in rates] == ["eager", "compiled"], out
    assert all(float(rate.replace(",", "")) > 0 for _, rate in rates)
