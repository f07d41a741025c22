"""Auto-class registration of the tiny edge transformer (``hf_alm_tiny_edge_transformer``)."""

from __future__ import annotations


def register() -> None:
    from hf_alm.auto import register_auto
    from hf_alm.modeling.tiny_edge_transformer import TinyEdgeTransformerConfig, TinyEdgeTransformerFeatureExtractor
    from hf_alm.modeling.tiny_edge_transformer import modeling_tiny_edge_transformer as modeling

    register_auto(
        TinyEdgeTransformerConfig,
        model_type=TinyEdgeTransformerConfig.model_type,
        auto_models={auto: getattr(modeling, name) for auto, name in modeling.AUTO_CLASS_NAMES.items()},
        feature_extractor=TinyEdgeTransformerFeatureExtractor,
    )
