"""Both validation passes over the splits: pandera first, the GX suite only on data whose
structure is sound.

Example::

    >>> from components.config import SplitSizes, load_params
    >>> from components.data.sources import build_multimnist
    >>> params = load_params("params.yaml")
    >>> frames = build_multimnist(params.data.model_copy(update={"images": SplitSizes(train=40, val=40, test=40)}), 0)
    >>> check_structure(frames, {split: f"{split}.parquet" for split in frames}, params)
    []
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from components.config import Params
from components.tasks import build_tasks
from components.validation.expectations import check_statistics
from components.validation.report import ValidationReport
from components.validation.schema import check_structure, shared_texts


def validate_splits(
    frames: dict[str, pd.DataFrame], params: Params, files: dict[str, str], docs_dir: Path, run_name: str = "validate"
) -> ValidationReport:
    """pandera first; the GX suite only on data whose structure is sound (its Data Docs
    name the run ``run_name``)."""
    rows = {split: len(frame) for split, frame in frames.items()}
    failures = check_structure(frames, files, params)
    if failures:
        return ValidationReport(False, rows, failures)
    warned = shared_texts(frames, files, params) if params.validation.shared_text == "warn" else []
    failures, summary = check_statistics(frames, files, params, docs_dir, run_name)
    coverage = [warning for task in build_tasks(params.tasks).values() for warning in task.coverage_warnings(frames)]
    index = docs_dir / "index.html"
    return ValidationReport(
        not failures,
        rows,
        failures,
        summary,
        str(index) if index.exists() else None,
        [f"{warning} (validation.shared_text: warn)" for warning in map(str, warned)] + coverage,
    )
