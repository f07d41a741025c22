# Copyright 2026 the hf-alm developers. MIT licence.
# Architecture after ONE-PEACE (Wang et al., arXiv 2305.11172; OFA-Sys/ONE-PEACE, Apache-2.0). Written from scratch.
"""ONE-PEACE configuration: one shared-attention fusion encoder with audio, language and vision adapters.

``OnePeaceConfig`` holds the fusion-encoder sizes, the pretraining decoder sizes and three adapter sub-configs
(``audio_config``, ``text_config``, ``vision_config``). ``OnePeaceConfig.from_preset(name)`` builds the ``tiny`` (tests),
``lite`` (trains on 2 CPU cores) or ``original`` (the 4B model of the paper) shape.
"""

from __future__ import annotations

import math

from transformers import PreTrainedConfig

ORIGINAL_CONV_FEATURE_LAYERS = [[512, 10, 5]] + [[512, 3, 2]] * 4 + [[512, 2, 2]] * 2


class OnePeaceAudioConfig(PreTrainedConfig):
    r"""Audio adapter: waveform conv feature extractor, projection, convolutional positions, CLS, 1D relative bias.

    Args:
        conv_feature_layers (`list[list[int]]`): ``[channels, kernel, stride]`` per conv block (wav2vec2/WavLM style).
        conv_bias (`bool`): bias in the feature-extractor convolutions (``False`` in ONE-PEACE).
        conv_pos_depth (`int`): number of convolutional position blocks.
        conv_pos_width (`int`): total receptive width; each block uses ``max(3, width // depth)`` taps.
        conv_pos_groups (`int`): groups of the position convolutions.
        bucket_size (`int`): relative-position buckets (exact within ``+-bucket/2``, logarithmic beyond).
        max_relative_positions (`int`): size of the relative-position bucket table (sequence length limit incl. CLS).
        sampling_rate (`int`): expected waveform rate in Hz.
    """

    model_type = "hf_alm_one_peace_audio"
    base_config_key = "audio_config"

    conv_feature_layers: list | None = None
    conv_bias: bool = False
    conv_pos_depth: int = 5
    conv_pos_width: int = 95
    conv_pos_groups: int = 16
    bucket_size: int = 512
    max_relative_positions: int = 1024
    sampling_rate: int = 16000

    def __post_init__(self, **kwargs):
        if self.conv_feature_layers is None:
            self.conv_feature_layers = [list(x) for x in ORIGINAL_CONV_FEATURE_LAYERS]
        self.conv_feature_layers = [list(map(int, x)) for x in self.conv_feature_layers]
        for spec in self.conv_feature_layers:
            if len(spec) != 3 or min(spec) < 1:
                raise ValueError(f"conv_feature_layers entries must be [channels, kernel, stride] >= 1, got {spec}")
        if self.bucket_size >= self.max_relative_positions:
            raise ValueError(f"audio bucket_size ({self.bucket_size}) must be < max_relative_positions "
                             f"({self.max_relative_positions})")
        super().__post_init__(**kwargs)

    @property
    def conv_pos_kernel(self) -> int:
        return max(3, self.conv_pos_width // self.conv_pos_depth)

    @property
    def total_stride(self) -> int:
        return math.prod(s for _, _, s in self.conv_feature_layers)


class OnePeaceTextConfig(PreTrainedConfig):
    r"""Language adapter: BPE token embedding, CLS, absolute positions and a 1D relative bias.

    Args:
        vocab_size (`int`): size of the token table.
        max_position_embeddings (`int`): absolute position table size (512 + 2 in ONE-PEACE).
        bucket_size (`int`): relative-position buckets.
        max_relative_positions (`int`): size of the relative-position bucket table.
        pad_token_id / bos_token_id / eos_token_id (`int`): special ids of the tokenizer.
    """

    model_type = "hf_alm_one_peace_text"
    base_config_key = "text_config"

    vocab_size: int = 50264
    max_position_embeddings: int = 514
    bucket_size: int = 256
    max_relative_positions: int = 1024
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | None = 2

    def __post_init__(self, **kwargs):
        if self.bucket_size >= self.max_relative_positions:
            raise ValueError(f"text bucket_size ({self.bucket_size}) must be < max_relative_positions "
                             f"({self.max_relative_positions})")
        super().__post_init__(**kwargs)


class OnePeaceVisionConfig(PreTrainedConfig):
    r"""Vision adapter: hierarchical-MLP patch stem (16x16 patches), absolute positions, CLS, 2D relative bias.

    Args:
        image_size (`int`): square input size in pixels (a multiple of 16).
        num_channels (`int`): input channels.
        bucket_size (`int`): side of the absolute-position grid (``image_size // 16``).
        rel_bucket_size (`int`): side of the relative-position grid.
    """

    model_type = "hf_alm_one_peace_vision"
    base_config_key = "vision_config"

    image_size: int = 256
    num_channels: int = 3
    bucket_size: int = 16
    rel_bucket_size: int = 16

    patch_size = 16  # fixed by the hMLP stem (4 * 2 * 2)

    def __post_init__(self, **kwargs):
        if self.image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16 (the hMLP stem stride), got {self.image_size}")
        super().__post_init__(**kwargs)


class OnePeaceConfig(PreTrainedConfig):
    r"""Configuration of ONE-PEACE (fusion encoder + adapters + retrieval / classification heads + pretraining decoder).

    Args:
        hidden_size (`int`): width of the fusion encoder (1536 in the 4B model).
        num_hidden_layers (`int`): fusion layers (40).
        num_attention_heads (`int`): heads of the shared attention (24).
        intermediate_size (`int`): GeGLU width of each modality FFN (6144).
        layer_scale_init_value (`float`): LayerScale init (``gamma_1``/``gamma_2``); 0 disables LayerScale.
        drop_path_rate (`float`): stochastic depth, linear from 0 at the first layer to this value at the last.
        hidden_dropout_prob / attention_dropout / activation_dropout (`float`): dropouts (0 in pretraining).
        magneto_scale_attn (`bool`): Sub-LayerNorm on the attention output before ``out_proj``.
        scale_fc (`bool`): LayerNorm inside each FFN (after the GeGLU).
        use_audio_moe / use_text_moe / use_image_moe (`bool`): which modality branches (adapter, FFN, final LN) exist.
        share_rel_pos_table (`bool`): one relative-bias table for all layers (pretraining) instead of one per layer.
        projection_dim (`int`): size of the retrieval embedding (``hidden_size`` in ONE-PEACE).
        logit_scale_init_value (`float`): initial *temperature inverse* (1/0.07); stored as its log.
        logit_scale_max (`float`): the logit scale is clamped to at most this value (100).
        decoder_* (`int`): the 2-layer pretraining decoder of the denoising contrast (768 / 2048 / 12 heads).
        classifier_head_scale_ratio (`float`): hidden width of the classification MLP in units of ``hidden_size``.
    """

    model_type = "hf_alm_one_peace"
    sub_configs_defaults = {
        "audio_config": OnePeaceAudioConfig,
        "text_config": OnePeaceTextConfig,
        "vision_config": OnePeaceVisionConfig,
    }

    audio_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    vision_config: dict | PreTrainedConfig | None = None

    hidden_size: int = 1536
    num_hidden_layers: int = 40
    num_attention_heads: int = 24
    intermediate_size: int = 6144
    layer_scale_init_value: float = 1e-6
    drop_path_rate: float = 0.0
    hidden_dropout_prob: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    layer_norm_eps: float = 1e-5
    magneto_scale_attn: bool = True
    scale_fc: bool = True
    use_audio_moe: bool = True
    use_text_moe: bool = True
    use_image_moe: bool = True
    share_rel_pos_table: bool = True
    initializer_range: float = 0.02
    projection_dim: int | None = None
    logit_scale_init_value: float = 1 / 0.07
    logit_scale_max: float = 100.0
    decoder_hidden_size: int = 768
    decoder_num_hidden_layers: int = 2
    decoder_num_attention_heads: int = 12
    decoder_intermediate_size: int = 2048
    classifier_head_scale_ratio: float = 2.0

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.projection_dim is None:
            self.projection_dim = self.hidden_size
        for name, hidden, heads in (("", self.hidden_size, self.num_attention_heads),
                                    ("decoder_", self.decoder_hidden_size, self.decoder_num_attention_heads)):
            if hidden % heads:
                raise ValueError(f"{name}hidden_size ({hidden}) must be divisible by {name}num_attention_heads "
                                 f"({heads})")
        if self.hidden_size % 4:
            raise ValueError(f"hidden_size must be a multiple of 4 (the hMLP stem uses hidden_size // 4), "
                             f"got {self.hidden_size}")
        if not (self.use_audio_moe or self.use_text_moe or self.use_image_moe):
            raise ValueError("at least one of use_audio_moe / use_text_moe / use_image_moe must be True")

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m, on in (("text", self.use_text_moe), ("image", self.use_image_moe),
                                     ("audio", self.use_audio_moe)) if on)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "OnePeaceConfig":
        """``tiny`` (unit tests), ``lite`` (CPU training) or ``original`` (the 4B model); ``overrides`` win."""
        presets = {
            "tiny": dict(
                hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                layer_scale_init_value=0.1, decoder_hidden_size=16, decoder_num_hidden_layers=1,
                decoder_num_attention_heads=2, decoder_intermediate_size=32,
                audio_config=dict(conv_feature_layers=[[16, 10, 5]] + [[16, 3, 2]] * 2 + [[16, 2, 2]] * 2,
                                  conv_pos_depth=2, conv_pos_width=6, conv_pos_groups=4, bucket_size=16,
                                  max_relative_positions=256),
                text_config=dict(vocab_size=64, max_position_embeddings=34, bucket_size=8,
                                 max_relative_positions=64),
                vision_config=dict(image_size=32, bucket_size=2, rel_bucket_size=2),
            ),
            "lite": dict(
                hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
                layer_scale_init_value=0.1, drop_path_rate=0.0, decoder_hidden_size=64, decoder_num_hidden_layers=1,
                decoder_num_attention_heads=4, decoder_intermediate_size=128,
                audio_config=dict(conv_feature_layers=[[32, 10, 5], [32, 3, 2]] + [[64, 3, 2]] * 3 + [[64, 2, 2]] * 2,
                                  conv_pos_depth=2, conv_pos_width=10, conv_pos_groups=8, bucket_size=64,
                                  max_relative_positions=512),
                text_config=dict(vocab_size=1000, max_position_embeddings=66, bucket_size=32,
                                 max_relative_positions=128),
                vision_config=dict(image_size=64, bucket_size=4, rel_bucket_size=4),
            ),
            "original": dict(
                hidden_size=1536, num_hidden_layers=40, num_attention_heads=24, intermediate_size=6144,
                layer_scale_init_value=1e-6, drop_path_rate=0.4,
                audio_config=dict(conv_feature_layers=[list(x) for x in ORIGINAL_CONV_FEATURE_LAYERS],
                                  conv_pos_depth=5, conv_pos_width=95, conv_pos_groups=16, bucket_size=512,
                                  max_relative_positions=1024),
                text_config=dict(vocab_size=50264, max_position_embeddings=514, bucket_size=256,
                                 max_relative_positions=1024),
                vision_config=dict(image_size=256, bucket_size=16, rel_bucket_size=16),
            ),
        }
        if name not in presets:
            raise ValueError(f"unknown ONE-PEACE preset {name!r}; choose one of {sorted(presets)}")
        kwargs = presets[name]
        for key in ("audio_config", "text_config", "vision_config"):
            if isinstance(overrides.get(key), dict):
                overrides[key] = {**kwargs[key], **overrides[key]}
        kwargs.update(overrides)
        return cls(**kwargs)


__all__ = ["OnePeaceAudioConfig", "OnePeaceConfig", "OnePeaceTextConfig", "OnePeaceVisionConfig"]
