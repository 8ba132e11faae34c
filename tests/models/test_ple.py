"""PLE (Tang et al. 2020) against the paper's equations on a hand-built two-layer case, and
which parameters each task's loss reaches."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from components.config import MLPConfig, Params
from components.data.encoders import FittedFeatures
from components.models import Backbone, MLPBackbone, PLEModel, build_model
from components.tasks import build_tasks
from tests.helpers.projects import iris_dict


def two_layer_ple() -> PLEModel:
    """Tasks a and b, one expert each and one shared expert per layer, widths 3 -> 4 -> 2."""
    torch.manual_seed(0)
    config = MLPConfig(hidden=[4, 2], dropout=0.0)
    experts: dict[str, list[Backbone]] = {"a": [MLPBackbone(config, 3)], "b": [MLPBackbone(config, 3)]}
    heads: dict[str, nn.Module] = {"a": nn.Linear(2, 1), "b": nn.Linear(2, 1)}
    return PLEModel(experts, [MLPBackbone(config, 3)], heads, gate_sizes=[3, 4])


def expert(backbone, layer: int, x: torch.Tensor) -> torch.Tensor:
    linear = backbone.stages[layer][1]
    return torch.relu(x @ linear.weight.T + linear.bias)


def gate(linear, x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x @ linear.weight.T + linear.bias, dim=-1)


def test_two_extraction_layers_compute_the_papers_equations():
    model = two_layer_ple().eval()
    x = torch.randn(5, 3)
    ea, eb, es = model.task_experts["a"][0], model.task_experts["b"][0], model.shared_experts[0]
    # layer 1: every path reads x. g^{k,1} = w^{k,1}(x) [E_k(x); E_s(x)]; the shared gate mixes all three
    e1 = {"a": expert(ea, 0, x), "b": expert(eb, 0, x), "s": expert(es, 0, x)}
    w = {k: gate(model.task_gates[k][0], x) for k in ("a", "b")}
    x1 = {k: w[k][:, :1] * e1[k] + w[k][:, 1:] * e1["s"] for k in ("a", "b")}
    ws = gate(model.shared_gates[0], x)
    s1 = ws[:, :1] * e1["a"] + ws[:, 1:2] * e1["b"] + ws[:, 2:] * e1["s"]
    # layer 2 (the last): task k's experts read x^{k,1}, the shared ones x^{s,1}; no shared gate
    out = {}
    for k, own in (("a", ea), ("b", eb)):
        wk = gate(model.task_gates[k][1], x1[k])
        out[k] = wk[:, :1] * expert(own, 1, x1[k]) + wk[:, 1:] * expert(es, 1, s1)
    features = model.task_features(x, ["a", "b"])
    for k in ("a", "b"):
        torch.testing.assert_close(features[k], out[k])


def test_a_tasks_own_parameters_get_no_gradient_from_the_other_tasks_loss():
    model = two_layer_ple()
    own_a = {id(p) for p in model.task_parameters("a")}
    model(torch.randn(8, 3))["b"].sum().backward()
    reached = {id(p) for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert not own_a & reached
    # a's first-layer expert feeds the shared gate: b's loss reaches it, so it is shared
    assert id(model.task_experts["a"][0].stages[0][1].weight) in reached
    assert id(model.task_experts["a"][0].stages[0][1].weight) in {id(p) for p in model.shared_parameters()}


def test_params_build_ple_on_the_mlp_and_refuse_other_backbones(tmp_path):
    raw = iris_dict(tmp_path)
    raw["model"].update(sharing="ple", ple={"task_experts": 2, "shared_experts": 1})
    params = Params.model_validate(raw)
    network = build_model(params, build_tasks(params.tasks), features=FittedFeatures(width=3))
    assert isinstance(network, PLEModel) and len(network.task_experts["species"]) == 2
    assert {name: out.shape for name, out in network(torch.zeros(4, 3)).items()} == {
        "species": (4, 3),
        "petal_width": (4,),
    }
    raw["model"]["backbone"] = "cnn"
    with pytest.raises(ValueError, match="sharing ple needs backbone mlp"):
        Params.model_validate(raw)
