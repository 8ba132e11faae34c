"""The three splits on disk: one Parquet file each under ``data.dir``.

Example::

    >>> split_path("data", "val").as_posix()
    'data/val.parquet'
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from components.errors import PipelineError

SPLITS = ("train", "val", "test")


class SplitFileError(PipelineError, ValueError):
    """A split's file is there but is not one Parquet file: a directory, or unreadable. It
    carries the rule broken and the reason, for a validation report to name them."""

    def __init__(self, path: Path, rule: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.rule, self.reason = rule, reason


def split_path(data_dir: str | Path, split: str) -> Path:
    """Where ``split`` lives under ``data_dir``."""
    return Path(data_dir) / f"{split}.parquet"


def write_splits(frames: dict[str, pd.DataFrame], data_dir: str | Path) -> None:
    """One Parquet file per split."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    for split, frame in frames.items():
        frame.to_parquet(split_path(data_dir, split), index=False)


def read_split(data_dir: str | Path, split: str) -> pd.DataFrame:
    """The rows of ``split``; a missing, misplaced or unreadable file names the stage that
    writes it (pandas would read a directory as an empty partitioned dataset)."""
    path = split_path(data_dir, split)
    again = "remove it and prepare the data again (`dvc repro prepare` or `mtl prepare`)"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; prepare the data first (`dvc repro prepare` or `mtl prepare`)")
    if path.is_dir():
        raise SplitFileError(path, "one Parquet file", f"is a directory, not the split's Parquet file; {again}")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError; the served model lacks pyarrow
        raise SplitFileError(path, "readable Parquet", f"not a readable Parquet file ({error}); {again}") from None
