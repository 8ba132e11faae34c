"""``dwa``: Dynamic Weight Average (Liu et al. 2019, "End-to-End Multi-Task Learning with
Attention"), torchjd ``DWA``: each epoch's weights are T·softmax(r_i / temperature) of the
ratios r_i = L_i(t−1) / L_i(t−2) of each task's last two epoch losses, so a task whose loss
stalls is weighed up.

Example::

    >>> import torch
    >>> weighting = build(DWA(temperature=2.0), ["main", "aux"], shared_layer=[])
    >>> weighting(torch.tensor([1.0, 2.0]))   # equal weights until two epochs are seen
    tensor(3.)
"""

from __future__ import annotations

from typing import Any

from torch import nn

from components import torchjd_state
from components.config.methods import DWA
from components.weighting.base import LossWeighting, ScalarizerWeighting, scalarization


class DWAWeighting(ScalarizerWeighting):
    """DWA, told where each epoch ends; its loss history is in its ``state_dict``."""

    def end_epoch(self) -> None:
        self.scalarizer.step()

    # torch puts the extra state in ``state_dict``, so a resumed training gets the history back
    def get_extra_state(self) -> dict[str, Any]:
        return torchjd_state.dwa_state(self.scalarizer)

    def set_extra_state(self, state: dict[str, Any]) -> None:
        torchjd_state.load_dwa_state(self.scalarizer, state)


def build(settings: DWA, task_names: list[str], shared_layer: list[nn.Parameter]) -> LossWeighting:
    """DWA with the configured temperature."""
    return DWAWeighting(scalarization().DWA(temperature=settings.temperature))
