"""Stage ``validate``: pandera and Great Expectations on every split; Data Docs.

$ mtl validate           # exit 1 with file, column, rule and examples on bad data
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from components.config import Params
from components.data.splits import SPLITS, SplitFileError, read_split, split_path
from components.io.dvc import data_version
from components.jobs.layout import VALIDATION_REPORT, timed, write_json
from components.validation.report import DataValidationError
from components.validation.suite import validate_splits


def _read_for_validation(params: Params, root: Path) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    frames, files = {}, {}
    for split in SPLITS:
        path = split_path(root / params.data.dir, split)
        files[split] = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        try:
            frames[split] = read_split(root / params.data.dir, split)
        except FileNotFoundError:
            raise DataValidationError.for_file(files[split], "file exists", "not found", "data.dir") from None
        except SplitFileError as error:  # a directory in its place, or a file pyarrow cannot read
            raise DataValidationError.for_file(files[split], error.rule, error.reason, "data.dir") from None
        except Exception as error:  # anything else a corrupt file raises is bad input, not a crash
            raise DataValidationError.for_file(files[split], "readable Parquet", str(error)[:200], "data.dir") from None
    return frames, files


@timed("validate")
def run(params: Params, root: Path) -> dict[str, Any]:
    """Writes ``reports/validation.json``; raises :class:`DataValidationError` on failure."""
    frames, files = _read_for_validation(params, root)
    # Data Docs name the run (and its folder) by the data it checked
    version = data_version(root, params.data.dir)
    run_name = "data-" + version.removeprefix("dvc:")[:12]
    report = validate_splits(frames, params, files, root / params.validation.docs_dir, run_name)
    report.data_version = version
    # the tasks whose labels were checked: `mtl add-task` trains only on a validated one
    write_json(root / VALIDATION_REPORT, report.to_dict() | {"tasks": list(params.tasks)})
    if not report.passed:
        raise DataValidationError(report)
    for warning in report.warnings:
        print(f"validate: warning: {warning}")
    print(f"validate: {sum(report.rows.values())} rows passed pandera and GX; Data Docs at {report.data_docs}")
    return report.to_dict()
