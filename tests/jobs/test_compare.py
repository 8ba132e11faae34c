"""Method comparison: the grid, the statistics over seeds, and a tiny real run."""

import json

import pytest

from components.data.sources import build_multimnist
from components.data.splits import write_splits
from components.io import tracking
from components.jobs.compare import (
    MethodRun,
    compare_methods,
    method_grid,
    methods_markdown,
    plot_methods,
    summarize,
)
from components.tasks import task_objectives


def test_grid_varies_one_axis_at_a_time():
    assert method_grid(["equal", "uncertainty"], ["sum", "pcgrad"]) == [
        ("equal", "sum"),
        ("uncertainty", "sum"),
        ("equal", "pcgrad"),
    ]


def test_summary_statistics_over_seeds():
    runs = [
        MethodRun("a", 0, {"left": 0.90}, 0.01, 0.010, 100.0),
        MethodRun("a", 1, {"left": 0.94}, 0.03, 0.030, 120.0),
        MethodRun("b", 0, {"left": 0.80}, -0.05, 0.020, 90.0),
    ]
    first, second = summarize(runs)
    assert first.method == "a" and first.seeds == 2
    assert first.test_mean["left"] == pytest.approx(0.92)
    assert first.test_std["left"] == pytest.approx(0.028284, rel=1e-4)  # sample std of 0.90, 0.94
    assert first.delta_m_mean == pytest.approx(0.02) and first.step_seconds == pytest.approx(0.02)
    assert first.peak_memory_mb == 120.0
    assert second.method == "b" and second.test_std["left"] == 0.0


def test_tiny_comparison_writes_table_and_plot(tiny_params, tmp_path, mlflow_db):
    write_splits(build_multimnist(tiny_params.data, tiny_params.seed), tmp_path / "data")
    baseline = {
        "left": {"val": 0.2, "test": 0.2},
        "right": {"val": 0.2, "test": 0.2},
        "sum": {"val": 3.0, "test": 3.0},
    }
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/baselines.json").write_text(json.dumps(baseline))
    params = tiny_params.model_copy(
        update={"data": tiny_params.data.model_copy(update={"dir": str(tmp_path / "data")})}
    )
    logged: list[str] = []
    parent = tracking.start_pipeline_run("tiny-mtl", role="comparison")
    runs = compare_methods(
        params,
        tmp_path,
        ["equal", "uncertainty"],
        ["pcgrad"],
        seeds=[0, 1],
        log=logged.append,
        parent_run_id=parent,
        on_features=True,
    )
    progress = [line for line in logged if line.startswith("compare: ")]
    assert progress[0] == "compare: 1/8 equal+sum seed 0" and len(progress) == 8
    assert progress[7].startswith("compare: 8/8 equal+pcgrad on features seed 1 · about ")
    assert progress[7].endswith(" left")
    children = tracking.client().search_runs(
        [tracking.experiment_id("tiny-mtl")], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'"
    )
    assert sorted(r.info.run_name for r in children) == sorted(f"{r.method} seed {r.seed}" for r in runs)
    for child in children:  # each method and seed a run: its curves and its test metrics, under the same keys
        assert child.info.status == "FINISHED" and child.data.tags["mtl.role"] == "comparison"
        assert {"test/left.accuracy", "val/left.accuracy", "delta_m"} <= set(child.data.metrics)
    assert [(r.method, r.seed) for r in runs] == [
        ("equal+sum", 0),
        ("equal+sum", 1),
        ("uncertainty+sum", 0),
        ("uncertainty+sum", 1),
        ("equal+pcgrad", 0),
        ("equal+pcgrad", 1),
        ("equal+pcgrad on features", 0),
        ("equal+pcgrad on features", 1),
    ]
    assert runs[4].test != runs[6].test  # on features, the same seed trains another model
    for run in runs:
        expected = (
            (run.test["left"] - 0.2) / 0.2 + (run.test["right"] - 0.2) / 0.2 - (run.test["sum"] - 3.0) / 3.0
        ) / 3
        assert run.delta_m == pytest.approx(expected)
    assert runs[0].test != runs[1].test  # seeds differ
    goals = task_objectives(tiny_params)
    table = methods_markdown(summarize(runs), goals)
    assert table.count("\n") == 2 + 4 and "left accuracy ↑" in table and "sum mae ↓" in table
    plot_methods(summarize(runs), goals, tmp_path / "methods.png", {t: baseline[t]["test"] for t in goals})
    assert (tmp_path / "methods.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sampling_strategies_are_compared_on_separate_datasets_only(tiny_params, tmp_path):
    with pytest.raises(ValueError, match="no data.datasets"):
        compare_methods(tiny_params, tmp_path, ["equal"], [], seeds=[0], samplings=["uniform"])


def test_sampling_strategies_compare_on_separate_datasets(tmp_path, monkeypatch):
    from components.config import Params
    from components.jobs import prepare
    from tests.helpers.projects import text_datasets_dict

    monkeypatch.chdir(tmp_path)
    raw = text_datasets_dict(tmp_path)  # configured sampling: temperature
    raw["training"]["max_epochs"] = 1
    params = Params.model_validate(raw)
    prepare.run(params, tmp_path)
    baseline = {name: {"val": 0.5, "test": 0.5} for name in params.tasks}
    (tmp_path / "reports").mkdir(exist_ok=True)  # prepare writes its timing there
    (tmp_path / "reports/baselines.json").write_text(json.dumps(baseline))
    runs = compare_methods(
        params, tmp_path, ["equal"], [], seeds=[0], samplings=["uniform", "temperature"], log=lambda _: None
    )
    # the configured sampling is the grid's own row, named and not run twice
    assert [r.method for r in runs] == ["equal+sum, temperature sampling", "equal+sum, uniform sampling"]
    assert all(set(run.test) == set(params.tasks) for run in runs)
