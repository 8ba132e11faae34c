"""The ``hf_backbone``: a Hugging Face vision backbone under an FPN decoder, from saved
pretrained weights or from its architecture alone, and the dense and pooled tasks on it."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from components.config import HFBackboneConfig, Params, ParamsError
from components.data.encoders import fit_encoder
from components.models import build_model
from components.models.backbones import HFVisionBackbone
from components.tasks import build_tasks, check_tasks

TINY = HFBackboneConfig(widths=[8, 16, 32], depths=[1, 1, 1], decoder_channels=8, hidden=6, dropout=0.0)


def vision_params(tmp_path, **backbone) -> Params:
    return Params.model_validate(
        {
            "data": {"source": "files", "canvas_size": 32, "files": {s: f"raw/{s}" for s in ("train", "val", "test")}},
            "model": {"backbone": "hf_backbone", "hf_backbone": TINY.model_dump() | backbone},
            "tasks": {
                "mask": {"type": "segmentation", "label": "mask", "num_classes": 3},
                "depth": {"type": "depth", "label": "depth"},
                "shape": {"type": "classification", "label": "shape", "num_classes": 2},
            },
        }
    )


@pytest.mark.parametrize("architecture", ["resnet", "convnext"])
def test_saved_pretrained_weights_load_back_and_give_the_saved_models_output(tmp_path, architecture):
    saved = HFVisionBackbone.from_params(TINY.model_copy(update={"architecture": architecture}), channels=3).eval()
    with torch.no_grad():  # the saved weights are not the random init every fresh build draws
        for parameter in saved.body.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    saved.body.save_pretrained(tmp_path / "pretrained")
    torch.manual_seed(123)  # another draw: only loading the weights can make the outputs equal
    loaded = HFVisionBackbone.from_params(TINY.model_copy(update={"path": str(tmp_path / "pretrained")}), channels=1)
    fresh = HFVisionBackbone.from_params(TINY.model_copy(update={"architecture": architecture}), channels=3)
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = saved.body(pixel_values=images).feature_maps
        got = loaded.eval().body(pixel_values=images).feature_maps
        other = fresh.eval().body(pixel_values=images).feature_maps
    assert [tuple(m.shape) for m in got] == [(2, 8, 8, 8), (2, 16, 4, 4), (2, 32, 2, 2)]
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    assert not torch.equal(expected[-1], other[-1])
    grey = torch.rand(2, 1, 32, 32)  # an RGB backbone reads a greyscale image as three equal channels
    with torch.no_grad():
        assert torch.equal(loaded.encode(grey), loaded.encode(grey.expand(-1, 3, -1, -1)))


def test_the_shipped_architecture_rebuilds_the_network_without_the_weights_directory(tmp_path):
    saved = HFVisionBackbone.from_params(TINY, channels=1)
    saved.body.save_pretrained(tmp_path / "pretrained")
    params = vision_params(tmp_path, path=str(tmp_path / "pretrained"))
    tasks = build_tasks(params.tasks)
    trained = build_model(params, tasks).eval()
    fit_encoder(params, pd.DataFrame(), tmp_path / "fitted")  # what prepare ships: the backbone's config
    (tmp_path / "pretrained" / "model.safetensors").unlink()  # serving never reads it
    rebuilt = build_model(params, tasks, fitted_inputs=tmp_path / "fitted").eval()
    rebuilt.load_state_dict(trained.state_dict())
    images = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        expected, got = trained(images), rebuilt(images)
    assert {name: tuple(out.shape) for name, out in got.items()} == {
        "mask": (3, 3, 32, 32),
        "depth": (3, 32, 32),
        "shape": (3, 2),
    }
    assert all(torch.equal(expected[name], got[name]) for name in expected)


def test_every_task_reaches_the_shared_backbone_and_gradnorm_measures_a_layer_all_reach(tmp_path):
    params = vision_params(tmp_path)
    model = build_model(params, build_tasks(params.tasks))
    outputs = model(torch.rand(2, 1, 32, 32))
    stem = next(model.backbone.body.parameters())
    for name, output in outputs.items():
        assert torch.autograd.grad(output.sum(), stem, retain_graph=True)[0].abs().sum() > 0, name
    (layer,) = model.gradnorm_parameters()
    assert all(
        torch.autograd.grad(output.sum(), layer, retain_graph=True)[0].abs().sum() > 0 for output in outputs.values()
    )


def test_config_errors_name_the_rule(tmp_path):
    with pytest.raises(ValueError, match="hf_backbone runs as one module: use hard, mmoe or soft_penalty"):
        Params.model_validate({"model": {"backbone": "hf_backbone", "sharing": "cross_stitch"}})
    with pytest.raises(ValueError, match=r"widths \[8, 16\] and depths \[1\] must name the same number"):
        HFBackboneConfig(widths=[8, 16], depths=[1])
    (tmp_path / "not_a_backbone").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json; save a backbone there with save_pretrained"):
        HFVisionBackbone.from_params(TINY.model_copy(update={"path": str(tmp_path / "not_a_backbone")}), channels=1)
    raw = vision_params(tmp_path).model_dump()
    raw["model"]["backbone"] = "mlp"
    with pytest.raises(ParamsError, match="tasks.depth: depth needs a backbone with feature maps: cnn or hf_backbone"):
        check_tasks(Params.model_validate(raw))
