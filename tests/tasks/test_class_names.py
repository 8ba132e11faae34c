"""Class labels as names, as tables hold them: declared as ``classes``, read as ids in that
order, answered as names; a value that is not one of them is a validation error."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from components.config import Params, ParamsError
from components.data.splits import read_split
from components.io import tracking
from components.jobs import prepare
from components.tasks import check_tasks
from components.validation.report import DataValidationError
from tests.helpers.projects import iris_dict
from tests.helpers.stages import run_stages

NAMES = ["setosa", "versicolor", "virginica"]


def iris_with_names(tmp_path) -> dict:
    raw = iris_dict(tmp_path)
    for split in ("train", "val", "test"):
        path = tmp_path / f"tables/{split}.csv"
        frame = pd.read_csv(path)
        frame["species"] = frame["species"].map(dict(enumerate(NAMES)))
        frame.to_csv(path, index=False)
    raw["tasks"]["species"] = {"type": "classification", "label": "species", "classes": NAMES}
    return raw


def test_named_classes_train_and_come_back_as_names(tmp_path, monkeypatch, mlflow_db):
    monkeypatch.chdir(tmp_path)
    params = Params.model_validate(iris_with_names(tmp_path))
    check_tasks(params)
    run_stages(params, tmp_path)
    stored = read_split(tmp_path / "data", "train")["species"]
    assert stored.dtype == "Int64" and set(stored) == {0, 1, 2}  # ids in the declared order
    raw_train = pd.read_csv(tmp_path / "tables/train.csv")["species"]
    assert (stored.map(dict(enumerate(NAMES))) == raw_train).all()
    model = mlflow.pyfunc.load_model("models:/tiny-iris/1")
    request = read_split(tmp_path / "data", "test")[["sepal_length", "sepal_width", "petal_length"]]
    answers = model.predict(request)["species"].tolist()
    assert set(answers) <= set(NAMES) and len(set(answers)) >= 2
    card = tracking.client().get_model_version("tiny-iris", "1").description
    assert "`species` (classification, accuracy): the class name, one of setosa, versicolor, virginica" in card


def test_a_label_outside_the_classes_names_the_file_column_and_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = iris_with_names(tmp_path)
    train = pd.read_csv(tmp_path / "tables/train.csv")
    train.loc[7, "species"] = "virginca"  # a typo in the source table
    train.to_csv(tmp_path / "tables/train.csv", index=False)
    with pytest.raises(DataValidationError) as failure:
        prepare.run(Params.model_validate(raw), tmp_path)
    message = str(failure.value)
    assert "tables/train.csv: column 'species' failed rule in tasks.species.classes" in message
    assert (
        "1 label(s) not among classes ['setosa', 'versicolor', 'virginica']: id=train-000007 value='virginca'"
        in message
    )
    assert not (tmp_path / "data/train.parquet").exists()  # nothing downstream gets the data


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"num_classes": 2, "classes": NAMES}, "num_classes is 2 but classes names 3"),
        ({"classes": ["a", "a"]}, "at least 2 distinct labels"),
        ({}, "needs num_classes (labels 0..K-1) or classes (label names)"),
    ],
)
def test_classes_must_be_distinct_and_agree_with_num_classes(tmp_path, task, message):
    raw = iris_dict(tmp_path)
    raw["tasks"]["species"] = {"type": "classification", "label": "species", **task}
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_tasks(Params.model_validate(raw))


def test_class_share_bounds_belong_to_classification_tasks(tmp_path):
    raw = iris_dict(tmp_path)
    raw["tasks"]["petal_width"]["max_class_share"] = 0.5
    with pytest.raises(ParamsError, match="tasks.petal_width: a regression task takes no max_class_share"):
        check_tasks(Params.model_validate(raw))
