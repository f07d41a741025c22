"""ONE-PEACE (arXiv 2305.11172) as transformers classes: config, model, heads, feature extractor, image processor,
processor. Self-contained (Hub remote code): imports only torch, numpy, transformers and this folder."""

from .configuration_one_peace import OnePeaceAudioConfig, OnePeaceConfig, OnePeaceTextConfig, OnePeaceVisionConfig
from .feature_extraction_one_peace import OnePeaceFeatureExtractor
from .image_processing_one_peace import OnePeaceImageProcessor
from .modeling_one_peace import (
    OnePeaceForAudioClassification,
    OnePeaceForPreTraining,
    OnePeaceModel,
    OnePeaceModelWithProjection,
    OnePeacePreTrainedModel,
)
from .processing_one_peace import OnePeaceProcessor

__all__ = [
    "OnePeaceAudioConfig",
    "OnePeaceConfig",
    "OnePeaceFeatureExtractor",
    "OnePeaceForAudioClassification",
    "OnePeaceForPreTraining",
    "OnePeaceImageProcessor",
    "OnePeaceModel",
    "OnePeaceModelWithProjection",
    "OnePeacePreTrainedModel",
    "OnePeaceProcessor",
    "OnePeaceTextConfig",
    "OnePeaceVisionConfig",
]
