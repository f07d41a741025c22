"""Contrastive losses for audio-text dual encoders, with negatives gathered across processes.

* :func:`contrastive_loss` -- the symmetric InfoNCE of CLIP/CLAP: ``0.5 * (CE(S, I) + CE(S^T, I))`` with
  ``S = logit_scale * A @ T^T`` over the *global* batch (all processes), so every process sees the negatives of all
  the others.
* :func:`tact_weighted_loss` -- the TACT-style weighted InfoNCE that TeminAL-style stage B uses (``models.md`` section
  1.3, "Test of Time", Bagad et al., CVPR 2023): the batch holds ``n`` originals followed by their ``n`` time-reversed
  versions, in the same order; the logits between an original and a reversed item get ``+log(alpha_same)`` when the
  reversed item is the original's own reversal and ``+log(alpha_cross)`` when it is another sample's reversal. With
  ``alpha_same = alpha_cross = 1`` this is exactly :func:`contrastive_loss`. The TeminAL paper's own "TNCE" loss is
  not public; this is our documented, configurable stand-in.

Distributed semantics (``torch.distributed`` initialised with more than one process, e.g. ``accelerate launch
--num_processes 2 --cpu`` or ``torchrun``): each process gathers all embeddings with :func:`all_gather_with_grad`,
whose backward sums the gradient of every process for the local shard. Every process then computes the loss of the
*whole* global batch (the returned value is identical on every process and equal to the single-process loss of the
concatenated batch); the gradient each process gets for its own shard is ``world_size`` times its share, which the
gradient averaging of DistributedDataParallel turns back into exactly the single-process gradient.

Logit-scale cap: these losses take the multiplier they are given and clamp nothing. The hf-alm models clamp it inside
``forward`` (CLAP-TeminAL ``exp(logit_scale_a).clamp(max=logit_scale_max)``, ONE-PEACE
``logit_scale.clamp(0, log(logit_scale_max)).exp()``), so once the parameter is past the cap its gradient is zero:
it stops learning there (AdamW's momentum may still carry it a little further) and no gradient brings it back below
the cap. open_clip and LAION-CLAP instead clamp the *parameter* in place after every optimizer step
(``with torch.no_grad(): model.logit_scale.clamp_(0, math.log(100))``): it sits exactly at the cap and keeps
receiving gradients that can pull it down again. The two agree until the scale first reaches the cap; for the
open_clip behaviour, clamp the parameter after ``optimizer.step()``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "all_gather_with_grad",
    "contrastive_loss",
    "contrastive_logits",
    "distributed_world",
    "tact_logit_offsets",
    "tact_weighted_loss",
]


def distributed_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group; ``(0, 1)`` when not distributed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 (shards of possibly different lengths) with a gradient for the local shard.

    Backward: the gradient of the gathered tensor is summed over processes (``all_reduce``) and the rows of the local
    shard are returned -- the local shard influenced the loss of every process.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor):
        world = torch.distributed.get_world_size()
        rank = torch.distributed.get_rank()
        local_n = torch.tensor([tensor.shape[0]], device=tensor.device, dtype=torch.long)
        sizes = [torch.zeros_like(local_n) for _ in range(world)]
        torch.distributed.all_gather(sizes, local_n)
        sizes = [int(s.item()) for s in sizes]
        max_n = max(sizes)
        padded = tensor.contiguous()
        if tensor.shape[0] < max_n:
            pad = tensor.new_zeros((max_n - tensor.shape[0],) + tuple(tensor.shape[1:]))
            padded = torch.cat([padded, pad], dim=0)
        chunks = [torch.empty_like(padded) for _ in range(world)]
        torch.distributed.all_gather(chunks, padded)
        ctx.sizes = sizes
        ctx.rank = rank
        return torch.cat([chunk[:n] for chunk, n in zip(chunks, sizes)], dim=0)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad = grad_output.contiguous().clone()
        torch.distributed.all_reduce(grad, op=torch.distributed.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (dim 0) from every process, in rank order; differentiable w.r.t. the local shard.

    Shards may have different lengths (e.g. a short last batch). Without an initialised process group (or with one
    process) ``tensor`` is returned unchanged.
    """
    _, world = distributed_world()
    if world == 1:
        return tensor
    return _AllGatherWithGrad.apply(tensor)


def _check_embeddings(audio_emb: torch.Tensor, text_emb: torch.Tensor) -> None:
    if audio_emb.ndim != 2 or text_emb.ndim != 2:
        raise ValueError(
            f"embeddings must be 2-D (batch, dim); got audio {tuple(audio_emb.shape)} and text {tuple(text_emb.shape)}"
        )
    if audio_emb.shape != text_emb.shape:
        raise ValueError(
            "audio and text embeddings must pair up row by row (same shape); got audio "
            f"{tuple(audio_emb.shape)} and text {tuple(text_emb.shape)}"
        )


def _as_scale(logit_scale, ref: torch.Tensor) -> torch.Tensor:
    """``logit_scale`` is the multiplier (already exponentiated, as CLIP's ``logit_scale.exp()``)."""
    scale = torch.as_tensor(logit_scale, dtype=ref.dtype, device=ref.device)
    if scale.numel() != 1:
        raise ValueError(f"logit_scale must be a scalar; got shape {tuple(scale.shape)}")
    return scale.reshape(())


def contrastive_logits(audio_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale, *, gather: bool = True):
    """Global ``(logits_per_audio, logits_per_text)`` (``N x N`` with ``N`` the global batch) and the global rows.

    Returns ``(logits_per_audio, audio_all, text_all)``; ``logits_per_text`` is ``logits_per_audio.T``.
    """
    _check_embeddings(audio_emb, text_emb)
    scale = _as_scale(logit_scale, audio_emb)
    if gather:
        audio_all = all_gather_with_grad(audio_emb)
        text_all = all_gather_with_grad(text_emb)
    else:
        audio_all, text_all = audio_emb, text_emb
    return scale * audio_all @ text_all.t(), audio_all, text_all


def contrastive_loss(audio_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale, *, label_smoothing: float = 0.0,
                     gather: bool = True) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP/CLAP): row ``i`` of ``audio_emb`` pairs with row ``i`` of ``text_emb``.

    Args:
        audio_emb, text_emb: ``(batch, dim)`` embeddings, normally L2-normalised (the loss does not renormalise, so
            it matches the logits the model reports).
        logit_scale: the multiplier of the cosine similarities (``model.logit_scale.exp()``, i.e. ``1 / tau``); a
            float or a 0-d tensor (gradients flow into it).
        label_smoothing: passed to ``torch.nn.functional.cross_entropy``.
        gather: gather the negatives of every process (see the module docstring). Ignored when not distributed.

    Returns:
        the scalar loss of the global batch, ``0.5 * (CE(S, I) + CE(S^T, I))``.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing}")
    logits, _, _ = contrastive_logits(audio_emb, text_emb, logit_scale, gather=gather)
    labels = torch.arange(logits.shape[0], device=logits.device)
    loss_a = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    loss_t = F.cross_entropy(logits.t(), labels, label_smoothing=label_smoothing)
    return 0.5 * (loss_a + loss_t)


def tact_logit_offsets(n_orig: int, *, alpha_same: float = 1.0, alpha_cross: float = 1.0, device=None,
                       dtype=torch.float32) -> torch.Tensor:
    """The ``2n x 2n`` additive logit offsets of the TACT-style loss for a batch ``[originals; reversals]``.

    Entry ``(i, j)`` is ``log(alpha_same)`` when ``i`` and ``j`` are an original and its own reversal, ``log(alpha_cross)``
    when one is an original and the other another sample's reversal, and ``0`` within the original block, within the
    reversed block (diagonal included).
    """
    for name, value in (("alpha_same", alpha_same), ("alpha_cross", alpha_cross)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0 (it is used as log({name})); got {value!r}")
    if n_orig < 1:
        raise ValueError(f"n_orig must be >= 1; got {n_orig}")
    n = int(n_orig)
    cross = torch.full((n, n), math.log(alpha_cross), device=device, dtype=dtype)
    cross.fill_diagonal_(math.log(alpha_same))
    zeros = torch.zeros((n, n), device=device, dtype=dtype)
    return torch.cat([torch.cat([zeros, cross], 1), torch.cat([cross, zeros], 1)], 0)


def tact_weighted_loss(audio_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale, *, n_orig: int,
                       alpha_same: float = 1.0, alpha_cross: float = 1.0, gather: bool = True) -> torch.Tensor:
    """TACT-style weighted InfoNCE over originals and their time-reversed versions (TeminAL-style stage B).

    The local batch is laid out as ``[originals (n_orig rows); reversals (n_orig rows, same order); extras]``: row
    ``n_orig + i`` is the time-reversed version of row ``i`` (clip with the two events swapped, caption with the
    order swapped); the optional extra rows (e.g. overlap or single-event clips) take part as ordinary items. With
    ``s_ij = logit_scale * <a_i, t_j>`` over the global batch (originals of every process first, then their
    reversals, then the extras), the loss is

        ``s'_ij = s_ij + log(alpha_same)``   if ``i`` / ``j`` are an original and its own reversal,
        ``s'_ij = s_ij + log(alpha_cross)``  if ``i`` / ``j`` are an original and another sample's reversal,
        ``s'_ij = s_ij`` otherwise (same block, or an extra), and ``L = 0.5 * (CE(s', I) + CE(s'^T, I))``.

    ``alpha > 1`` makes the reversed negatives weigh more in the softmax denominators (harder negatives); ``alpha = 1``
    gives plain :func:`contrastive_loss`.
    """
    _check_embeddings(audio_emb, text_emb)
    n_orig = int(n_orig)
    if n_orig < 1 or audio_emb.shape[0] < 2 * n_orig:
        raise ValueError(
            f"tact_weighted_loss expects at least 2 * n_orig rows (originals, then their reversals, then any extras) "
            f"and n_orig >= 1; got {audio_emb.shape[0]} rows for n_orig={n_orig}"
        )
    blocks = (slice(0, n_orig), slice(n_orig, 2 * n_orig), slice(2 * n_orig, audio_emb.shape[0]))
    if gather:
        audio_parts = [all_gather_with_grad(audio_emb[b]) for b in blocks]
        text_parts = [all_gather_with_grad(text_emb[b]) for b in blocks]
        audio_all, text_all = torch.cat(audio_parts, 0), torch.cat(text_parts, 0)
        n_global = audio_parts[0].shape[0]
    else:
        audio_all, text_all, n_global = audio_emb, text_emb, n_orig
    scale = _as_scale(logit_scale, audio_emb)
    logits = scale * audio_all @ text_all.t()
    offsets = tact_logit_offsets(n_global, alpha_same=alpha_same, alpha_cross=alpha_cross, device=logits.device,
                                 dtype=logits.dtype)
    n_extra = logits.shape[0] - 2 * n_global
    if n_extra:
        offsets = F.pad(offsets, (0, n_extra, 0, n_extra))
    logits = logits + offsets
    labels = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
