"""Register BEATs (``model_type`` ``hf_alm_beats``) with the transformers Auto classes."""

from __future__ import annotations


def register() -> None:
    from hf_alm.auto import register_auto
    from hf_alm.modeling.beats import (BeatsConfig, BeatsFeatureExtractor, BeatsForAudioClassification,
                                       BeatsForPreTraining, BeatsModel)

    register_auto(
        BeatsConfig,
        model_type=BeatsConfig.model_type,
        auto_models={
            "AutoModel": BeatsModel,
            "AutoModelForAudioClassification": BeatsForAudioClassification,
            "AutoModelForPreTraining": BeatsForPreTraining,
        },
        feature_extractor=BeatsFeatureExtractor,
    )
