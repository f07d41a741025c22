"""Configuration of CLAP-TeminAL: a CLAP-style contrastive audio-text dual encoder (HTSAT or BEATs audio tower)."""

import copy
import math

from transformers import AutoConfig, ClapAudioConfig, ClapTextConfig, PreTrainedConfig

from .beats_tower import beats_config_class

AUDIO_TOWERS = ("htsat", "beats")

# the 2-layer, 32-wide RoBERTa-style text tower of the test presets ("tiny", "tiny-beats"; _merge copies it)
_TINY_TEXT = {
    "vocab_size": 300,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 40,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}

# the 2-layer, 128-wide text tower of the main-job presets ("small", "small-beats")
_SMALL_TEXT = {
    "vocab_size": 2000,
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 256,
    "max_position_embeddings": 66,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
}

# Presets. Each entry holds the model config and the matching feature-extractor settings (used by
# ClapTeminalFeatureExtractor.from_preset / ClapTeminalProcessor.from_preset).
PRESETS = {
    # Seconds on CPU, for tests: 0.5 s clips at 48 kHz -> 51 frames x 16 mels, an 8x8-patch Swin, a 2-layer text tower.
    "tiny": {
        "config": {
            "audio_tower": "htsat",
            "audio_config": {
                "num_mel_bins": 16,
                "spec_size": 32,
                "patch_size": 4,
                "patch_stride": [4, 4],
                "window_size": 4,
                "patch_embeds_hidden_size": 16,
                "depths": [1, 1],
                "num_attention_heads": [2, 2],
                "hidden_size": 32,
                "mlp_ratio": 2.0,
                "hidden_dropout_prob": 0.0,
                "drop_path_rate": 0.0,
            },
            "text_config": _TINY_TEXT,
            "projection_dim": 16,
        },
        "feature_extractor": {"feature_size": 16, "max_length_s": 0.5},
    },
    # HTSAT counterpart of "small-beats": 2 s clips (201 frames x 64 mels), a 3-stage Swin and a 2-layer RoBERTa, with
    # the same order-preserving pooling (two time-segment means). Measured 2026-11-25 on 2 quiet cores with the
    # recipe's default stages: order accuracy 48.9 -> 87.2 %, zero-shot 25.0 -> 51.9 %, 3 min 50 s, 3.4 GB peak; with
    # mean pooling HTSAT stayed at chance on order in every setting tried. "small-beats" (the main job's default) is
    # faster and lighter (3 min, 2.3 GB) and starts from a better zero-shot base.
    "small": {
        "config": {
            "audio_tower": "htsat",
            "audio_time_segments": 2,
            "audio_config": {
                "num_mel_bins": 64,
                "spec_size": 128,
                "patch_size": 4,
                "patch_stride": [4, 4],
                "window_size": 8,
                "patch_embeds_hidden_size": 32,
                "depths": [1, 1, 2],
                "num_attention_heads": [2, 4, 8],
                "hidden_size": 128,
                "mlp_ratio": 2.0,
                "hidden_dropout_prob": 0.1,
                "drop_path_rate": 0.0,
            },
            "text_config": _SMALL_TEXT,
            "projection_dim": 128,
        },
        "feature_extractor": {"feature_size": 64, "max_length_s": 2},
    },
    # BEATs audio tower (16 kHz Kaldi fbank, 128 mels): the same tiny text tower; for tests of the BEATs path.
    "tiny-beats": {
        "config": {
            "audio_tower": "beats",
            "audio_config": {
                "input_patch_size": 16,
                "embed_dim": 32,
                "encoder_layers": 2,
                "encoder_embed_dim": 32,
                "encoder_ffn_embed_dim": 64,
                "encoder_attention_heads": 2,
                "conv_pos": 16,
                "conv_pos_groups": 2,
                "num_buckets": 32,
                "max_distance": 64,
                "quant_n": 32,
                "quant_dim": 16,
                "dropout": 0.0,
                "attention_dropout": 0.0,
                "encoder_layerdrop": 0.0,
                "padding_mode": "time_aligned",
            },
            "text_config": _TINY_TEXT,
            "projection_dim": 16,
        },
        "feature_extractor": {"type": "beats", "padding_mode": "time_aligned"},
    },
    # A BEATs-tower counterpart of "small": the default of the TeminAL main job. Its clip vector is the
    # concatenation of the means of the first and second half of the clip (audio_time_segments=2): with plain mean
    # pooling, stage B moved held-out order accuracy on the synthetic corpus from 48.1 to 62.2 %; with the two
    # segment means, from 49.4 to 77.9 % in the same steps (2026-11-25, 2 CPU threads; see hf_alm/training/teminal.py).
    "small-beats": {
        "config": {
            "audio_tower": "beats",
            "audio_time_segments": 2,
            "audio_config": {
                "input_patch_size": 16,
                "embed_dim": 128,
                "encoder_layers": 3,
                "encoder_embed_dim": 128,
                "encoder_ffn_embed_dim": 256,
                "encoder_attention_heads": 4,
                "conv_pos": 32,
                "conv_pos_groups": 4,
                "num_buckets": 64,
                "max_distance": 128,
                "quant_n": 64,
                "quant_dim": 32,
                "dropout": 0.1,
                "attention_dropout": 0.1,
                "encoder_layerdrop": 0.0,
                "padding_mode": "time_aligned",
            },
            "text_config": _SMALL_TEXT,
            "projection_dim": 128,
        },
        "feature_extractor": {"type": "beats", "padding_mode": "time_aligned"},
    },
    # The shape of laion/clap-htsat-unfused (HTSAT-tiny + RoBERTa-base, 10 s at 48 kHz).
    "laion-htsat-unfused": {
        "config": {
            "audio_tower": "htsat",
            "audio_config": {},
            "text_config": {},
            "projection_dim": 512,
        },
        "feature_extractor": {"feature_size": 64, "max_length_s": 10},
    },
}


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class ClapTeminalConfig(PreTrainedConfig):
    r"""Configuration of [`ClapTeminalModel`], a CLAP-style contrastive dual encoder.

    Args:
        audio_tower (`str`, defaults to `"htsat"`):
            `"htsat"` (transformers' `ClapAudioModel`, CLAP log-mel input at 48 kHz) or `"beats"` (hf-alm's
            `BeatsModel`, Kaldi fbank input at 16 kHz; the clip embedding is the masked mean of its frames).
        audio_config (`dict` or `PreTrainedConfig`):
            A `ClapAudioConfig` (htsat) or a `BeatsConfig` (beats), or the dict of one.
        text_config (`dict` or `PreTrainedConfig`):
            A `ClapTextConfig` (RoBERTa-style, the laion layout) or the config of any `AutoModel` text encoder (a
            dict with its `model_type`); such a tower's `pooler_output` (or its first token) is projected.
        projection_dim (`int`, defaults to 512): size of the shared embedding space.
        projection_hidden_act (`str`, defaults to `"relu"`): activation of the two-layer projection heads.
        logit_scale_init_value (`float`, defaults to `1/0.07`):
            As in transformers' `ClapConfig`: the *scale*; the learnable parameters `logit_scale_a` / `logit_scale_t`
            start at `log(logit_scale_init_value)` = log(1/0.07) and logits are `exp(param) * cosine`.
        logit_scale_max (`float`, defaults to 100): `exp(param)` is clamped to this value (CLIP's guard).
        audio_time_segments (`int`, defaults to 1): how the audio tower's frames become one clip vector. 1 = the
            mean of all frames (order-blind, as CLAP: HTSAT's own average pooling, the BEATs tower's masked mean).
            K > 1 = *order-preserving pooling*: the clip's frames (HTSAT: its last stage's time columns, averaged
            over frequency; BEATs: its valid time steps) are cut into K equal time segments, each is averaged, and
            the K means are concatenated (the audio projection reads `K * hidden_size` values), so "A then B" and
            "B then A" no longer pool to the same vector. Segment edges follow each clip's own valid length, so
            padding does not move them. An hf-alm choice for TeminAL-style temporal training (the paper's
            architecture is not public). `from_clap(..., audio_time_segments=K)` starts from the same function as
            the mean-pooled checkpoint (the projection's first layer is tiled K times and divided by K).
    """

    model_type = "hf_alm_clap_teminal"

    audio_tower: str = "htsat"
    audio_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    projection_dim: int = 512
    projection_hidden_act: str = "relu"
    logit_scale_init_value: float = 1 / 0.07
    logit_scale_max: float = 100.0
    initializer_factor: float = 1.0
    audio_time_segments: int = 1

    def __post_init__(self, **kwargs):
        if self.audio_tower not in AUDIO_TOWERS:
            raise ValueError(f"audio_tower must be one of {AUDIO_TOWERS}, got {self.audio_tower!r}")
        if not isinstance(self.audio_time_segments, int) or self.audio_time_segments < 1:
            raise ValueError(f"audio_time_segments must be an integer >= 1, got {self.audio_time_segments!r}")
        self.audio_config = self._make_audio_config(self.audio_config)
        self.text_config = self._make_text_config(self.text_config)
        if self.projection_dim <= 0:
            raise ValueError(f"projection_dim must be positive, got {self.projection_dim}")
        if not self.logit_scale_init_value > 0:
            raise ValueError(f"logit_scale_init_value is a scale (> 0), got {self.logit_scale_init_value}")
        # keep the laion sub-config fields consistent, as ClapConfig does
        for sub in (self.audio_config, self.text_config):
            if isinstance(sub, (ClapAudioConfig, ClapTextConfig)):
                sub.projection_dim = self.projection_dim
                sub.projection_hidden_act = self.projection_hidden_act
        super().__post_init__(**kwargs)

    # sub-configs: the attention implementation and nested serialisation follow these keys
    @property
    def sub_configs(self):
        return {"audio_config": type(self.audio_config), "text_config": type(self.text_config)}

    def _make_audio_config(self, value):
        if self.audio_tower == "htsat":
            if value is None:
                return ClapAudioConfig()
            if isinstance(value, ClapAudioConfig):
                return value
            if isinstance(value, PreTrainedConfig):
                raise TypeError(f"audio_tower='htsat' needs a ClapAudioConfig, got {type(value).__name__}")
            value = dict(value)
            value.pop("model_type", None)
            cfg = ClapAudioConfig(**value)
            expected = cfg.patch_embeds_hidden_size * 2 ** (len(cfg.depths) - 1)
            if "hidden_size" not in value:
                cfg.hidden_size = expected
            if cfg.hidden_size != expected:
                raise ValueError(
                    f"HTSAT audio_config.hidden_size must equal patch_embeds_hidden_size * 2**(len(depths)-1) = "
                    f"{expected} (the width of the last Swin stage), got {cfg.hidden_size}"
                )
            return cfg
        beats_config = beats_config_class()
        if value is None:
            return beats_config()
        if isinstance(value, beats_config):
            return value
        if isinstance(value, PreTrainedConfig):
            raise TypeError(f"audio_tower='beats' needs a BeatsConfig, got {type(value).__name__}")
        value = dict(value)
        value.pop("model_type", None)
        return beats_config(**value)

    @staticmethod
    def _make_text_config(value):
        if value is None:
            return ClapTextConfig()
        if isinstance(value, PreTrainedConfig):
            return value
        value = dict(value)
        model_type = value.pop("model_type", ClapTextConfig.model_type)
        if model_type == ClapTextConfig.model_type:
            return ClapTextConfig(**value)
        return AutoConfig.for_model(model_type, **value)

    @property
    def audio_hidden_size(self) -> int:
        """Width of the pooled audio-tower output that the audio projection reads."""
        if self.audio_tower == "htsat":
            return self.audio_config.hidden_size
        for name in ("hidden_size", "encoder_embed_dim"):
            if hasattr(self.audio_config, name):
                return getattr(self.audio_config, name)
        raise ValueError("cannot find the hidden size of the BEATs audio_config (hidden_size / encoder_embed_dim)")

    @property
    def audio_embed_size(self) -> int:
        """Width of the pooled clip vector the audio projection reads (`audio_time_segments * audio_hidden_size`)."""
        return self.audio_time_segments * self.audio_hidden_size

    @property
    def logit_scale_init(self) -> float:
        """The initial value of the logit-scale parameters, `log(logit_scale_init_value)`."""
        return math.log(self.logit_scale_init_value)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "ClapTeminalConfig":
        """A preset: `"tiny"` (tests), `"small"` (the TeminAL main job on CPU) or `"laion-htsat-unfused"`.

        `overrides` are merged into the preset; nested dicts (`text_config={"vocab_size": 500}`) update its fields.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown CLAP-TeminAL preset {name!r}; available: {', '.join(PRESETS)}")
        return cls(**_merge(PRESETS[name]["config"], overrides))


ClapTeminalConfig.register_for_auto_class()

__all__ = ["ClapTeminalConfig", "PRESETS", "AUDIO_TOWERS"]
