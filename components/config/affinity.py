"""``affinity``: the inter-task affinity diagnostic (``mtl affinity``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from components.config.base import Strict


class AffinityConfig(Strict):
    """``mtl affinity``: inter-task affinity (Fifty et al. 2021) on a short training."""

    epochs: Annotated[int, Field(gt=0)] = 2
    """Epochs of the short multi-task training the affinities are averaged over."""
    lookahead_lr: Annotated[float, Field(gt=0)] | None = None
    """η of the lookahead step θ_s − η∇L_i (a plain gradient step, as in the paper); null: the backbone's learning
    rate (training.shared_lr, else training.lr). Much larger steps leave the region where a step's effect is
    linear, and the ratios blow up."""
    every: Annotated[int, Field(gt=0)] = 1
    """Measure on every k-th step (each measurement costs about T+1 forward and T backward passes)"""
    max_groups: Annotated[int, Field(gt=0)] | None = None
    """Propose groupings of at most this many groups; null: up to one group per task."""
