"""Paired bootstrap intervals: row statistics that rebuild the metrics, resampling by hand,
and the lower-bound rule that turns a lucky point estimate into an inconclusive verdict."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from components.bootstrap import change_samples, interval, pooled_intervals, resample_counts
from components.config import SelectionConfig, TaskConfig
from components.objectives import Objective
from components.selection import Candidate, SelectionReport, choose_checkpoint
from components.tasks import build_task


def task(kind: str, **settings):
    label = settings.pop("label", "y")
    return build_task("t", TaskConfig(type=kind, label=label, **settings))


@pytest.mark.parametrize(
    ("kind", "settings", "prediction", "target"),
    [
        ("classification", {"num_classes": 3}, [0, 2, 1, 1, 0], [0, 2, 2, -1, 1]),
        ("regression", {}, [1.0, 2.5, 3.0, 0.0], [1.5, math.nan, 2.0, -1.0]),
        (
            "multilabel",
            {"label": ["a", "b"]},
            [[1, 0], [1, 1], [0, 0], [0, 1]],
            [[1.0, 0.0], [0.0, 1.0], [1.0, math.nan], [0.0, 1.0]],
        ),
    ],
)
def test_summed_row_statistics_give_the_torchmetrics_value(kind, settings, prediction, target):
    t = task(kind, **settings)
    prediction, target = torch.tensor(prediction), torch.tensor(target)
    statistics = t.row_statistics(prediction, target)
    assert statistics.shape[0] == len(target)
    rebuilt = float(t.metric_from_statistics(statistics.sum(0)))
    assert rebuilt == pytest.approx(t.score(prediction, target)[t.metric_name], abs=1e-6)


def test_every_resample_of_two_rows_by_hand():
    t = task("classification", num_classes=2)
    target = torch.tensor([0, 1])
    base = t.row_statistics(torch.tensor([0, 0]), target)  # right on row 0 only
    mtl = t.row_statistics(torch.tensor([0, 1]), target)  # right on both
    # the four equally likely resamples of two rows: {0,0}, {0,1}, {1,0}, {1,1}
    counts = torch.tensor([[2.0, 0.0], [1.0, 1.0], [1.0, 1.0], [0.0, 2.0]])
    # baseline accuracy 1, 1/2, 1/2, 0 against 1 each time: Δ 0, +100 %, +100 %, and the
    # plain difference +1 against a baseline of 0
    assert change_samples(t, base, mtl, counts).tolist() == [0.0, 1.0, 1.0, 1.0]


def test_resample_counts_draw_every_row_count_times_with_a_seed():
    counts = resample_counts(50, 200, seed=3)
    assert counts.shape == (200, 50) and bool((counts.sum(1) == 50).all())
    assert torch.equal(counts, resample_counts(50, 200, seed=3))
    assert not torch.equal(counts, resample_counts(50, 200, seed=4))
    # each row is drawn once per resample on average
    assert float(counts.mean()) == pytest.approx(1.0)


def test_the_interval_covers_the_point_and_shrinks_with_more_rows():
    t = task("classification", num_classes=2)
    generator = torch.Generator().manual_seed(0)

    def width(rows: int) -> tuple[float, float, float]:
        target = torch.randint(2, (rows,), generator=generator)
        base = torch.where(torch.rand(rows, generator=generator) < 0.8, target, 1 - target)
        mtl = torch.where(torch.rand(rows, generator=generator) < 0.82, target, 1 - target)
        samples = change_samples(
            t, t.row_statistics(base, target), t.row_statistics(mtl, target), resample_counts(rows, 1000, 0)
        )
        low, high = interval(samples, 0.9)
        point = float(
            change_samples(t, t.row_statistics(base, target), t.row_statistics(mtl, target), torch.ones(1, rows))
        )
        return low, point, high

    low, point, high = width(200)
    assert low < point < high
    wide = high - low
    low, point, high = width(5000)
    assert low < point < high and (high - low) < wide / 3  # about 1/sqrt(25) as wide


def test_lower_bound_calls_a_straddling_interval_inconclusive_and_a_wholly_failing_one_rejected():
    goals = {"right": Objective("accuracy", True, 0.02), "left": Objective("accuracy", True, 0.02)}
    baseline = {"right": 0.95, "left": 0.97}
    lucky = Candidate(
        "epoch_003.pt",
        3,
        {"right": 0.9525, "left": 0.97},  # +0.26 %: passes as measured
        intervals={"right": (-0.031, 0.034), "left": (-0.008, 0.008)},
        delta_m_interval=(-0.015, 0.018),
    )
    assert choose_checkpoint([lucky], baseline, goals, 0.0).verdict == "accepted"
    choice = choose_checkpoint([lucky], baseline, goals, 0.0, rule="lower_bound")
    # right's interval reaches below -2 % and above it: the evidence cannot tell
    assert choice.verdict == "inconclusive" and not choice.chosen.decided
    assert not choice.chosen.comparisons["right"].passed and choice.chosen.comparisons["left"].passed
    report = SelectionReport.build(
        choice, "ab", goals, {"right": 0.94, "left": 0.96}, baseline, 0.0, None, "lower_bound", 0.9
    )
    assert report.tasks["right"].interval == [-0.031, 0.034] and report.straddling() == ["right"]
    assert report.reason() == (
        "the intervals straddle the bar: right +0.26% [-3.10%, +3.40% at 90%] (tolerance -2%); more validation "
        "rows or more training.seeds narrow the intervals; tuning.trials, as both sides are untuned"
    )
    assert SelectionReport.from_dict(report.to_dict()) == report
    # the same point estimate with an interval wholly below the bar is a rejection
    beyond = replace(
        lucky,
        checkpoint="epoch_004.pt",
        epoch=4,
        metrics={"right": 0.90, "left": 0.97},
        intervals={"right": (-0.09, -0.03)},
    )
    rejected = choose_checkpoint([beyond], baseline, goals, 0.0, rule="lower_bound")
    assert rejected.verdict == "rejected" and rejected.chosen.decided
    # and one straddling checkpoint among decisively failing ones keeps the verdict open, reporting it
    mixed = choose_checkpoint([beyond, lucky], baseline, goals, 0.0, rule="lower_bound")
    assert mixed.verdict == "inconclusive" and mixed.chosen.checkpoint == "epoch_003.pt"


def test_lower_bound_needs_resamples():
    with pytest.raises(ValueError, match="bootstrap_samples must be > 0"):
        SelectionConfig(rule="lower_bound", bootstrap_samples=0)


def test_pooled_intervals_draw_seeds_as_well_as_rows_by_hand():
    t = task("classification", num_classes=2)
    target = torch.tensor([0, 1, 0, 1])
    baseline = {"t": t.row_statistics(torch.tensor([0, 0, 0, 0]), target)}  # accuracy 1/2
    always = {"t": t.row_statistics(target, target)}  # seed A: accuracy 1
    half = {"t": t.row_statistics(torch.tensor([0, 0, 0, 0]), target)}  # seed B: accuracy 1/2
    rows = torch.ones(4000, 4)  # every resample keeps the rows: only the seeds vary
    wide, _ = pooled_intervals({"t": t}, [baseline], [always, half], rows, 0.9)
    # two seeds drawn with replacement: AA (Δ +100 %) 1/4, AB or BA (+50 %) 1/2, BB (0) 1/4
    assert wide["t"] == (0.0, 1.0)
    narrow, _ = pooled_intervals({"t": t}, [baseline], [always, half], rows, 0.4)
    assert narrow["t"] == (0.5, 0.5)


def test_one_seed_a_side_is_the_paired_bootstrap():
    t = task("classification", num_classes=2)
    generator = torch.Generator().manual_seed(1)
    target = torch.randint(2, (300,), generator=generator)
    base = {"t": t.row_statistics(torch.where(torch.rand(300, generator=generator) < 0.8, target, 1 - target), target)}
    mtl = {"t": t.row_statistics(torch.where(torch.rand(300, generator=generator) < 0.85, target, 1 - target), target)}
    counts = resample_counts(300, 500, 0)
    intervals, delta_m = pooled_intervals({"t": t}, [base], [mtl], counts, 0.9)
    assert intervals["t"] == delta_m == interval(change_samples(t, base["t"], mtl["t"], counts), 0.9)
