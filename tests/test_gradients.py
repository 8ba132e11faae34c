"""Gradient handling: torchjd aggregators on the shared parameters, heads on their own task."""

import pytest
import torch

from components.config import GRADIENT_METHODS, GRAMIAN_METHODS, Params, gradient_method
from components.gradients import GradientMethod, build_gradient_method
from components.gradients.jacobian import backward_per_task, backward_through_features
from components.gradients.normalize import normalize_and_sum
from components.models import build_model
from components.tasks import build_tasks
from components.training.loop import losses_of
from tests.helpers.projects import tiny_params_dict

CONFLICT = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])


def method(raw: str | dict, n_tasks: int = 2) -> GradientMethod:
    return build_gradient_method(gradient_method(raw), n_tasks)


def test_pcgrad_on_two_conflicting_gradients():
    # g1·g2 = -1 < 0: g1' = g1 - (g1·g2/|g2|²) g2 = [0.5, 0.5]; g2' = g2 - (g2·g1/|g1|²) g1 = [0, 1]
    assert method("pcgrad").combine(CONFLICT).tolist() == pytest.approx([0.5, 1.5])


def test_normalize_rescales_rows_to_their_mean_norm():
    # norms 5 and 1, mean 3: [3,4]/5*3 + [0,1]/1*3 = [1.8, 2.4 + 3]
    assert normalize_and_sum(torch.tensor([[3.0, 4.0], [0.0, 1.0]])).tolist() == pytest.approx([1.8, 5.4])


def test_mgda_finds_the_min_norm_point_of_the_convex_hull():
    # min-norm point of segment [g1, g2] = [0.2, 0.4]
    assert method("mgda").combine(CONFLICT).tolist() == pytest.approx([0.2, 0.4], abs=1e-3)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_every_method_builds_and_returns_one_direction(name):
    direction = method(name).combine(CONFLICT)
    assert direction.shape == (2,) and torch.isfinite(direction).all()


@pytest.mark.parametrize("name", GRAMIAN_METHODS)
def test_every_gramian_method_weighs_the_tasks_from_the_gramian_alone(name):
    weights = method(name).weigh(CONFLICT @ CONFLICT.T)
    assert weights.shape == (2,) and torch.isfinite(weights).all()


def test_cagrad_radius_comes_from_the_config():
    # c = 0: no ball around the mean gradient, so CAGrad returns the mean itself
    mean = method({"name": "cagrad", "c": 0.0}).combine(CONFLICT)
    assert mean.tolist() == pytest.approx(CONFLICT.mean(0).tolist(), abs=1e-4)
    averse = method({"name": "cagrad", "c": 0.5}).combine(CONFLICT)
    assert averse.tolist() != pytest.approx(CONFLICT.mean(0).tolist(), abs=1e-2)
    on_features = method({"name": "cagrad", "c": 0.0}).weigh(CONFLICT @ CONFLICT.T)
    assert (on_features / on_features.sum()).tolist() == pytest.approx([0.5, 0.5], abs=1e-4)


def nash_weights_per_step(update_every: int) -> list[list[float]]:
    nash = method({"name": "nash_mtl", "update_every": update_every})
    skewed, scaled = torch.tensor([[1.0, 2.0], [0.0, 1.0]]), torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    jacobians = [skewed, scaled, skewed, scaled]
    seen = []
    for jacobian in jacobians:
        nash.combine(jacobian)
        seen.append(nash.state_dict()["prvs_alpha"].tolist())
    return seen


def test_nash_mtl_solves_every_kth_step_as_configured():
    every_step, every_third = nash_weights_per_step(1), nash_weights_per_step(3)
    assert every_step[0] != every_step[1] != every_step[2]  # a new solve on each step
    assert every_third[0] == every_third[1] == every_third[2]  # steps 1 and 2 reuse step 0's weights
    assert every_third[3] != every_third[2]  # step 3 solves again


def test_a_methods_module_is_found_by_its_name_and_only_a_known_name_reaches_it():
    assert method("sum").combine(CONFLICT).tolist() == CONFLICT.sum(0).tolist()
    with pytest.raises(ValueError, match="'sum', 'normalize', 'pcgrad'"):
        gradient_method("pcgard")


def test_heads_get_their_own_gradient_and_the_backbone_the_combination():
    shared = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    head_a, head_b = torch.nn.Parameter(torch.tensor(2.0)), torch.nn.Parameter(torch.tensor(3.0))
    loss_a = head_a * (shared * torch.tensor([1.0, 0.0])).sum()  # ∇shared = [2, 0], ∇head_a = 1
    loss_b = head_b * (shared * torch.tensor([-1.0, 1.0])).sum()  # ∇shared = [-3, 3], ∇head_b = 0
    backward_per_task([loss_a, loss_b], [shared], [head_a, head_b], method("pcgrad").combine)
    # PCGrad on [2,0] and [-3,3]: g1' = [2,0] + (6/18)[-3,3] = [1,1]; g2' = [-3,3] + (6/4)[2,0] = [0,3]
    assert shared.grad.tolist() == pytest.approx([1.0, 4.0])
    assert head_a.grad.item() == pytest.approx(1.0) and head_b.grad.item() == pytest.approx(0.0)


@pytest.mark.parametrize("name", GRAMIAN_METHODS)
def test_on_features_the_backbone_gets_the_aggregate_of_the_feature_jacobian(name):
    """MGDA-UB: weights from the Gramian on the representation z, then one backward pass,
    give the backbone exactly what torchjd's aggregator of the z-Jacobian, pulled back
    through the backbone, gives it; each head gets its own task's gradient."""
    raw = tiny_params_dict()
    raw["training"].update(gradient={"name": name, "compare_on": "features"})
    params = Params.model_validate(raw)
    tasks = build_tasks(params.tasks)
    torch.manual_seed(0)
    model = build_model(params, tasks)
    inputs = torch.rand(16, 1, params.data.canvas_size, params.data.canvas_size)
    targets = [torch.randint(0, 10, (16,)), torch.randint(0, 10, (16,)), torch.rand(16) * 18]
    shared = model.shared_parameters()
    specific = [p for name in tasks for p in model.task_parameters(name)]

    def losses():
        outputs, z = model.forward_with_representation(inputs)
        return losses_of(model, tasks, outputs, targets), z

    found, z = losses()
    backward_through_features(list(found), z, shared, specific, method(name).weigh)
    ours = {id(p): p.grad.clone() for p in [*shared, *specific]}

    found, z = losses()
    rows = torch.stack([torch.autograd.grad(loss, z, retain_graph=True)[0].reshape(-1) for loss in found])
    direction = normalize_and_sum(rows) if name == "normalize" else method(name, len(tasks)).combine(rows)
    expected = torch.autograd.grad(z, shared, direction.view_as(z), retain_graph=True)
    for parameter, grad in zip(shared, expected):
        torch.testing.assert_close(ours[id(parameter)], grad, atol=1e-5, rtol=1e-4)
    for name, loss in zip(tasks, found):
        own = torch.autograd.grad(loss, model.task_parameters(name), retain_graph=True)
        for parameter, grad in zip(model.task_parameters(name), own):
            torch.testing.assert_close(ours[id(parameter)], grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ("nash_mtl", "gradient nash_mtl cannot weigh .* those that can: normalize, pcgrad, cagrad, mgda"),
        ("sum", "gradient sum cannot weigh"),
    ],
)
def test_on_features_needs_a_gramian_method(update, message):
    raw = tiny_params_dict()
    raw["training"].update(gradient={"name": update, "compare_on": "features"})
    with pytest.raises(ValueError, match=message):
        Params.model_validate(raw)


def test_on_features_needs_one_representation():
    raw = tiny_params_dict()
    raw["training"].update(gradient={"name": "upgrad", "compare_on": "features"})
    raw["model"]["sharing"] = "mmoe"
    with pytest.raises(ValueError, match="needs one representation every task reads: model.sharing hard"):
        Params.model_validate(raw)
