"""Stage ``prepare``: the splits of ``data.source`` as Parquet files (with an image input's
files decoded beside them), and the input encoder (tokenizer, feature statistics) fitted on
the training split.

    $ mtl prepare            # what dvc.yaml's prepare stage runs
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

import pandas as pd

from components.config import Params, ParamsError
from components.data.encoders import DATASET_COLUMN, encoder_dir, fit_encoder
from components.data.images import IMAGES_SUFFIX, SHOWN, LabelFile, decode_split, images_path
from components.data.readers import FileFormatError
from components.data.scenes import SCENES_DIR
from components.data.sources import build_splits
from components.data.splits import split_path, write_splits
from components.io.dvc import params_dvc_lacks
from components.jobs.layout import timed
from components.tasks import build_tasks
from components.validation.report import DataValidationError, RuleFailure, ValidationReport
from components.validation.schema import check_inputs


def _label_ids(params: Params, frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """Each task's labels as ids (class names to 0..); a value a task cannot read is a
    validation error naming the file it came from, the column and the values."""
    for name, task in build_tasks(params.tasks).items():
        try:
            frame = task.label_ids(frame)
        except ValueError as error:
            fold = "other_class" if "other_class" in task.keys else "classes"  # where the type can take them
            dataset = params.tasks[name].dataset
            files = params.data.datasets[dataset].files if dataset else params.data.files
            if isinstance(files, str):
                file = files
            else:
                file = getattr(files, split) if files else str(split_path(params.data.dir, split))
            raise DataValidationError(
                ValidationReport(
                    False,
                    {},
                    [
                        RuleFailure(
                            file, task.column, f"in tasks.{name}.classes", 1, [str(error)], f"tasks.{name}.{fold}"
                        )
                    ],
                )
            ) from None
    return frame


def _missing_inputs(params: Params, frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Rows missing a numeric feature (``data.input.missing: drop``) or their text
    (``data.input.missing_text: drop``) dropped from every split, the counts printed (nothing
    is dropped silently); under ``missing_text: empty`` a missing text becomes ``""``."""
    dropped = {split: dict.fromkeys(("a feature", "the text"), 0) for split in frames}
    for dataset, spec in params.data.inputs().items():
        part = spec.feature_part()
        for split, frame in frames.items():
            own = pd.Series(True, index=frame.index) if dataset is None else frame[DATASET_COLUMN] == dataset
            texts = [c for c in spec.columns if c in frame.columns] if spec.kind in ("text", "text_pair") else []
            if spec.missing_text == "empty":
                frame = frame.assign(**{c: frame[c].where(~(own & frame[c].isna()), "") for c in texts})
            gaps = {
                "a feature": frame[part.columns].apply(pd.to_numeric, errors="coerce").isna().any(axis=1)
                if part is not None and part.missing == "drop"
                else pd.Series(False, index=frame.index),
                "the text": frame[texts].isna().any(axis=1)
                if spec.missing_text == "drop"
                else pd.Series(False, index=frame.index),
            }
            for what, missing in gaps.items():
                dropped[split][what] += int((own & missing).sum())
            frames[split] = frame[~(own & (gaps["a feature"] | gaps["the text"]))].reset_index(drop=True)
    for what, setting in (("a feature", "missing"), ("the text", "missing_text")):
        if any(counts[what] for counts in dropped.values()):
            counts = ", ".join(f"{split} {per[what]}" for split, per in dropped.items())
            print(f"prepare: dropped rows missing {what} (data.input.{setting}: drop): {counts}")
    return frames


def _decoded_images(params: Params, root: Path, frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Every split's image files decoded into ``<split>.images.npy``, and its mask and depth
    files into flat maps in their label columns; the paths, relative to each manifest's
    directory, are kept relative to the project. A missing or unreadable file, or a mask of
    another size than its image, is a validation error naming row, column and file."""
    files = params.data.files
    column = params.data.input.columns[0]
    label_files: dict[str, LabelFile] = {}
    for task in build_tasks(params.tasks).values():
        if task.label_files is not None:
            label_files[task.column] = cast(LabelFile, task.label_files)
    failures, decoded = [], {}
    for split, frame in frames.items():
        if files is None:  # drawn by source scenes: the paths are the project's already
            manifest, base = f"{params.data.dir}/{SCENES_DIR}/{split}/manifest.csv", root
        else:
            manifest = files if isinstance(files, str) else getattr(files, split)
            base = (root / manifest).parent
        frame, failing = decode_split(
            frame,
            column,
            label_files,
            params.data.image_size,
            params.data.input.channels,
            base,
            images_path(root / params.data.dir, split),
        )
        frame[column] = [_from_project(base / str(path), root) for path in frame[column]]  # as the project sees it
        decoded[split] = frame
        failures += [
            RuleFailure(manifest, name, rule, len(rows), rows[:SHOWN], setting="data.files")
            for (name, rule), rows in failing.items()
        ]
    if failures:
        raise DataValidationError(ValidationReport(False, {}, failures))
    return decoded


def _from_project(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


@timed("prepare")
def run(params: Params, root: Path) -> dict[str, int]:
    """Writes ``data.dir``; an unreadable source file, or training inputs the encoder cannot
    be fitted on, is a validation error naming file, column and rule. Under DVC, a section
    ``dvc.yaml`` reads that ``params.yaml`` leaves out stops it here, not hours later."""
    lacking = params_dvc_lacks(root)
    if lacking:
        raise ParamsError(
            f"{root / 'params.yaml'}: dvc.yaml reads {', '.join(lacking)}, which params.yaml does not hold; "
            "DVC does not fill defaults: add them (an empty section, e.g. `selection: {}`, keeps every default)"
        )
    try:
        frames = build_splits(params, root)
    except FileFormatError as error:
        raise DataValidationError.for_file(error.file, "readable as its format", error.detail) from None
    frames = _missing_inputs(params, {split: _label_ids(params, f, split) for split, f in frames.items()})
    for stale in (root / params.data.dir).glob(f"*{IMAGES_SUFFIX}"):
        stale.unlink()  # an earlier image input's arrays: written again below, or no longer wanted
    if params.data.input.kind == "image":
        frames = _decoded_images(params, root, frames)
    write_splits(frames, root / params.data.dir)
    # the encoder is fitted on the training inputs: they must be there and well-typed first
    train_file = split_path(params.data.dir, "train")
    if frames["train"].empty:
        raise DataValidationError.for_file(
            str(train_file), "at least one row", "the train split has 0 rows: the input encoder is fitted on it"
        )
    failures = check_inputs(frames["train"], str(train_file), params)
    if failures:
        raise DataValidationError(ValidationReport(False, {}, failures))
    fit_encoder(params, frames["train"], encoder_dir(root / params.data.dir))
    rows = {split: len(frame) for split, frame in frames.items()}
    print(f"prepare: wrote {rows} to {root / params.data.dir}")
    return rows
