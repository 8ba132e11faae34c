"""Sharing strategies: hard, cross-stitch, MMoE, soft parameter sharing, sluice."""

import pytest
import torch

from components.config import ModelConfig
from components.models import build_model
from components.models.sharing import CrossStitchUnit, SluiceUnit
from components.tasks import build_tasks

SHARINGS = ["hard", "cross_stitch", "mmoe", "soft_penalty", "sluice"]


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
    if sharing == "soft_penalty":  # nothing shared: GradNorm reads each task's own column
        assert not shared and all(id(p) in specific for p in model.gradnorm_parameters())
    else:
        assert all(id(p) in shared for p in model.gradnorm_parameters())


def test_task_specific_parts_only_see_their_own_task(tiny_params, tasks):
    model = model_for(tiny_params, tasks, "mmoe")
    model(torch.rand(3, 1, 36, 36))["left"].sum().backward()
    assert all(p.grad is None for p in model.task_parameters("right"))
    assert all(p.grad is not None for p in model.task_parameters("left"))


@pytest.mark.parametrize("sharing", ["cross_stitch", "mmoe", "soft_penalty", "sluice"])
def test_state_dict_round_trip(tiny_params, tasks, sharing):
    model = model_for(tiny_params, tasks, sharing).eval()
    clone = model_for(tiny_params, tasks, sharing).eval()
    clone.load_state_dict(model.state_dict())
    images = torch.rand(2, 1, 36, 36)
    assert torch.equal(model(images)["sum"], clone(images)["sum"])


def test_unknown_sharing_lists_choices():
    with pytest.raises(ValueError, match="'hard', 'cross_stitch', 'mmoe', 'ple', 'soft_penalty' or 'sluice'"):
        ModelConfig(sharing="soft")


def test_sluice_unit_mixes_subspaces_across_columns():
    unit = SluiceUnit(n_tasks=2, subspaces=2, self_weight=1.0)
    with torch.no_grad():  # rows and columns: (task 0, sub 0), (task 0, sub 1), (task 1, sub 0), (task 1, sub 1)
        unit.alpha.copy_(torch.eye(4)[[2, 1, 0, 3]])  # the columns swap their first subspace
    images = torch.arange(2 * 1 * 4 * 1 * 1, dtype=torch.float32).view(2, 1, 4, 1, 1)  # (tasks, batch, C, H, W)
    mixed = unit(images)
    assert mixed[0, 0, :, 0, 0].tolist() == [4.0, 5.0, 2.0, 3.0]  # channels 0-1 came from task 1
    assert mixed[1, 0, :, 0, 0].tolist() == [0.0, 1.0, 6.0, 7.0]
    vectors = torch.randn(3, 5, 6)  # (tasks, batch, features): split along the last axis
    assert torch.allclose(SluiceUnit(3, 2, 1.0)(vectors), vectors)
    one = SluiceUnit(3, subspaces=1, self_weight=0.9)  # one subspace is a cross-stitch unit
    assert torch.allclose(one(vectors), CrossStitchUnit(3, 0.9)(vectors))
    with pytest.raises(ValueError, match="6 features do not split into 4 subspaces"):
        SluiceUnit(3, 4, 0.9)(vectors)


def test_soft_sharing_penalty_is_the_squared_distance_between_columns(tiny_params, tasks):
    model = model_for(tiny_params, tasks, "soft_penalty")
    columns = [dict(column.named_parameters()) for column in model.columns.values()]
    by_hand = sum(
        ((columns[a][name] - columns[b][name]) ** 2).sum().item()
        for a, b in [(0, 1), (0, 2), (1, 2)]
        for name in columns[0]
    )
    assert model.regularization().item() == pytest.approx(tiny_params.model.soft_penalty.weight * by_hand, rel=1e-5)
    for column in list(model.columns.values())[1:]:
        column.load_state_dict(next(iter(model.columns.values())).state_dict())
    assert model.regularization().item() == 0.0
    # each task's loss reaches only its own column
    model(torch.rand(3, 1, 36, 36))["left"].sum().backward()
    assert all(p.grad is None for p in model.columns["right"].parameters())
    assert any(p.grad is not None for p in model.columns["left"].parameters())


def test_gradient_methods_are_refused_with_soft_sharing(tiny_params):
    raw = tiny_params.model_dump()
    raw["model"]["sharing"] = "soft_penalty"
    raw["training"]["gradient"] = "pcgrad"
    with pytest.raises(ValueError, match="soft_penalty shares none .* use gradient sum"):
        type(tiny_params).model_validate(raw)


def _with_sharing(tiny_params, sharing, **model):
    settings = tiny_params.model.model_copy(update={"sharing": sharing, **model})
    return tiny_params.model_copy(update={"model": settings})


def test_the_soft_penalty_pulls_the_columns_together_in_real_training(tiny_params, tiny_frames, tmp_path):
    from components.config import SoftPenaltyConfig
    from tests.helpers.stages import train_tiny

    def distance(weight: float) -> float:
        params = _with_sharing(tiny_params, "soft_penalty", soft_penalty=SoftPenaltyConfig(weight=weight))
        model, history = train_tiny(params, tiny_frames, tmp_path / str(weight))
        assert history[-1].train_loss["left"] < history[0].train_loss["left"]  # the tasks still learn
        return (model.regularization() / weight).item()

    # the same seed: the columns start equally far apart
    assert distance(1.0) < 0.5 * distance(1e-6)


def test_sluice_sharing_trains_and_its_mixing_learns(tiny_params, tiny_frames, tmp_path):
    from tests.helpers.stages import train_tiny

    params = _with_sharing(tiny_params, "sluice")
    model, history = train_tiny(params, tiny_frames, tmp_path)
    assert history[-1].train_loss["left"] < history[0].train_loss["left"]
    start = SluiceUnit(3, params.model.sluice.subspaces, params.model.sluice.self_weight).alpha
    assert not torch.allclose(model.units[0].alpha.detach(), start)


def test_a_channels_last_cnn_is_the_same_model_in_another_memory_layout(tiny_params, tasks):
    def built(channels_last: bool):
        cnn = tiny_params.model.cnn.model_copy(update={"channels_last": channels_last})
        torch.manual_seed(0)
        return build_model(
            tiny_params.model_copy(update={"model": tiny_params.model.model_copy(update={"cnn": cnn})}), tasks
        )

    nchw, nhwc = built(False), built(True)
    convs = [m.weight for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert any(not w.is_contiguous() for w in convs)  # more than one input channel: really NHWC, not NCHW
    nhwc.load_state_dict(nchw.state_dict())  # an NCHW checkpoint loads into the NHWC model
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    nchw.eval(), nhwc.eval()
    inputs = torch.rand(16, 1, 36, 36)
    with torch.no_grad():
        for task, output in nchw(inputs).items():
            assert torch.allclose(output, nhwc(inputs)[task], atol=1e-5), task
