"""Sharing strategies: hard, cross-stitch, MMoE."""

import pytest
import torch

from components.config import ModelConfig
from components.models import build_model
from components.models.sharing import CrossStitchUnit
from components.tasks import build_tasks

SHARINGS = ["hard", "cross_stitch", "mmoe"]


@pytest.fixture
def tasks(tiny_params):
    return build_tasks(tiny_params.tasks)


def model_for(tiny_params, tasks, sharing):
    params = tiny_params.model_copy(update={"model": tiny_params.model.model_copy(update={"sharing": sharing})})
    return build_model(params, tasks)


def test_cross_stitch_unit_mixes_columns():
    unit = CrossStitchUnit(2, self_weight=0.9)
    assert torch.allclose(unit.alpha, torch.tensor([[0.9, 0.1], [0.1, 0.9]]))
    columns = torch.stack([torch.ones(1, 3), torch.zeros(1, 3)])
    mixed = unit(columns)
    assert torch.allclose(mixed[0], torch.full((1, 3), 0.9)) and torch.allclose(mixed[1], torch.full((1, 3), 0.1))
    # three tasks: the 0.1 left over is split evenly between the two others
    assert CrossStitchUnit(3, 0.9).alpha[0].tolist() == pytest.approx([0.9, 0.05, 0.05])


def test_mmoe_with_zero_gates_averages_the_experts(tiny_params, tasks):
    model = model_for(tiny_params, tasks, "mmoe").eval()
    for gate in model.gates.values():
        torch.nn.init.zeros_(gate.weight), torch.nn.init.zeros_(gate.bias)
    images = torch.rand(4, 1, 36, 36)
    expected = torch.stack([expert(images) for expert in model.experts]).mean(dim=0)
    features = model.task_features(images, ["left", "sum"])
    assert torch.allclose(features["left"], expected, atol=1e-6) and torch.allclose(
        features["sum"], expected, atol=1e-6
    )


@pytest.mark.parametrize("sharing", SHARINGS)
def test_outputs_and_parameter_partition(tiny_params, tasks, sharing):
    model = model_for(tiny_params, tasks, sharing)
    outputs = model(torch.rand(5, 1, 36, 36))
    assert outputs["left"].shape == (5, 10) and outputs["sum"].shape == (5,)
    assert set(model(torch.rand(2, 1, 36, 36), ["right"])) == {"right"}
    shared = {id(p) for p in model.shared_parameters()}
    specific = [id(p) for task in tasks for p in model.task_parameters(task)]
    assert not shared & set(specific) and len(specific) == len(set(specific))
    assert shared | set(specific) == {id(p) for p in model.parameters()}
    assert all(id(p) in shared for p in model.gradnorm_parameters())


def test_task_specific_parts_only_see_their_own_task(tiny_params, tasks):
    model = model_for(tiny_params, tasks, "mmoe")
    model(torch.rand(3, 1, 36, 36))["left"].sum().backward()
    assert all(p.grad is None for p in model.task_parameters("right"))
    assert all(p.grad is not None for p in model.task_parameters("left"))


@pytest.mark.parametrize("sharing", ["cross_stitch", "mmoe"])
def test_state_dict_round_trip(tiny_params, tasks, sharing):
    model = model_for(tiny_params, tasks, sharing).eval()
    clone = model_for(tiny_params, tasks, sharing).eval()
    clone.load_state_dict(model.state_dict())
    images = torch.rand(2, 1, 36, 36)
    assert torch.equal(model(images)["sum"], clone(images)["sum"])


def test_unknown_sharing_lists_choices():
    with pytest.raises(ValueError, match="'hard', 'cross_stitch' or 'mmoe'"):
        ModelConfig(sharing="soft")
