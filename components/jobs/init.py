"""``mtl init``: a commented ``params.yaml`` for your own table, from the table itself.

Columns get roles (``components.data.profile``), the tasks you name get types, and the
validation limits come from the data: row minimums from the split sizes, class-share
bounds from the observed shares with slack, missing-value limits per label and input
column from the observed gaps. Every section ``dvc.yaml`` reads is written, so
``dvc repro`` runs on it as it is.

    $ mtl init raw/penguins.csv --task species --task sex --task body_mass_g
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from components.config import GRADIENT_METHODS, LOSS_WEIGHTINGS, Params, ParamsError, SplitFractions
from components.data.profile import ColumnProfile, class_names, profile_columns, scalar, task_guess
from components.data.readers import TABLE_READERS, FileFormatError, read_split_file
from components.data.splits import SPLITS
from components.tasks import RESERVED_NAMES, check_tasks

#: slack on each limit read off the data: a nightly split differs from today's by chance
SHARE_SLACK, MISSING_SLACK = 0.05, 0.05
#: a class expected fewer times than this in the smallest split is often absent from it by
#: chance (Poisson: 5 % of the time at 3): such classes fold into one, OTHER_CLASS
MIN_EXPECTED_ROWS = 3
OTHER_CLASS = "other"
RANDOM_SPLIT = SplitFractions().model_dump()  # the config's default held-out shares


def parse_task(option: str) -> tuple[str, str | list[str]]:
    """``--task COLUMN`` or ``--task NAME=COL1,COL2,...`` (a multilabel task) as (name, label);
    a column whose name torch reserves (``double``) names its task ``double_task``."""
    name, _, columns = option.partition("=")
    if columns:
        return name.strip(), [c.strip() for c in columns.split(",") if c.strip()]
    name = re.sub(r"[^A-Za-z0-9_]+", "_", option.strip()).strip("_") or "task"
    return name + "_task" if name in RESERVED_NAMES else name, option.strip()


def _floor(value: float, digits: int = 3) -> float:
    return math.floor(value * 10**digits) / 10**digits


def _ceil(value: float, digits: int = 2) -> float:
    return min(1.0, math.ceil(value * 10**digits) / 10**digits)


def _split_sizes(frame: pd.DataFrame, split_column: str | None, max_rows: int | None) -> dict[str, int]:
    if split_column:
        counts = frame[split_column].astype(str).value_counts()
        return {split: min(int(counts.get(split, 0)), max_rows or len(frame)) for split in SPLITS}
    rows = min(len(frame), max_rows or len(frame))
    held = {split: round(rows * share) for split, share in RANDOM_SPLIT.items()}
    return {"train": rows - sum(held.values()), **held}


def _task_entry(frame: pd.DataFrame, label: str | list[str], sizes: dict[str, int]) -> dict[str, Any]:
    """A task's settings, with its label limits read off the data (split into ``sizes``).
    A class expected fewer than five times in the smallest split may be absent from it by
    chance: then no minimum."""
    smallest_split = min(sizes.values())
    columns = label if isinstance(label, list) else [label]
    for column in columns:
        values = frame[column].dropna()
        if values.nunique() < 2:
            held = f"one value ({scalar(values.iloc[0])!r}) in all {len(values):,} rows" if len(values) else "no values"
            raise ParamsError(f"--task {column}: {column} has {held}: nothing to learn; choose another column")
    entry = task_guess(frame, label)
    missing = float(frame[columns].isna().any(axis=1).mean())
    if missing > 0:
        entry["max_missing_fraction"] = _ceil(missing + MISSING_SLACK)
    if entry["type"] == "classification":
        entry, shares = _fold_rare_classes(entry, class_names(frame[label]), smallest_split / sum(sizes.values()))
        rarest = float(shares.min())
        expected = rarest * smallest_split * (1 - missing)
        entry["min_class_share"] = _floor(rarest / 2) if expected >= 5 else 0.0
        entry["max_class_share"] = _ceil(float(shares.max()) * 1.25 + SHARE_SLACK)
    entry["max_relative_regression"] = 0.02
    return entry


def _fold_rare_classes(
    entry: dict[str, Any], names: pd.Series, smallest_share: float
) -> tuple[dict[str, Any], pd.Series]:
    """The task with classes (``names``, one per labelled row) expected fewer than
    ``MIN_EXPECTED_ROWS`` times in the smallest split (``smallest_share`` of the rows) folded
    into ``other_class``, and the class shares after folding; ``entry["folded"]`` names what
    was folded, for the file's comment."""
    counts = names.value_counts()
    rare = counts[counts * smallest_share < MIN_EXPECTED_ROWS]
    kept = [name for name in entry["classes"] if name not in rare.index]
    if len(rare) < 2 or not kept:  # one rare class gains nothing by a new name
        return entry, names.value_counts(normalize=True)
    other = OTHER_CLASS if OTHER_CLASS not in kept else f"{OTHER_CLASS}_"
    folded = entry | {"classes": [*kept, other], "other_class": other}
    folded["folded"] = ", ".join(f"{name} ({count:,})" for name, count in rare.items())
    return folded, names.where(names.isin(kept), other).value_counts(normalize=True)


def _input(
    profiles: list[ColumnProfile], taken: set[str], frame: pd.DataFrame, chosen: list[str]
) -> tuple[dict[str, Any], str]:
    """The input and the backbone that reads it, from the ``chosen`` columns or else every
    column that is not a task: the longest text column with the numeric and categorical
    columns beside it (``text_transformer``), or without text the numeric and categorical
    columns alone (``mlp``)."""
    free = [p for p in profiles if p.name not in taken and (not chosen or p.name in chosen)]
    odd = [f"{p.name} ({p.role}: {p.why})" for p in free if p.role not in ("text", "numeric", "categorical")]
    if chosen and odd:
        raise ParamsError(f"--input: {', '.join(odd)} cannot be read as text, numbers or categories")
    texts = [p for p in free if p.role == "text"]
    if chosen and len(texts) > 1:
        raise ParamsError(f"--input: {', '.join(p.name for p in texts)}: one text column per model")
    numeric = [p.name for p in free if p.role == "numeric"]
    categorical = [p.name for p in free if p.role == "categorical"]
    spec: dict[str, Any]
    if texts:
        longest = max(texts, key=lambda p: frame[p.name].astype(str).str.len().mean())
        spec = {"kind": "text", "columns": [longest.name]} | ({"features": numeric} if numeric else {})
        if longest.missing_rows:  # with columns beside it a row without text still teaches something
            spec["missing_text"] = "empty" if numeric or categorical else "drop"
    elif numeric or categorical:
        spec = {"kind": "features", "columns": numeric}
    else:
        raise ParamsError("no input column left: every column is a task, an id, a split or ignored")
    if categorical:
        spec["categorical"] = categorical
    if frame[numeric].isna().any().any():
        spec["missing"] = "median"
    return spec, "text_transformer" if texts else "mlp"


def build(
    path: str,
    frame: pd.DataFrame,
    tasks: dict[str, str | list[str]],
    inputs: list[str] | None = None,
    max_rows: int | None = None,
) -> tuple[dict[str, Any], list[ColumnProfile], dict[str, str]]:
    """The parameters for ``frame`` (read from ``path``), the named ``tasks`` and, if
    given, the ``inputs`` columns the model reads and ``data.max_rows``; the profiles of the
    columns; and the notes on sections whose values were sized from this data."""
    profiles = profile_columns(frame)
    taken = {c for label in tasks.values() for c in ([label] if isinstance(label, str) else label)}
    for option, named in (("--task", taken), ("--input", set(inputs or []))):
        missing = sorted(named - set(frame.columns))
        if missing:
            columns = ", ".join(map(str, frame.columns))
            raise ParamsError(f"{path}: no column(s) {missing} for {option}; columns: {columns}")
    split_column = next((p.name for p in profiles if p.role == "split"), None)
    spec, backbone = _input(profiles, taken, frame, inputs or [])
    sizes = _split_sizes(frame, split_column, max_rows)
    task_entries = {name: _task_entry(frame, label, sizes) for name, label in tasks.items()}
    folded = {name: entry.pop("folded") for name, entry in task_entries.items() if "folded" in entry}
    data: dict[str, Any] = {"source": "files", "dir": "data", "files": path}
    if max_rows:
        data["max_rows"] = max_rows
    if split_column:
        data["split_column"] = split_column
    else:
        data["split"] = dict(RANDOM_SPLIT)
        classification = [e["label"] for e in task_entries.values() if e["type"] == "classification"]
        if classification:
            data["stratify"] = classification[0]
    data["input"] = spec
    validation: dict[str, Any] = {
        "min_rows": {split: max(1, size // 2) for split, size in sizes.items()},
        "max_null_fraction": 0.0,
    }
    # categories may be missing (a category of their own), numbers only where imputed
    numbers = spec.get("features", []) if spec["kind"] == "text" else spec["columns"]
    nullable = [*spec.get("categorical", []), *(numbers if spec.get("missing") == "median" else [])]
    per_column = {c: _ceil(float(frame[c].isna().mean()) + MISSING_SLACK) for c in nullable}
    if per_column:
        validation["max_null_fraction_per_column"] = per_column
    if spec["kind"] == "text":
        duplicated = bool(frame[spec["columns"][0]].dropna().duplicated().any())
        validation["shared_text"] = ("warn" if split_column else "group") if duplicated else "fail"
    validation["docs_dir"] = "reports/data_docs"
    tabular = spec["kind"] == "features" or bool({"features", "categorical"} & set(spec))  # model.mlp reads them
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(path).stem).strip("-.") or "my"
    small = sizes["train"] < 2000
    batch_size = 32 if small else 128
    training, budget = training_budget(sizes["train"], batch_size)
    params = {
        "seed": 0,
        "data": data,
        "tasks": task_entries,
        "model": {"backbone": backbone, "sharing": "hard"}
        | ({"mlp": {"hidden": [64, 64] if spec["kind"] == "features" else [32], "dropout": 0.1}} if tabular else {}),
        "training": training | {"lr": 0.001, "loss_weighting": {"name": "equal"}, "gradient": {"name": "sum"}},
        "selection": {"min_delta_m": 0.0, "rule": "lower_bound"},
        "tuning": {"trials": 0},
        "validation": validation,
        "registry": {"model_name": f"{name}-mtl", "experiment": f"{name}-mtl"},
        "serving": {"max_batch_rows": 10000, "chunk_rows": 1024},
    }
    notes = {"training": f"{SECTION_NOTES['training']}\n{budget}"}
    if folded:
        notes["tasks"] = SECTION_NOTES["tasks"] + "".join(
            "\n"
            + textwrap.fill(
                f"{name}: classes too rare to reach every split fold into other_class "
                f"{task_entries[name]['other_class']!r}: {classes}",
                100,
            )
            for name, classes in folded.items()
        )
    if "missing_text" in spec:
        text = next(p for p in profiles if p.name == spec["columns"][0])
        notes["data"] = SECTION_NOTES["data"] + (
            f"\n{text.name} has {text.missing_note()}: missing_text {spec['missing_text']} "
            "(fail | empty | drop) says what such a row becomes."
        )
    return params, profiles, notes


#: the most optimizer steps ``mtl init``'s budget allows: early stopping ends a training that
#: converges sooner, so this is a ceiling, not the expected length
MAX_STEPS = 20_000
#: and the fewest and most epochs, whatever the rows: a small table still gets room to
#: converge, a huge one at least a few passes
EPOCH_RANGE = (20, 300)


def training_budget(train_rows: int, batch_size: int) -> tuple[dict[str, Any], str]:
    """``training`` settings sized from the training rows, in steps rather than epochs, with
    early stopping on; and the note that says so in the written file."""
    steps = max(1, math.ceil(train_rows / batch_size))
    epochs = min(max(math.ceil(MAX_STEPS / steps), EPOCH_RANGE[0]), EPOCH_RANGE[1])
    settings = {
        "max_epochs": epochs,
        "batch_size": batch_size,
        "early_stopping": {"enabled": True, "patience": 5, "min_delta": 0.001},
        "schedule": {"name": "plateau", "plateau_factor": 0.5, "plateau_patience": 2},
        "clip_grad_norm": 5.0,
    }
    note = (
        f"The budget, sized from the data: {train_rows:,} training rows / batch_size {batch_size} = {steps:,}\n"
        f"steps an epoch, so max_epochs {epochs} allows ~{epochs * steps:,} steps. Early stopping ends each training\n"
        "once its validation objective has not improved for `patience` epochs; a verdict on a training that\n"
        "ran out of budget first is inconclusive (raise max_epochs)."
    )
    return settings, note


SECTION_NOTES = {
    "data": "Where the rows come from and what the model reads (the input).",
    "tasks": "One entry per task: its label column and type. Keep, drop or add tasks here;\n"
    "the limits below each were read off the data with some slack.",
    "model": "backbone: mlp reads features, text_transformer reads text (model.mlp: the columns beside it).\n"
    "sharing: hard | cross_stitch | mmoe | soft_penalty | sluice",
    "training": "Shared by the single-task baselines and the MTL model. Other choices:\n"
    f"loss_weighting: {{name: ...}}, one of {' | '.join(LOSS_WEIGHTINGS)};\n"
    f"gradient: {{name: ...}}, one of {' | '.join(GRADIENT_METHODS)}",
    "selection": "The gate: accept the MTL model only if its mean relative change over tasks (Δm) is at least this\n"
    "and no task regresses beyond its max_relative_regression.",
    "validation": "Limits every split must meet before any training, read off this file with slack.",
    "tuning": "Tuning parity: trials N gives every baseline and the MTL model the same Optuna search\n"
    "(lr, weight_decay, dropout) of N trainings; N x the training time. 0: untuned.",
    "registry": "The MLflow registered model and experiment.",
    "serving": "What a registered model accepts per request.",
}


class _Dumper(yaml.SafeDumper):
    """Lists of plain values on one line ([64, 64]); everything else in block style."""


def _represent_list(dumper: yaml.SafeDumper, items: list) -> yaml.Node:
    flat = all(not isinstance(item, dict | list) for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flat)


_Dumper.add_representer(list, _represent_list)


def render(
    params: dict[str, Any], profiles: list[ColumnProfile], path: str, notes: dict[str, str] | None = None
) -> str:
    """``params`` as YAML, each section with a comment (``notes`` replace the standard ones),
    and the columns' roles on top."""
    width = max(len(p.name) for p in profiles)
    lines = [
        f"# Written by `mtl init {path}`: edit the task choices, then `dvc repro`.",
        "# Every key is checked (components/config/); docs/reference/configuration.md lists them all.",
        "#",
        "# Columns of the file, as `mtl init` read them:",
    ]
    lines += [
        f"#   {p.name:<{width}}  {p.role:<11}  {p.why}" + (f"; {p.missing_note()}" if p.missing_rows else "")
        for p in profiles
    ]
    lines.append("")
    notes = SECTION_NOTES | (notes or {})
    for key, value in params.items():
        if key in notes:
            lines += ["# " + note for note in notes[key].splitlines()]
        lines.append(yaml.dump({key: value}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100).rstrip())
        lines.append("")
    return "\n".join(lines)


def read_table(path: Path) -> pd.DataFrame:
    """The table ``mtl init`` profiles: a CSV or Parquet file."""
    if path.suffix.lower() not in TABLE_READERS:
        raise FileFormatError(path, f"mtl init reads a table: {', '.join(TABLE_READERS)}")
    return read_split_file(path)


def run(
    data_file: Path,
    task_options: list[str],
    output: Path,
    root: Path,
    force: bool,
    inputs: list[str] | None = None,
    max_rows: int | None = None,
) -> Params:
    """Writes ``output`` for ``data_file``, the tasks named and the ``inputs`` columns (default:
    chosen from the columns' roles); returns it validated."""
    if output.exists() and not force:
        raise ParamsError(f"{output} exists; pass --force to replace it (git keeps the old one)")
    if not task_options:
        raise ParamsError("name at least one task: --task COLUMN (or --task NAME=COL1,COL2 for multilabel)")
    relative = data_file.resolve()
    if not relative.is_relative_to(root.resolve()):
        raise ParamsError(f"{data_file} is outside the project {root.resolve()}: copy it in, e.g. under raw/")
    path = relative.relative_to(root.resolve()).as_posix()
    if path.split("/")[0] == "data":
        raise ParamsError(f"{path}: data/ holds what prepare writes; keep your file elsewhere, e.g. raw/")
    frame = read_table(data_file)
    tasks = dict(parse_task(option) for option in task_options)
    params, profiles, notes = build(path, frame, tasks, inputs, max_rows)
    text = render(params, profiles, path, notes)
    checked = Params.model_validate(yaml.safe_load(text))  # what was written must load
    check_tasks(checked, str(output))
    output.write_text(text)
    return checked
