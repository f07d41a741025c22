# Copyright 2026 the hf-alm developers. MIT licence.
"""BEATs (Chen et al., ICML 2023) as transformers models: config, feature extractor, encoder, classifier, tokenizers and
masked-audio-modelling pre-training. Self-contained (torch + transformers + numpy) so the folder ships as remote code."""

from .configuration_beats import (PADDING_MODES, BeatsConfig, BeatsRandomProjectionConfig, BeatsTokenizerConfig,
                                  tiny_beats_config)
from .feature_extraction_beats import BeatsFeatureExtractor, frame_padding_mask, kaldi_fbank, kaldi_mel_banks
from .modeling_beats import (
    BeatsAcousticTokenizer,
    BeatsAudioClassifierOutput,
    BeatsForAudioClassification,
    BeatsLongAudioOutput,
    BeatsForPreTraining,
    BeatsForPreTrainingOutput,
    BeatsModel,
    BeatsModelOutput,
    BeatsPreTrainedModel,
    BeatsRandomProjectionTokenizer,
    BeatsTokenizerOutput,
    BeatsVectorQuantizer,
    masked_mean,
    relative_position_buckets,
)

__all__ = [
    "PADDING_MODES",
    "BeatsConfig",
    "BeatsTokenizerConfig",
    "BeatsRandomProjectionConfig",
    "tiny_beats_config",
    "BeatsFeatureExtractor",
    "frame_padding_mask",
    "kaldi_fbank",
    "kaldi_mel_banks",
    "BeatsPreTrainedModel",
    "BeatsModel",
    "BeatsForAudioClassification",
    "BeatsAcousticTokenizer",
    "BeatsRandomProjectionTokenizer",
    "BeatsForPreTraining",
    "BeatsVectorQuantizer",
    "BeatsModelOutput",
    "BeatsAudioClassifierOutput",
    "BeatsLongAudioOutput",
    "BeatsTokenizerOutput",
    "BeatsForPreTrainingOutput",
    "masked_mean",
    "relative_position_buckets",
]
