"""The tiny edge transformer (``model_type`` ``hf_alm_tiny_edge_transformer``): a ~6k-parameter BERT-style
transformer on log-mel frames for sound classification on microcontroller-class devices."""

from .configuration_tiny_edge_transformer import PRESETS, TinyEdgeTransformerConfig, num_parameters_for
from .feature_extraction_tiny_edge_transformer import TinyEdgeTransformerFeatureExtractor
from .modeling_tiny_edge_transformer import (
    TinyEdgeTransformerForAudioClassification,
    TinyEdgeTransformerModel,
    TinyEdgeTransformerPreTrainedModel,
)

__all__ = [
    "PRESETS",
    "TinyEdgeTransformerConfig",
    "TinyEdgeTransformerFeatureExtractor",
    "TinyEdgeTransformerForAudioClassification",
    "TinyEdgeTransformerModel",
    "TinyEdgeTransformerPreTrainedModel",
    "num_parameters_for",
]
