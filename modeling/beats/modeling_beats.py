# Copyright 2026 the hf-alm developers. MIT licence.
# BEATs (Chen et al., "BEATs: Audio Pre-Training with Acoustic Tokenizers", ICML 2023; microsoft/unilm, MIT licence)
# re-implemented from the paper and the published behaviour of the original code; no code was copied.
"""BEATs models: encoder, audio classifier, acoustic tokenizer, masked-audio-modelling pre-training.

Inputs are the normalised Kaldi fbank ``input_values`` ``(B, T, 128)`` of :class:`BeatsFeatureExtractor` and its
frame-level ``attention_mask`` ``(B, T)`` (1 = real frame). The encoder patchifies the fbank into 16 x 16 patches in
**time-major** order (patch ``p = t * 8 + f``), projects them, adds a grouped convolutional position embedding and runs
post-LN DeepNorm transformer layers whose attention carries a T5-bucketed relative position bias gated per query.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GradientCheckpointingLayer, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, logging

from .configuration_beats import BeatsConfig, BeatsRandomProjectionConfig, BeatsTokenizerConfig

logger = logging.get_logger(__name__)


# ----------------------------------------------------------------------------------------------------------- outputs
@dataclass
class BeatsModelOutput(ModelOutput):
    """Output of :class:`BeatsModel`.

    Args:
        last_hidden_state: ``(B, N, D)`` encoder output per patch (padded patches are *not* zeroed, as in the original).
        hidden_states: tuple of ``L + 1`` tensors ``(B, N, D)``: the encoder input (after the positional convolution
            and the encoder LayerNorm) and the output of every layer.
        attentions: tuple of ``L`` attention probability tensors ``(B, H, N, N)`` (computed with the eager kernel).
        padding_mask: ``(B, N)`` bool patch-level padding mask, **True = padding** (the original's convention; all
            False when no ``attention_mask`` was given).
    """

    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    padding_mask: torch.BoolTensor | None = None


@dataclass
class BeatsAudioClassifierOutput(ModelOutput):
    """Output of :class:`BeatsForAudioClassification`.

    Args:
        loss: BCE-with-logits (multi-label), cross-entropy (single-label) or MSE (regression) when ``labels`` is given.
        logits: ``(B, num_labels)`` pooled logits **before** the sigmoid / softmax.
        frame_logits: ``(B, N, num_labels)`` per-patch logits (padded patches included, not zeroed).
        hidden_states, attentions, padding_mask: as in :class:`BeatsModelOutput`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    frame_logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    padding_mask: torch.BoolTensor | None = None


@dataclass
class BeatsLongAudioOutput(ModelOutput):
    """Output of :meth:`BeatsForAudioClassification.predict_long` (sliding-window inference on one long clip).

    Times are in seconds and give the audio span of the fbank frames involved (frame ``k`` covers
    ``[k * shift, k * shift + length)``, 10 ms / 25 ms); the last ``T mod 16`` frames, which no patch covers, belong to
    no window (the plain forward drops them too).

    Args:
        logits: ``(num_labels,)`` clip-level logits pooled over the windows (``pooling``: mean or max of
            ``window_logits``), pre-sigmoid / pre-softmax like the model's.
        window_logits: ``(W, num_labels)`` each window's pooled logits (exactly the model's ``logits`` on that window).
        window_times: ``(W, 2)`` start and end of each window.
        frame_logits: ``(F, num_labels)`` per patch time column (16 frames, 160 ms apart) over the whole clip: the
            column's per-patch logits averaged over its 8 frequency patches and over the windows that cover it.
            ``None`` unless ``output_frame_logits``.
        frame_times: ``(F, 2)`` start and end of each column's frames (``None`` unless ``output_frame_logits``).
    """

    logits: torch.FloatTensor | None = None
    window_logits: torch.FloatTensor | None = None
    window_times: torch.FloatTensor | None = None
    frame_logits: torch.FloatTensor | None = None
    frame_times: torch.FloatTensor | None = None


@dataclass
class BeatsTokenizerOutput(ModelOutput):
    """Output of :class:`BeatsAcousticTokenizer` and :class:`BeatsRandomProjectionTokenizer`.

    Args:
        loss: commitment loss ``beta * mse(sg[z_q], z)`` (acoustic tokenizer only).
        labels: ``(B, N)`` int64 code index per patch.
        quantize_input: ``(B, N, quant_dim)`` output of ``quantize_layer`` (before L2 normalisation).
        quantized: ``(B, N, quant_dim)`` straight-through quantised vectors.
        last_hidden_state, padding_mask: as in :class:`BeatsModelOutput`.
    """

    loss: torch.FloatTensor | None = None
    labels: torch.LongTensor | None = None
    quantize_input: torch.FloatTensor | None = None
    quantized: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    padding_mask: torch.BoolTensor | None = None


@dataclass
class BeatsForPreTrainingOutput(ModelOutput):
    """Output of :class:`BeatsForPreTraining`.

    Args:
        loss: cross-entropy over the masked, non-padded patches against the tokenizer labels.
        logits: ``(B, N, quant_n)`` label-predictor logits for every patch.
        mask: ``(B, N)`` bool, True = patch was masked (hidden from the encoder).
        accuracy: fraction of masked, non-padded patches whose label is predicted correctly.
        padding_mask: ``(B, N)`` bool patch padding mask (True = padding).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask: torch.BoolTensor | None = None
    accuracy: torch.FloatTensor | None = None
    padding_mask: torch.BoolTensor | None = None


# ----------------------------------------------------------------------------------------------------------- helpers
class GradMultiply(torch.autograd.Function):
    """Identity in the forward pass; multiplies the gradient by ``scale`` in the backward pass."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def relative_position_bucket(relative: torch.Tensor, num_buckets: int, max_distance: int) -> torch.LongTensor:
    """T5 bidirectional bucket of each relative position (``key - query``), elementwise.

    Half of the buckets per direction; within a direction, distances below a quarter of ``num_buckets`` get their own
    bucket, larger ones share logarithmically spaced buckets that saturate at ``max_distance``.
    """
    half = num_buckets // 2
    buckets = (relative > 0).to(torch.long) * half
    distance = relative.abs()
    max_exact = half // 2
    is_small = distance < max_exact
    # the log of 0 is never selected (distance 0 is "small"); clamp to keep the cast well defined
    log_ratio = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (half - max_exact)).to(torch.long)
    large = torch.clamp(large, max=half - 1)
    return buckets + torch.where(is_small, distance, large)


def relative_position_buckets(query_length: int, key_length: int, num_buckets: int, max_distance: int,
                              device=None) -> torch.LongTensor:
    """T5 bidirectional relative-position buckets ``(query_length, key_length)`` of ``key - query``."""
    context = torch.arange(query_length, dtype=torch.long, device=device)[:, None]
    memory = torch.arange(key_length, dtype=torch.long, device=device)[None, :]
    return relative_position_bucket(memory - context, num_buckets, max_distance)


def toeplitz_key_reversed(table: torch.Tensor, length: int) -> torch.Tensor:
    """``(H, N, N)`` view of a relative-position table ``(H, 2N - 1)`` whose column ``k`` holds the bias of relative
    position ``key - query = N - 1 - k``: element ``[h, i, j']`` is the bias between query ``i`` and key
    ``N - 1 - j'`` (keys in reversed order). Reversing the keys makes both strides positive, so the dense bias is a
    free view; attention does not depend on the order of the keys."""
    return table.as_strided((table.shape[0], length, length), (table.stride(0), 1, 1))


def eager_attention_forward(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: torch.Tensor | None, scaling: float, dropout: float = 0.0, **kwargs):
    """Plain attention: ``softmax(q k^T * scaling + mask) v``; ``attention_mask`` is additive (float)."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


# ----------------------------------------------------------------------------------------------------------- modules
class BeatsAttention(nn.Module):
    """Multi-head self-attention with BEATs' gated relative position bias.

    The (shared, ungated) relative bias ``(H, N, N)`` is computed once per forward by the encoder. When
    ``gru_rel_pos`` is set, each layer gates it per query with ``g = sigmoid(grep_linear(q).view(.., 2, 4).sum(-1))``,
    ``gate = g_a * (g_b * grep_a - 1) + 2`` where ``q`` is the unscaled ``q_proj`` output. The gated bias and the key
    padding (a large negative value) form one additive float mask handed to the attention kernel
    (``config._attn_implementation``: ``"eager"`` or ``"sdpa"``).
    """

    def __init__(self, config: BeatsConfig, layer_idx: int = 0):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.embed_dim = config.encoder_embed_dim
        self.num_heads = config.encoder_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = False
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.gru_rel_pos = bool(config.gru_rel_pos and config.relative_position_embedding)
        if self.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, self.num_heads, 1, 1))

    def forward(self, hidden_states: torch.Tensor, position_bias: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None, output_attentions: bool = False):
        batch, length, _ = hidden_states.shape
        heads, head_dim = self.num_heads, self.head_dim
        use_gate = self.gru_rel_pos and position_bias is not None
        # Fast path: one GEMM for q, k, v and the relative-position gate logits. The gate is
        # sigmoid(grep_linear(q).view(.., 2, 4).sum(-1)) on the unscaled q of each head; summing the four rows of each
        # half gives a 2-output linear map of q, and composing it with q_proj gives 2 extra outputs per head computed
        # straight from the layer input. The modules keep the original layout; when one of them is not a plain
        # nn.Linear (a PEFT/LoRA wrapper, a quantised layer), their own forward is called instead.
        plain = [self.q_proj, self.k_proj, self.v_proj] + ([self.grep_linear] if use_gate else [])
        if all(type(m) is nn.Linear for m in plain):
            weights = [self.q_proj.weight, self.k_proj.weight, self.v_proj.weight]
            biases = [self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]
            if use_gate:
                w2 = self.grep_linear.weight.view(2, 4, head_dim).sum(1)  # (2, hd)
                b2 = self.grep_linear.bias.view(2, 4).sum(1)  # (2,)
                wq = self.q_proj.weight.view(heads, head_dim, self.embed_dim)
                weights.append(torch.matmul(w2, wq).reshape(2 * heads, self.embed_dim))  # (H, 2, D), contiguous
                biases.append((self.q_proj.bias.view(heads, head_dim) @ w2.t() + b2).reshape(2 * heads))
            projected = F.linear(hidden_states, torch.cat(weights), torch.cat(biases))
            qkv = projected[..., : 3 * self.embed_dim].view(batch, length, 3, heads, head_dim)
            query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, N, hd) views
            gate_logits = projected[..., 3 * self.embed_dim:].view(batch, length, heads, 2) if use_gate else None
        else:
            shape = (batch, length, heads, head_dim)
            q_raw = self.q_proj(hidden_states).view(shape)
            query = q_raw.transpose(1, 2)
            key = self.k_proj(hidden_states).view(shape).transpose(1, 2)
            value = self.v_proj(hidden_states).view(shape).transpose(1, 2)
            gate_logits = (self.grep_linear(q_raw).view(batch, length, heads, 2, 4).sum(-1) if use_gate else None)

        # The relative bias comes as a key-reversed Toeplitz table (see ``toeplitz_key_reversed``): the dense
        # (N, N) bias is never stored, the gated mask below is the layer's only (N, N) tensor. Keys and values are
        # reversed to match (attention is invariant to the order of the keys).
        mask = None
        reversed_keys = position_bias is not None
        if reversed_keys:
            key, value = key.flip(2), value.flip(2)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.flip(-1)
            bias = toeplitz_key_reversed(position_bias, length)
            if use_gate:
                gates = torch.sigmoid(gate_logits)
                gate_a, gate_b = gates.permute(0, 2, 1, 3).unbind(-1)  # (B, H, N) each
                gate = gate_a * (gate_b * self.grep_a.view(1, heads, 1) - 1.0) + 2.0
                mask = gate.unsqueeze(-1) * bias.unsqueeze(0)  # (B, H, N, N)
            else:
                mask = bias.unsqueeze(0).to(query.dtype, copy=True)  # (1, H, N, N)
        if key_padding_mask is not None and bool(key_padding_mask.any()):
            neg = torch.finfo(query.dtype).min
            keys = key_padding_mask[:, None, None, :]
            if mask is None:
                mask = torch.zeros(batch, 1, 1, length, dtype=query.dtype, device=query.device).masked_fill_(keys, neg)
            elif mask.shape[0] == batch:
                mask = mask.masked_fill_(keys, neg)
            else:
                mask = mask.masked_fill(keys, neg)
        if mask is not None:
            mask = mask.to(query.dtype)

        implementation = self.config._attn_implementation or "eager"
        if output_attentions:
            implementation = "eager"  # only the eager kernel returns probabilities
        attention_interface: Callable = eager_attention_forward
        if implementation != "eager":
            attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        attn_output, attn_weights = attention_interface(
            self, query, key, value, mask, dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling)
        attn_output = self.out_proj(attn_output.reshape(batch, length, self.embed_dim))
        if not output_attentions:
            return attn_output, None
        return attn_output, (attn_weights.flip(-1) if reversed_keys else attn_weights)


class BeatsEncoderLayer(GradientCheckpointingLayer):
    """Transformer layer: post-LN with DeepNorm residual scaling (released models) or pre-LN."""

    def __init__(self, config: BeatsConfig, layer_idx: int = 0):
        super().__init__()
        self.layer_norm_first = config.layer_norm_first
        self.alpha = config.deep_norm_alpha
        self.self_attn = BeatsAttention(config, layer_idx)
        self.self_attn_layer_norm = nn.LayerNorm(config.encoder_embed_dim, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(config.encoder_embed_dim, config.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_embed_dim, config.encoder_embed_dim)
        self.final_layer_norm = nn.LayerNorm(config.encoder_embed_dim, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.activation_dropout = nn.Dropout(config.activation_dropout)
        if config.deep_norm:  # DeepNorm init: xavier-normal with gain 1 for q, k and beta for v, out, fc1, fc2
            beta = (8.0 * config.encoder_layers) ** -0.25
            for linear, gain in ((self.self_attn.q_proj, 1.0), (self.self_attn.k_proj, 1.0),
                                 (self.self_attn.v_proj, beta), (self.self_attn.out_proj, beta), (self.fc1, beta),
                                 (self.fc2, beta)):
                linear._beats_xavier_gain = gain

    def _feed_forward(self, x):
        x = self.fc1(x)
        x = F.gelu(x.float()).type_as(x)  # exact (erf) GELU in fp32, as the original
        return self.fc2(self.activation_dropout(x))

    def forward(self, hidden_states: torch.Tensor, position_bias: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None, output_attentions: bool = False):
        residual = hidden_states
        if self.layer_norm_first:
            x = self.self_attn_layer_norm(hidden_states)
            x, attn = self.self_attn(x, position_bias, key_padding_mask, output_attentions)
            x = residual + self.dropout(x)
            residual = x
            x = residual + self.dropout(self._feed_forward(self.final_layer_norm(x)))
        else:
            x, attn = self.self_attn(hidden_states, position_bias, key_padding_mask, output_attentions)
            x = self.self_attn_layer_norm(torch.add(self.dropout(x), residual, alpha=self.alpha))
            residual = x
            x = self.final_layer_norm(torch.add(self.dropout(self._feed_forward(x)), residual, alpha=self.alpha))
        return x, attn


class BeatsPositionalConvEmbedding(nn.Module):
    """Grouped 1-D convolution over the patch sequence under weight normalisation (norm over dims 0, 1 per kernel
    tap), followed by "same" trimming (one step dropped for an even kernel) and GELU."""

    def __init__(self, config: BeatsConfig):
        super().__init__()
        dim, kernel = config.encoder_embed_dim, config.conv_pos
        conv = nn.Conv1d(dim, dim, kernel_size=kernel, padding=kernel // 2, groups=config.conv_pos_groups)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.remove = 1 if kernel % 2 == 0 else 0

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        x = self.conv(hidden_states.transpose(1, 2))
        if self.remove:
            x = x[:, :, : -self.remove]
        return F.gelu(x).transpose(1, 2)


class BeatsEncoder(nn.Module):
    """Positional convolution, encoder LayerNorm, relative position bias and the transformer layers."""

    def __init__(self, config: BeatsConfig):
        super().__init__()
        self.config = config
        self.pos_conv = BeatsPositionalConvEmbedding(config)
        self.layer_norm = nn.LayerNorm(config.encoder_embed_dim, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList([BeatsEncoderLayer(config, i) for i in range(config.encoder_layers)])
        if config.relative_position_embedding:
            # one table shared by every layer (the original keeps identical copies per layer; only layer 0's is used)
            self.relative_attention_bias = nn.Embedding(config.num_buckets, config.encoder_attention_heads)
        self._buckets: dict = {}  # cache of the bucket indices for the last sequence length
        self.gradient_checkpointing = False

    def compute_position_bias(self, length: int) -> torch.Tensor:
        """Ungated relative position bias as a key-reversed Toeplitz table ``(H, 2 * length - 1)`` (column ``k`` is
        relative position ``length - 1 - k``); ``toeplitz_key_reversed`` turns it into the ``(H, N, N)`` bias."""
        device = self.relative_attention_bias.weight.device
        key = (length, str(device))
        buckets = self._buckets.get(key)
        if buckets is None:
            relative = torch.arange(length - 1, -length, -1, dtype=torch.long, device=device)
            buckets = relative_position_bucket(relative, self.config.num_buckets, self.config.max_distance)
            self._buckets = {key: buckets}  # keep the last length only
        return self.relative_attention_bias(buckets).t().contiguous()

    def dense_position_bias(self, length: int) -> torch.Tensor:
        """The ungated relative position bias ``(H, N, N)`` in the usual (query, key) order (for inspection)."""
        return toeplitz_key_reversed(self.compute_position_bias(length), length).flip(-1)

    def forward(self, hidden_states: torch.Tensor, padding_mask: torch.Tensor | None = None,
                output_hidden_states: bool = False, output_attentions: bool = False):
        x = hidden_states
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)  # padded patches are zeroed before the convolution
        x = x + self.pos_conv(x)
        if not self.config.layer_norm_first:
            x = self.layer_norm(x)
        x = self.dropout(x)
        position_bias = self.compute_position_bias(x.shape[1]) if self.config.relative_position_embedding else None
        key_padding_mask = padding_mask if padding_mask is not None and bool(padding_mask.any()) else None

        all_hidden = (x,) if output_hidden_states else None
        all_attn = () if output_attentions else None
        decay = self.config.layer_wise_gradient_decay_ratio
        for layer in self.layers:
            if self.training and decay != 1.0:
                x = GradMultiply.apply(x, decay)
            skip = self.training and self.config.encoder_layerdrop > 0 and (
                torch.rand(()) < self.config.encoder_layerdrop)
            if not skip:
                x, attn = layer(x, position_bias, key_padding_mask, output_attentions)
                if output_attentions:
                    all_attn += (attn,)
            elif output_attentions:
                all_attn += (None,)
            if output_hidden_states:
                all_hidden += (x,)
        if self.config.layer_norm_first:
            x = self.layer_norm(x)
        return x, all_hidden, all_attn


# ----------------------------------------------------------------------------------------------------------- base
# The Auto classes of this model type, as ``import hf_alm`` registers them (hf_alm/auto reads this mapping). A saved
# folder names all of them in ``auto_map`` whichever class was saved, so that with ``trust_remote_code=True`` and no
# hf-alm installed a classifier folder also loads with ``AutoModel`` (its encoder), as it does with hf-alm.
AUTO_CLASS_NAMES = {"AutoModel": "BeatsModel", "AutoModelForAudioClassification": "BeatsForAudioClassification",
                     "AutoModelForPreTraining": "BeatsForPreTraining"}


class BeatsPreTrainedModel(PreTrainedModel):
    """Weight initialisation, the Auto-class plumbing and the input handling shared by every BEATs model."""

    config: BeatsConfig
    config_class = BeatsConfig
    base_model_prefix = "beats"
    main_input_name = "input_values"
    input_modalities = ("audio",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["BeatsEncoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False  # the gated bias is a dense per-query float mask
    _supports_flex_attn = False
    _supports_attention_backend = False

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, with every Auto class of the model type in ``auto_map`` (the saved
        class keeps its own entry: a tokenizer folder's ``AutoModel`` stays the tokenizer)."""
        if getattr(type(self), "_auto_class", None) is not None and self.config.model_type == BeatsConfig.model_type:
            # (a tokenizer has its own model_type, whose only Auto class is AutoModel)
            module = type(self).__module__.rsplit(".", 1)[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            for auto_name, class_name in AUTO_CLASS_NAMES.items():
                auto_map.setdefault(auto_name, f"{module}.{class_name}")
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module):
        config = self.config
        # Note: transformers skips a remote-code module whose *own* parameters are all initialised (vacuously true
        # for modules without direct parameters), so every rule below targets the module that owns the tensors.
        if isinstance(module, nn.Conv1d) and hasattr(module, "parametrizations"):
            # the weight-normed positional convolution: v ~ N(0, 4 / (K * D)), g = ||v|| per tap (weight = v), bias 0
            v = module.parametrizations.weight.original1
            g = module.parametrizations.weight.original0
            if not getattr(v, "_is_hf_initialized", False):
                std = math.sqrt(4.0 / (module.kernel_size[0] * module.in_channels))
                init.normal_(v, mean=0.0, std=std)
                init.copy_(g, torch.linalg.vector_norm(v, dim=(0, 1), keepdim=True))
            init.zeros_(module.bias)
            return
        if isinstance(module, nn.Linear) and hasattr(module, "_beats_xavier_gain"):
            # tagged by BeatsEncoderLayer (children are initialised before their parents, so the tag lives on them)
            init.xavier_normal_(module.weight, gain=module._beats_xavier_gain)
            init.zeros_(module.bias)
            return
        if isinstance(module, BeatsAttention):
            if module.gru_rel_pos:
                init.ones_(module.grep_a)
            return
        if isinstance(module, BeatsVectorQuantizer):
            if not getattr(module.weight, "_is_hf_initialized", False):
                init.copy_(module.weight, F.normalize(torch.randn_like(module.weight), dim=-1))
            init.copy_(module.embed_avg, module.weight)
            init.zeros_(module.cluster_size)
            init.zeros_(module.ema_cluster_size)
            init.constant_(module.initted, 0.0 if config.quant_kmeans_init else 1.0)
            return
        if isinstance(module, BeatsRandomProjectionTokenizer):
            module.reset_projection()
            return
        super()._init_weights(module)

    # the original computes the patch mask from the frame mask; exposed for heads and downstream models
    def patch_padding_mask(self, attention_mask: torch.Tensor, num_patches: int) -> torch.Tensor:
        """Patch-level padding mask ``(B, N)`` (True = padding) from the frame ``attention_mask`` ``(B, T)``
        (1 = real frame), following ``config.padding_mode``.

        ``"reference"``: the original rule (drop the last ``T mod N`` frames, split the rest into ``N`` contiguous
        chunks, a patch is padding when its whole chunk is) -- it ignores the time-major patch layout.
        ``"time_aligned"``: a patch is padding when any frame of its time column is.
        """
        frame_padding = ~attention_mask.bool()
        if self.config.padding_mode == "reference":
            num_frames = frame_padding.shape[1]
            extra = num_frames % num_patches
            if extra:
                frame_padding = frame_padding[:, : num_frames - extra]
            return frame_padding.reshape(frame_padding.shape[0], num_patches, -1).all(-1)
        size, columns = self.config.input_patch_size, self.config.num_patch_columns
        time_patches = num_patches // columns
        column_padding = frame_padding[:, : time_patches * size].reshape(-1, time_patches, size).any(-1)
        return column_padding.repeat_interleave(columns, dim=1)


# ----------------------------------------------------------------------------------------------------------- models
class BeatsModel(BeatsPreTrainedModel):
    """The BEATs encoder: fbank -> patch embeddings -> transformer -> ``(B, N, encoder_embed_dim)``.

    ``N = (T // 16) * 8`` patches in time-major order (``p = t * 8 + f``); the last ``T mod 16`` frames are dropped.
    """

    def __init__(self, config: BeatsConfig):
        super().__init__(config)
        size = config.input_patch_size
        self.patch_embedding = nn.Conv2d(1, config.embed_dim, kernel_size=size, stride=size, bias=config.conv_bias)
        self.layer_norm = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)
        self.post_extract_proj = (nn.Linear(config.embed_dim, config.encoder_embed_dim)
                                  if config.embed_dim != config.encoder_embed_dim else None)
        self.dropout_input = nn.Dropout(config.dropout_input)
        self.encoder = BeatsEncoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.patch_embedding

    def embed(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """Patch embeddings ``(B, N, D)`` (after LayerNorm, projection and input dropout) and the patch padding mask
        ``(B, N)`` (True = padding; all False without ``attention_mask``)."""
        if input_values.dim() != 3 or input_values.shape[-1] != self.config.num_mel_bins:
            raise ValueError(f"input_values must be fbank features of shape (batch, frames, "
                             f"{self.config.num_mel_bins}), got {tuple(input_values.shape)}; use BeatsFeatureExtractor "
                             f"to turn waveforms into features")
        if input_values.shape[1] < self.config.input_patch_size:
            raise ValueError(f"input_values has {input_values.shape[1]} frames, fewer than one patch "
                             f"({self.config.input_patch_size} frames, ~{self.config.input_patch_size * 10 + 15} ms)")
        x = self.patch_embedding(input_values.unsqueeze(1).to(self.patch_embedding.weight.dtype))
        x = x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2)  # (B, N, C), time-major
        x = self.layer_norm(x)
        if attention_mask is None:
            padding_mask = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        else:
            if attention_mask.shape != input_values.shape[:2]:
                raise ValueError(f"attention_mask must be the frame mask of shape {tuple(input_values.shape[:2])} "
                                 f"(batch, frames), got {tuple(attention_mask.shape)}")
            padding_mask = self.patch_padding_mask(attention_mask.to(x.device), x.shape[1])
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        return self.dropout_input(x), padding_mask

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None,
                return_dict: bool | None = None, **kwargs) -> BeatsModelOutput | tuple:
        r"""
        Args:
            input_values: ``(B, T, 128)`` normalised fbank from :class:`BeatsFeatureExtractor`.
            attention_mask: ``(B, T)`` frame mask, 1 = real frame (from the feature extractor). ``None`` = no padding.
            output_hidden_states: return the encoder input and every layer's output.
            output_attentions: return attention probabilities (uses the eager kernel for this call).
            return_dict: return a :class:`BeatsModelOutput` (default) or a tuple.
        """
        output_hidden_states = (output_hidden_states if output_hidden_states is not None
                                else self.config.output_hidden_states)
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        x, padding_mask = self.embed(input_values, attention_mask)
        has_padding = attention_mask is not None
        x, hidden_states, attentions = self.encoder(x, padding_mask if has_padding else None,
                                                    bool(output_hidden_states), bool(output_attentions))
        out = BeatsModelOutput(last_hidden_state=x, hidden_states=hidden_states, attentions=attentions,
                               padding_mask=padding_mask)
        return out if return_dict else out.to_tuple()


def masked_mean(values: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over dim 1 of ``values`` ``(B, N, C)`` ignoring padded positions, with the original's arithmetic: when any
    position of the batch is padded, padded values are zeroed, summed and divided by the valid count; otherwise
    ``mean``. A clip with no valid position gets 0."""
    if padding_mask is None or not bool(padding_mask.any()):
        return values.mean(dim=1)
    summed = values.masked_fill(padding_mask.unsqueeze(-1), 0.0).sum(dim=1)
    count = (~padding_mask).sum(dim=1, keepdim=True).clamp(min=1)
    return summed / count


class BeatsForAudioClassification(BeatsPreTrainedModel):
    """BEATs with a linear classifier applied per patch and mean-pooled over the valid patches (= pooled then linear).

    ``logits`` are **pre-sigmoid** (the original returns ``sigmoid(logits)``). Multi-label heads (AudioSet) use
    ``problem_type="multi_label_classification"`` and BCE-with-logits; single-label heads (ESC-50) use cross-entropy.
    """

    def __init__(self, config: BeatsConfig):
        super().__init__(config)
        self.beats = BeatsModel(config)
        self.dropout = nn.Dropout(config.predictor_dropout)
        self.classifier = nn.Linear(config.encoder_embed_dim, config.num_labels)
        self.post_init()

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, return_dict: bool | None = None,
                **kwargs) -> BeatsAudioClassifierOutput | tuple:
        r"""
        Args:
            labels: ``(B,)`` class indices (single-label), ``(B, num_labels)`` 0/1 targets (multi-label) or ``(B,)``
                floats (regression, ``num_labels == 1``).
            Other arguments as in :meth:`BeatsModel.forward`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.beats(input_values, attention_mask=attention_mask, output_hidden_states=output_hidden_states,
                             output_attentions=output_attentions, return_dict=True)
        frame_logits = self.classifier(self.dropout(outputs.last_hidden_state))
        padding_mask = outputs.padding_mask if attention_mask is not None else None
        logits = masked_mean(frame_logits, padding_mask)
        loss = None
        if labels is not None:
            loss = self.compute_loss(logits, labels)
        out = BeatsAudioClassifierOutput(loss=loss, logits=logits, frame_logits=frame_logits,
                                         hidden_states=outputs.hidden_states, attentions=outputs.attentions,
                                         padding_mask=outputs.padding_mask)
        return out if return_dict else out.to_tuple()

    @torch.no_grad()
    def predict_long(self, waveform, feature_extractor=None, *, sampling_rate: int = 16000, window_seconds: float = 10.0,
                     hop_seconds: float = 5.0, batch_size: int = 4, pooling: str = "mean",
                     output_frame_logits: bool = True,
                     progress: Callable[[int, int], None] | None = None) -> BeatsLongAudioOutput:
        r"""Sliding-window inference on one long clip, with memory linear in its duration.

        The clip is cut into windows of ``window_seconds`` (the training length; 10 s for the AudioSet models) every
        ``hop_seconds`` (both rounded down to whole patch columns of 160 ms so that the windows share one patch grid;
        the last window is aligned to the end of the clip). Each window's fbank is computed from its own samples
        (Kaldi frames are independent, so this equals slicing the whole clip's fbank) and ``batch_size`` windows go
        through the model at once, so attention memory depends on the window, not on the clip. A clip no longer than
        one window is a single window: exactly the plain forward.

        Args:
            waveform: 1-D float audio in [-1, 1] at ``sampling_rate`` (numpy array or tensor).
            feature_extractor: a :class:`BeatsFeatureExtractor` (default: one built from this config).
            window_seconds, hop_seconds: window length and step (``hop_seconds <= window_seconds``).
            batch_size: windows per forward pass.
            pooling: clip-level pooling of the window logits, ``"mean"`` or ``"max"``.
            output_frame_logits: also stitch the per-column logits of the windows into one timeline.
            progress: called as ``progress(windows_done, windows_total)`` after every batch (e.g. a tqdm update).

        Returns:
            :class:`BeatsLongAudioOutput` (on the CPU, float32).
        """
        from .feature_extraction_beats import BeatsFeatureExtractor

        config = self.config
        if pooling not in ("mean", "max"):
            raise ValueError(f"pooling must be 'mean' or 'max', got {pooling!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        fe = feature_extractor or BeatsFeatureExtractor(feature_size=config.num_mel_bins, fbank_mean=config.fbank_mean,
                                                        fbank_std=config.fbank_std)
        if int(sampling_rate) != fe.sampling_rate:
            raise ValueError(f"BEATs expects audio sampled at {fe.sampling_rate} Hz, got sampling_rate={sampling_rate}; "
                             f"resample it first")
        wave = torch.as_tensor(waveform).detach().cpu()
        if wave.dim() != 1 or not wave.is_floating_point():
            raise ValueError(f"waveform must be 1-D float audio (samples,), got shape {tuple(wave.shape)} and dtype "
                             f"{wave.dtype}")
        wave = wave.to(torch.float32)
        for block in wave.split(1 << 20):  # in blocks: a whole-clip isfinite would cost ~1.7x the audio's memory
            if not bool(torch.isfinite(block).all()):
                raise ValueError("waveform has NaN or Inf samples")
        rate = fe.sampling_rate
        shift = int(round(rate * fe.frame_shift_ms / 1000.0))
        length = int(round(rate * fe.frame_length_ms / 1000.0))
        size = config.input_patch_size
        num_frames = 0 if wave.numel() < length else 1 + (wave.numel() - length) // shift
        if num_frames < size:
            raise ValueError(f"audio of {wave.numel()} samples ({wave.numel() / rate:.3f} s) gives {num_frames} fbank "
                             f"frames, fewer than one patch ({size} frames)")
        frames_per_second = rate / shift
        window = max(size, int(window_seconds * frames_per_second + 1e-6) // size * size)
        hop = int(hop_seconds * frames_per_second + 1e-6) // size * size
        if not 0 < hop <= window:
            raise ValueError(f"hop_seconds must be positive (at least one patch column, {size / frames_per_second:g} "
                             f"s) and at most window_seconds ({window_seconds}); got {hop_seconds}")
        if num_frames <= window:  # one window: the plain forward on the whole clip
            starts, window = [0], num_frames
        else:
            last = (num_frames - window) // size * size
            starts = list(range(0, last, hop)) + [last]
        columns_per_window = window // size
        num_labels = config.num_labels
        device = self.classifier.weight.device
        window_logits = torch.empty(len(starts), num_labels)
        total_columns = num_frames // size
        if output_frame_logits:
            column_sum = torch.zeros(total_columns, num_labels, dtype=torch.float64)
            column_count = torch.zeros(total_columns, 1, dtype=torch.float64)
        was_training = self.training
        self.eval()
        try:
            span = (window - 1) * shift + length  # samples of one window
            for first in range(0, len(starts), int(batch_size)):
                chunk = starts[first: first + int(batch_size)]
                audio = torch.stack([wave[s * shift: s * shift + span] for s in chunk])
                features = fe.extract(audio).to(device)
                out = self(input_values=features, return_dict=True)
                window_logits[first: first + len(chunk)] = out.logits.float().cpu()
                if output_frame_logits:
                    cols = out.frame_logits.float().cpu()[:, : columns_per_window * config.num_patch_columns]
                    cols = cols.reshape(len(chunk), columns_per_window, config.num_patch_columns, num_labels).mean(2)
                    for s, c in zip(chunk, cols):
                        column_sum[s // size: s // size + columns_per_window] += c.double()
                        column_count[s // size: s // size + columns_per_window] += 1
                if progress is not None:
                    progress(first + len(chunk), len(starts))
        finally:
            self.train(was_training)
        starts_t = torch.tensor(starts, dtype=torch.float64)
        used = columns_per_window * size  # frames the patches cover (a lone window may have up to 15 more)
        window_times = torch.stack([starts_t * shift / rate, ((starts_t + used - 1) * shift + length) / rate], -1)
        logits = window_logits.mean(0) if pooling == "mean" else window_logits.max(0).values
        frame_logits = frame_times = None
        if output_frame_logits:
            frame_logits = (column_sum / column_count.clamp(min=1)).float()
            first_frames = torch.arange(total_columns, dtype=torch.float64) * size
            frame_times = torch.stack([first_frames * shift / rate,
                                       ((first_frames + size - 1) * shift + length) / rate], -1).float()
        return BeatsLongAudioOutput(logits=logits, window_logits=window_logits, window_times=window_times.float(),
                                    frame_logits=frame_logits, frame_times=frame_times)

    def compute_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        problem_type = self.config.problem_type
        if problem_type is None:
            if self.config.num_labels == 1:
                problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int) and labels.dim() == 1:
                problem_type = "single_label_classification"
            else:
                problem_type = "multi_label_classification"
        labels = labels.to(logits.device)
        if problem_type == "regression":
            return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).reshape(logits.shape[0]))
        if problem_type == "single_label_classification":
            if labels.dim() != 1:
                raise ValueError(f"single-label classification expects labels of shape (batch,), got "
                                 f"{tuple(labels.shape)}")
            return F.cross_entropy(logits, labels.long())
        if labels.shape != logits.shape:
            raise ValueError(f"multi-label classification expects labels of shape {tuple(logits.shape)}, got "
                             f"{tuple(labels.shape)}")
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class BeatsVectorQuantizer(nn.Module):
    """Normalised EMA vector quantiser of the BEATs acoustic tokenizer.

    Inputs are L2-normalised; the code of each vector is the **squared-Euclidean** argmin against the codebook rows as
    stored (not re-normalised, and not a cosine argmax -- they differ when rows are not exactly unit norm). While
    training only: k-means (cosine) initialisation on the first batch when ``initted == 0``, then EMA updates
    ``w <- l2norm(decay * w + (1 - decay) * l2norm(mean of assigned inputs))``. In eval mode the quantiser has no side
    effects (the original also updated ``cluster_size`` in eval; that never changes the labels).
    """

    def __init__(self, num_codes: int, dim: int, decay: float = 0.99, beta: float = 1.0, kmeans_init: bool = True,
                 kmeans_iters: int = 10):
        super().__init__()
        self.num_codes, self.dim = num_codes, dim
        self.decay, self.beta, self.kmeans_iters = decay, beta, kmeans_iters
        self.weight = nn.Parameter(F.normalize(torch.randn(num_codes, dim), dim=-1), requires_grad=False)
        self.register_buffer("cluster_size", torch.zeros(num_codes))
        self.register_buffer("embed_avg", self.weight.detach().clone())
        self.register_buffer("initted", torch.tensor([0.0 if kmeans_init else 1.0]))
        self.register_buffer("ema_cluster_size", torch.zeros(num_codes))

    @staticmethod
    def _all_reduce(t: torch.Tensor) -> torch.Tensor:
        if torch.distributed.is_available() and torch.distributed.is_initialized() and (
                torch.distributed.get_world_size() > 1):
            torch.distributed.all_reduce(t)
        return t

    @torch.no_grad()
    def kmeans_init_(self, data: torch.Tensor) -> None:
        """Cosine k-means on ``data`` ``(M, dim)`` (already L2-normalised); sets the codebook and ``initted``."""
        num = data.shape[0]
        if num >= self.num_codes:
            means = data[torch.randperm(num, device=data.device)[: self.num_codes]].clone()
        else:
            means = data[torch.randint(0, num, (self.num_codes,), device=data.device)].clone()
        bins = torch.zeros(self.num_codes, device=data.device)
        for _ in range(self.kmeans_iters):
            assign = (data @ means.t()).argmax(dim=-1)
            bins = torch.bincount(assign, minlength=self.num_codes).to(data.dtype)
            sums = torch.zeros_like(means).index_add_(0, assign, data)
            new_means = F.normalize(sums / bins.clamp(min=1).unsqueeze(-1), dim=-1)
            means = torch.where((bins == 0).unsqueeze(-1), means, new_means)
        self.weight.data.copy_(means)
        self.embed_avg.copy_(means)
        self.cluster_size.copy_(bins)
        self.initted.fill_(1.0)

    def forward(self, z: torch.Tensor, valid: torch.Tensor | None = None):
        """``z`` ``(..., dim)`` -> (straight-through quantised ``(..., dim)``, commitment loss, codes ``(...)``).

        ``valid`` (same leading shape, bool) selects the vectors that feed k-means and the EMA statistics. The
        lookup runs in fp32 even under autocast (labels must not depend on the compute precision).
        """
        z = F.normalize(z.float(), p=2, dim=-1)
        flat = z.reshape(-1, self.dim)
        flat_valid = flat if valid is None else flat[valid.reshape(-1)]
        if self.training and self.initted.item() == 0 and flat_valid.shape[0] > 0:
            self.kmeans_init_(flat_valid.detach())
        weight = self.weight.float()
        with torch.autocast(device_type=flat.device.type, enabled=False):
            distances = (flat.pow(2).sum(dim=1, keepdim=True) + weight.pow(2).sum(dim=1)
                         - 2 * torch.matmul(flat, weight.t()))
        codes = distances.argmin(dim=1)
        z_q = F.embedding(codes, weight).view_as(z)
        if self.training:
            self._ema_update(flat_valid.detach(), codes if valid is None else codes[valid.reshape(-1)])
        loss = self.beta * F.mse_loss(z_q.detach(), z)
        z_q = z + (z_q - z).detach()
        return z_q, loss, codes.view(z.shape[:-1])

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        flat = flat.float()
        bins = self._all_reduce(torch.bincount(codes, minlength=self.num_codes).float())
        self.ema_cluster_size.mul_(self.decay).add_(bins, alpha=1 - self.decay)
        self.cluster_size.copy_(self.ema_cluster_size)
        sums = self._all_reduce(torch.zeros(self.num_codes, self.dim, device=flat.device).index_add_(0, codes, flat))
        empty = bins == 0
        means = F.normalize(sums / bins.clamp(min=1).unsqueeze(-1), dim=-1)
        means = torch.where(empty.unsqueeze(-1), self.weight.data.float(), means)
        updated = F.normalize(self.weight.data.float() * self.decay + means * (1 - self.decay), dim=-1)
        self.weight.data.copy_(updated)
        self.embed_avg.copy_(updated)


class _AudioTokenizerSaveMixin:
    """transformers' remote-code saving treats any class whose name contains "Tokenizer" as a *text* tokenizer and
    writes a ``[slow, fast]`` pair into ``auto_map``, which ``AutoModel`` cannot load. These audio tokenizers are
    models: after saving, the entry is rewritten as the plain ``"module.Class"`` reference."""

    def save_pretrained(self, save_directory, *args, push_to_hub: bool = False, **kwargs):
        import json
        import os

        result = super().save_pretrained(save_directory, *args, **kwargs)
        auto_map = getattr(self.config, "auto_map", None) or {}
        fixed = {k: (v[0] if isinstance(v, (list, tuple)) else v) for k, v in auto_map.items()}
        if fixed != auto_map:
            self.config.auto_map = fixed
            path = os.path.join(save_directory, "config.json")
            with open(path, encoding="utf-8") as fh:
                saved = json.load(fh)
            saved["auto_map"] = fixed
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(saved, fh, indent=2, sort_keys=True)
                fh.write("\n")
            os.replace(tmp, path)
        if push_to_hub:
            repo_id = kwargs.get("repo_id") or os.path.basename(os.path.normpath(str(save_directory)))
            self.push_to_hub(repo_id, token=kwargs.get("token"))
        return result


def _as_config(config: BeatsConfig, cls: type) -> BeatsConfig:
    """``config`` as an instance of the subclass ``cls`` (same values), e.g. a tokenizer built from a BeatsConfig."""
    if isinstance(config, cls):
        return config
    values = config.to_dict()
    values["model_type"] = cls.model_type
    return cls.from_dict(values)


class BeatsAcousticTokenizer(_AudioTokenizerSaveMixin, BeatsPreTrainedModel):
    """BEATs acoustic tokenizer: the BEATs encoder, ``quantize_layer`` (Linear -> Tanh -> Linear to ``quant_dim``) and
    a :class:`BeatsVectorQuantizer` with ``quant_n`` codes. :meth:`extract_labels` gives the discrete labels that the
    next BEATs iteration learns to predict.

    Its config is a :class:`BeatsTokenizerConfig` (``model_type`` ``hf_alm_beats_tokenizer``; a plain
    :class:`BeatsConfig` is accepted and converted), so ``AutoModel`` loads a saved tokenizer as the tokenizer."""

    config: BeatsTokenizerConfig
    config_class = BeatsTokenizerConfig

    def __init__(self, config: BeatsConfig):
        config = _as_config(config, BeatsTokenizerConfig)
        super().__init__(config)
        self.beats = BeatsModel(config)
        dim = config.encoder_embed_dim
        self.quantize_layer = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, config.quant_dim))
        self.quantizer = BeatsVectorQuantizer(config.quant_n, config.quant_dim, decay=config.quant_decay,
                                              beta=config.quant_beta, kmeans_init=config.quant_kmeans_init,
                                              kmeans_iters=config.quant_kmeans_iters)
        self.post_init()

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                return_dict: bool | None = None, **kwargs) -> BeatsTokenizerOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.beats(input_values, attention_mask=attention_mask, return_dict=True)
        quantize_input = self.quantize_layer(outputs.last_hidden_state)
        valid = ~outputs.padding_mask
        quantized, loss, labels = self.quantizer(quantize_input, valid)
        out = BeatsTokenizerOutput(loss=loss, labels=labels, quantize_input=quantize_input, quantized=quantized,
                                   last_hidden_state=outputs.last_hidden_state, padding_mask=outputs.padding_mask)
        return out if return_dict else out.to_tuple()

    @torch.no_grad()
    def extract_labels(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Code index per patch, ``(B, N)`` int64 (the original returns the same values flattened to ``(B * N,)``).
        Runs in eval mode, so it never changes the codebook."""
        was_training = self.training
        self.eval()
        try:
            return self(input_values, attention_mask=attention_mask, return_dict=True).labels
        finally:
            self.train(was_training)


class BeatsRandomProjectionTokenizer(_AudioTokenizerSaveMixin, BeatsPreTrainedModel):
    """Frozen random-projection tokenizer of BEATs iteration 1 (BEST-RQ style).

    Each 16 x 16 fbank patch (time-major order, like the encoder) is standardised, projected with a fixed random
    matrix ``W`` ``(256, quant_dim)`` and assigned to its nearest row of a fixed random codebook ``(quant_n,
    quant_dim)``: ``label = argmin_i ||v_i - l2norm(W x)||^2`` with unit-norm rows ``v_i``. ``W`` and the codebook are
    drawn from ``config.random_projection_seed`` and saved with the model (frozen), so a saved tokenizer reloads identically.
    Nothing is trained. Its config is a :class:`BeatsRandomProjectionConfig` (own ``model_type``; a plain
    :class:`BeatsConfig` is accepted and converted).
    """

    config: BeatsRandomProjectionConfig
    config_class = BeatsRandomProjectionConfig

    def __init__(self, config: BeatsConfig):
        config = _as_config(config, BeatsRandomProjectionConfig)
        super().__init__(config)
        patch_dim = config.input_patch_size**2
        # frozen parameters (not buffers) so that the usual PreTrainedModel machinery (dtype, device) applies
        self.projection = nn.Parameter(torch.empty(patch_dim, config.quant_dim), requires_grad=False)
        self.codebook = nn.Parameter(torch.empty(config.quant_n, config.quant_dim), requires_grad=False)
        self.reset_projection()
        self.post_init()

    @torch.no_grad()
    def reset_projection(self) -> None:
        generator = torch.Generator().manual_seed(int(self.config.random_projection_seed))
        patch_dim = self.projection.shape[0]
        projection = torch.randn(patch_dim, self.config.quant_dim, generator=generator) * math.sqrt(
            2.0 / (patch_dim + self.config.quant_dim))
        codebook = F.normalize(torch.randn(self.config.quant_n, self.config.quant_dim, generator=generator), dim=-1)
        init.copy_(self.projection, projection)
        init.copy_(self.codebook, codebook)

    def patches(self, input_values: torch.Tensor) -> torch.Tensor:
        """``(B, T, F)`` fbank -> ``(B, N, size * size)`` flattened patches in the encoder's time-major order."""
        size = self.config.input_patch_size
        batch, frames, bins = input_values.shape
        t, f = frames // size, bins // size
        x = input_values[:, : t * size, : f * size].reshape(batch, t, size, f, size)
        return x.permute(0, 1, 3, 2, 4).reshape(batch, t * f, size * size)

    @torch.no_grad()
    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                return_dict: bool | None = None, **kwargs) -> BeatsTokenizerOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        patches = F.layer_norm(self.patches(input_values.float()), (self.projection.shape[0],))
        projected = F.normalize(patches @ self.projection, dim=-1)
        distances = (projected.pow(2).sum(-1, keepdim=True) + self.codebook.pow(2).sum(-1)
                     - 2 * projected @ self.codebook.t())
        labels = distances.argmin(dim=-1)
        if attention_mask is None:
            padding_mask = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
        else:
            padding_mask = self.patch_padding_mask(attention_mask, labels.shape[1])
        out = BeatsTokenizerOutput(labels=labels, quantize_input=projected, padding_mask=padding_mask)
        return out if return_dict else out.to_tuple()

    def extract_labels(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Code index per patch, ``(B, N)`` int64."""
        return self(input_values, attention_mask=attention_mask, return_dict=True).labels


def _predictor_config(config: BeatsConfig) -> BeatsConfig:
    sub = copy.deepcopy(config)
    sub.encoder_layers = config.predictor_layers
    sub.encoder_embed_dim = config.predictor_embed_dim or config.encoder_embed_dim
    sub.encoder_ffn_embed_dim = config.predictor_ffn_embed_dim or config.encoder_ffn_embed_dim
    sub.encoder_attention_heads = config.predictor_attention_heads or config.encoder_attention_heads
    if sub.encoder_embed_dim % sub.conv_pos_groups:
        sub.conv_pos_groups = 1
    return sub


class BeatsForPreTraining(BeatsPreTrainedModel):
    """Masked audio modelling (BEATs' self-supervised objective).

    ``mask_ratio`` (75 %) of the patches of every clip are chosen at random; the encoder sees **only the visible
    patches** (MAE style; the position convolution and relative positions then run over the visible sequence). The
    encoder outputs are scattered back to their positions, zeros fill the masked positions, and a small transformer
    label predictor (``predictor_layers`` BEATs layers with their own position convolution and relative bias) followed
    by a linear layer predicts the ``quant_n`` tokenizer labels. The loss is the cross-entropy on the masked, non-padded
    patches. ``self.beats`` is a plain :class:`BeatsModel`: save it (``model.beats.save_pretrained``) for fine-tuning.
    """

    def __init__(self, config: BeatsConfig):
        super().__init__(config)
        self.beats = BeatsModel(config)
        pred_config = _predictor_config(config)
        self.predictor_proj = (nn.Linear(config.encoder_embed_dim, pred_config.encoder_embed_dim)
                               if pred_config.encoder_embed_dim != config.encoder_embed_dim else nn.Identity())
        self.predictor = BeatsEncoder(pred_config)
        self.label_head = nn.Linear(pred_config.encoder_embed_dim, config.quant_n)
        self.post_init()

    def random_mask(self, batch: int, length: int, device=None, generator: torch.Generator | None = None):
        """``(B, N)`` bool, exactly ``round(mask_ratio * N)`` True (masked) positions per row, uniformly at random."""
        num_masked = min(max(int(round(self.config.mask_ratio * length)), 1), length - 1)
        noise = torch.rand(batch, length, generator=generator, device=device)
        ranks = noise.argsort(dim=1).argsort(dim=1)
        return ranks < num_masked

    def forward(self, input_values: torch.Tensor, labels: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                return_dict: bool | None = None, **kwargs) -> BeatsForPreTrainingOutput | tuple:
        r"""
        Args:
            input_values, attention_mask: as in :meth:`BeatsModel.forward`.
            labels: ``(B, N)`` tokenizer labels (from :class:`BeatsAcousticTokenizer` or
                :class:`BeatsRandomProjectionTokenizer`); without them no loss is computed.
            mask: optional ``(B, N)`` bool (True = masked) with the same number of masked patches in every row;
                drawn at random when omitted.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        x, padding_mask = self.beats.embed(input_values, attention_mask)
        batch, length, dim = x.shape
        if mask is None:
            mask = self.random_mask(batch, length, device=x.device)
        mask = mask.to(device=x.device, dtype=torch.bool)
        if mask.shape != (batch, length):
            raise ValueError(f"mask must have shape {(batch, length)}, got {tuple(mask.shape)}")
        num_visible = (~mask).sum(dim=1)
        if bool((num_visible != num_visible[0]).any()) or int(num_visible[0]) == 0:
            raise ValueError(f"every row of mask must leave the same, non-zero number of visible patches; got "
                             f"{num_visible.tolist()}")
        visible = int(num_visible[0])
        # stable sort puts visible positions first, in their original order
        order = torch.sort(mask.to(torch.int8), dim=1, stable=True).indices[:, :visible]
        vis_x = x.gather(1, order.unsqueeze(-1).expand(-1, -1, dim))
        vis_padding = padding_mask.gather(1, order)
        has_padding = attention_mask is not None
        encoded, _, _ = self.beats.encoder(vis_x, vis_padding if has_padding else None)
        full = x.new_zeros(batch, length, dim).scatter(1, order.unsqueeze(-1).expand(-1, -1, dim), encoded)
        predicted, _, _ = self.predictor(self.predictor_proj(full), padding_mask if has_padding else None)
        logits = self.label_head(predicted)
        loss = accuracy = None
        if labels is not None:
            if labels.shape != (batch, length):
                raise ValueError(f"labels must have shape {(batch, length)} (one tokenizer label per patch), got "
                                 f"{tuple(labels.shape)}")
            target = mask & ~padding_mask
            selected = logits[target]
            loss = F.cross_entropy(selected.float(), labels[target].long())
            accuracy = (selected.argmax(-1) == labels[target]).float().mean()
        out = BeatsForPreTrainingOutput(loss=loss, logits=logits, mask=mask, accuracy=accuracy,
                                        padding_mask=padding_mask)
        return out if return_dict else out.to_tuple()


BeatsModel.register_for_auto_class("AutoModel")
BeatsForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")
BeatsAcousticTokenizer.register_for_auto_class("AutoModel")
BeatsRandomProjectionTokenizer.register_for_auto_class("AutoModel")
BeatsForPreTraining.register_for_auto_class("AutoModelForPreTraining")

__all__ = [
    "BeatsPreTrainedModel",
    "BeatsModel",
    "BeatsForAudioClassification",
    "BeatsAcousticTokenizer",
    "BeatsRandomProjectionTokenizer",
    "BeatsForPreTraining",
    "BeatsVectorQuantizer",
    "BeatsModelOutput",
    "BeatsAudioClassifierOutput",
    "BeatsLongAudioOutput",
    "BeatsTokenizerOutput",
    "BeatsForPreTrainingOutput",
    "masked_mean",
    "relative_position_buckets",
]
