"""What a resumed training needs of torchjd's stateful methods, and the only module that reads
torchjd's private attributes (pinned by the lock file at torchjd 0.18.0;
``tests/test_torchjd_state.py`` pins what is read, so an upgrade that renames one fails
there, not in a resumed training).

DWA keeps its loss history, FAMO its previous losses and its own Adam, and Nash-MTL its step
count and previous solution, outside any parameter or buffer: ``state_dict`` does not see
them. The scalarizers and aggregator are imported lazily by their callers (cvxpy, which
torchjd loads, costs 0.7 s); this module only touches the objects it is handed.

Example::

    >>> from torchjd.scalarization import DWA
    >>> dwa = DWA(temperature=2.0)
    >>> _ = dwa(torch.tensor([1.0, 2.0])); dwa.step()
    >>> fresh = DWA(temperature=2.0)
    >>> load_dwa_state(fresh, dwa_state(dwa))
    >>> dwa_state(fresh)["previous_averages"] == dwa_state(dwa)["previous_averages"]
    True
"""

from __future__ import annotations

from typing import Any

import torch


def dwa_state(dwa: Any) -> dict[str, Any]:
    """DWA's running loss sum, batch count and the per-epoch loss averages it weighs by."""
    return {
        "loss_sum": dwa._loss_sum,
        "n_batches": dwa._n_batches,
        "previous_averages": list(dwa._previous_averages),
    }


def load_dwa_state(dwa: Any, state: dict[str, Any]) -> None:
    """Restores what :func:`dwa_state` saved."""
    dwa._loss_sum = state["loss_sum"]
    dwa._n_batches = state["n_batches"]
    dwa._previous_averages = list(state["previous_averages"])


def famo_state(famo: Any) -> dict[str, Any]:
    """FAMO's previous losses and the state of its own optimizer of the weight logits."""
    optimizer = famo._optimizer
    return {"prev_losses": famo._prev_losses, "optimizer": None if optimizer is None else optimizer.state_dict()}


def load_famo_state(famo: Any, state: dict[str, Any]) -> None:
    """Restores what :func:`famo_state` saved; FAMO builds its Adam on the first update, so a
    state saved after one gets an Adam like it."""
    famo._prev_losses = state["prev_losses"]
    famo._optimizer = None
    if state["optimizer"] is not None:
        famo._optimizer = torch.optim.Adam([famo._w], lr=famo.lr, weight_decay=famo.weight_decay)
        famo._optimizer.load_state_dict(state["optimizer"])


def nash_mtl_state(nash_mtl: Any) -> dict[str, torch.Tensor]:
    """Nash-MTL's step count (it solves every ``update_weights_every``-th step), its last
    solution α and the normalization factor (numpy arrays, kept as tensors)."""
    weighting = nash_mtl.weighting
    return {
        "step": torch.tensor(weighting.step),
        "prvs_alpha": torch.from_numpy(weighting.prvs_alpha.copy()),
        "normalization_factor": torch.from_numpy(weighting.normalization_factor.copy()),
    }


def load_nash_mtl_state(nash_mtl: Any, state: dict[str, torch.Tensor]) -> None:
    """Restores what :func:`nash_mtl_state` saved; the solver's problem, built on step 0, is
    built again when that step is past."""
    weighting = nash_mtl.weighting
    weighting.step = float(state["step"])
    weighting.prvs_alpha = state["prvs_alpha"].numpy().copy()
    weighting.normalization_factor = state["normalization_factor"].numpy().copy()
    if weighting.step > 0:
        weighting._init_optim_problem()
