"""The setting each broken rule answers to: the ``params.yaml`` key a user changes when the
data is right and the rule is not (or that declares the column, when only the data can change).

Example::

    >>> from components.config import load_params
    >>> params = load_params("params.yaml")
    >>> setting_for("left", "isin([0, 1, 2])", params)
    'tasks.left.num_classes'
    >>> setting_for("px_0005", "not_nullable", params)
    'data.files'
"""

from __future__ import annotations

from components.config import Params
from components.validation.report import RuleFailure

#: pandera's rules about a column being there at all
PRESENCE_RULES = ("column is missing", "column is not in the schema")


def _task_setting(name: str, rule: str, params: Params) -> str:
    task = params.tasks[name]
    if rule in PRESENCE_RULES:
        return f"tasks.{name}.label"
    if rule == "not_nullable":
        return f"tasks.{name}.max_missing_fraction"
    if rule.startswith("isin") or rule == "numeric_dtype":
        return f"tasks.{name}.classes" if task.classes is not None else f"tasks.{name}.num_classes"
    return f"tasks.{name}.type"  # a label the type cannot read (a fraction, inf): the task's type decides


def _input_setting(column: str, rule: str, params: Params) -> str | None:
    for dataset, spec in params.data.inputs().items():
        key = "data.input" if dataset is None else f"data.datasets.{dataset}.input"
        if column in spec.columns and spec.kind in ("text", "text_pair"):
            return f"{key}.columns" if rule in PRESENCE_RULES else f"{key}.missing_text"
        part = spec.feature_part()
        if part is None:
            continue
        numeric = spec.features if spec.kind == "text" else spec.columns
        listed = "features" if spec.kind == "text" else "columns"
        if column in numeric:
            if rule in PRESENCE_RULES:
                return f"{key}.{listed}"
            if rule == "not_nullable":
                return f"{key}.missing"
            return f"{key}.categorical"  # text or inf in a number column: read it as categories instead
        if column in spec.categorical:
            return f"{key}.categorical"
    return None


def setting_for(column: str, rule: str, params: Params) -> str:
    """The setting behind ``rule`` broken on ``column``: the task that labels it, the input
    that reads it, or else the data files themselves."""
    for name, task in params.tasks.items():
        if column in task.label_columns:
            return _task_setting(name, rule, params)
    if column.startswith("px_") or column in ("id", "(file)"):
        return "data.canvas_size" if rule == "pixel_count_matches_canvas_size" else "data.files"
    if rule == "text_in_one_split_only":
        return "validation.shared_text"
    return _input_setting(column, rule, params) or "data.files"


def with_settings(failures: list[RuleFailure], params: Params) -> list[RuleFailure]:
    """``failures``, each naming its setting (those that name one already keep it)."""
    for failure in failures:
        if not failure.setting:
            failure.setting = setting_for(failure.column, failure.rule, params)
    return failures
