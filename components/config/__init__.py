"""Typed view of ``params.yaml``: every knob a user tunes, validated before anything runs,
one module per section (``data``, ``tasks``, ``model``, ``training``, ``selection``,
``validation``, ``registry`` and ``serving``, ``orchestration``, ``tuning``, ``affinity``;
the MTL methods' settings in ``methods``),
the whole file in ``params``, reading it in ``loading``.

Unknown keys and unknown choices are errors that list what is valid, so a typo never
silently falls back to a default; a key that moved names its new place.

Example::

    >>> cfg = load_params("params.yaml")
    >>> cfg.tasks["left"].type
    'classification'
"""

from components.config.add_task import AddTaskConfig
from components.config.affinity import AffinityConfig
from components.config.base import ParamsError, SplitSizes, Strict
from components.config.ceilings import CeilingsConfig
from components.config.data import (
    TEXT_INPUTS,
    DataConfig,
    DatasetConfig,
    InputConfig,
    InputKind,
    MissingPolicy,
    SplitFiles,
    SplitFractions,
    SyntheticConfig,
)
from components.config.loading import RENAMED, load_params, upgrade_stored
from components.config.methods import (
    GRADIENT_METHODS,
    GRAMIAN_METHODS,
    LOSS_WEIGHTINGS,
    GradientConfig,
    GradientSettings,
    LossWeightingConfig,
    MethodSettings,
    gradient_method,
    loss_weighting,
)
from components.config.model import (
    BACKBONE_INPUTS,
    CNNConfig,
    CrossStitchConfig,
    HFBackboneConfig,
    HFEncoderConfig,
    MLPConfig,
    MMoEConfig,
    ModelConfig,
    PLEConfig,
    SluiceConfig,
    SoftPenaltyConfig,
    TextTransformerConfig,
)
from components.config.orchestration import HealthConfig, OrchestrationConfig, RefreshConfig, ScheduleConfig
from components.config.params import Params
from components.config.registry import RegistryConfig, ServingConfig
from components.config.selection import SelectionConfig
from components.config.tasks import TaskConfig
from components.config.training import SAMPLINGS, EarlyStoppingConfig, LRScheduleConfig, SamplingName, TrainingConfig
from components.config.tuning import SearchRange, TunedName, TuningConfig
from components.config.validation import ValidationConfig

__all__ = [
    "BACKBONE_INPUTS", "GRADIENT_METHODS", "GRAMIAN_METHODS", "LOSS_WEIGHTINGS", "RENAMED", "SAMPLINGS",
    "TEXT_INPUTS", "AddTaskConfig", "AffinityConfig", "CNNConfig", "CeilingsConfig", "CrossStitchConfig",
    "DataConfig", "DatasetConfig", "EarlyStoppingConfig", "GradientConfig", "GradientSettings", "HFBackboneConfig",
    "HFEncoderConfig", "HealthConfig", "InputConfig", "InputKind", "LRScheduleConfig", "LossWeightingConfig",
    "MethodSettings", "MLPConfig", "MMoEConfig", "MissingPolicy", "ModelConfig", "OrchestrationConfig", "PLEConfig",
    "Params", "ParamsError", "RefreshConfig", "RegistryConfig", "SamplingName", "ScheduleConfig", "SearchRange",
    "SelectionConfig", "ServingConfig", "SluiceConfig", "SoftPenaltyConfig", "SplitFiles", "SplitFractions",
    "SplitSizes", "Strict", "SyntheticConfig", "TaskConfig", "TextTransformerConfig", "TrainingConfig", "TunedName",
    "TuningConfig", "ValidationConfig", "gradient_method", "load_params", "loss_weighting", "upgrade_stored",
]  # fmt: skip
