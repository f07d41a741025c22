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
        OnePeaceImageProcessor,
        OnePeaceProcessor,
        OnePeaceTextConfig,
        OnePeaceVisionConfig,
    )
    from hf_alm.modeling.one_peace import modeling_one_peace
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    register_auto(
        OnePeaceConfig,
        model_type=OnePeaceConfig.model_type,
        auto_models={auto: getattr(modeling_one_peace, name)
                     for auto, name in modeling_one_peace.AUTO_CLASS_NAMES.items()},
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
