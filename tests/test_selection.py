"""Selection and acceptance math on cases computed by hand."""

import pytest

from components.selection import (
    Candidate,
    Objective,
    SelectionReport,
    choose_checkpoint,
    promotion_decision,
    relative_change,
    score_checkpoint,
    task_passes,
)

ACC = Objective("accuracy", higher_is_better=True, max_relative_regression=0.02)
MAE = Objective("mae", higher_is_better=False, max_relative_regression=0.02)
OBJECTIVES = {"left": ACC, "sum": MAE}
BASELINE = {"left": 0.80, "sum": 2.00}


def test_relative_change_is_sign_aware():
    assert relative_change(0.88, 0.80, higher_is_better=True) == pytest.approx(0.10)
    assert relative_change(0.72, 0.80, higher_is_better=True) == pytest.approx(-0.10)
    # lower MAE is an improvement: 2.0 -> 1.5 is +25 %
    assert relative_change(1.5, 2.0, higher_is_better=False) == pytest.approx(0.25)
    assert relative_change(2.5, 2.0, higher_is_better=False) == pytest.approx(-0.25)


def test_a_zero_baseline_compares_by_plain_difference():
    # a multilabel head that never predicts a positive scores F1 0: MTL's 0.1 is a gain,
    # an equal 0 no change; a perfect MAE of 0 against 0.5 is a 50 % loss, beyond any tolerance
    assert relative_change(0.1, 0.0, higher_is_better=True) == pytest.approx(0.1)
    assert relative_change(0.0, 0.0, higher_is_better=True) == 0.0
    assert relative_change(0.5, 0.0, higher_is_better=False) == pytest.approx(-0.5)


def test_delta_m_and_weighted_score():
    # left: (0.82-0.80)/0.80 = +2.5 %; sum: -(1.90-2.00)/2.00 = +5 %
    weighted = {"left": Objective("accuracy", True, 0.02, weight=3.0), "sum": Objective("mae", False, 0.02, weight=1.0)}
    score = score_checkpoint("e1", 1, {"left": 0.82, "sum": 1.90}, BASELINE, weighted, min_delta_m=0.0)
    assert score.delta_m == pytest.approx((0.025 + 0.05) / 2)
    assert score.score == pytest.approx((3 * 0.025 + 1 * 0.05) / 4)
    assert score.accepted


def test_regression_beyond_tolerance_fails_that_task():
    # left regresses 2.5 % (> 2 % tolerance) although Δm is positive thanks to sum (+20 %)
    score = score_checkpoint("e1", 1, {"left": 0.78, "sum": 1.60}, BASELINE, OBJECTIVES, min_delta_m=0.0)
    assert score.delta_m == pytest.approx((-0.025 + 0.20) / 2)
    assert not score.accepted
    (failure,) = score.failures()
    assert failure.task == "left" and failure.relative_change == pytest.approx(-0.025)


def test_min_delta_m_rejects():
    score = score_checkpoint("e1", 1, {"left": 0.80, "sum": 2.00}, BASELINE, OBJECTIVES, min_delta_m=0.01)
    assert score.delta_m == 0 and not score.accepted


def test_best_passing_checkpoint_wins_over_better_failing_one():
    passing = Candidate("e1", 1, {"left": 0.80, "sum": 1.90})  # +2.5 %
    failing = Candidate("e2", 2, {"left": 0.70, "sum": 1.00})  # higher score, left -12.5 %
    choice = choose_checkpoint([passing, failing], BASELINE, OBJECTIVES, 0.0)
    assert choice.scores[1].score > choice.scores[0].score
    assert (choice.chosen.checkpoint, choice.verdict) == ("e1", "accepted")


def test_all_failing_is_rejected_and_reports_best_score():
    worse = Candidate("e1", 1, {"left": 0.60, "sum": 2.50})
    less_bad = Candidate("e2", 2, {"left": 0.70, "sum": 2.10})
    choice = choose_checkpoint([worse, less_bad], BASELINE, OBJECTIVES, 0.0)
    assert (choice.chosen.checkpoint, choice.verdict) == ("e2", "rejected")
    assert [f.task for f in choice.chosen.failures()] == ["left", "sum"]


def test_tie_goes_to_earlier_epoch():
    late = Candidate("e5", 5, {"left": 0.84, "sum": 2.00})
    early = Candidate("e3", 3, {"left": 0.84, "sum": 2.00})
    assert choose_checkpoint([late, early], BASELINE, OBJECTIVES, 0.0).chosen.checkpoint == "e3"


def test_the_one_rule_at_its_boundary():
    assert task_passes(-0.02, 0.02) and not task_passes(-0.0201, 0.02)


def test_selection_report_round_trips_through_json():
    choice = choose_checkpoint([Candidate("e1", 1, {"left": 0.82, "sum": 1.9})], BASELINE, OBJECTIVES, 0.0)
    report = SelectionReport.build(
        choice, "ab12", OBJECTIVES, {"left": 0.81, "sum": 1.95}, {"left": 0.8, "sum": 2.0}, 0.0
    )
    again = SelectionReport.from_dict(report.to_dict())
    assert again == report
    assert again.tasks["sum"].higher_is_better is False and again.test_metrics() == {"left": 0.81, "sum": 1.95}


def test_champion_guard():
    objectives = {"left": ACC, "sum": MAE}
    candidate = {"left": 0.90, "sum": 1.00}
    assert promotion_decision("accepted", candidate, None, objectives).promote
    # within 2 % of the champion on every task
    assert promotion_decision("accepted", candidate, {"left": 0.91, "sum": 0.99}, objectives, "1").promote
    # sum MAE 1.00 vs champion 0.95: -5.3 %, beyond tolerance
    blocked = promotion_decision("accepted", candidate, {"left": 0.85, "sum": 0.95}, objectives, "1")
    assert not blocked.promote and "sum" in blocked.reason and "v1" in blocked.reason
    # a rejected model never becomes champion, even with no champion at all
    assert not promotion_decision("rejected", candidate, None, objectives).promote


def test_the_champion_guard_under_lower_bound_judges_the_paired_interval():
    objectives = {"left": ACC, "sum": MAE}
    candidate, champion = {"left": 0.90, "sum": 1.00}, {"left": 0.905, "sum": 0.99}
    # point: -0.6 % and -1.0 %, within 2 %; but left's interval reaches -3 %
    intervals = {"left": (-0.03, 0.02), "sum": (-0.015, -0.005)}
    assert promotion_decision("accepted", candidate, champion, objectives, "4", "point", intervals).promote
    blocked = promotion_decision("accepted", candidate, champion, objectives, "4", "lower_bound", intervals)
    assert not blocked.promote
    assert blocked.reason == "regresses against champion v4: left -0.55% [-3.00%, +2.00%] vs champion (tolerance -2%)"
    # a task without an interval (no row statistics) is judged on its point value
    assert promotion_decision("accepted", candidate, champion, objectives, "4", "lower_bound", {}).promote


def test_a_nan_never_passes_on_either_side():
    nan = float("nan")
    assert not task_passes(relative_change(nan, 0.8, True), 1.0)
    assert not task_passes(relative_change(0.8, nan, True), 1.0)
    # the finite checkpoint wins even where a NaN one would compare as "no change"
    choice = choose_checkpoint(
        [Candidate("e1", 1, {"left": nan, "sum": nan}), Candidate("e2", 2, {"left": 0.81, "sum": 1.9})],
        BASELINE,
        OBJECTIVES,
        0.0,
    )
    assert choice.chosen.checkpoint == "e2" and choice.verdict == "accepted"
    all_nan = choose_checkpoint(
        [Candidate("e1", 1, {"left": nan, "sum": nan})], {"left": nan, "sum": nan}, OBJECTIVES, -1.0
    )
    assert all_nan.verdict == "rejected"
    assert not promotion_decision(
        "accepted", {"left": nan, "sum": 1.0}, {"left": 0.8, "sum": 1.0}, OBJECTIVES, "1"
    ).promote
