"""The network ``params.model`` describes: backbone(s), sharing strategy and task heads.

A single-task baseline is the hard-sharing network with one head, so baselines share the
backbone and training code with every multi-task model.

Example::

    >>> import torch
    >>> from components.config import load_params
    >>> from components.tasks import build_tasks
    >>> params = load_params("params.yaml")
    >>> network = build_model(params, build_tasks(params.tasks))
    >>> {name: tuple(out.shape) for name, out in network(torch.zeros(2, 1, 36, 36)).items()}
    {'left': (2, 10), 'right': (2, 10), 'sum': (2,)}
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from torch import nn

from components.config import Params
from components.config.data import IMAGE_INPUTS
from components.data.encoders import HF_BACKBONE_DIR, FittedFeatures, resolve_encoder_path
from components.models.backbones import (
    Backbone,
    CNNBackbone,
    HFEncoderBackbone,
    HFVisionBackbone,
    MLPBackbone,
    TextTransformerBackbone,
    WithFeatures,
)
from components.models.sharing import (
    CrossStitchModel,
    EmbeddedInput,
    HardSharingModel,
    MMoEModel,
    MultiTaskNetwork,
    PLEModel,
    SluiceModel,
    SoftSharingModel,
)
from components.tasks import Task


def flat_input_width(params: Params, input_width: int | None = None) -> int:
    """Width of the flat input an MLP or an MMoE gate reads; a features input's is
    ``input_width``, what its fitted encoder gives (``fitted_features``), embedded."""
    spec = next(iter(params.data.inputs().values()))  # several datasets differ only in text inputs
    if spec.kind in IMAGE_INPUTS:
        return params.data.image_channels() * params.data.image_side() ** 2
    if spec.kind == "features":
        if input_width is None:
            raise ValueError("a features input's width comes from its fitted encoder: pass features")
        return input_width
    return params.model.text_transformer.vocab_size  # an hf_encoder's gate reads its own vocabulary


def build_model(
    params: Params,
    tasks: dict[str, Task],
    fitted_inputs: Path | None = None,
    features: FittedFeatures | None = None,
) -> MultiTaskNetwork:
    """The network ``params`` describe. A pretrained ``hf_encoder`` starts from its
    pretrained weights, unless ``fitted_inputs`` (the files ``prepare`` fitted, shipped with
    a registered model) is given: then only its architecture is built, to receive a
    checkpoint's weights without reading the pretrained ones or needing their directory.
    ``features``: what the feature columns were fitted to (``fitted_features``), needed for
    a features input or columns beside a text; embedded columns' ids are read through
    their tables, below every task."""
    config = params.model
    input_width = None if features is None else features.width
    dense_width = None
    if features is not None and features.embeddings:
        dense_width = features.width - len(features.embeddings)
        input_width = dense_width + sum(width for _, width in features.embeddings)  # what the trunk reads

    text_backbones = ("text_transformer", "hf_encoder")
    # a text input with columns beside it: the text backbone is wrapped to read both
    beside_text = config.backbone in text_backbones and next(iter(params.data.inputs().values())).feature_part()

    def text_backbone() -> Backbone:
        if config.backbone == "text_transformer":
            return TextTransformerBackbone(config.text_transformer)
        if fitted_inputs is not None:
            return HFEncoderBackbone.load(fitted_inputs, weights=False)
        return HFEncoderBackbone.load(resolve_encoder_path(config.hf_encoder.path), weights=True)

    def vision_backbone() -> Backbone:
        if fitted_inputs is None:
            return HFVisionBackbone.from_params(config.hf_backbone, params.data.image_channels())
        shipped = fitted_inputs / HF_BACKBONE_DIR  # a pretrained backbone's config, copied by prepare
        return HFVisionBackbone.from_architecture(
            config.hf_backbone, params.data.image_channels(), shipped if shipped.is_dir() else None
        )

    def backbone() -> Backbone:
        if config.backbone == "mlp":
            return MLPBackbone(config.mlp, flat_input_width(params, input_width))
        if config.backbone == "cnn":
            return CNNBackbone(config.cnn, params.data.image_side(), params.data.image_channels())
        if config.backbone == "hf_backbone":
            return vision_backbone()
        if not beside_text:
            return text_backbone()
        if input_width is None:
            raise ValueError("the width of the columns beside the text comes from the fitted encoder: pass features")
        text = config.text_transformer if config.backbone == "text_transformer" else config.hf_encoder
        return WithFeatures(cast(nn.Module, text_backbone()), text.max_length, MLPBackbone(config.mlp, input_width))

    dense = frozenset(name for name, task in tasks.items() if task.dense)
    n_backbones = {
        "mmoe": config.mmoe.experts,
        "hard": 1,
        "ple": len(tasks) * config.ple.task_experts + config.ple.shared_experts,
    }.get(config.sharing, len(tasks))  # else a column per task

    def heads_of(width: int, dense_width: int) -> dict[str, nn.Module]:
        return {
            name: task.head(dense_width if task.dense else width, params.data.image_side())
            for name, task in tasks.items()
        }

    if config.backbone == "hf_encoder":  # its widths are known once it is loaded
        backbones = [backbone() for _ in range(n_backbones)]
        heads = heads_of(backbones[0].out_features, backbones[0].dense_features)
    else:  # heads first: the seeded initialisation order every earlier result used
        widths = {
            "cnn": (config.cnn.hidden, config.cnn.channels[-1]),
            "hf_backbone": (config.hf_backbone.hidden, config.hf_backbone.decoder_channels),
            "mlp": (config.mlp.hidden[-1], ([flat_input_width(params, input_width)] + config.mlp.hidden)[-2]),
            "text_transformer": (
                config.text_transformer.d_model + (config.mlp.hidden[-1] if beside_text else 0),
                config.text_transformer.d_model,
            ),
        }
        heads = heads_of(*widths[config.backbone])
        backbones = [backbone() for _ in range(n_backbones)]
    network = _shared(params, tasks, backbones, heads, dense, input_width)
    if features is not None and dense_width is not None:
        network.read_ids_through(EmbeddedInput(dense_width, list(features.embeddings)))
    return network


def _shared(
    params: Params,
    tasks: dict[str, Task],
    backbones: list[Backbone],
    heads: dict[str, nn.Module],
    dense: frozenset[str],
    input_width: int | None,
) -> MultiTaskNetwork:
    """``model.sharing``'s network over ``backbones``."""
    config = params.model
    if config.sharing == "cross_stitch":
        return CrossStitchModel(dict(zip(tasks, backbones)), heads, config.cross_stitch.self_weight, dense)
    if config.sharing == "sluice":
        sluice = config.sluice
        return SluiceModel(dict(zip(tasks, backbones)), heads, sluice.subspaces, sluice.self_weight, dense)
    if config.sharing == "soft_penalty":
        return SoftSharingModel(dict(zip(tasks, backbones)), heads, config.soft_penalty.weight, dense)
    if config.sharing == "mmoe":
        first = backbones[0]
        gate_size = first.vocab_size if isinstance(first, HFEncoderBackbone) else flat_input_width(params, input_width)
        return MMoEModel(backbones, heads, gate_size, dense)
    if config.sharing == "ple":  # the config's rule: an mlp, whose layer j reads widths[j]
        per_task = config.ple.task_experts
        experts = {name: backbones[i * per_task : (i + 1) * per_task] for i, name in enumerate(tasks)}
        gate_sizes = [flat_input_width(params, input_width), *config.mlp.hidden[:-1]]
        return PLEModel(experts, backbones[len(tasks) * per_task :], heads, gate_sizes)
    return HardSharingModel(backbones[0], heads, dense)
