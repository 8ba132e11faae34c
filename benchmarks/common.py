"""What every benchmark shares: interleaved timing, the machine it ran on, and the report
files under ``reports/benchmarks/`` (JSON for tools, markdown for the docs' Performance page, which includes them).

Shared machines are noisy, so a benchmark never compares absolute seconds across runs:
each round times every variant once, in turn, in one process, and a variant's number is
the median over rounds of its time divided by the reference variant's time *in the same
round*.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the benchmarks measure this working tree's code, whatever the environment has installed
sys.path.insert(0, str(REPO))
REPORTS = REPO / "reports" / "benchmarks"


def machine() -> dict[str, object]:
    """The machine and its load when the benchmark started: ratios from a loaded box mislead."""
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "when": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def interleaved(
    variants: Mapping[str, Callable[[], object]],
    reference: str,
    rounds: int,
    synchronize: Callable[[], None] = lambda: None,
) -> dict[str, dict[str, float]]:
    """Times every variant once per round, in turn, after one warm-up round; returns per
    variant the median seconds and the median (and range) of its ratio to ``reference``
    in the same round."""
    for run in variants.values():  # warm-up: allocator, kernels, lazy imports
        run()
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            synchronize()
            started = time.perf_counter()
            run()
            synchronize()
            seconds[name].append(time.perf_counter() - started)
    results = {}
    for name, times in seconds.items():
        ratios = [t / r for t, r in zip(times, seconds[reference])]
        results[name] = {
            "seconds": statistics.median(times),
            "ratio": statistics.median(ratios),
            "ratio_low": min(ratios),
            "ratio_high": max(ratios),
        }
    return results


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join([*lines, *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)])


def write_report(
    name: str, title: str, command: str, about: dict[str, object], payload: dict[str, object], table: str
) -> None:
    """``reports/benchmarks/<name>.json`` and ``.md``, each naming the machine (``about``,
    taken when the benchmark started) and the command."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"{name}.json").write_text(json.dumps({"machine": about, "command": command, **payload}, indent=2))
    where = (
        f"{about['cores']} cores ({about['cpu']}), torch {about['torch']} with {about['torch_threads']} threads, "
        f"load {about['load_average_1m']} at the start, {about['when']}"
    )
    (REPORTS / f"{name}.md").write_text(f"### {title}\n\n`{command}` · {where}\n\n{table}\n")
    print(f"\n{title} ({where})\n\n{table}\n\nwritten: {REPORTS / name}.json, .md")
