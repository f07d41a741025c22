"""Register BEATs with the transformers Auto classes: the encoder family (``model_type`` ``hf_alm_beats``: AutoModel,
AutoModelForAudioClassification, AutoModelForPreTraining) and the two tokenizers, each under its own ``model_type``
(``hf_alm_beats_tokenizer``, ``hf_alm_beats_random_projection``) whose AutoModel is the tokenizer."""

from __future__ import annotations


def register() -> None:
    from hf_alm.auto import register_auto
    from hf_alm.modeling.beats import (BeatsAcousticTokenizer, BeatsConfig, BeatsFeatureExtractor,
                                       BeatsRandomProjectionConfig, BeatsRandomProjectionTokenizer,
                                       BeatsTokenizerConfig)
    from hf_alm.modeling.beats import modeling_beats

    register_auto(
        BeatsConfig,
        model_type=BeatsConfig.model_type,
        auto_models={auto: getattr(modeling_beats, name) for auto, name in modeling_beats.AUTO_CLASS_NAMES.items()},
        feature_extractor=BeatsFeatureExtractor,
    )
    for config_cls, model_cls in ((BeatsTokenizerConfig, BeatsAcousticTokenizer),
                                  (BeatsRandomProjectionConfig, BeatsRandomProjectionTokenizer)):
        register_auto(config_cls, model_type=config_cls.model_type, auto_models={"AutoModel": model_cls},
                      feature_extractor=BeatsFeatureExtractor)
