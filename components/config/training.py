"""``training``: the budget, optimizer, MTL method, mixing of datasets and devices."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, field_validator, model_validator

from components.config.base import Strict
from components.config.methods import Equal, GradientConfig, LossWeightingConfig, Sum

SamplingName = Literal["uniform", "proportional", "temperature", "capped"]


SAMPLINGS: tuple[str, ...] = get_args(SamplingName)


class EarlyStoppingConfig(Strict):
    """When a training has converged: each training (every baseline, the MTL model) watches its
    own validation objective: a baseline its task's primary metric, the MTL model the score
    ``select`` ranks checkpoints by (the weighted mean relative change against the baselines)."""

    enabled: bool = True
    """Stop once the objective has not improved for this many epochs. Off, the training runs training.max_epochs,
    and these two settings still decide whether it had converged."""
    patience: Annotated[int, Field(ge=1)] = 5
    """Epochs without improvement before a training counts as converged (and, when enabled, stops)"""
    min_delta: Annotated[float, Field(ge=0)] = 0.001
    """An epoch improves when it beats the best so far by more than this relative change of the metric (0.001: 0.1
    %; for the MTL score, 0.1 percentage points of mean relative change)"""


class LRScheduleConfig(Strict):
    """The learning rate over a training, by ``torch.optim.lr_scheduler``."""

    name: Literal["constant", "warmup_cosine", "plateau"] = "constant"
    """constant; warmup_cosine: linear warm-up over warmup_epochs, then cosine decay to 0 at max_epochs (per step);
    plateau: ReduceLROnPlateau on the early-stopping objective (per epoch)"""
    warmup_epochs: Annotated[float, Field(ge=0)] = 1.0
    """warmup_cosine: the linear warm-up's length, in epochs (fractions allowed)"""
    plateau_factor: Annotated[float, Field(gt=0, lt=1)] = 0.5
    """plateau: multiply every learning rate by this after plateau_patience epochs without improvement."""
    plateau_patience: Annotated[int, Field(ge=0)] = 2
    """plateau: keep it below early_stopping.patience, so the rate drops before the training stops."""


class TrainingConfig(Strict):
    """Training settings. With data.datasets, a batch mixes rows of several datasets: each
    row's dataset is drawn with probability p_i (``sampling``), then a row of it, without
    replacement until that dataset is used up and reshuffled. An epoch is Σ n_i rows drawn,
    as many as the training splits hold together."""

    max_epochs: Annotated[int, Field(gt=0)] = 60
    """The budget: at most this many epochs; early_stopping ends a converged training sooner."""
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    """When a training has converged, and whether it stops there."""
    schedule: LRScheduleConfig = LRScheduleConfig()
    """The learning rate over a training."""
    clip_grad_norm: Annotated[float, Field(gt=0)] | None = None
    """Clip the global gradient norm of each step to this (torch.nn.utils.clip_grad_norm_); null: no clipping."""
    seeds: Annotated[int, Field(ge=1)] = 1
    """Trainings per model: the baselines and the MTL model each train with seeds seed, seed + 1, ..., and select
    judges the seed means with intervals pooled over seeds."""
    batch_size: Annotated[int, Field(gt=0)] = 128
    """Rows per step (the global batch, split across devices)."""
    lr: Annotated[float, Field(gt=0)] = 5e-4
    """Learning rate of the heads (times tasks.<task>.lr_scale) and, without shared_lr, of the backbone."""
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4
    """Decoupled weight decay (AdamW's; SGD's L2 penalty)."""
    optimizer: Literal["adamw", "sgd"] = "adamw"
    """adamw or sgd (with sgd_momentum)."""
    sgd_momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    """for optimizer: sgd."""
    shared_lr: Annotated[float, Field(gt=0)] | None = None
    """Learning rate of the shared backbone; null uses lr."""
    loss_weighting: LossWeightingConfig = Equal()
    """How the task losses become the one scalar minimised: ``name`` (equal, fixed, uncertainty, dwa,
    famo, gradnorm, schedule) and that method's settings; a name alone takes its defaults."""
    gradient: GradientConfig = Sum()
    """How the tasks' gradients on the shared parameters become one update: ``name`` (sum, normalize,
    pcgrad, cagrad, mgda, upgrad, nash_mtl, imtl_g, aligned_mtl, graddrop), ``compare_on`` and that method's
    settings; a name alone takes its defaults."""
    sampling: SamplingName = "proportional"
    """Tasks from separate datasets: uniform p_i = 1/D; proportional p_i ∝ n_i; temperature p_i ∝ n_i^(1/T); capped
    p_i ∝ min(n_i, K)"""
    sampling_temperature: Annotated[float, Field(gt=0)] = 2.0
    """sampling temperature: T of p_i ∝ n_i^(1/T)."""
    sampling_cap: Annotated[int, Field(gt=0)] = 10000
    """sampling capped: K of p_i ∝ min(n_i, K)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto (CUDA when present), cpu or cuda."""
    devices: Annotated[int, Field(ge=1)] = 1
    """Data-parallel processes launched with torchrun: one per GPU on CUDA, else CPU processes over gloo. The
    global batch stays batch_size, split across processes."""
    bf16: bool = True
    """bf16 autocast for forward passes on CUDA; CPU always trains in float32."""
    compile: bool = False
    """torch.compile the training step's forward (and so its backward): worth it on a GPU. On 2 CPU cores a sum
    step measured 0.92x and PCGrad's 1.5x the eager one, after seconds of compiling (benchmarks/step.py
    --compile)."""
    max_loss_growth: Annotated[float, Field(gt=1)] | None = 100.0
    """Stop a training whose task loss exceeds this many times its first value (a non-finite loss always stops it);
    null: only non-finite losses stop it."""
    gradient_stats_every: Annotated[int, Field(ge=0)] = 50
    """Every k-th step the per-task gradients on the shared parameters are compared (pairwise cosine and conflict
    share, logged per epoch). Gradient methods measure every step at no extra cost; with sum a measured step
    costs T more backward passes (2.6x a plain step at T = 3, so 1.03x on average at every 50th step). 0: off."""
    num_threads: Annotated[int, Field(ge=0)] = 0
    """0 lets torch pick; set it when several trainings share the machine."""

    @field_validator("loss_weighting", "gradient", mode="before")
    @classmethod
    def _name_alone(cls, raw: object) -> object:
        """``loss_weighting: dwa`` is ``loss_weighting: {name: dwa}``."""
        return {"name": raw} if isinstance(raw, str) else raw

    @model_validator(mode="after")
    def _batch_splits_across_devices(self) -> TrainingConfig:
        if self.batch_size % self.devices:
            raise ValueError(f"batch_size {self.batch_size} does not split evenly over {self.devices} devices")
        return self
