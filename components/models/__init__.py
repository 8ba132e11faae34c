"""Networks: backbones, sharing strategies, and the builder that joins them to task heads.

The classes are importable from here too: versions registered before this package existed
pickled them as ``components.models.<Class>``.
"""

from components.models.backbones import (
    Backbone,
    CNNBackbone,
    HFEncoderBackbone,
    MLPBackbone,
    StagedBackbone,
    TextTransformerBackbone,
)
from components.models.build import build_model, flat_input_width
from components.models.sharing import (
    CrossStitchModel,
    CrossStitchUnit,
    EmbeddedInput,
    HardSharingModel,
    MMoEModel,
    MultiTaskNetwork,
    PLEModel,
    SluiceModel,
    SluiceUnit,
    SoftSharingModel,
)

__all__ = [
    "Backbone",
    "CNNBackbone",
    "CrossStitchModel",
    "CrossStitchUnit",
    "EmbeddedInput",
    "HFEncoderBackbone",
    "HardSharingModel",
    "MLPBackbone",
    "MMoEModel",
    "MultiTaskNetwork",
    "PLEModel",
    "SluiceModel",
    "SluiceUnit",
    "SoftSharingModel",
    "StagedBackbone",
    "TextTransformerBackbone",
    "build_model",
    "flat_input_width",
]
