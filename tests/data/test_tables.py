"""Tables as people have them: one file split by a column or at random (stratified, with
duplicate texts kept together), categorical and incomplete feature columns."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from components.config import Params, ParamsError, load_params
from components.data.encoders import fit_encoder, load_encoder
from components.data.readers import FileFormatError, read_split_file
from components.data.sources import build_splits
from components.validation.suite import validate_splits
from tests.helpers.projects import iris_dict


def one_table(tmp_path, frame: pd.DataFrame, **data) -> dict:
    """iris_dict's settings on one file holding ``frame``."""
    raw = iris_dict(tmp_path)
    frame.to_csv(tmp_path / "table.csv", index=False)
    raw["data"] = {**raw["data"], "files": "table.csv", **data}
    return raw


def iris(tmp_path) -> pd.DataFrame:
    return pd.concat([pd.read_csv(tmp_path / f"tables/{s}.csv") for s in ("train", "val", "test")], ignore_index=True)


def test_a_split_column_says_each_rows_split(tmp_path):
    raw = iris_dict(tmp_path)
    frame = iris(tmp_path).assign(split=["train"] * 100 + ["val"] * 25 + ["test"] * 25)
    frames = build_splits(Params.model_validate(one_table(tmp_path, frame, split_column="split")), tmp_path)
    assert {s: len(f) for s, f in frames.items()} == {"train": 100, "val": 25, "test": 25}
    assert "split" not in frames["train"].columns
    assert frames["val"]["sepal_length"].tolist() == frame["sepal_length"][100:125].tolist()

    frame.loc[3, "split"] = "validation"
    with pytest.raises(FileFormatError, match=r"holds \['validation'\]; valid: train, val, test"):
        build_splits(Params.model_validate(one_table(tmp_path, frame, split_column="split")), tmp_path)
    assert raw  # iris_dict wrote the split files one_table reads back


def test_a_random_split_keeps_the_class_shares_of_the_stratify_column(tmp_path):
    iris_dict(tmp_path)
    frame = pd.concat([iris(tmp_path)] * 4, ignore_index=True)  # 600 rows, 200 per species
    frame["row"] = np.arange(len(frame))
    raw = one_table(tmp_path, frame, stratify="species", split={"val": 0.2, "test": 0.2})
    frames = build_splits(Params.model_validate(raw), tmp_path)
    assert {s: len(f) for s, f in frames.items()} == {"train": 360, "val": 120, "test": 120}
    for part in frames.values():
        assert set(part["species"].value_counts()) == {len(part) // 3}  # exactly a third each
    rows = pd.concat([f["row"] for f in frames.values()])
    assert rows.is_unique and len(rows) == 600  # each row in one split

    raw["data"]["max_rows"] = 300
    assert sum(len(f) for f in build_splits(Params.model_validate(raw), tmp_path).values()) == 300


def test_shared_text_group_keeps_each_text_in_one_split(tmp_path):
    iris_dict(tmp_path)
    titles = [f"title {i % 40}" for i in range(400)]  # every title ten times
    frame = pd.DataFrame({"title": titles, "score": np.arange(400.0), "species": np.arange(400) % 3})
    raw = one_table(tmp_path, frame, input={"kind": "text", "columns": ["title"]})
    raw["tasks"] = {"species": {"type": "classification", "label": "species", "num_classes": 3}}
    raw["model"]["backbone"] = "text_transformer"
    raw["validation"]["shared_text"] = "group"
    frames = build_splits(Params.model_validate(raw), tmp_path)
    homes = pd.concat([f[["title"]].assign(split=s) for s, f in frames.items()]).groupby("title")["split"].nunique()
    assert (homes == 1).all() and len(homes) == 40
    assert all(len(f) > 0 for f in frames.values())

    raw["validation"]["shared_text"] = "fail"  # the same rows split at random leak titles
    leaky = build_splits(Params.model_validate(raw), tmp_path)
    files = {s: f"{s}.parquet" for s in leaky}
    report = validate_splits(leaky, Params.model_validate(raw), files, tmp_path / "docs")
    assert [f.rule for f in report.failures] == ["text_in_one_split_only"]
    assert "set validation.shared_text to group (a random split keeps each text in one split)" in str(
        report.failures[0]
    )


def test_a_split_that_cannot_be_made_names_its_settings(tmp_path):
    iris_dict(tmp_path)
    frame = pd.DataFrame({"title": ["a b c"] * 30, "species": [0, 1, 2] * 10, "sepal_length": range(30)})
    raw = one_table(tmp_path, frame, input={"kind": "text", "columns": ["title"]})
    raw["tasks"] = {"species": {"type": "classification", "label": "species", "num_classes": 3}}
    raw["model"]["backbone"] = "text_transformer"
    raw["validation"]["shared_text"] = "group"  # one title: one group cannot fill three splits
    with pytest.raises(ParamsError, match=r"cannot be made with data.split, validation.shared_text: group \(title\)"):
        build_splits(Params.model_validate(raw), tmp_path)


def test_one_table_settings_that_cannot_apply_are_config_errors(tmp_path):
    raw = iris_dict(tmp_path)
    bad = copy.deepcopy(raw)
    bad["data"]["stratify"] = "species"  # split files: nothing is split at random
    with pytest.raises(ValueError, match="data.stratify applies to a random split"):
        Params.model_validate(bad)
    bad = copy.deepcopy(raw)
    bad["validation"]["shared_text"] = "group"
    with pytest.raises(ValueError, match="shared_text group keeps each text in one split of a random split"):
        Params.model_validate(bad)
    bad = copy.deepcopy(raw)
    bad["validation"]["max_null_fraction_per_column"] = {"species": 0.5}
    with pytest.raises(ValueError, match="names \\['species'\\], not input columns; valid: petal_length, sepal_length"):
        Params.model_validate(bad)


def test_an_unknown_missing_policy_lists_the_valid_ones(tmp_path):
    import yaml

    raw = iris_dict(tmp_path)
    raw["data"]["input"]["missing"] = "zero"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match="'fail', 'median', 'mean', 'constant' or 'drop'"):
        load_params(tmp_path / "params.yaml")


def features_params(tmp_path, **input_settings) -> Params:
    raw = iris_dict(tmp_path)
    raw["data"]["input"] = {"kind": "features", "columns": ["size"], "categorical": ["colour"], **input_settings}
    return Params.model_validate(raw)


def test_categories_are_one_hot_over_training_values_and_an_unseen_one_is_all_zeros(tmp_path):
    params = features_params(tmp_path)
    train = pd.DataFrame({"size": [1.0, 3.0, 2.0], "colour": ["red", "blue", None]})
    fit_encoder(params, train, tmp_path / "encoder")
    encoder = load_encoder(params, tmp_path / "encoder")
    assert encoder.width == 4  # size, then (missing), blue, red
    encoded = encoder.encode(pd.DataFrame({"size": [2.0, 2.0, 2.0], "colour": ["red", "green", np.nan]}))
    assert torch.equal(encoded[:, 1:], torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    assert torch.allclose(encoded[:, 0], torch.zeros(3))  # 2.0 is the training mean


def test_missing_numbers_are_imputed_with_a_missing_indicator(tmp_path):
    params = features_params(tmp_path, missing="median")
    train = pd.DataFrame({"size": [1.0, 2.0, 10.0, np.nan], "colour": ["red"] * 4})
    fit_encoder(params, train, tmp_path / "encoder")
    encoder = load_encoder(params, tmp_path / "encoder")
    assert encoder.width == 3  # size, size missing, red
    encoded = encoder.encode(pd.DataFrame({"size": [np.nan, 2.0], "colour": ["red", "red"]}))
    assert encoded[0, 0] == pytest.approx(encoded[1, 0].item())  # the median, 2.0, stands in
    assert encoded[0, 1] > encoded[1, 1]  # and the indicator says it was missing

    without = features_params(tmp_path, missing="fail")
    from components.validation.schema import input_schema, run_schema

    failures = run_schema(input_schema(without), train.assign(id=list("abcd")), "train.csv")
    assert [(f.column, f.rule) for f in failures] == [("size", "not_nullable")]
    assert not run_schema(input_schema(params), train.assign(id=list("abcd")), "train.csv")


def test_drop_removes_rows_missing_a_feature_and_says_how_many(tmp_path, capsys):
    from components.jobs import prepare

    raw = iris_dict(tmp_path)
    for split in ("train", "val"):
        table = pd.read_csv(tmp_path / f"tables/{split}.csv")
        table.loc[:1, "sepal_width"] = np.nan
        table.to_csv(tmp_path / f"tables/{split}.csv", index=False)
    raw["data"]["input"]["missing"] = "drop"
    rows = prepare.run(Params.model_validate(raw), tmp_path)
    assert rows == {"train": 98, "val": 23, "test": 25}
    assert (
        "dropped rows missing a feature (data.input.missing: drop): train 2, val 2, test 0" in capsys.readouterr().out
    )


def test_a_per_column_null_limit_names_its_setting_in_plain_words(tmp_path):
    raw = iris_dict(tmp_path)
    raw["data"]["input"]["missing"] = "median"
    frames = build_splits(Params.model_validate(raw), tmp_path)
    frames["val"].loc[:4, "sepal_width"] = np.nan  # 5 of 25: 20 % missing
    raw["validation"]["max_null_fraction_per_column"] = {"sepal_width": 0.1}
    files = {s: f"tables/{s}.csv" for s in frames}
    report = validate_splits(copy.deepcopy(frames), Params.model_validate(raw), files, tmp_path / "a")
    (failure,) = report.failures
    assert (failure.file, failure.column, failure.count) == ("tables/val.csv", "sepal_width", 5)
    assert failure.examples == [
        "20.0% of the split's values are missing; the limit is 10.0%: raise "
        "validation.max_null_fraction_per_column.sepal_width (or validation.max_null_fraction)"
    ]
    raw["validation"]["max_null_fraction_per_column"] = {"sepal_width": 0.25}
    assert validate_splits(copy.deepcopy(frames), Params.model_validate(raw), files, tmp_path / "b").passed


def test_a_carriage_return_inside_a_text_stays_in_its_row(tmp_path):
    """pandas writes a lone carriage return in a text unquoted and its reader then split the
    row there: a 20,761-row tweet table came back with 20,765 rows and dates as sources."""
    frame = pd.DataFrame({"text": ["first line\rsecond line", "plain", 'a "quoted"\nbreak'], "n": [1, 2, 3]})
    frame.to_csv(tmp_path / "tweets.csv", index=False)
    assert len(pd.read_csv(tmp_path / "tweets.csv")) == 4  # the reader this replaced
    read = read_split_file(tmp_path / "tweets.csv")
    pd.testing.assert_frame_equal(read, frame, check_dtype=False)
    crlf = tmp_path / "windows.csv"
    crlf.write_bytes(b"text,n\r\nplain,1\r\nmore,2\r\n")  # Windows line ends still end rows
    assert read_split_file(crlf).to_dict("list") == {"text": ["plain", "more"], "n": [1, 2]}
