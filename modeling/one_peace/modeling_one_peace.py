# Copyright 2026 the hf-alm developers. MIT licence.
# Architecture after ONE-PEACE (Wang et al., arXiv 2305.11172; OFA-Sys/ONE-PEACE, Apache-2.0). Written from scratch.
"""ONE-PEACE in PyTorch / transformers.

Three modality adapters (audio: waveform convolutions; language: BPE tokens; vision: hierarchical-MLP patches) feed a
stack of fusion layers whose self-attention is shared by every modality while each modality has its own GeGLU
feed-forward network. Mixed sequences (text + audio, text + image) go through the shared attention together and each
slice is routed to its own FFN. On top: per-modality final LayerNorms, CLS projections for retrieval, an
attention-pooling classification head, and the small decoder with mask tokens used by the denoising contrast.

Sequences follow the original layout: position 0 of every modality segment is its CLS token. Masks given to the model
use the transformers convention (``True``/1 = real); internally ``padding_mask`` is ``True`` for padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput

from .configuration_one_peace import OnePeaceConfig

MODALITIES = ("text", "image", "audio")


# ---------------------------------------------------------------------------------------------------------------------
# relative-position buckets
# ---------------------------------------------------------------------------------------------------------------------
def make_token_bucket_position(bucket_size: int, max_position: int) -> torch.LongTensor:
    """``(max_position, max_position)`` bucket ids of the 1D relative bias, CLS ids included.

    Distance ``d = i - j`` keeps its own bucket while ``|d| <= bucket_size // 2``; beyond that buckets grow
    logarithmically up to ``max_position - 1``. Ids are shifted to start at 0 (``2 * bucket_size - 1`` distance ids),
    then row 0 (CLS attending), column 0 (attending to CLS) and the CLS-CLS cell get three extra ids.
    """
    if bucket_size >= max_position:
        raise ValueError(f"bucket_size ({bucket_size}) must be smaller than max_position ({max_position})")
    pos = torch.arange(max_position, dtype=torch.long, device="cpu")
    rel = pos[:, None] - pos[None, :]
    half = bucket_size // 2
    dist = rel.abs()
    # log bucket for distances beyond half (distances inside are replaced by half - 1 only to keep log() finite)
    safe = torch.where(dist < half, torch.full_like(dist, half - 1), dist).double()
    log_bucket = half + torch.ceil(torch.log(safe / half) / math.log((max_position - 1) / half) * (half - 1)).long()
    bucket = torch.where(dist <= half, rel, log_bucket * torch.sign(rel))
    bucket = bucket + bucket_size - 1
    num_rel = 2 * bucket_size - 1
    bucket[0, :] = num_rel
    bucket[:, 0] = num_rel + 1
    bucket[0, 0] = num_rel + 2
    return bucket


def make_image_bucket_position(grid: int) -> torch.LongTensor:
    """``(grid**2 + 1, grid**2 + 1)`` BEiT-style 2D relative ids (CLS first); the table has ``(2g-1)**2 + 3`` rows."""
    num_rel = (2 * grid - 1) ** 2 + 3
    ys, xs = torch.meshgrid(torch.arange(grid, device="cpu"), torch.arange(grid, device="cpu"), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, g*g)
    rel = coords[:, :, None] - coords[:, None, :]
    idx = (rel[0] + grid - 1) * (2 * grid - 1) + (rel[1] + grid - 1)
    out = torch.zeros(grid * grid + 1, grid * grid + 1, dtype=torch.long, device="cpu")
    out[1:, 1:] = idx
    out[0, :] = num_rel - 3
    out[:, 0] = num_rel - 2
    out[0, 0] = num_rel - 1
    return out


def _trunc_normal(tensor, std=0.02):
    # ONE-PEACE truncates at +-1 std
    return init.trunc_normal_(tensor, mean=0.0, std=std, a=-std, b=std)


def conv_output_lengths(lengths: torch.Tensor, conv_layers) -> torch.Tensor:
    """Frames produced by the unpadded conv stack for ``lengths`` input samples (floor((L - k) / s) + 1 per block)."""
    lengths = lengths.clone()
    for _, kernel, stride in conv_layers:
        lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
    return lengths.clamp(min=0)


def _gather_positions(preserve_ids: torch.LongTensor):
    """``preserve_ids`` (B, K) with -1 = padding -> (positions with pads mapped to a valid index, padding mask)."""
    if preserve_ids.dim() != 2 or not bool((preserve_ids[:, 0] == 0).all()):
        raise ValueError("preserve_ids must be (batch, K) with the CLS position 0 first in every row, got "
                         f"{preserve_ids[:, :1].flatten().tolist() if preserve_ids.dim() == 2 else preserve_ids.shape}")
    pad = preserve_ids.eq(-1)
    return preserve_ids.masked_fill(pad, 0), pad


# ---------------------------------------------------------------------------------------------------------------------
# adapters
# ---------------------------------------------------------------------------------------------------------------------
class OnePeaceRelativeBias(nn.Module):
    """Relative-position tables (one shared, or one per layer) looked up through a bucket matrix."""

    def __init__(self, num_ids: int, num_heads: int, num_tables: int):
        super().__init__()
        self.rel_pos_tables = nn.ModuleList([nn.Embedding(num_ids, num_heads) for _ in range(num_tables)])

    def forward(self, bucket: torch.LongTensor, positions: torch.LongTensor | None, length: int) -> list[torch.Tensor]:
        """Bias per table, ``(1 | B, heads, L, L)``; ``positions`` (B, L) picks rows/columns of ``bucket``."""
        if positions is None:
            ids = bucket[:length, :length].unsqueeze(0)
        else:
            ids = bucket[positions[:, :, None], positions[:, None, :]]
        return [table(ids).permute(0, 3, 1, 2) for table in self.rel_pos_tables]


class OnePeaceConvBlock(nn.Module):
    """Conv1d (no bias) -> dropout -> LayerNorm over channels -> GELU (WavLM ``layer_norm`` mode)."""

    def __init__(self, in_dim, out_dim, kernel, stride, bias, eps):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel, stride=stride, bias=bias)
        self.layer_norm = nn.LayerNorm(out_dim, eps=eps)

    def forward(self, x):  # (B, C, T)
        x = self.conv(x)
        x = self.layer_norm(x.transpose(1, 2)).transpose(1, 2)
        return F.gelu(x)


class OnePeacePositionConv1d(nn.Conv1d):
    """Marker subclass: position convolutions keep torch's default initialisation."""


class OnePeacePositionConvBlock(nn.Module):
    """Grouped Conv1d -> same-pad trim -> LayerNorm (no affine) -> GELU."""

    def __init__(self, dim, kernel, groups, eps):
        super().__init__()
        self.conv = OnePeacePositionConv1d(dim, dim, kernel_size=kernel, padding=kernel // 2, groups=groups)
        self.remove = 1 if kernel % 2 == 0 else 0
        self.layer_norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)

    def forward(self, x):  # (B, T, D)
        y = self.conv(x.transpose(1, 2))
        if self.remove:
            y = y[:, :, : -self.remove]
        return F.gelu(self.layer_norm(y.transpose(1, 2)))


class OnePeaceAudioAdapter(nn.Module):
    """Waveform -> conv features -> LN -> Linear -> + conv positions; CLS (+ its position) first; 1D relative bias.

    With ``decoder=True`` (pretraining decoder) there is no conv stack: inputs are embeddings scattered into a
    mask-token sequence and positions come from a fixed table (``Embedding(max_relative_positions + 2, D)``).
    """

    def __init__(self, config: OnePeaceConfig, hidden_size: int, num_heads: int, num_tables: int, decoder=False):
        super().__init__()
        acfg = config.audio_config
        eps = config.layer_norm_eps
        self.decoder = decoder
        self.conv_layers_spec = [tuple(x) for x in acfg.conv_feature_layers]
        if not decoder:
            blocks, in_dim = [], 1
            for dim, kernel, stride in self.conv_layers_spec:
                blocks.append(OnePeaceConvBlock(in_dim, dim, kernel, stride, acfg.conv_bias, eps))
                in_dim = dim
            self.conv_layers = nn.ModuleList(blocks)
            self.feature_layer_norm = nn.LayerNorm(in_dim, eps=eps)
            self.feature_projection = nn.Linear(in_dim, hidden_size)
            self.pos_conv = nn.ModuleList(
                [OnePeacePositionConvBlock(hidden_size, acfg.conv_pos_kernel, acfg.conv_pos_groups, eps)
                 for _ in range(acfg.conv_pos_depth)])
            self.cls_pos_embed = nn.Parameter(torch.zeros(1, 1, hidden_size))
        else:
            self.embed_positions = nn.Embedding(acfg.max_relative_positions + 2, hidden_size)
        self.cls_embedding = nn.Parameter(torch.zeros(1, 1, hidden_size))
        self.mask_embedding = nn.Parameter(torch.zeros(1, hidden_size))  # kept for checkpoint parity (unused)
        self.rel_bias = OnePeaceRelativeBias(2 * acfg.bucket_size - 1 + 3, num_heads, num_tables)
        self.register_buffer("rp_bucket", self.make_bucket(acfg), persistent=False)

    @staticmethod
    def make_bucket(acfg):
        return make_token_bucket_position(acfg.bucket_size, acfg.max_relative_positions)

    def frame_lengths(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        return conv_output_lengths(sample_lengths, self.conv_layers_spec)

    def extract_features(self, input_values: torch.Tensor) -> torch.Tensor:
        """(B, S) waveform -> (B, T, D) projected conv features (no CLS, no positions).

        The waveform is cast to the parameters' dtype (the feature extractor gives float32; a bf16 / fp16 model
        would otherwise fail in the first convolution)."""
        x = input_values.unsqueeze(1).to(self.conv_layers[0].conv.weight.dtype)
        for block in self.conv_layers:
            x = block(x)
        x = self.feature_layer_norm(x.transpose(1, 2))
        return self.feature_projection(x)

    def positions(self, feats: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        """Convolutional positions; padded frames are zeroed before every block so padding never leaks in."""
        x = feats
        for block in self.pos_conv:
            if padding_mask is not None:
                x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
            x = block(x)
        return x

    def forward(self, input_values, attention_mask=None, preserve_ids=None, features=None):
        """Returns ``(embeddings (B, 1+T, D), padding_mask (B, 1+T) True = pad, bias list)``.

        ``attention_mask`` is sample-level (B, S), ``True``/1 = real sample. ``preserve_ids`` (B, K) lists the
        positions (CLS = 0, frame t = t + 1; -1 = padding) to keep: only those units are encoded. ``features``:
        this clip batch's ``extract_features(input_values)`` computed once and shared by several passes (pretraining).
        """
        if input_values.dim() != 2:
            raise ValueError(f"input_values must be (batch, samples), got shape {tuple(input_values.shape)}")
        bsz, num_samples = input_values.shape
        feats = self.extract_features(input_values) if features is None else features
        num_frames = feats.shape[1]
        if num_frames < 1:
            raise ValueError(f"audio of {num_samples} samples is shorter than the conv stack's receptive field")
        if attention_mask is not None:
            if attention_mask.shape != input_values.shape:
                raise ValueError(f"audio attention_mask shape {tuple(attention_mask.shape)} does not match "
                                 f"input_values shape {tuple(input_values.shape)}")
            lengths = self.frame_lengths(attention_mask.long().sum(-1))
            frame_pad = torch.arange(num_frames, device=feats.device)[None, :] >= lengths[:, None]
        else:
            frame_pad = torch.zeros(bsz, num_frames, dtype=torch.bool, device=feats.device)
        if num_frames + 1 > self.rp_bucket.shape[0]:
            raise ValueError(f"audio of {num_frames} frames exceeds max_relative_positions - 1 "
                             f"({self.rp_bucket.shape[0] - 1}); shorten the clip")
        if preserve_ids is None:
            pos_embed = self.positions(feats, frame_pad if frame_pad.any() else None)
            padding_mask = F.pad(frame_pad, (1, 0), value=False)
            positions = None
            length = num_frames + 1
        else:
            positions, padding_mask = _gather_positions(preserve_ids)
            frame_ids = (positions[:, 1:] - 1).clamp(min=0)
            feats = feats.gather(1, frame_ids.unsqueeze(-1).expand(-1, -1, feats.shape[-1]))
            inner_pad = padding_mask[:, 1:] | frame_pad.gather(1, frame_ids)
            padding_mask = torch.cat([padding_mask[:, :1], inner_pad], dim=1)
            pos_embed = self.positions(feats, inner_pad)
            length = positions.shape[1]
        pos_embed = torch.cat([self.cls_pos_embed.expand(bsz, -1, -1), pos_embed], dim=1)
        x = torch.cat([self.cls_embedding.expand(bsz, -1, -1), feats], dim=1) + pos_embed
        bias = self.rel_bias(self.rp_bucket, positions, length)
        return x, padding_mask, bias

    def forward_decoder(self, preserve_embed, preserve_ids, mask_token, padding_mask):
        """Decoder input: ``mask_token`` everywhere, ``preserve_embed`` scattered at ``preserve_ids``; fixed positions."""
        bsz, length = padding_mask.shape
        x = _scatter_preserved(preserve_embed, preserve_ids, mask_token, length)
        pos = torch.arange(length, device=x.device)
        x = x + self.embed_positions(pos).unsqueeze(0)
        return x, padding_mask, self.rel_bias(self.rp_bucket, None, length)


def _scatter_preserved(preserve_embed, preserve_ids, mask_token, length):
    bsz, _, dim = preserve_embed.shape
    x = mask_token.reshape(1, 1, dim).expand(bsz, length, dim).clone()
    valid = preserve_ids.ne(-1)
    batch_idx = torch.arange(bsz, device=x.device)[:, None].expand_as(preserve_ids)
    x = x.index_put((batch_idx[valid], preserve_ids[valid]), preserve_embed[valid].to(x.dtype))
    return x


class OnePeaceTextAdapter(nn.Module):
    """BPE ids -> token embedding; CLS first; absolute position table + 1D relative bias."""

    def __init__(self, config: OnePeaceConfig, hidden_size: int, num_heads: int, num_tables: int, decoder=False):
        super().__init__()
        tcfg = config.text_config
        self.decoder = decoder
        self.padding_idx = tcfg.pad_token_id
        if not decoder:
            self.embed_tokens = nn.Embedding(tcfg.vocab_size, hidden_size, padding_idx=tcfg.pad_token_id)
        self.embed_positions = nn.Embedding(tcfg.max_position_embeddings, hidden_size)
        self.cls_embedding = nn.Parameter(torch.zeros(1, 1, hidden_size))
        self.rel_bias = OnePeaceRelativeBias(2 * tcfg.bucket_size - 1 + 3, num_heads, num_tables)
        self.register_buffer("rp_bucket", self.make_bucket(tcfg), persistent=False)

    @staticmethod
    def make_bucket(tcfg):
        return make_token_bucket_position(tcfg.bucket_size, tcfg.max_relative_positions)

    def padding_mask(self, input_ids, attention_mask=None):
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise ValueError(f"text attention_mask shape {tuple(attention_mask.shape)} does not match input_ids "
                                 f"shape {tuple(input_ids.shape)}")
            pad = ~attention_mask.bool()
        elif self.padding_idx is not None:
            pad = input_ids.eq(self.padding_idx)
        else:
            pad = torch.zeros_like(input_ids, dtype=torch.bool)
        return F.pad(pad, (1, 0), value=False)

    def forward(self, input_ids, attention_mask=None, preserve_ids=None):
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, tokens), got shape {tuple(input_ids.shape)}")
        bsz, length = input_ids.shape[0], input_ids.shape[1] + 1
        if length > min(self.embed_positions.num_embeddings, self.rp_bucket.shape[0]):
            raise ValueError(f"text of {length - 1} tokens (+ CLS) exceeds the position table "
                             f"({self.embed_positions.num_embeddings}); truncate the text")
        if int(input_ids.max()) >= self.embed_tokens.num_embeddings or int(input_ids.min()) < 0:
            raise ValueError(f"token id out of range [0, {self.embed_tokens.num_embeddings}): "
                             f"min {int(input_ids.min())}, max {int(input_ids.max())}")
        padding_mask = self.padding_mask(input_ids, attention_mask)
        x = torch.cat([self.cls_embedding.expand(bsz, -1, -1), self.embed_tokens(input_ids)], dim=1)
        pos = torch.arange(length, device=x.device)
        if preserve_ids is None:
            x = x + self.embed_positions(pos).unsqueeze(0)
            return x, padding_mask, self.rel_bias(self.rp_bucket, None, length)
        positions, pad = _gather_positions(preserve_ids)
        x = x.gather(1, positions.unsqueeze(-1).expand(-1, -1, x.shape[-1])) + self.embed_positions(positions)
        padding_mask = pad | padding_mask.gather(1, positions)
        return x, padding_mask, self.rel_bias(self.rp_bucket, positions, positions.shape[1])

    def forward_decoder(self, preserve_embed, preserve_ids, mask_token, padding_mask):
        bsz, length = padding_mask.shape
        x = _scatter_preserved(preserve_embed, preserve_ids, mask_token, length)
        x = x + self.embed_positions(torch.arange(length, device=x.device)).unsqueeze(0)
        return x, padding_mask, self.rel_bias(self.rp_bucket, None, length)


class OnePeaceLayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel axis of a (B, C, H, W) map."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class OnePeaceVisionAdapter(nn.Module):
    """hMLP stem (4x4 s4 -> LN -> GELU -> 2x2 s2 -> LN -> GELU -> 2x2 s2) to 16x16 patches; CLS; absolute + 2D bias."""

    def __init__(self, config: OnePeaceConfig, hidden_size: int, num_heads: int, num_tables: int, decoder=False):
        super().__init__()
        vcfg = config.vision_config
        eps = config.layer_norm_eps
        self.decoder = decoder
        self.bucket_size = vcfg.bucket_size
        self.rel_bucket_size = vcfg.rel_bucket_size
        if not decoder:
            quarter = hidden_size // 4
            self.stem_conv1 = nn.Conv2d(vcfg.num_channels, quarter, kernel_size=4, stride=4)
            self.stem_norm1 = OnePeaceLayerNorm2d(quarter, eps=eps)
            self.stem_conv2 = nn.Conv2d(quarter, quarter, kernel_size=2, stride=2)
            self.stem_norm2 = OnePeaceLayerNorm2d(quarter, eps=eps)
            self.stem_conv3 = nn.Conv2d(quarter, hidden_size, kernel_size=2, stride=2)
        self.pos_embed = nn.Parameter(torch.zeros(vcfg.bucket_size ** 2 + 1, hidden_size))
        self.cls_embedding = nn.Parameter(torch.zeros(1, 1, hidden_size))
        self.rel_bias = OnePeaceRelativeBias((2 * vcfg.rel_bucket_size - 1) ** 2 + 3, num_heads, num_tables)
        self.register_buffer("rp_bucket", self.make_bucket(vcfg), persistent=False)

    @staticmethod
    def make_bucket(vcfg):
        return make_image_bucket_position(vcfg.rel_bucket_size)

    def patch_embed(self, pixel_values):
        pixel_values = pixel_values.to(self.stem_conv1.weight.dtype)  # float32 images into a bf16 / fp16 model
        x = F.gelu(self.stem_norm1(self.stem_conv1(pixel_values)))
        x = F.gelu(self.stem_norm2(self.stem_conv2(x)))
        return self.stem_conv3(x).flatten(2).transpose(1, 2)

    def position_table(self, grid: int) -> torch.Tensor:
        if grid == self.bucket_size:
            return self.pos_embed
        cls_pos, grid_pos = self.pos_embed[:1], self.pos_embed[1:]
        grid_pos = grid_pos.reshape(1, self.bucket_size, self.bucket_size, -1).permute(0, 3, 1, 2).float()
        grid_pos = F.interpolate(grid_pos, size=(grid, grid), mode="bicubic", align_corners=False)
        grid_pos = grid_pos.permute(0, 2, 3, 1).reshape(grid * grid, -1).to(self.pos_embed.dtype)
        return torch.cat([cls_pos, grid_pos], dim=0)

    def forward(self, pixel_values, preserve_ids=None):
        if pixel_values.dim() != 4 or pixel_values.shape[-1] != pixel_values.shape[-2] or pixel_values.shape[-1] % 16:
            raise ValueError(f"pixel_values must be (batch, channels, S, S) with S a multiple of 16, got shape "
                             f"{tuple(pixel_values.shape)}")
        grid = pixel_values.shape[-1] // 16
        if grid != self.rel_bucket_size:
            raise ValueError(f"image of {pixel_values.shape[-1]} px gives a {grid}x{grid} grid but the relative bias "
                             f"was built for {self.rel_bucket_size}x{self.rel_bucket_size}; resize the image to "
                             f"{self.rel_bucket_size * 16} px")
        bsz = pixel_values.shape[0]
        x = torch.cat([self.cls_embedding.expand(bsz, -1, -1), self.patch_embed(pixel_values)], dim=1)
        pos_embed = self.position_table(grid).unsqueeze(0).expand(bsz, -1, -1)
        if preserve_ids is None:
            padding_mask = torch.zeros(bsz, x.shape[1], dtype=torch.bool, device=x.device)
            return x + pos_embed, padding_mask, self.rel_bias(self.rp_bucket, None, x.shape[1])
        positions, padding_mask = _gather_positions(preserve_ids)
        index = positions.unsqueeze(-1).expand(-1, -1, x.shape[-1])
        x = x.gather(1, index) + pos_embed.gather(1, index)
        return x, padding_mask, self.rel_bias(self.rp_bucket, positions, positions.shape[1])

    def forward_decoder(self, preserve_embed, preserve_ids, mask_token, padding_mask):
        bsz, length = padding_mask.shape
        x = _scatter_preserved(preserve_embed, preserve_ids, mask_token, length)
        x = x + self.position_table(int(round(math.sqrt(length - 1)))).unsqueeze(0)
        return x, padding_mask, self.rel_bias(self.rp_bucket, None, length)


ADAPTERS = {"text": OnePeaceTextAdapter, "image": OnePeaceVisionAdapter, "audio": OnePeaceAudioAdapter}


# ---------------------------------------------------------------------------------------------------------------------
# fusion layers
# ---------------------------------------------------------------------------------------------------------------------
def eager_attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Plain attention: (B, H, L, d) inputs, additive float mask (B|1, H, L, L); returns (B, L, H, d), weights."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    out = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return out, weights


class OnePeaceAttention(nn.Module):
    """Shared multi-head attention: ``k_proj`` without bias, Sub-LN (magneto) before ``out_proj``."""

    def __init__(self, config: OnePeaceConfig, hidden_size: int, num_heads: int):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.scaling = self.head_dim ** -0.5
        self.is_causal = False
        self.attention_dropout = config.attention_dropout
        self.q_proj = nn.Linear(hidden_size, hidden_size, bias=True)
        self.k_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.v_proj = nn.Linear(hidden_size, hidden_size, bias=True)
        self.ln = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps) if config.magneto_scale_attn else None
        self.out_proj = nn.Linear(hidden_size, hidden_size, bias=True)

    def forward(self, hidden_states, attention_bias=None, output_attentions=False):
        bsz, length, dim = hidden_states.shape
        shape = (bsz, length, self.num_heads, self.head_dim)
        q = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        k = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        v = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        # read at call time, so model.set_attn_implementation(...) takes effect on a built model
        impl = self.config._attn_implementation or "eager"
        if output_attentions:
            impl = "eager"  # only the eager kernel returns probabilities
        attn_fn = eager_attention_forward
        if impl != "eager":
            attn_fn = ALL_ATTENTION_FUNCTIONS.get_interface(impl, eager_attention_forward)
        if attention_bias is not None:
            attention_bias = attention_bias.to(q.dtype)
        out, weights = attn_fn(self, q, k, v, attention_bias, dropout=self.attention_dropout if self.training else 0.0,
                               scaling=self.scaling, is_causal=False)
        out = out.reshape(bsz, length, dim)
        if self.ln is not None:
            out = self.ln(out)
        return self.out_proj(out), weights


class OnePeaceGeGLUFFN(nn.Module):
    """GeGLU (``wi_0``, ``wi_1``, no bias) -> dropout -> LayerNorm (scale_fc) -> Linear back to the model width."""

    def __init__(self, config: OnePeaceConfig, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.wi_0 = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.wi_1 = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.dropout = nn.Dropout(config.activation_dropout)
        self.ln = nn.LayerNorm(intermediate_size, eps=config.layer_norm_eps) if config.scale_fc else None
        self.fc_out = nn.Linear(intermediate_size, hidden_size)

    def forward(self, x):
        x = self.dropout(F.gelu(self.wi_0(x)) * self.wi_1(x))
        if self.ln is not None:
            x = self.ln(x)
        return self.fc_out(x)


def drop_path(x: torch.Tensor, prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample of a (B, L, D) residual branch."""
    if prob == 0.0 or not training:
        return x
    keep = 1.0 - prob
    mask = x.new_empty(x.shape[0], 1, 1).bernoulli_(keep)
    return x * mask / keep


class OnePeaceFusionLayer(nn.Module):
    """Pre-LN block: shared attention + modality-routed GeGLU FFN, each residual with LayerScale and drop-path."""

    def __init__(self, config: OnePeaceConfig, hidden_size, num_heads, intermediate_size, modalities, drop_path_rate):
        super().__init__()
        eps = config.layer_norm_eps
        self.self_attn_layer_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.self_attn = OnePeaceAttention(config, hidden_size, num_heads)
        self.final_layer_norm = nn.LayerNorm(hidden_size, eps=eps)
        for m in modalities:
            setattr(self, f"{m}_ffn", OnePeaceGeGLUFFN(config, hidden_size, intermediate_size))
        self.modalities = tuple(modalities)
        self.dropout = config.hidden_dropout_prob
        self.drop_path_rate = drop_path_rate
        if config.layer_scale_init_value > 0:
            self.gamma_1 = nn.Parameter(torch.full((hidden_size,), float(config.layer_scale_init_value)))
            self.gamma_2 = nn.Parameter(torch.full((hidden_size,), float(config.layer_scale_init_value)))
        else:
            self.gamma_1 = self.gamma_2 = None

    def _residual(self, x, residual, gamma):
        x = F.dropout(x, p=self.dropout, training=self.training)
        if gamma is not None:
            x = gamma * x
        return residual + drop_path(x, self.drop_path_rate, self.training)

    def forward(self, hidden_states, attention_bias, segments, output_attentions=False):
        """``segments``: list of ``(modality, start, end)`` slices of the sequence, each sent to its own FFN."""
        attn_out, weights = self.self_attn(self.self_attn_layer_norm(hidden_states), attention_bias,
                                           output_attentions=output_attentions)
        hidden_states = self._residual(attn_out, hidden_states, self.gamma_1)
        normed = self.final_layer_norm(hidden_states)
        if len(segments) == 1:
            ffn_out = getattr(self, f"{segments[0][0]}_ffn")(normed)
        else:
            ffn_out = torch.cat([getattr(self, f"{m}_ffn")(normed[:, s:e]) for m, s, e in segments], dim=1)
        return self._residual(ffn_out, hidden_states, self.gamma_2), weights


class OnePeaceFusionEncoder(nn.Module):
    """Fusion layers + a final LayerNorm per modality."""

    def __init__(self, config: OnePeaceConfig, hidden_size, num_layers, num_heads, intermediate_size, drop_path_rate):
        super().__init__()
        modalities = config.modalities
        rates = [drop_path_rate * i / (num_layers - 1) for i in range(num_layers)] if num_layers > 1 else [0.0]
        self.layers = nn.ModuleList([
            OnePeaceFusionLayer(config, hidden_size, num_heads, intermediate_size, modalities, rates[i])
            for i in range(num_layers)])
        for m in modalities:
            setattr(self, f"{m}_layer_norm", nn.LayerNorm(hidden_size, eps=config.layer_norm_eps))
        self.num_heads = num_heads

    def forward(self, segments_in, output_hidden_states=False, output_attentions=False):
        """``segments_in``: list of ``(modality, x (B, L, D), padding_mask (B, L), bias list)``.

        Returns ``(hidden (B, sum L, D), padding_mask, segments, all_hidden_states, all_attentions)``.
        """
        xs, pads, segments, start = [], [], [], 0
        for m, x, pad, _ in segments_in:
            xs.append(x)
            pads.append(pad)
            segments.append((m, start, start + x.shape[1]))
            start += x.shape[1]
        x = torch.cat(xs, dim=1) if len(xs) > 1 else xs[0]
        padding_mask = torch.cat(pads, dim=1) if len(pads) > 1 else pads[0]
        bsz, length, _ = x.shape
        has_pads = bool(padding_mask.any())
        if has_pads:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        num_tables = max(len(b) for *_, b in segments_in)
        neg = torch.finfo(x.dtype).min
        biases = []
        for t in range(num_tables):
            if len(segments_in) == 1:
                bias = segments_in[0][3][t]
                bias = bias.expand(bsz, -1, -1, -1) if has_pads else bias
            else:
                bias = x.new_zeros(bsz, self.num_heads, length, length)
                for (m, s, e), (_, _, _, blist) in zip(segments, segments_in):
                    bias[:, :, s:e, s:e] = blist[t]
            if has_pads:
                bias = bias.masked_fill(padding_mask[:, None, None, :], neg)
            biases.append(bias)
        all_hidden, all_attn = [], []
        for i, layer in enumerate(self.layers):
            if output_hidden_states:
                all_hidden.append(x)
            x, w = layer(x, biases[i if len(biases) > 1 else 0], segments, output_attentions=output_attentions)
            if output_attentions:
                all_attn.append(w)
        outs = [getattr(self, f"{m}_layer_norm")(x[:, s:e]) for m, s, e in segments]
        x = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
        if output_hidden_states:
            all_hidden.append(x)
        return x, padding_mask, segments, tuple(all_hidden) or None, tuple(all_attn) or None


# ---------------------------------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class OnePeaceModelOutput(ModelOutput):
    """Per-modality outputs of the fusion encoder (CLS at position 0 of each modality).

    ``*_padding_mask`` are ``True`` at padding (including the CLS slot, which is never padding).
    """

    last_hidden_state: torch.FloatTensor | None = None
    text_last_hidden_state: torch.FloatTensor | None = None
    image_last_hidden_state: torch.FloatTensor | None = None
    audio_last_hidden_state: torch.FloatTensor | None = None
    text_padding_mask: torch.BoolTensor | None = None
    image_padding_mask: torch.BoolTensor | None = None
    audio_padding_mask: torch.BoolTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class OnePeaceOutput(ModelOutput):
    """Retrieval outputs: logits between every pair of given modalities and the normalised embeddings."""

    loss: torch.FloatTensor | None = None
    logits_per_audio: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    logits_per_image: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    audio_embeds: torch.FloatTensor | None = None
    image_embeds: torch.FloatTensor | None = None
    text_model_output: BaseModelOutputWithPooling | None = None
    audio_model_output: BaseModelOutputWithPooling | None = None
    image_model_output: BaseModelOutputWithPooling | None = None

    def to_tuple(self):
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in self.values())


# ---------------------------------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------------------------------
# The Auto classes of this model type, as ``import hf_alm`` registers them (hf_alm/auto reads this mapping). A saved
# folder names all of them in ``auto_map`` whichever class was saved, so that with ``trust_remote_code=True`` and no
# hf-alm installed a classifier folder also loads with ``AutoModel`` (its encoder), as it does with hf-alm.
AUTO_CLASS_NAMES = {"AutoModel": "OnePeaceModelWithProjection", "AutoModelForAudioClassification": "OnePeaceForAudioClassification",
                     "AutoModelForPreTraining": "OnePeaceForPreTraining"}


class OnePeacePreTrainedModel(PreTrainedModel):
    config_class = OnePeaceConfig
    config: OnePeaceConfig
    base_model_prefix = "one_peace"
    main_input_name = "input_values"
    input_modalities = ("audio", "text", "image")
    supports_gradient_checkpointing = False
    _no_split_modules = ["OnePeaceFusionLayer"]
    _supports_sdpa = True
    _supports_attention_backend = True

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, with every Auto class of the model type in ``auto_map`` (the saved
        class keeps its own entry: a tokenizer folder's ``AutoModel`` stays the tokenizer)."""
        if getattr(type(self), "_auto_class", None) is not None:
            module = type(self).__module__.rsplit(".", 1)[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            for auto_name, class_name in AUTO_CLASS_NAMES.items():
                auto_map.setdefault(auto_name, f"{module}.{class_name}")
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            _trunc_normal(module.weight, std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, OnePeacePositionConv1d):  # torch's default Conv1d init, as the original
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            fan_in = module.weight.shape[1] * module.weight.shape[2]
            init.uniform_(module.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        elif isinstance(module, nn.Conv1d):
            init.kaiming_normal_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            if module.weight is not None:
                init.ones_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            _trunc_normal(module.weight, std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, OnePeaceRelativeBias):
            for table in module.rel_pos_tables:
                init.zeros_(table.weight)
        if isinstance(module, (OnePeaceAudioAdapter, OnePeaceTextAdapter, OnePeaceVisionAdapter)):
            init.copy_(module.rp_bucket, module.make_bucket(getattr(self.config, {
                OnePeaceAudioAdapter: "audio_config", OnePeaceTextAdapter: "text_config",
                OnePeaceVisionAdapter: "vision_config"}[type(module)])))
            for name in ("cls_embedding", "cls_pos_embed", "mask_embedding", "pos_embed"):
                if hasattr(module, name):
                    _trunc_normal(getattr(module, name), std)
        elif isinstance(module, OnePeaceFusionLayer) and module.gamma_1 is not None:
            init.constant_(module.gamma_1, self.config.layer_scale_init_value)
            init.constant_(module.gamma_2, self.config.layer_scale_init_value)
        elif isinstance(module, (OnePeaceModelWithProjection, OnePeaceForPreTraining)):
            init.constant_(module.logit_scale, math.log(self.config.logit_scale_init_value))
            if isinstance(module, OnePeaceForPreTraining):
                for m in self.config.modalities:
                    _trunc_normal(getattr(module, f"{m}_mask_token"), std)
        elif isinstance(module, OnePeaceAttentionPooling):
            _trunc_normal(module.q, std)


class OnePeaceEncoderStack(nn.Module):
    """Adapters + fusion encoder of one width (the main model, or the pretraining decoder)."""

    def __init__(self, config: OnePeaceConfig, decoder: bool = False):
        super().__init__()
        if decoder:
            hidden, layers, heads, inter = (config.decoder_hidden_size, config.decoder_num_hidden_layers,
                                            config.decoder_num_attention_heads, config.decoder_intermediate_size)
            dpr = 0.0
        else:
            hidden, layers, heads, inter = (config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
                                            config.intermediate_size)
            dpr = config.drop_path_rate
        num_tables = 1 if config.share_rel_pos_table else layers
        for m in config.modalities:
            setattr(self, f"{m}_adapter", ADAPTERS[m](config, hidden, heads, num_tables, decoder=decoder))
        self.fusion_model = OnePeaceFusionEncoder(config, hidden, layers, heads, inter, dpr)
        self.modalities = config.modalities

    def adapter(self, modality):
        if modality not in self.modalities:
            raise ValueError(f"this ONE-PEACE model has no {modality} branch (use_{modality}_moe=False)")
        return getattr(self, f"{modality}_adapter")


class OnePeaceModel(OnePeacePreTrainedModel):
    """The fusion encoder with its adapters; returns per-modality hidden states.

    Give any of text (``input_ids`` + ``attention_mask``), image (``pixel_values``) and audio (``input_values`` +
    ``audio_attention_mask``): they are encoded *jointly* (concatenated in the order text, image, audio, as the
    original ``vl`` / ``al`` encoder types); each modality's units go to its own FFN.
    """

    def __init__(self, config: OnePeaceConfig):
        super().__init__(config)
        self.encoder = OnePeaceEncoderStack(config)
        self.post_init()

    def _text_adapter(self) -> OnePeaceTextAdapter:
        # NotImplementedError is what transformers expects from a model without token embeddings
        # (enable_input_require_grads and get_output_embeddings skip such a model)
        if "text" not in self.encoder.modalities:
            raise NotImplementedError(
                f"{type(self).__name__} has no text branch (use_text_moe=False), so it has no input token embeddings")
        return self.encoder.text_adapter

    def get_input_embeddings(self) -> nn.Embedding:
        """The text adapter's token embedding (``resize_token_embeddings`` resizes it and ``text_config``)."""
        return self._text_adapter().embed_tokens

    def set_input_embeddings(self, value: nn.Embedding):
        self._text_adapter().embed_tokens = value

    def _embed(self, input_ids=None, attention_mask=None, pixel_values=None, input_values=None,
               audio_attention_mask=None, text_preserve_ids=None, image_preserve_ids=None, audio_preserve_ids=None,
               audio_features=None):
        segments = []
        if input_ids is not None:
            segments.append(("text", *self.encoder.adapter("text")(input_ids, attention_mask, text_preserve_ids)))
        if pixel_values is not None:
            segments.append(("image", *self.encoder.adapter("image")(pixel_values, image_preserve_ids)))
        if input_values is not None:
            segments.append(("audio", *self.encoder.adapter("audio")(input_values, audio_attention_mask,
                                                                      audio_preserve_ids, audio_features)))
        if not segments:
            raise ValueError("give at least one of input_ids, pixel_values, input_values")
        return segments

    def forward(self, input_ids=None, attention_mask=None, pixel_values=None, input_values=None,
                audio_attention_mask=None, text_preserve_ids=None, image_preserve_ids=None, audio_preserve_ids=None,
                audio_features=None, output_hidden_states=None, output_attentions=None, return_dict=None, **kwargs):
        r"""
        input_ids (`torch.LongTensor` of shape `(batch, tokens)`): BPE ids *without* CLS (the adapter prepends it).
        attention_mask (`torch.Tensor` of shape `(batch, tokens)`): text mask, 1 = real token.
        pixel_values (`torch.FloatTensor` of shape `(batch, 3, S, S)`): normalised images.
        input_values (`torch.FloatTensor` of shape `(batch, samples)`): normalised 16 kHz waveforms.
        audio_attention_mask (`torch.Tensor` of shape `(batch, samples)`): waveform mask, 1 = real sample.
        *_preserve_ids (`torch.LongTensor` of shape `(batch, K)`): for masked pretraining, the positions to keep
            (0 = CLS, -1 = padding); only those units are encoded.
        audio_features (`torch.FloatTensor` of shape `(batch, frames, hidden)`): precomputed
            ``audio_adapter.extract_features(input_values)`` (shared by the passes of one pretraining step).
        """
        output_hidden_states = (output_hidden_states if output_hidden_states is not None
                                else self.config.output_hidden_states)
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        segments = self._embed(input_ids, attention_mask, pixel_values, input_values, audio_attention_mask,
                               text_preserve_ids, image_preserve_ids, audio_preserve_ids, audio_features)
        x, padding_mask, spans, hidden, attn = self.encoder.fusion_model(
            segments, output_hidden_states=bool(output_hidden_states), output_attentions=bool(output_attentions))
        fields = {}
        for m, s, e in spans:
            fields[f"{m}_last_hidden_state"] = x[:, s:e]
            fields[f"{m}_padding_mask"] = padding_mask[:, s:e]
        out = OnePeaceModelOutput(last_hidden_state=x, hidden_states=hidden, attentions=attn, **fields)
        return out if return_dict else out.to_tuple()


def _pooling_output(hidden, padding_mask, embeds, model_out):
    return BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=embeds,
                                      hidden_states=model_out.hidden_states, attentions=model_out.attentions)


class OnePeaceModelWithProjection(OnePeacePreTrainedModel):
    """ONE-PEACE for retrieval / zero-shot classification: CLS -> ``{m}_proj`` -> L2-normalised embedding.

    ``forward`` encodes each given modality *separately* (dual-encoder style) and returns ``logits_per_audio``
    (audio x text), ``logits_per_image`` (image x text) and their transposes, scaled by the clamped logit scale, so
    ``pipeline("zero-shot-audio-classification")`` works.
    """

    def __init__(self, config: OnePeaceConfig):
        super().__init__(config)
        self.one_peace = OnePeaceModel(config)
        for m in config.modalities:
            setattr(self, f"{m}_proj", nn.Linear(config.hidden_size, config.projection_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(config.logit_scale_init_value)))
        self.post_init()

    def logit_scale_exp(self) -> torch.Tensor:
        """``exp(logit_scale)`` with the scale clamped to [0, log(logit_scale_max)] (gradient stops when clamped)."""
        return self.logit_scale.clamp(0.0, math.log(self.config.logit_scale_max)).exp()

    def _features(self, modality, output_hidden_states=None, output_attentions=None, **inputs):
        out = self.one_peace(output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                             return_dict=True, **inputs)  # a dict whatever config.return_dict says
        hidden = out[f"{modality}_last_hidden_state"]
        embeds = F.normalize(getattr(self, f"{modality}_proj")(hidden[:, 0]), dim=-1)
        return _pooling_output(hidden, out[f"{modality}_padding_mask"], embeds, out)

    def get_text_features(self, input_ids, attention_mask=None, output_hidden_states=None, output_attentions=None,
                          **kwargs):
        """Text embeddings: ``BaseModelOutputWithPooling`` whose ``pooler_output`` is the normalised projection."""
        return self._features("text", input_ids=input_ids, attention_mask=attention_mask,
                              output_hidden_states=output_hidden_states, output_attentions=output_attentions)

    def get_audio_features(self, input_values, attention_mask=None, output_hidden_states=None,
                           audio_attention_mask=None, output_attentions=None, **kwargs):
        """Audio embeddings; ``attention_mask`` (or ``audio_attention_mask``, as ``OnePeaceProcessor`` names it) is
        the waveform mask. ``pooler_output`` = normalised projection."""
        if attention_mask is None:
            attention_mask = audio_attention_mask
        return self._features("audio", input_values=input_values, audio_attention_mask=attention_mask,
                              output_hidden_states=output_hidden_states, output_attentions=output_attentions)

    def get_image_features(self, pixel_values, output_hidden_states=None, output_attentions=None, **kwargs):
        """Image embeddings; ``pooler_output`` = normalised projection."""
        return self._features("image", pixel_values=pixel_values, output_hidden_states=output_hidden_states,
                              output_attentions=output_attentions)

    def forward(self, input_ids=None, attention_mask=None, input_values=None, audio_attention_mask=None,
                pixel_values=None, return_loss=None, output_hidden_states=None, output_attentions=None,
                return_dict=None, **kwargs):
        r"""
        input_ids / attention_mask: text; input_values / audio_attention_mask: audio; pixel_values: images.
        return_loss (`bool`): symmetric InfoNCE between the given non-text modality and text (pairs on the diagonal).
        output_attentions (`bool`): per-modality attention weights in ``{m}_model_output.attentions``.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        text = audio = image = None
        if input_ids is not None:
            text = self.get_text_features(input_ids, attention_mask, output_hidden_states,
                                          output_attentions=output_attentions)
        if input_values is not None:
            audio = self.get_audio_features(input_values, audio_attention_mask, output_hidden_states,
                                            output_attentions=output_attentions)
        if pixel_values is not None:
            image = self.get_image_features(pixel_values, output_hidden_states, output_attentions=output_attentions)
        scale = self.logit_scale_exp()
        logits_per_audio = logits_per_text = logits_per_image = loss = None
        losses = []
        if text is not None:
            if audio is not None:
                logits_per_audio = scale * audio.pooler_output @ text.pooler_output.t()
                logits_per_text = logits_per_audio.t()
                losses.append(logits_per_audio)
            if image is not None:
                logits_per_image = scale * image.pooler_output @ text.pooler_output.t()
                if logits_per_text is None:
                    logits_per_text = logits_per_image.t()
                losses.append(logits_per_image)
        if return_loss:
            if not losses:
                raise ValueError("return_loss needs text and at least one of audio / image")
            total = 0.0
            for logits in losses:
                if logits.shape[0] != logits.shape[1]:
                    raise ValueError(f"return_loss needs paired batches, got logits of shape {tuple(logits.shape)}")
                target = torch.arange(logits.shape[0], device=logits.device)
                total = total + (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
            loss = total / len(losses)
        # built in one go, so that to_tuple() follows the field order (loss, logits_per_audio, ...)
        out = OnePeaceOutput(loss=loss, logits_per_audio=logits_per_audio, logits_per_text=logits_per_text,
                             logits_per_image=logits_per_image,
                             text_embeds=text.pooler_output if text is not None else None,
                             audio_embeds=audio.pooler_output if audio is not None else None,
                             image_embeds=image.pooler_output if image is not None else None,
                             text_model_output=text, audio_model_output=audio, image_model_output=image)
        return out if return_dict else out.to_tuple()


class OnePeaceAttentionPooling(nn.Module):
    """Multi-head attention pooling with a learned query (no score scaling, as in the original head)."""

    def __init__(self, hidden_size, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.q = nn.Parameter(torch.zeros(1, 1, num_heads, self.head_dim))
        self.k_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.v_proj = nn.Linear(hidden_size, hidden_size, bias=True)
        self.out_proj = nn.Linear(hidden_size, hidden_size, bias=True)

    def forward(self, x, padding_mask):
        bsz, length, dim = x.shape
        k = self.k_proj(x).view(bsz, length, self.num_heads, self.head_dim)
        v = self.v_proj(x).view(bsz, length, self.num_heads, self.head_dim)
        scores = torch.einsum("hd,blhd->bhl", self.q[0, 0], k)
        scores = scores.masked_fill(padding_mask[:, None, :], float("-inf"))
        probs = F.softmax(scores.float(), dim=-1).to(x.dtype)
        pooled = torch.einsum("bhl,blhd->bhd", probs, v).reshape(bsz, dim)
        return self.out_proj(pooled)


class OnePeaceClassificationHead(nn.Module):
    """Attention pooling over the non-CLS units -> LN -> Linear(D, rD) -> LN -> GELU -> Linear(rD, C)."""

    def __init__(self, config: OnePeaceConfig):
        super().__init__()
        dim = config.hidden_size
        inner = int(dim * config.classifier_head_scale_ratio)
        self.attn_pooling = OnePeaceAttentionPooling(dim, config.num_attention_heads)
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.dense = nn.Linear(dim, inner)
        self.dense_norm = nn.LayerNorm(inner, eps=config.layer_norm_eps)
        self.classifier = nn.Linear(inner, config.num_labels)

    def forward(self, hidden, padding_mask):
        x = self.norm(self.attn_pooling(hidden[:, 1:], padding_mask[:, 1:]))
        return self.classifier(F.gelu(self.dense_norm(self.dense(x))))


class OnePeaceForAudioClassification(OnePeacePreTrainedModel):
    """Audio classification: fusion encoder on audio -> attention-pooling head (``classify_head`` of ONE-PEACE)."""

    def __init__(self, config: OnePeaceConfig):
        super().__init__(config)
        self.one_peace = OnePeaceModel(config)
        self.classify_head = OnePeaceClassificationHead(config)
        self.post_init()

    def forward(self, input_values, attention_mask=None, labels=None, output_hidden_states=None,
                output_attentions=None, return_dict=None, **kwargs):
        r"""
        input_values (`(batch, samples)`), attention_mask (waveform mask, 1 = real sample).
        labels (`(batch,)` class ids, or `(batch, num_labels)` multi-hot for multi-label).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        out = self.one_peace(input_values=input_values, audio_attention_mask=attention_mask,
                             output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                             return_dict=True)  # a dict whatever config.return_dict says
        logits = self.classify_head(out.audio_last_hidden_state, out.audio_padding_mask)
        loss = None
        if labels is not None:
            problem = self.config.problem_type
            if problem is None:
                problem = "multi_label_classification" if labels.dim() == 2 and labels.dtype.is_floating_point \
                    else "single_label_classification"
            if problem == "multi_label_classification":
                loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
            elif problem == "regression":
                loss = F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
            else:
                loss = F.cross_entropy(logits, labels.long())
        result = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                          attentions=out.attentions)
        return result if return_dict else result.to_tuple()


class OnePeaceForPreTraining(OnePeacePreTrainedModel):
    """Encoder + retrieval projections + the denoising-contrast decoder (mask tokens, ``decoder_{m}_embed``,
    ``{m}_mask_head``). The losses live in ``hf_alm.training.one_peace``; this class only computes features.

    Its encoder / projection / logit-scale weights have the same names as in ``OnePeaceModelWithProjection``, so a
    pretraining checkpoint loads there directly (the decoder weights are ignored).
    """

    def __init__(self, config: OnePeaceConfig):
        super().__init__(config)
        self.one_peace = OnePeaceModel(config)
        for m in config.modalities:
            setattr(self, f"{m}_proj", nn.Linear(config.hidden_size, config.projection_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(config.logit_scale_init_value)))
        self.decoder = OnePeaceEncoderStack(config, decoder=True)
        for m in config.modalities:
            setattr(self, f"decoder_{m}_embed", nn.Linear(config.hidden_size, config.decoder_hidden_size))
            setattr(self, f"{m}_mask_token", nn.Parameter(torch.zeros(1, config.decoder_hidden_size)))
            setattr(self, f"{m}_mask_head", nn.Linear(config.decoder_hidden_size, config.hidden_size))
        self.post_init()

    logit_scale_exp = OnePeaceModelWithProjection.logit_scale_exp

    def embed(self, modality, hidden):
        """CLS of ``hidden`` -> ``{m}_proj`` -> L2 normalise."""
        return F.normalize(getattr(self, f"{modality}_proj")(hidden[:, 0]), dim=-1)

    def encode(self, **inputs) -> OnePeaceModelOutput:
        return self.one_peace(**{"return_dict": True, **inputs})  # decode() reads it by field name

    def decode(self, enc: OnePeaceModelOutput, full_padding_masks: dict, preserve_ids: dict) -> dict:
        """Decoder pass over full-length sequences: visible units from ``enc`` (mapped by ``decoder_{m}_embed``) at
        ``preserve_ids[m]``, ``{m}_mask_token`` elsewhere; returns ``{m: (B, L_m, hidden_size)}`` predictions."""
        segments = []
        for m in MODALITIES:
            if m not in preserve_ids:
                continue
            hidden = enc[f"{m}_last_hidden_state"]
            embed = getattr(self, f"decoder_{m}_embed")(hidden)
            adapter = self.decoder.adapter(m)
            segments.append((m, *adapter.forward_decoder(embed, preserve_ids[m], getattr(self, f"{m}_mask_token"),
                                                         full_padding_masks[m])))
        x, _, spans, _, _ = self.decoder.fusion_model(segments)
        return {m: getattr(self, f"{m}_mask_head")(x[:, s:e]) for m, s, e in spans}

    def forward(self, pretraining_step=None, batch=None, **inputs):
        """Encoder features (as ``OnePeaceModel.forward``); see ``decode`` for the decoder.

        ``pretraining_step(model, batch)``: run a whole pretraining step (several encoder / decoder passes) *inside*
        ``forward``, so that a ``DistributedDataParallel`` wrapper sees one forward per step and synchronises the
        gradients (``hf_alm.training.one_peace`` does this).
        """
        if pretraining_step is not None:
            return pretraining_step(self, batch)
        return self.one_peace(**inputs)


OnePeaceConfig.register_for_auto_class()
OnePeaceModel.register_for_auto_class("AutoModel")
OnePeaceModelWithProjection.register_for_auto_class("AutoModel")
OnePeaceForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")
OnePeaceForPreTraining.register_for_auto_class("AutoModelForPreTraining")

__all__ = [
    "OnePeaceForAudioClassification",
    "OnePeaceForPreTraining",
    "OnePeaceModel",
    "OnePeaceModelWithProjection",
    "OnePeacePreTrainedModel",
    "conv_output_lengths",
    "make_image_bucket_position",
    "make_token_bucket_position",
]
