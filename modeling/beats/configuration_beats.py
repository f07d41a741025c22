# Copyright 2026 the hf-alm developers. MIT licence.
# BEATs (Chen et al., "BEATs: Audio Pre-Training with Acoustic Tokenizers", ICML 2023) was released by Microsoft under
# the MIT licence; this is an independent re-implementation of its configuration.
"""BEATs configuration."""

from __future__ import annotations

from transformers import PreTrainedConfig

PADDING_MODES = ("reference", "time_aligned")
DEFAULT_PADDING_MODE = "time_aligned"
#: what a saved config without a ``padding_mode`` field gets: the default before it became "time_aligned"
LEGACY_PADDING_MODE = "reference"


class BeatsConfig(PreTrainedConfig):
    r"""Configuration of a BEATs audio encoder, its classification head, its acoustic tokenizer and its pre-training head.

    Field names follow the original ``BEATsConfig`` / ``TokenizersConfig`` of ``microsoft/unilm`` (so ``cfg`` dicts of
    the released checkpoints map one to one). The defaults are those of the **released** checkpoints (the original
    code's own defaults are placeholders). The standard names ``hidden_size``, ``num_hidden_layers``,
    ``num_attention_heads`` and ``intermediate_size`` are aliases of the ``encoder_*`` fields.

    Args:
        input_patch_size: side of the square fbank patch (time frames x mel bins); the patch convolution has this
            kernel and stride.
        embed_dim: width of the patch embedding (before ``post_extract_proj``).
        conv_bias: whether the patch convolution has a bias.
        encoder_layers: number of transformer layers.
        encoder_embed_dim: transformer width.
        encoder_ffn_embed_dim: feed-forward inner width.
        encoder_attention_heads: number of attention heads.
        activation_fn: feed-forward activation (``"gelu"`` = exact erf GELU, as the original).
        dropout: dropout after attention / feed-forward and after the encoder LayerNorm.
        attention_dropout: dropout on attention probabilities.
        activation_dropout: dropout after the feed-forward activation.
        encoder_layerdrop: probability of skipping a whole layer while training.
        dropout_input: dropout on the projected patch embeddings.
        layer_norm_first: pre-LN layers (the encoder LayerNorm then comes after the layers) instead of post-LN.
        deep_norm: DeepNorm residual scaling ``alpha = (2 * encoder_layers) ** 0.25`` in post-LN layers.
        layer_wise_gradient_decay_ratio: gradients entering each layer are multiplied by this (forward identity).
        conv_pos: kernel size of the convolutional positional embedding.
        conv_pos_groups: groups of the convolutional positional embedding.
        relative_position_embedding: add a T5-style bucketed relative position bias to the attention scores.
        num_buckets: number of relative position buckets (half per direction).
        max_distance: distance at which the logarithmic buckets saturate.
        gru_rel_pos: gate the relative position bias per query (BEATs' "gated relative position bias").
        finetuned_model: the original flag for "has a classification head"; kept for round-trips of ``cfg``.
        predictor_class: the original name of the number of classes (mirrors ``num_labels``).
        predictor_dropout: dropout before the classification head.
        quant_n: acoustic tokenizer codebook size (also the number of pre-training targets).
        quant_dim: acoustic tokenizer codebook dimension.
        quant_decay: EMA decay of the tokenizer codebook.
        quant_beta: weight of the tokenizer commitment loss.
        quant_kmeans_init: initialise the codebook with k-means on the first training batch.
        quant_kmeans_iters: k-means iterations for that initialisation.
        padding_mode: ``"time_aligned"`` (default) masks the patches whose time column contains padding, so that a
            padded batch gives every clip exactly the outputs it gets alone; ``"reference"`` reproduces the original
            padding-mask rule bit for bit (sample -> frame -> patch by contiguous chunks, ignoring the time-major patch
            layout), which makes a short clip's outputs depend on the longer clips of its batch. The two agree on
            unpadded inputs. A saved ``config.json`` without the field (written before the default changed, when it
            was ``"reference"``) loads as ``"reference"``; see :meth:`from_dict`.
        fbank_mean / fbank_std: fbank normalisation ``(x - mean) / (2 * std)`` (used by the feature extractor).
        mask_ratio: fraction of patches masked in masked audio modelling (``BeatsForPreTraining``).
        predictor_layers / predictor_embed_dim / predictor_ffn_embed_dim / predictor_attention_heads: size of the
            transformer label predictor of ``BeatsForPreTraining`` (0 / ``None`` = same as the encoder).
        random_projection_seed: seed of the frozen random-projection tokenizer (iteration 1).
        initializer_range: std of the default normal init (used where the original has no explicit init).
    """

    model_type = "hf_alm_beats"
    attribute_map = {
        "hidden_size": "encoder_embed_dim",
        "num_hidden_layers": "encoder_layers",
        "num_attention_heads": "encoder_attention_heads",
        "intermediate_size": "encoder_ffn_embed_dim",
    }

    # patch embedding
    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    num_mel_bins: int = 128
    # encoder
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_eps: float = 1e-5
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    encoder_layerdrop: float = 0.05
    dropout_input: float = 0.0
    layer_norm_first: bool = False
    deep_norm: bool = True
    layer_wise_gradient_decay_ratio: float = 0.6
    # positional embeddings
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True
    # classification head (the number of classes lives in id2label / num_labels)
    finetuned_model: bool = False
    predictor_class: int | None = None
    predictor_dropout: float = 0.0
    # acoustic tokenizer
    quant_n: int = 1024
    quant_dim: int = 256
    quant_decay: float = 0.99
    quant_beta: float = 1.0
    quant_kmeans_init: bool = True
    quant_kmeans_iters: int = 10
    # padding / features
    padding_mode: str = "time_aligned"
    fbank_mean: float = 15.41663
    fbank_std: float = 6.55582
    # masked audio modelling
    mask_ratio: float = 0.75
    predictor_layers: int = 2
    predictor_embed_dim: int | None = None
    predictor_ffn_embed_dim: int | None = None
    predictor_attention_heads: int | None = None
    random_projection_seed: int = 0
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.finetuned_model and self.id2label is None and self.predictor_class and kwargs.get("num_labels") is None:
            # an original cfg with a head but no label names: the head size comes from predictor_class
            kwargs["num_labels"] = int(self.predictor_class)
        super().__post_init__(**kwargs)
        if self.padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {self.padding_mode!r}")
        positive = ("input_patch_size", "embed_dim", "encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim",
                    "encoder_attention_heads", "conv_pos", "conv_pos_groups", "num_mel_bins", "quant_n", "quant_dim")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            raise ValueError(f"encoder_embed_dim ({self.encoder_embed_dim}) must be divisible by "
                             f"encoder_attention_heads ({self.encoder_attention_heads})")
        if self.encoder_embed_dim % self.conv_pos_groups:
            raise ValueError(f"encoder_embed_dim ({self.encoder_embed_dim}) must be divisible by conv_pos_groups "
                             f"({self.conv_pos_groups})")
        if self.num_mel_bins % self.input_patch_size:
            raise ValueError(f"num_mel_bins ({self.num_mel_bins}) must be a multiple of input_patch_size "
                             f"({self.input_patch_size})")
        if self.relative_position_embedding and (self.num_buckets < 4 or self.max_distance <= self.num_buckets // 4):
            raise ValueError(f"relative position buckets need num_buckets >= 4 and max_distance > num_buckets // 4, "
                             f"got num_buckets={self.num_buckets}, max_distance={self.max_distance}")
        if self.deep_norm and self.layer_norm_first:
            raise ValueError("deep_norm=True requires layer_norm_first=False (DeepNorm is a post-LN scheme)")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio!r}")
        if self.finetuned_model:
            self.predictor_class = self.num_labels

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        """`PreTrainedConfig.from_dict`, except that a saved config without ``padding_mode`` gets ``"reference"``.

        Such a folder was written when ``"reference"`` was the default (and its feature extractor then uses the
        reference frame rule too), so it keeps the numbers it was saved with. Every config saved now carries the
        field, so an absent field always means an old folder. Pass ``padding_mode=...`` to override.
        """
        if "padding_mode" not in config_dict and "padding_mode" not in kwargs:
            config_dict = {**config_dict, "padding_mode": LEGACY_PADDING_MODE}
        if cls is BeatsConfig and config_dict.get("model_type", cls.model_type) == cls.model_type:
            # a tokenizer folder saved before the tokenizers had their own model_type ("hf_alm_beats" with the
            # tokenizer as its architecture): read it with the tokenizer's config class, so that AutoModel gives the
            # tokenizer (as that folder's own remote code does) instead of the bare encoder
            legacy = _LEGACY_TOKENIZER_CONFIGS.get(tuple(config_dict.get("architectures") or ()))
            if legacy is not None:
                return globals()[legacy].from_dict({**config_dict, "model_type": globals()[legacy].model_type},
                                                   **kwargs)
        return super().from_dict(config_dict, **kwargs)

    def to_diff_dict(self) -> dict:
        """`PreTrainedConfig.to_diff_dict`, always with ``padding_mode`` (an absent field means an old folder)."""
        out = super().to_diff_dict()
        out["padding_mode"] = self.padding_mode
        return out

    @property
    def num_patch_columns(self) -> int:
        """Number of patches per time column (mel bins / patch size; 8 for the released models)."""
        return self.num_mel_bins // self.input_patch_size

    @property
    def deep_norm_alpha(self) -> float:
        return (2.0 * self.encoder_layers) ** 0.25 if self.deep_norm else 1.0

    @classmethod
    def from_original(cls, cfg: dict, **kwargs) -> "BeatsConfig":
        """Build a config from the ``cfg`` dict of an original BEATs / Tokenizers checkpoint.

        Every key of the released checkpoints is understood; an unknown key is an error that names it.
        """
        known = {f for f in cls.__dataclass_fields__} | {"predictor_class", "finetuned_model"}
        unknown = sorted(k for k in cfg if k not in known)
        if unknown:
            raise ValueError(f"unknown keys in the original BEATs cfg: {unknown}")
        values = dict(cfg)
        if values.get("activation_fn", "gelu") != "gelu":
            raise ValueError(f"only activation_fn='gelu' is supported, got {values['activation_fn']!r}")
        values.update(kwargs)
        return cls(**values)

    def to_original(self) -> dict:
        """The ``cfg`` dict of an original checkpoint with these settings (inverse of :meth:`from_original`)."""
        keys = ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads",
                "activation_fn", "dropout", "attention_dropout", "activation_dropout", "encoder_layerdrop",
                "dropout_input", "layer_norm_first", "conv_bias", "conv_pos", "conv_pos_groups",
                "relative_position_embedding", "num_buckets", "max_distance", "gru_rel_pos", "deep_norm",
                "input_patch_size", "layer_wise_gradient_decay_ratio", "embed_dim", "finetuned_model",
                "predictor_dropout", "predictor_class")
        return {k: getattr(self, k) for k in keys}


def tiny_beats_config(**kwargs) -> BeatsConfig:
    """A tiny configuration for tests and smoke runs (2 layers, 64 wide, 4 heads)."""
    values = dict(
        input_patch_size=16, embed_dim=32, encoder_layers=2, encoder_embed_dim=64, encoder_ffn_embed_dim=128,
        encoder_attention_heads=4, conv_pos=16, conv_pos_groups=2, num_buckets=32, max_distance=64,
        quant_n=32, quant_dim=16, predictor_layers=1, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        encoder_layerdrop=0.0, dropout_input=0.0,
    )
    values.update(kwargs)
    return BeatsConfig(**values)


class BeatsTokenizerConfig(BeatsConfig):
    r"""Configuration of :class:`BeatsAcousticTokenizer`: the fields of :class:`BeatsConfig` (encoder and ``quant_*``)
    under the tokenizer's own ``model_type``, so that ``AutoModel`` gives the tokenizer both with hf-alm installed and
    through remote code (a folder of model_type ``hf_alm_beats`` is an encoder, whose ``AutoModel`` is
    :class:`BeatsModel`)."""

    model_type = "hf_alm_beats_tokenizer"


class BeatsRandomProjectionConfig(BeatsConfig):
    r"""Configuration of :class:`BeatsRandomProjectionTokenizer` (iteration 1's frozen random-projection tokenizer):
    the fields of :class:`BeatsConfig` under its own ``model_type``, for the same reason as
    :class:`BeatsTokenizerConfig`."""

    model_type = "hf_alm_beats_random_projection"


# architectures of tokenizer folders saved with model_type "hf_alm_beats" -> the config class they load with now
_LEGACY_TOKENIZER_CONFIGS = {("BeatsAcousticTokenizer",): "BeatsTokenizerConfig",
                             ("BeatsRandomProjectionTokenizer",): "BeatsRandomProjectionConfig"}


BeatsConfig.register_for_auto_class()
BeatsTokenizerConfig.register_for_auto_class()
BeatsRandomProjectionConfig.register_for_auto_class()

__all__ = ["BeatsConfig", "BeatsTokenizerConfig", "BeatsRandomProjectionConfig", "tiny_beats_config", "PADDING_MODES", "DEFAULT_PADDING_MODE", "LEGACY_PADDING_MODE"]
