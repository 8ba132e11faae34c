"""The detection task on MultiMNIST canvases, whose digit boxes are known from how they are built."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
import torch

from components.config import Params, TaskConfig
from components.data.sources import build_multimnist, ink_boxes
from components.tasks import build_task
from components.validation.schema import label_schema, run_schema
from tests.helpers.projects import accepting, tiny_params_dict
from tests.helpers.stages import run_stages, train_tiny

CONFIG = TaskConfig(type="detection", label=["boxes", "box_classes"], num_classes=10, max_objects=2)
GOLD = torch.tensor([[[0.1, 0.1, 0.5, 0.6, 3.0], [0.4, 0.3, 0.9, 0.9, 7.0]]])  # x1 y1 x2 y2, class


def answer(boxes: list[list[float]], classes: list[float]) -> torch.Tensor:
    """A prediction (1, slots, 7): the boxes and classes, full confidence."""
    rows = [[*box, label, 1.0, 1.0] for box, label in zip(boxes, classes)]
    return torch.tensor([rows])


def test_coco_map_on_a_hand_made_example():
    task = build_task("digits", CONFIG)
    perfect = answer([[0.1, 0.1, 0.5, 0.6], [0.4, 0.3, 0.9, 0.9]], [3, 7])
    assert task.score(perfect, GOLD) == {"map": 1.0, "map_50": 1.0}
    # class 7's box narrowed from 0.5 to 0.36 wide: IoU 0.216 / 0.3 = 0.72, a match at the
    # IoU thresholds 0.50 ... 0.70 (5 of 10): AP 0.5 for class 7, 1 for class 3, mAP 0.75
    narrow = answer([[0.1, 0.1, 0.5, 0.6], [0.4, 0.3, 0.76, 0.9]], [3, 7])
    assert task.score(narrow, GOLD)["map"] == pytest.approx(0.75, abs=1e-6)
    assert task.score(narrow, GOLD)["map_50"] == pytest.approx(1.0)
    wrong_class = answer([[0.1, 0.1, 0.5, 0.6], [0.4, 0.3, 0.9, 0.9]], [3, 1])
    assert task.score(wrong_class, GOLD)["map"] == pytest.approx(0.5)  # class 7 never found


def test_the_loss_does_not_depend_on_the_order_of_the_slots():
    task = build_task("digits", CONFIG)
    output = torch.cat([torch.rand(1, 2, 4), torch.randn(1, 2, 11)], dim=-1)
    swapped = output[:, [1, 0]]
    assert task.labeled_loss(None, output, GOLD).item() == pytest.approx(task.labeled_loss(None, swapped, GOLD).item())
    # an empty image teaches every slot "no object"; a missing label is not a labeled row
    empty = torch.full((1, 2, 5), -1.0)
    assert not task.labeled(empty).any() and task.labeled(GOLD).all()


def test_ink_boxes_are_tight_and_the_canvas_boxes_sit_on_the_digits(tiny_params):
    image = torch.zeros(1, 28, 28, dtype=torch.uint8).numpy()
    image[0, 5:9, 10:20] = 255
    assert ink_boxes(image).tolist() == [[10, 5, 20, 9]]
    frame = build_multimnist(tiny_params.data, tiny_params.seed)["train"].head(20)
    canvas = frame.filter(like="px_").to_numpy().reshape(-1, 36, 36)
    for pixels, boxes in zip(canvas, frame["boxes"]):
        for x1, y1, x2, y2 in torch.tensor(list(boxes)).view(2, 4).tolist():
            assert pixels[y1:y2, x1:x2].max() > 0  # ink inside every box
    assert (frame["box_classes"].map(list).tolist()) == frame[["left", "right"]].to_numpy().tolist()


def test_bad_boxes_are_named_by_rule_with_examples():
    params = Params.model_validate(_with_detection(tiny_params_dict()))
    schema, row_checks = label_schema(params)
    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "left": [3, 4, 1],
            "right": [3, 4, 1],
            "boxes": [[1, 1, 10, 10], [5, 5, 2, 9], [0, 0, 40, 4, 1, 1, 3, 3]],
            "box_classes": [[3], [4], [1]],
        }
    )
    failures = {f.rule: f for f in run_schema(schema, frame, "train.parquet", row_checks)}
    boxes = failures["at_most_2_boxes_x1<x2,y1<y2_in[0,36]"]
    assert boxes.column == "boxes" and boxes.count == 2 and "id=b value=[5, 5, 2, 9]" in boxes.examples
    assert failures["one_class_per_box"].examples == ["id=c boxes=[0, 0, 40, 4, 1, 1, 3, 3] box_classes=[1]"]


def _with_detection(raw: dict) -> dict:
    raw["tasks"] = {name: raw["tasks"][name] for name in ("left", "right")}
    raw["tasks"]["digits"] = {"type": "detection", "label": ["boxes", "box_classes"], "num_classes": 10,
                              "max_objects": 2}  # fmt: skip
    return raw


def test_detection_trains_together_with_the_digit_classifiers(tmp_path):
    raw = _with_detection(tiny_params_dict())
    raw["data"]["images"] = {"train": 1000, "val": 150, "test": 150}
    raw["training"]["max_epochs"] = 6
    params = Params.model_validate(raw)
    _, history = train_tiny(params, build_multimnist(params.data, params.seed), tmp_path)
    first, last = history[0].val_scores["digits"], history[-1].val_scores["digits"]
    assert last["map_50"] > max(0.15, 5 * first["map_50"]) and last["map"] > first["map"]
    assert history[-1].val_metrics["left"] > history[0].val_metrics["left"]


@pytest.mark.slow
def test_a_detection_model_registers_and_answers_boxes(tmp_path, monkeypatch, mlflow_db):
    monkeypatch.chdir(tmp_path)
    params = Params.model_validate(accepting(_with_detection(tiny_params_dict())))
    registration = run_stages(params, tmp_path)
    model = mlflow.pyfunc.load_model(f"models:/tiny-mtl/{registration.version}")
    rows = pd.read_parquet(tmp_path / "data/test.parquet").head(3).filter(like="px_").astype("float64")
    answers = model.predict(rows, params={"tasks": ["digits"]})["digits"]
    for objects in answers:
        assert isinstance(objects, list) and len(objects) <= 2
        for found in objects:
            assert set(found) == {"box", "class", "score"} and 0 <= found["class"] < 10 and len(found["box"]) == 4


def test_the_optional_detection_demo_config_is_valid():
    from components.jobs.layout import load_checked_params
    from tests.helpers.projects import REPO

    params = load_checked_params(REPO / "examples/detection/params.yaml")
    assert params.tasks["digits"].type == "detection" and set(params.tasks) == {"left", "right", "digits"}
    assert params.registry.model_name != "multimnist-mtl"  # its own registered model beside the demo's
