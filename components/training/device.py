"""Which device a training or an evaluation runs on, apart from the training loop so that
the stages that only evaluate checkpoints (``select``, ``promote``) do not depend on it.

Example::

    >>> resolve_device("cpu")
    device(type='cpu')
"""

from __future__ import annotations

import torch

from components.training import distributed


def resolve_device(setting: str) -> torch.device:
    """``auto`` is CUDA when present; under torchrun each process takes its local GPU."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but no CUDA device is available")
    if setting == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", distributed.current().local_rank)
