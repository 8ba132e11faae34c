"""``training.seeds``: every model trained with each seed, select judging the seed means
with intervals pooled over seeds, the best seed's checkpoint registered on its own run."""

from __future__ import annotations

import statistics

import pytest
from mlflow import MlflowClient

from components.config import Params
from components.data.splits import read_split
from components.io import registry
from components.jobs.evidence import UnequalTrainings, aligned_epochs
from components.jobs.layout import MTL_DIR, read_json, remove_other_seeds
from components.jobs.promote import baseline_intervals
from components.jobs.summary import run as summary
from components.report import console, results_markdown
from components.training.checkpoints import load_checkpoint
from tests.helpers.projects import accepting, tiny_params_dict
from tests.helpers.stages import read_selection, run_stages


def test_two_seeds_train_twice_and_select_judges_their_means(tmp_path, mlflow_db):
    raw = accepting(tiny_params_dict())
    raw["training"]["seeds"] = 2
    params = Params.model_validate(raw)
    registration = run_stages(params, tmp_path)

    # each seed trained each model in its own folder; the first keeps the one-seed layout
    for task in params.tasks:
        assert (tmp_path / "models/baselines" / task / "best.pt").exists()
        assert (tmp_path / "models/baselines" / task / "seed-1/best.pt").exists()
    assert (tmp_path / MTL_DIR / "epoch_002.pt").exists() and (tmp_path / MTL_DIR / "seed-1/epoch_002.pt").exists()

    baselines = read_json(tmp_path / "reports/baselines.json")
    for task, entry in baselines.items():
        assert [s["seed"] for s in entry["seeds"]] == [0, 1]
        assert entry["val"] == pytest.approx(statistics.fmean(s["val"] for s in entry["seeds"]))
        assert entry["seeds"][0]["val"] != entry["seeds"][1]["val"], f"{task}: the two seeds trained alike"

    selection = read_json(tmp_path / "reports/selection.json")
    chosen = selection["seed"]
    assert [s["seed"] for s in selection["seeds"]] == [0, 1]
    for task, result in selection["tasks"].items():
        # the verdict judges the seed means, against the baselines' seed means
        assert result["mtl"] == pytest.approx(statistics.fmean(s["mtl_val"][task] for s in selection["seeds"]))
        assert result["baseline"] == pytest.approx(baselines[task]["val"])
        # the test column is the registered checkpoint's own
        assert result["test"] == next(s["mtl_test"][task] for s in selection["seeds"] if s["seed"] == chosen)
        low, high = result["interval"]
        assert low <= result["relative_change"] <= high
    folder = tmp_path / MTL_DIR / ("" if chosen == 0 else f"seed-{chosen}")
    assert (
        selection["checkpoint"]
        == (folder / f"epoch_{selection['epoch']:03d}.pt").relative_to(tmp_path / MTL_DIR).as_posix()
    )
    load_checkpoint(tmp_path / MTL_DIR / selection["checkpoint"], selection["sha256"])  # raises on another file

    # the version is logged on the chosen seed's training run
    trained = read_json(tmp_path / "reports/train_mtl.json")
    runs = {s["seed"]: s["run_id"] for s in trained["seeds"]}
    assert len(set(runs.values())) == 2
    version = MlflowClient().get_model_version(registration.model_name, registration.version)
    assert version.run_id == runs[chosen]

    shown = console()
    with shown.capture() as captured:
        shown.print(summary(params, tmp_path))
    assert "Over 2 seeds, mean ± std" in captured.get()
    assert "intervals of Δ val (paired bootstrap over rows and 2 seeds" in captured.get()
    assert f"seed {chosen}, best on validation" in results_markdown(read_selection(tmp_path))
    # mtl promote judges a version against the baselines of every seed, pooled
    candidate = registry.load_version(registration.model_name, registration.version).unwrap_python_model()
    test = read_split(tmp_path / params.data.dir, "test")
    intervals, delta_m_interval = baseline_intervals(params, tmp_path, test, candidate)
    assert set(intervals) == set(params.tasks) and delta_m_interval is not None
    metrics = read_json(tmp_path / "reports/metrics.json")
    assert metrics["left.mtl_test_seed_std"] == pytest.approx(
        statistics.stdev(s["mtl_test"]["left"] for s in selection["seeds"])
    )


def test_fewer_seeds_remove_the_folders_of_the_others(tmp_path):
    raw = tiny_params_dict()
    raw["training"]["seeds"] = 2
    for seed in (1, 2, 3):
        (tmp_path / f"seed-{seed}").mkdir()
    (tmp_path / "epoch_001.pt").write_bytes(b"first seed's")
    remove_other_seeds(tmp_path, Params.model_validate(raw))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_001.pt", "seed-1"]


def test_seeds_that_early_stopping_ended_apart_are_judged_on_the_epochs_they_share(tmp_path):
    manifests = {0: [{"epoch": 1}, {"epoch": 2}, {"epoch": 3}], 1: [{"epoch": 1}, {"epoch": 2, "checkpoint": "y"}]}
    assert aligned_epochs(manifests, tmp_path) == [
        {0: {"epoch": 1}, 1: {"epoch": 1}},
        {0: {"epoch": 2}, 1: manifests[1][1]},
    ]
    with pytest.raises(UnequalTrainings, match=r"no epoch in common \(seed 0: \[2\]; seed 1: \[1\]\); run train_mtl"):
        aligned_epochs({0: [{"epoch": 2}], 1: [{"epoch": 1}]}, tmp_path)
    pairs = aligned_epochs({0: [{"epoch": 1}], 1: [{"epoch": 1, "checkpoint": "x"}]}, tmp_path)
    assert pairs == [{0: {"epoch": 1}, 1: {"epoch": 1, "checkpoint": "x"}}]
