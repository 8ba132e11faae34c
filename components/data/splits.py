"""The three splits on disk: one Parquet file each under ``data.dir``.

Example::

    >>> split_path("data", "val").as_posix()
    'data/val.parquet'
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SPLITS = ("train", "val", "test")


def split_path(data_dir: str | Path, split: str) -> Path:
    """Where ``split`` lives under ``data_dir``."""
    return Path(data_dir) / f"{split}.parquet"


def write_splits(frames: dict[str, pd.DataFrame], data_dir: str | Path) -> None:
    """One Parquet file per split."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    for split, frame in frames.items():
        frame.to_parquet(split_path(data_dir, split), index=False)


def read_split(data_dir: str | Path, split: str) -> pd.DataFrame:
    """The rows of ``split``; a missing file names the stage that writes it."""
    path = split_path(data_dir, split)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; prepare the data first (`dvc repro prepare` or `mtl prepare`)")
    return pd.read_parquet(path)
