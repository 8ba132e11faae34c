"""A split's file that is there but wrong: a directory in its place got "columns present:"
with nothing after it (issue 25, case 7); a file that is not Parquet an unexpected error."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from components.data.splits import SplitFileError, read_split, split_path, write_splits
from tests.helpers.projects import REPO, tiny_params_dict


def splits(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b"], "x": [1.0, 2.0]})
    write_splits({"train": frame, "val": frame, "test": frame}, tmp_path / "data")
    return tmp_path / "data"


def test_a_directory_in_place_of_a_split_is_named_as_such(tmp_path):
    data = splits(tmp_path)
    split_path(data, "train").unlink()
    split_path(data, "train").mkdir()
    with pytest.raises(
        SplitFileError, match=r"train\.parquet: is a directory, not the split's Parquet file; remove it"
    ):
        read_split(data, "train")


def test_a_file_that_is_not_parquet_is_named_as_such(tmp_path):
    data = splits(tmp_path)
    split_path(data, "val").write_bytes(b"not parquet at all")
    with pytest.raises(SplitFileError, match=r"val\.parquet: not a readable Parquet file"):
        read_split(data, "val")
    assert list(read_split(data, "test").columns) == ["id", "x"]


def test_validate_says_so_and_exits_1(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict()))
    data = splits(tmp_path)
    split_path(data, "train").unlink()
    split_path(data, "train").mkdir()
    command = [sys.executable, "-m", "components.cli", "validate", "--params", str(params), "--root", str(tmp_path)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "data/train.parquet: column '(file)' failed rule one Parquet file (1 failing) e.g. is a directory" in message
    assert "Traceback" not in result.stderr
