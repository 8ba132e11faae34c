"""``training``: the budget, optimizer, MTL method, mixing of datasets and devices."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from components.config.base import Strict

LossWeightingName = Literal["equal", "fixed", "uncertainty", "dwa", "famo", "gradnorm", "schedule"]


GradientName = Literal[
    "sum", "normalize", "pcgrad", "cagrad", "mgda", "upgrad", "nash_mtl", "imtl_g", "aligned_mtl", "graddrop"
]


LOSS_WEIGHTINGS: tuple[str, ...] = get_args(LossWeightingName)


GRADIENT_METHODS: tuple[str, ...] = get_args(GradientName)


#: the gradient methods that weigh the tasks from the Gramian of their gradients alone, so
#: ``training.gradient_on: features`` can run them on the shared representation
GRAMIAN_METHODS: tuple[str, ...] = ("normalize", "pcgrad", "cagrad", "mgda", "upgrad", "imtl_g", "aligned_mtl")


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
    schedule: LRScheduleConfig = LRScheduleConfig()
    clip_grad_norm: Annotated[float, Field(gt=0)] | None = None
    """Clip the global gradient norm of each step to this (torch.nn.utils.clip_grad_norm_); null: no clipping."""
    seeds: Annotated[int, Field(ge=1)] = 1
    """Trainings per model: the baselines and the MTL model each train with seeds seed, seed + 1, ..., and select
    judges the seed means with intervals pooled over seeds."""
    batch_size: Annotated[int, Field(gt=0)] = 128
    lr: Annotated[float, Field(gt=0)] = 5e-4
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4
    optimizer: Literal["adamw", "sgd"] = "adamw"
    sgd_momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    """for optimizer: sgd."""
    shared_lr: Annotated[float, Field(gt=0)] | None = None
    """Learning rate of the shared backbone; null uses lr."""
    loss_weighting: LossWeightingName = "equal"
    fixed_weights: dict[str, Annotated[float, Field(ge=0)]] = {}
    """for loss_weighting: fixed; default 1."""
    dwa_temperature: Annotated[float, Field(gt=0)] = 2.0
    gradnorm_alpha: Annotated[float, Field(ge=0)] = 1.5
    famo_lr: Annotated[float, Field(gt=0)] = 0.025
    weight_schedule: dict[str, list[tuple[float, Annotated[float, Field(ge=0)]]]] = {}
    """for loss_weighting: schedule; task -> [[epoch, weight], ...], piecewise-linear, default 1."""
    gradient: GradientName = "sum"
    gradient_on: Literal["parameters", "features"] = "parameters"
    """Where a gradient method compares the tasks: parameters (the exact method, on the shared parameters'
    Jacobian: T backward passes) or features (MGDA-UB, Sener & Koltun 2018: the Gramian of the tasks' gradients
    on the shared representation, then one backward pass)."""
    cagrad_c: Annotated[float, Field(ge=0)] = 0.5
    """CAGrad's radius (Liu et al. 2021): 0 follows the mean gradient; a larger c moves toward the direction that
    most improves the worst-off task."""
    nash_mtl_update_every: Annotated[int, Field(ge=1)] = 1
    """Nash-MTL solves its bargaining problem every k-th step and reuses the task weights in between (the paper's
    update_weights_every): each solve is a cvxpy call, 13 ms here."""
    sampling: SamplingName = "proportional"
    """Tasks from separate datasets: uniform p_i = 1/D; proportional p_i ∝ n_i; temperature p_i ∝ n_i^(1/T); capped
    p_i ∝ min(n_i, K)"""
    sampling_temperature: Annotated[float, Field(gt=0)] = 2.0
    sampling_cap: Annotated[int, Field(gt=0)] = 10000
    device: Literal["auto", "cpu", "cuda"] = "auto"
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

    @model_validator(mode="after")
    def _batch_splits_across_devices(self) -> TrainingConfig:
        if self.batch_size % self.devices:
            raise ValueError(f"batch_size {self.batch_size} does not split evenly over {self.devices} devices")
        return self
