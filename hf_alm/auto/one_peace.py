"""Auto-class registration of ONE-PEACE (``hf_alm_one_peace``).

``AutoModel`` maps to ``OnePeaceModelWithProjection`` (like CLAP's ``ClapModel``: it has ``get_*_features`` and
``logits_per_audio``, so the zero-shot audio pipeline works); the bare fusion encoder is ``OnePeaceModel``.
"""

from __future__ import annotations


def register() -> None:
    import transformers

    from hf_alm.auto import register_auto
    from hf_alm.modeling.one_peace import (
        OnePeaceAudioConfig,
        OnePeaceConfig,
        OnePeaceFeatureExtractor,
        OnePeaceForAudioClassification,
        OnePeaceForPreTraining,
        OnePeaceImageProcessor,
        OnePeaceModelWithProjection,
        OnePeaceProcessor,
        OnePeaceTextConfig,
        OnePeaceVisionConfig,
    )
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    register_auto(
        OnePeaceConfig,
        model_type=OnePeaceConfig.model_type,
        auto_models={"AutoModel": OnePeaceModelWithProjection,
                     "AutoModelForAudioClassification": OnePeaceForAudioClassification,
                     "AutoModelForPreTraining": OnePeaceForPreTraining},
        feature_extractor=OnePeaceFeatureExtractor,
        processor=OnePeaceProcessor,
    )
    for sub in (OnePeaceAudioConfig, OnePeaceTextConfig, OnePeaceVisionConfig):
        if sub.model_type not in CONFIG_MAPPING:
            transformers.AutoConfig.register(sub.model_type, sub)
    try:
        transformers.AutoImageProcessor.register(OnePeaceConfig, slow_image_processor_class=OnePeaceImageProcessor)
    except (ValueError, TypeError):
        try:
            transformers.AutoImageProcessor.register(OnePeaceConfig, OnePeaceImageProcessor)
        except ValueError:  # already registered
            pass
