"""``selection``: the acceptance policy's settings (``components.selection``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from components.config.base import Strict


class SelectionConfig(Strict):
    min_delta_m: float = 0.0
    """Minimum mean relative change over tasks (Δm) for the MTL model to be accepted."""
    rule: Literal["point", "lower_bound"] = "lower_bound"
    """point: judge Δ_t and Δm as measured on validation; lower_bound: judge the ends of their paired bootstrap
    intervals: accepted when every lower end passes, rejected when an upper end fails, inconclusive when an
    interval straddles the bar (a task without row statistics, e.g. tagging, is judged on its point value). The
    default follows the gate calibration study (docs/concepts/acceptance-policy.md, "The gate's error rates"):
    point rejected models whose truth passed."""
    unconverged: Literal["inconclusive", "judge"] = "inconclusive"
    """A compared training (a baseline or the MTL model, any seed) that ended while still improving makes the
    verdict inconclusive: it measured the budget, not the sharing. judge: give the verdict anyway (smoke runs,
    or a budget you checked elsewhere)"""
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.9
    """Level of the intervals (two-sided; lower_bound judges the lower end)"""
    bootstrap_samples: Annotated[int, Field(ge=0)] = 1000
    """Resamples of the validation rows; 0 computes no intervals (memory: samples x rows x 4 bytes)"""

    @model_validator(mode="after")
    def _intervals_for_lower_bound(self) -> SelectionConfig:
        if self.rule == "lower_bound" and self.bootstrap_samples == 0:
            raise ValueError("selection.rule lower_bound judges bootstrap intervals: bootstrap_samples must be > 0")
        return self
