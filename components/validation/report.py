"""What validation found: each broken rule with its file, column and a few failing examples.

Example::

    >>> error = DataValidationError.for_file("data/train.parquet", "readable Parquet", "empty", "data.dir")
    >>> print(error)
    data validation failed: 1 rule(s) broken
      - data/train.parquet: column '(file)' failed rule readable Parquet (1 failing) e.g. empty [setting: data.dir]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from components.errors import PipelineError

MAX_EXAMPLES = 5
MAX_LISTED_FAILURES = 12


@dataclass
class RuleFailure:
    file: str
    column: str
    rule: str
    count: int
    examples: list[str]
    #: the params.yaml key this rule answers to (components.validation.settings)
    setting: str = ""

    def __str__(self) -> str:
        shown = "; ".join(self.examples) if self.examples else "-"
        setting = f" [setting: {self.setting}]" if self.setting else ""
        return (
            f"{self.file}: column {self.column!r} failed rule {self.rule} ({self.count} failing) e.g. {shown}{setting}"
        )


@dataclass
class ValidationReport:
    passed: bool
    rows: dict[str, int]
    failures: list[RuleFailure] = field(default_factory=list)
    expectations: dict[str, dict[str, int]] = field(default_factory=dict)
    data_docs: str | None = None
    #: rules broken that the settings turn into warnings (``validation.shared_text: warn``)
    warnings: list[str] = field(default_factory=list)
    #: the version of the data directory checked (``components.io.dvc.data_version``): the
    #: trainings read only this
    data_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DataValidationError(PipelineError):
    """The data broke at least one rule; ``str()`` lists each failing rule with examples."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        lines = [f"data validation failed: {len(report.failures)} rule(s) broken"]
        lines += [f"  - {failure}" for failure in report.failures[:MAX_LISTED_FAILURES]]
        if len(report.failures) > MAX_LISTED_FAILURES:
            lines.append(
                f"  ... and {len(report.failures) - MAX_LISTED_FAILURES} more, listed in reports/validation.json"
            )
        super().__init__("\n".join(lines))

    @classmethod
    def for_file(cls, file: str, rule: str, detail: str, setting: str = "data.files") -> DataValidationError:
        """A whole file that breaks ``rule`` (missing, unreadable)."""
        return cls(ValidationReport(False, {}, [RuleFailure(file, "(file)", rule, 1, [detail], setting)]))
