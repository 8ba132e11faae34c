"""Stage ``validate``: pandera and Great Expectations on every split; Data Docs.

$ mtl validate           # exit 1 with file, column, rule and examples on bad data
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from components.config import Params
from components.data.splits import SPLITS, split_path
from components.io.dvc import data_version
from components.jobs.layout import VALIDATION_REPORT, timed, write_json
from components.validation.report import DataValidationError
from components.validation.suite import validate_splits


def _read_for_validation(params: Params, root: Path) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    frames, files = {}, {}
    for split in SPLITS:
        path = split_path(root / params.data.dir, split)
        files[split] = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        if path.is_dir():  # pandas would read it as an empty partitioned dataset
            detail = "is a directory; remove it and prepare the data again (`dvc repro prepare`)"
            raise DataValidationError.for_file(files[split], "one Parquet file", detail)
        try:
            frames[split] = pd.read_parquet(path)
        except FileNotFoundError:
            raise DataValidationError.for_file(files[split], "file exists", "not found") from None
        except Exception as error:  # a corrupt file is bad input, not a crash
            raise DataValidationError.for_file(files[split], "readable Parquet", str(error)[:200]) from None
    return frames, files


@timed("validate")
def run(params: Params, root: Path) -> dict[str, Any]:
    """Writes ``reports/validation.json``; raises :class:`DataValidationError` on failure."""
    frames, files = _read_for_validation(params, root)
    # Data Docs name the run (and its folder) by the data it checked
    run_name = "data-" + data_version(root, params.data.dir).removeprefix("dvc:")[:12]
    report = validate_splits(frames, params, files, root / params.validation.docs_dir, run_name)
    write_json(root / VALIDATION_REPORT, report.to_dict())
    if not report.passed:
        raise DataValidationError(report)
    for warning in report.warnings:
        print(f"validate: warning: {warning}")
    print(f"validate: {sum(report.rows.values())} rows passed pandera and GX; Data Docs at {report.data_docs}")
    return report.to_dict()
