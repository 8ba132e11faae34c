"""What ``components.torchjd_state`` reads of torchjd's private attributes, pinned: each
stateful method, saved after some steps and loaded into a fresh one, continues exactly as
the original does. A torchjd upgrade that renames what is read fails here."""

import copy

import torch
from torchjd.aggregation import NashMTL
from torchjd.scalarization import DWA, FAMO

from components import torchjd_state

LOSSES = [torch.tensor([1.0, 2.0]), torch.tensor([0.8, 1.9]), torch.tensor([0.5, 1.7])]


def test_the_attributes_read_are_the_ones_torchjd_keeps():
    assert {"_loss_sum", "_n_batches", "_previous_averages"} <= set(vars(DWA(temperature=2.0)))
    famo = FAMO(2, lr=0.025)
    assert {"_prev_losses", "_optimizer", "lr", "weight_decay"} <= set(vars(famo))
    assert isinstance(famo._w, torch.nn.Parameter)  # the logits its Adam steps
    weighting = NashMTL(n_tasks=2).weighting
    assert {"step", "prvs_alpha", "normalization_factor"} <= set(vars(weighting))
    assert callable(weighting._init_optim_problem)


def test_dwa_resumes_with_its_loss_history():
    original = DWA(temperature=2.0)
    for losses in LOSSES[:2]:
        original(losses)
        original.step()
    resumed = DWA(temperature=2.0)
    torchjd_state.load_dwa_state(resumed, torchjd_state.dwa_state(original))
    assert torch.equal(resumed(LOSSES[2]), original(LOSSES[2]))
    assert not torch.equal(DWA(temperature=2.0)(LOSSES[2]), original(LOSSES[2]))  # the history matters


def test_famo_resumes_with_its_previous_losses_and_optimizer():
    original = FAMO(2, lr=0.025)
    for before, after in zip(LOSSES, LOSSES[1:]):
        original(before)
        original.update(after)
    resumed = FAMO(2, lr=0.025)
    # as a resume state would come back from disk: a copy, sharing no tensor with the original
    resumed.load_state_dict(copy.deepcopy(original.state_dict()))  # the logits are a parameter; the rest is not
    torchjd_state.load_famo_state(resumed, copy.deepcopy(torchjd_state.famo_state(original)))
    for famo in (original, resumed):
        famo(LOSSES[2])
        famo.update(LOSSES[1])
    assert torch.equal(resumed(LOSSES[0]), original(LOSSES[0]))


def test_nash_mtl_resumes_its_step_count_and_solution():
    skewed, scaled = torch.tensor([[1.0, 2.0], [0.0, 1.0]]), torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    original = NashMTL(n_tasks=2, update_weights_every=2)
    original(skewed)
    resumed = NashMTL(n_tasks=2, update_weights_every=2)
    torchjd_state.load_nash_mtl_state(resumed, copy.deepcopy(torchjd_state.nash_mtl_state(original)))
    for jacobian in (scaled, skewed, scaled):  # step 1 reuses step 0's solution; step 2 solves again
        assert torch.equal(resumed(jacobian), original(jacobian))
    after = torchjd_state.nash_mtl_state(resumed)
    assert all(torch.equal(after[key], value) for key, value in torchjd_state.nash_mtl_state(original).items())
    fresh = NashMTL(n_tasks=2, update_weights_every=2)
    fresh(scaled)
    assert float(torchjd_state.nash_mtl_state(fresh)["step"]) == 1.0 != float(after["step"])
