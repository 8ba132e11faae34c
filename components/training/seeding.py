"""Seeding every random generator a training draws from.

Example::

    >>> import torch
    >>> seed_everything(0); first = torch.rand(1)
    >>> seed_everything(0); bool(torch.equal(first, torch.rand(1)))
    True
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Python's, NumPy's and torch's global generators from one seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
