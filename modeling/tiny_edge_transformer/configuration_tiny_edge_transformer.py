"""Configuration of the tiny edge transformer (Elliott et al., "Tiny Transformers for Environmental Sound
Classification at the Edge", arXiv 2103.12157).

The paper's exact dimensions are not public; the presets below were chosen by counting parameters (see
``TinyEdgeTransformerConfig.from_preset`` and ``num_parameters_for``):

========  ======  ======  =====  ============  ==========  ===========  ==================================
preset    hidden  layers  heads  intermediate  mel bins    max frames   parameters (10-class head)
========  ======  ======  =====  ============  ==========  ===========  ==================================
tiny      16      1       2      32            40          192          6,154
small     24      2       3      48            40          192          15,634
========  ======  ======  =====  ============  ==========  ===========  ==================================

With ``C`` classes: ``tiny`` = 5,984 + 17 C, ``small`` = 15,384 + 25 C parameters (mean pooling).
Counting (H = hidden, M = mel bins, P = max frames, I = intermediate, L = layers, C = classes):
``(M*H + H) + P*H + 2H + L * (4*(H*H + H) + 2*(H*I) + I + H + 4H) + (H*C + C)`` (input projection, learned
positions, embedding LayerNorm, post-LN BERT layers, linear classifier on the masked mean of the frames).
"""

from __future__ import annotations

from transformers import PreTrainedConfig

PRESETS: dict[str, dict] = {
    "tiny": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                 num_mel_bins=40, max_position_embeddings=192),
    "small": dict(hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=48,
                  num_mel_bins=40, max_position_embeddings=192),
}

_POOLINGS = ("mean", "cls")


class TinyEdgeTransformerConfig(PreTrainedConfig):
    r"""
    A BERT-style (post-LN, learned absolute positions) transformer encoder over log-mel frames, with a linear
    classification head. Each mel frame is one token: ``inputs_embeds = Linear(num_mel_bins -> hidden_size)(frame)``.

    Args:
        num_mel_bins (`int`, defaults to 40): mel bins per frame (must match the feature extractor).
        max_position_embeddings (`int`, defaults to 192): size of the learned position table = the longest input in
            frames (192 frames of hop 512 at 16 kHz = 6.1 s). Longer inputs raise; the feature extractor truncates.
        hidden_size (`int`, defaults to 16): token width.
        num_hidden_layers (`int`, defaults to 1): encoder layers.
        num_attention_heads (`int`, defaults to 2): attention heads (must divide ``hidden_size``).
        intermediate_size (`int`, defaults to 32): feed-forward width.
        hidden_act (`str`, defaults to `"gelu"`): feed-forward activation.
        hidden_dropout_prob (`float`, defaults to 0.1): dropout on embeddings and residual branches.
        attention_probs_dropout_prob (`float`, defaults to 0.0): dropout on attention weights.
        classifier_dropout (`float`, defaults to 0.1): dropout before the classifier.
        pooling (`str`, defaults to `"mean"`): `"mean"` (masked mean of the frames; no extra parameters) or `"cls"`
            (a learned [CLS] token prepended, ``hidden_size`` extra parameters and one extra position).
        initializer_range (`float`, defaults to 0.02): std of the normal initialiser.
        layer_norm_eps (`float`, defaults to 1e-5).
    """

    model_type = "hf_alm_tiny_edge_transformer"

    num_mel_bins: int = 40
    max_position_embeddings: int = 192
    hidden_size: int = 16
    num_hidden_layers: int = 1
    num_attention_heads: int = 2
    intermediate_size: int = 32
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.0
    classifier_dropout: float = 0.1
    pooling: str = "mean"
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        for name in ("num_mel_bins", "max_position_embeddings", "hidden_size", "num_hidden_layers",
                     "num_attention_heads", "intermediate_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                             f"({self.num_attention_heads})")
        if self.pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got {self.pooling!r}")

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "TinyEdgeTransformerConfig":
        """A config for a named preset (``"tiny"``: ~6.2k parameters, ``"small"``: ~15.6k with 10 classes);
        ``kwargs`` (e.g. ``num_labels``, ``id2label``) override or extend it."""
        if name not in PRESETS:
            raise ValueError(f"unknown tiny edge transformer preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **kwargs})


def num_parameters_for(config: TinyEdgeTransformerConfig) -> int:
    """Closed-form parameter count of ``TinyEdgeTransformerForAudioClassification(config)`` (documents the presets;
    a test checks it against the real module)."""
    h, m, p, i, n = (config.hidden_size, config.num_mel_bins, config.max_position_embeddings,
                     config.intermediate_size, config.num_hidden_layers)
    c = config.num_labels
    extra = h if config.pooling == "cls" else 0
    positions = (p + (1 if config.pooling == "cls" else 0)) * h
    layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 4 * h
    return (m * h + h) + positions + extra + 2 * h + n * layer + (h * c + c)


TinyEdgeTransformerConfig.register_for_auto_class()

__all__ = ["TinyEdgeTransformerConfig", "PRESETS", "num_parameters_for"]
