"""Networks: backbones, sharing strategies, and the builder that joins them to task heads."""

from components.models.backbones import Backbone
from components.models.build import build_model, flat_input_width
from components.models.sharing import MultiTaskNetwork

__all__ = ["Backbone", "MultiTaskNetwork", "build_model", "flat_input_width"]
