"""``mtl affinity`` on real MultiMNIST digits, with a task known to be unrelated: a label
drawn at random, which no image predicts."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from components.affinity import best_groupings, recommend
from components.config import Params
from components.jobs import affinity, prepare
from components.jobs.layout import SELECTION_REPORT, write_json
from tests.helpers.projects import REPO, tiny_params_dict


def _with_noise_task(tmp_path, seed: int = 0) -> tuple[Params, object]:
    raw = tiny_params_dict()
    raw["seed"] = seed
    raw["data"]["source_digits"] = {"train": 1500, "val": 200, "test": 200}
    raw["data"]["images"] = {"train": 2000, "val": 150, "test": 150}
    raw["tasks"]["noise"] = {"type": "classification", "label": "noise", "num_classes": 10}
    # the default CNN and learning rate: the tiny test CNN learns too little in two epochs for
    # the digit tasks to share features
    raw["model"]["cnn"] = yaml.safe_load((REPO / "params.yaml").read_text())["model"]["cnn"]
    raw["training"].update(batch_size=128, lr=5e-4)
    raw["affinity"] = {"epochs": 2}
    params = Params.model_validate(raw)
    root = tmp_path / f"seed-{seed}"
    prepare.run(params, root)
    rng = np.random.default_rng(seed)
    for split in ("train", "val", "test"):
        path = root / params.data.dir / f"{split}.parquet"
        frame = pd.read_parquet(path)
        frame["noise"] = rng.integers(0, 10, len(frame))
        frame.to_parquet(path)
    return params, root


def _with_others(matrix: torch.Tensor, k: int) -> float:
    """Mean affinity of task k with the others, both directions."""
    others = [i for i in range(len(matrix)) if i != k]
    return float((matrix[k, others].mean() + matrix[others, k].mean()) / 2)


@pytest.mark.slow
def test_a_noise_task_has_the_lowest_affinity_with_the_others_and_is_grouped_alone(tmp_path):
    params, root = _with_noise_task(tmp_path)
    report = affinity.measure(params, root)
    matrix = torch.tensor(report.affinity)
    names = report.tasks
    noise = names.index("noise")
    scores = {name: _with_others(matrix, k) for k, name in enumerate(names)}
    assert min(scores, key=scores.__getitem__) == "noise", scores
    assert ["noise"] in report.recommended.groups, report.recommended  # nothing measured to share
    assert report.steps == 2 * (2000 // 128 + 1)
    sum_task = names.index("sum")  # the sum of the two digits draws on both digit tasks' features
    assert all(matrix[k, sum_task] > 0 and matrix[sum_task, k] > 0 for k in range(len(names)) if k != noise)


def test_groupings_rest_on_measured_transfer_and_share_a_model_only_where_it_helps():
    mean = torch.tensor([[0.5, 0.02, 0.001], [0.03, 0.4, -0.002], [0.001, 0.0005, 0.3]])
    error = torch.full((3, 3), 0.004)
    measured = affinity.measured_only(mean, error)
    assert torch.equal(measured, torch.tensor([[0.5, 0.02, 0.0], [0.03, 0.4, 0.0], [0.0, 0.0, 0.3]]))
    names = ["a", "b", "noise"]
    groupings = best_groupings(measured, names)
    # with noise, a's and b's mean affinity from their group halves: {a, b} · {noise} scores best
    assert [round(g.score, 3) for g in groupings] == [0.025, 0.05, 0.0]
    assert recommend(measured, names).groups == [["a", "b"], ["noise"]]
    # c helps a a little less than b does: {a, b, c} scores within 10% of {a, b} · {c}: one model
    close = torch.tensor([[0.5, 0.02, 0.02], [0.03, 0.4, 0.0], [0.025, 0.0, 0.3]])
    best = best_groupings(close, ["a", "b", "c"])
    assert best[0].score >= 0.9 * max(g.score for g in best) and best[0].score < best[1].score
    assert recommend(close, ["a", "b", "c"]).groups == [["a", "b", "c"]]
    # d shares nothing with b: pairing them costs no score, but neither gains, so they stay apart
    unrelated = torch.tensor([[0.5, 0.0, 0.02, 0.0], [0.0, 0.4, 0.0, 0.0], [0.03, 0.0, 0.3, 0.0], [0.0] * 4])
    assert recommend(unrelated, ["a", "b", "c", "d"]).groups == [["a", "c"], ["b"], ["d"]]
    assert recommend(torch.zeros(2, 2), ["a", "b"]).groups == [["a"], ["b"]]


def test_the_report_links_a_regressing_task_to_its_affinities(tmp_path):
    names = ["left", "right", "noise"]
    matrix = torch.tensor([[0.05, 0.03, -0.02], [0.02, 0.04, -0.03], [-0.01, -0.02, 0.06]])
    recommended = recommend(matrix, names)
    selection = {
        "verdict": "rejected",
        "tasks": {
            "left": {"passed": True, "relative_change": 0.01, "tolerance": 0.02},
            "right": {"passed": True, "relative_change": 0.0, "tolerance": 0.02},
            "noise": {"passed": False, "relative_change": -0.04, "tolerance": 0.02},
        },
    }
    (line,) = affinity.verdict_lines(selection, names, matrix, recommended)
    assert line == (
        "noise regresses (Δ -4.00%, tolerance -2%); affinity onto it: from left -2.00%, from right -3.00% "
        "→ train it alone"
    )
    selection["tasks"]["left"]["passed"] = False
    lines = affinity.verdict_lines(selection, names, matrix, recommended)
    assert lines[0].endswith("→ train it with right")
    assert affinity.verdict_lines(None, names, matrix, recommended)[0].startswith("no acceptance verdict yet")


@pytest.mark.slow
def test_the_command_writes_the_report_heatmap_and_an_mlflow_run(tmp_path, mlflow_db):
    params, root = _with_noise_task(tmp_path)
    params = params.model_copy(update={"affinity": params.affinity.model_copy(update={"epochs": 1, "every": 4})})
    write_json(root / SELECTION_REPORT, {"verdict": "accepted", "tasks": {}})
    text = affinity.run(params, root)
    assert "| step on ↓ · loss of → | left | right | sum | noise |" in text
    assert "the last verdict (reports/selection.json) was on other tasks" in text
    saved = json.loads((root / affinity.AFFINITY_REPORT).read_text())
    assert len(saved["affinity"]) == 4 and saved["steps"] == 4  # 16 steps, every 4th measured
    png = (root / affinity.AFFINITY_REPORT).with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from components.io import tracking

    (run,) = tracking.client().search_runs(
        [tracking.experiment_id(params.registry.experiment)], "tags.`mtl.role` = 'affinity'"
    )
    assert run.data.tags["recommended_grouping"]
    assert "affinity/noise to left" in run.data.metrics
