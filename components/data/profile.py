"""What a table's columns look like, for ``mtl init``: each column's role, and what a task
on it would be. Heuristics, stated so a user can overrule them in the ``params.yaml``
they produce:

=============== =========================================================================
``split``       named split, set, fold or subset, holding only train/val/test
``id``          named id or rownames (or with such a word: user_id), or one distinct value
                per row that is not text
                (an integer count 1..N, a key)
``text``        strings averaging three words or more, or two or more when most values
                are distinct (reviews, titles)
``categorical`` strings or booleans with few distinct values (≤ 50, or ≤ 5 % of rows)
``numeric``     numbers
``ignored``     empty, lists, or many distinct short strings (names)
=============== =========================================================================

A task on a ``categorical`` column, or on whole numbers with at most 20 values, is a
classification (its values as ``classes``); on other numbers, a regression.

Example::

    >>> frame = pd.DataFrame({"id": ["a", "b", "c"], "kind": ["x", "y", "x"], "size": [1.5, 2.0, None]})
    >>> {c.name: c.role for c in profile_columns(frame)}
    {'id': 'id', 'kind': 'categorical', 'size': 'numeric'}
    >>> task_guess(frame, "kind")
    {'type': 'classification', 'label': 'kind', 'classes': ['x', 'y']}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from components.data.splits import SPLITS

Role = Literal["split", "id", "text", "categorical", "numeric", "ignored"]
SPLIT_NAMES_OF_COLUMNS = ("split", "set", "fold", "subset")
ID_NAMES = frozenset({"id", "rownames", "index", "key", "uuid"})
MAX_CATEGORIES = 50
MAX_CLASSES = 20
TEXT_MIN_WORDS = 3.0


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    role: Role
    missing: float  # share of rows without a value
    distinct: int
    why: str  # the rule that gave the role, shown in the params.yaml it writes
    missing_rows: int = 0
    rows: int = 0

    def missing_note(self) -> str:
        """The gaps as a count: "1 of 20,761 missing", a share only where it rounds above 0%.

        >>> ColumnProfile("text", "text", 1 / 20761, 20000, "words", 1, 20761).missing_note()
        '1 of 20,761 missing'
        """
        if not self.missing_rows:
            return ""
        share = f" ({self.missing:.0%})" if round(self.missing, 2) >= 0.01 else ""
        return f"{self.missing_rows:,} of {self.rows:,} missing{share}"


def _is_listlike(values: pd.Series) -> bool:
    return bool(values.map(lambda v: isinstance(v, list | tuple | np.ndarray)).any())


def scalar(value: object) -> object:
    """A numpy scalar as the Python value it holds (``False``, not ``np.False_``), for messages."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def profile_column(name: str, values: pd.Series) -> ColumnProfile:
    """The role of one column, and why."""
    present = values.dropna()
    missing, distinct, rows = float(values.isna().mean()), int(present.nunique()), len(values)

    def profile(role: Role, why: str) -> ColumnProfile:
        return ColumnProfile(name, role, missing, distinct, why, int(values.isna().sum()), rows)

    if present.empty:
        return profile("ignored", "empty")
    if distinct == 1 and missing == 0:  # the same in every row (a gap would still say something)
        return profile("ignored", f"one value ({scalar(present.iloc[0])!r}) in all {rows:,} rows")
    if _is_listlike(present):
        return profile("ignored", "lists")
    words = present.astype(str)
    if name.lower() in SPLIT_NAMES_OF_COLUMNS and set(words) <= set(SPLITS):
        return profile("split", f"values {sorted(set(words))}")
    if ID_NAMES & set(re.split(r"[^a-z0-9]+", name.lower())):  # id, user_id, id_str: a key, not a quantity
        return profile("id", "named like an id")
    if pd.api.types.is_bool_dtype(values):
        return profile("categorical", "true/false")
    if pd.api.types.is_numeric_dtype(values):
        counting = pd.api.types.is_integer_dtype(values) and present.is_monotonic_increasing and distinct == rows
        return profile("id", "1..N, one per row") if counting and rows > 2 else profile("numeric", "numbers")
    mean_words = float(words.str.split().str.len().mean())
    if mean_words >= TEXT_MIN_WORDS or (mean_words >= 2 and distinct >= len(present) / 2):
        return profile("text", f"{mean_words:.1f} words on average")
    if distinct <= max(MAX_CATEGORIES, 0.05 * rows) and distinct < rows:
        return profile("categorical", f"{distinct} distinct values")
    if distinct == len(present):
        return profile("id", "one distinct value per row")
    return profile("ignored", f"{distinct} distinct short strings (a name?): not a feature")


def profile_columns(frame: pd.DataFrame) -> list[ColumnProfile]:
    """Every column's profile, in the table's order."""
    return [profile_column(str(name), frame[name]) for name in frame.columns]


def class_names(values: pd.Series) -> pd.Series:
    """Each present label as the class name a task lists: whole numbers without a
    decimal point (``3``, not ``3.0``), anything else as written."""
    present = values.dropna()
    if pd.api.types.is_numeric_dtype(present) and (present % 1 == 0).all():
        return present.astype("int64").astype(str)
    return present.astype(str)


def _class_names(values: pd.Series) -> list[str]:
    names = class_names(values).unique()
    whole = pd.api.types.is_numeric_dtype(values.dropna()) and (values.dropna() % 1 == 0).all()
    return sorted(names, key=int) if whole else sorted(names)


def task_guess(frame: pd.DataFrame, label: str | list[str]) -> dict[str, Any]:
    """A task on ``label``: multilabel for several 0/1 columns, classification for
    categories or few whole numbers, regression otherwise."""
    if isinstance(label, list):
        return {"type": "multilabel", "label": label}
    values = frame[label]
    present = values.dropna()
    whole = pd.api.types.is_numeric_dtype(present) and bool((present % 1 == 0).all())
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        if not (whole and present.nunique() <= MAX_CLASSES):
            return {"type": "regression", "label": label}
    return {"type": "classification", "label": label, "classes": _class_names(values)}
