"""What every section's model shares: strict keys, frozen values, attribute docstrings."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from components.errors import PipelineError


class ParamsError(PipelineError, ValueError):
    """``params.yaml`` is missing, unreadable or invalid; the message says where and why."""


class Strict(BaseModel):
    """A section of ``params.yaml``: an unknown key is an error, values are frozen, types are
    strict (``true`` is not an epoch count, ``1`` is not a boolean, ``3.0`` is not a whole
    number; a whole number is still a float), and each field's attribute docstring is its
    description (the configuration reference is generated from it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, strict=True)


class SplitSizes(Strict):
    train: Annotated[int, Field(gt=0)]
    """Rows (or images) of the training split."""
    val: Annotated[int, Field(gt=0)]
    """Rows of the validation split, which selection and early stopping judge on."""
    test: Annotated[int, Field(gt=0)]
    """Rows of the test split, reported and never used to choose."""
