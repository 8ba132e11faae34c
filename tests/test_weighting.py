"""Loss-weighting methods against values computed by hand."""

import math

import pytest
import torch

from components.config import TrainingConfig
from components.weighting import build_weighting, effective_weights
from components.weighting.gradnorm import gradnorm_targets
from components.weighting.schedule import weight_at

TASKS = ["main", "aux"]


def weights_for(weighting, losses):
    losses = losses.clone().requires_grad_(True)
    return effective_weights(weighting(losses), losses)


def layer():
    return [torch.nn.Parameter(torch.ones(2, 2))]


def test_equal_and_fixed():
    losses = torch.tensor([1.0, 2.0])
    equal = build_weighting(TrainingConfig(), TASKS, layer())
    assert weights_for(equal, losses).tolist() == [1.0, 1.0]
    fixed = build_weighting(TrainingConfig(loss_weighting={"name": "fixed", "weights": {"aux": 0.25}}), TASKS, layer())
    assert fixed(losses).item() == pytest.approx(1.0 + 0.25 * 2.0)
    assert weights_for(fixed, losses).tolist() == [1.0, 0.25]


def test_uncertainty_effective_weights_are_half_exp_minus_log_variance():
    weighting = build_weighting(TrainingConfig(loss_weighting="uncertainty"), TASKS, layer())
    (log_var,) = weighting.trainable()
    with torch.no_grad():
        log_var.copy_(torch.tensor([0.0, math.log(2.0)]))
    losses = torch.tensor([1.0, 3.0])
    assert weights_for(weighting, losses).tolist() == pytest.approx([0.5, 0.25])
    # objective: Σ ½ e^(−s) L + ½ s = 0.5·1 + 0.25·3 + 0.5·ln 2
    assert weighting(losses).item() == pytest.approx(0.5 + 0.75 + 0.5 * math.log(2.0))


def test_dwa_weights_from_loss_histories():
    weighting = build_weighting(TrainingConfig(loss_weighting={"name": "dwa", "temperature": 2.0}), TASKS, layer())
    for epoch_losses in ([1.0, 1.0], [0.5, 1.0]):  # two epochs, one batch each
        assert weights_for(weighting, torch.tensor(epoch_losses)).tolist() == pytest.approx([1.0, 1.0])
        weighting.end_epoch()
    # w = L(t-1)/L(t-2) = [0.5, 1.0]; λ = K·softmax(w/T) with K=2, T=2
    expected = [
        2 * math.exp(0.25) / (math.exp(0.25) + math.exp(0.5)),
        2 * math.exp(0.5) / (math.exp(0.25) + math.exp(0.5)),
    ]
    assert weights_for(weighting, torch.tensor([0.3, 0.3])).tolist() == pytest.approx(expected, rel=1e-5)


def test_gradnorm_target():
    # ratios L/L0 = [0.5, 0.25], relative rates [4/3, 2/3], mean norm 3 -> targets [4, 2] at α=1
    targets = gradnorm_targets(torch.tensor([2.0, 4.0]), torch.tensor([1.0, 0.5]), torch.tensor([2.0, 2.0]), alpha=1.0)
    assert targets.tolist() == pytest.approx([4.0, 2.0])
    # α=0: every task aims at the mean norm
    flat = gradnorm_targets(torch.tensor([2.0, 4.0]), torch.tensor([1.0, 0.5]), torch.tensor([2.0, 2.0]), alpha=0.0)
    assert flat.tolist() == pytest.approx([3.0, 3.0])


def test_gradnorm_moves_weight_towards_the_task_with_the_smaller_gradient():
    shared = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    weighting = build_weighting(TrainingConfig(loss_weighting={"name": "gradnorm", "alpha": 0.0}), TASKS, [shared])
    losses = torch.stack([(shared * torch.tensor([1.0, 0.0])).sum(), (shared * torch.tensor([0.0, 3.0])).sum()])
    weighting.learn(losses)  # its own objective, L_grad, explicit in the training step
    (weights,) = weighting.trainable()
    # |∇(w·L)| = [1, 3], target = 2 each: gradient of L_grad on w is [-1, +3]
    assert weights.grad.tolist() == pytest.approx([-1.0, 3.0])
    optimizer = torch.optim.SGD([weights], lr=0.1)
    optimizer.step()
    weighting.after_step(None)
    assert weights.sum().item() == pytest.approx(2.0) and weights[0] > weights[1]


def test_schedule_is_piecewise_linear_in_epochs():
    assert weight_at([(1, 0.0), (3, 1.0)], 2) == pytest.approx(0.5)
    assert weight_at([(1, 0.0), (3, 1.0)], 10) == 1.0
    weighting = build_weighting(
        TrainingConfig(loss_weighting={"name": "schedule", "schedule": {"aux": [(1, 0.0), (5, 1.0)]}}), TASKS, layer()
    )
    weighting.start_epoch(2)
    assert weights_for(weighting, torch.tensor([1.0, 1.0])).tolist() == pytest.approx([1.0, 0.25])


def test_famo_updates_its_own_logits_after_the_step():
    weighting = build_weighting(TrainingConfig(loss_weighting="famo"), TASKS, layer())
    assert weighting.trainable() == [] and weighting.needs_losses_after_step
    before = weights_for(weighting, torch.tensor([1.0, 1.0]))
    weighting.after_step(torch.tensor([0.5, 1.0]))  # main improved, aux did not
    after = weights_for(weighting, torch.tensor([1.0, 1.0]))
    assert after[1] / after[0] > before[1] / before[0]
