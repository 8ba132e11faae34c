"""``add_task``: how ``mtl add-task NAME`` puts a new task on the registered champion."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from components.config.base import Strict


class AddTaskConfig(Strict):
    """The new task's head reads the champion's frozen features; it trains as its single-task baseline does
    (``training``'s epochs, early stopping, optimizer and batch size, on the plain loss) and is judged against that
    baseline by ``selection``."""

    reads: str | None = None
    """Which of the champion's tasks' features the new head reads (they differ under mmoe, ple and the per-task
    columns; hard sharing gives every task the same); null: the champion's first task."""
    adapter: Annotated[int, Field(ge=0)] = 0
    """Units of a residual bottleneck adapter before the new head (Houlsby et al. 2019), trained with it; 0: none,
    the head reads the frozen features as they are."""
