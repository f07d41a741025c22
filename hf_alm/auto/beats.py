"""Register BEATs (``model_type`` ``hf_alm_beats``) with the transformers Auto classes."""

from __future__ import annotations


def register() -> None:
    from hf_alm.auto import register_auto
    from hf_alm.modeling.beats import BeatsConfig, BeatsFeatureExtractor
    from hf_alm.modeling.beats import modeling_beats

    register_auto(
        BeatsConfig,
        model_type=BeatsConfig.model_type,
        auto_models={auto: getattr(modeling_beats, name) for auto, name in modeling_beats.AUTO_CLASS_NAMES.items()},
        feature_extractor=BeatsFeatureExtractor,
    )
