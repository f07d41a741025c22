"""Auto-class registration of CLAP-TeminAL (AutoConfig, AutoModel, AutoFeatureExtractor, AutoProcessor)."""

from __future__ import annotations


def register() -> None:
    from hf_alm.auto import register_auto
    from hf_alm.modeling.clap_teminal import (
        ClapTeminalConfig,
        ClapTeminalFeatureExtractor,
        ClapTeminalModel,
        ClapTeminalProcessor,
    )

    register_auto(
        ClapTeminalConfig,
        model_type=ClapTeminalConfig.model_type,
        auto_models={"AutoModel": ClapTeminalModel},
        feature_extractor=ClapTeminalFeatureExtractor,
        processor=ClapTeminalProcessor,
    )
