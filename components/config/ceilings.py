"""``ceilings``: sane upper bounds on the settings whose typos cost days (a budget of a billion
epochs, a million seeds, a request limit that defeats the 413). A setting above its ceiling
is refused, naming both; raising the ceiling is the explicit way past it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from components.config.base import Strict


class CeilingsConfig(Strict):
    """The most each guarded setting may be; raise one deliberately for a run that needs it."""

    max_epochs: Annotated[int, Field(ge=1)] = 1000
    """The most ``training.max_epochs`` may be (``mtl init`` sizes budgets of at most 300)."""
    seeds: Annotated[int, Field(ge=1)] = 20
    """The most ``training.seeds`` may be: each seed is one more training of every model."""
    max_batch_rows: Annotated[int, Field(ge=1)] = 100_000
    """The most ``serving.max_batch_rows`` may be: the limit behind the 413 bounds a request's memory."""
    tuning_trials: Annotated[int, Field(ge=0)] = 200
    """The most ``tuning.trials`` may be: each trial is one more training of every model."""
