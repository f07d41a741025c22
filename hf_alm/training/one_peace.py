"""ONE-PEACE pretraining: masking, cross-modal contrast (CL), intra-modal denoising contrast (DCL), stage switch.

Objectives (``models.md`` §4.6, OFA-Sys criterions):

* **CL** -- symmetric InfoNCE between CLS embeddings of paired modalities (``hf_alm.training.losses.contrastive_loss``,
  label smoothing 0.1, negatives gathered across processes with a differentiable all-gather).
* **DCL** -- the student encodes only the *visible* units (``*_preserve_ids``); a small decoder fills the masked ones
  with a learned mask token; every masked unit's prediction must pick its own target among *all non-padded units of
  the local batch*, targets being the same model's features on the unmasked input (no gradient). L2-normalised
  features, logits x 2.5 (temperature 0.4), label smoothing 0.1 in the original's ``eps / (C - 1)`` form; CLS
  (position 0) excluded on both sides.
* Vision-language stage: ``L = CL + 0.5 DCL-L + 1.0 DCL-V + 0.5 DCL-VL(text) + 0.5 DCL-VL(image)``; the text and
  image teachers are the unimodal unmasked passes, the VL teacher the joint unmasked pass.
* Audio-language stage: ``L = CL + 1.0 DCL-A + 0.5 DCL-AL(text) + 0.5 DCL-AL(audio)``; the text side of CL is
  computed without gradient and the audio-only DCL target is the audio part of the *joint* audio-text pass.

Masking: audio span masking (``block_mask_1d``: spans of 5 frames, exactly ``int(T * 0.55)`` frames), whole-word
text masking (15 % of words alone, 40 % in pairs), random image patches (75 % alone, 68.75 % in pairs). Collators
draw masks from torch's global RNG, so ``accelerate``'s checkpoints restore them on resume.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hf_alm.modeling.one_peace.modeling_one_peace import conv_output_lengths

__all__ = [
    "ALCollator",
    "DCL_LOGIT_SCALE",
    "VLCollator",
    "al_pretrain_loss",
    "block_mask_1d",
    "denoising_contrast_loss",
    "freeze_for_audio_stage",
    "mask_to_preserve_ids",
    "random_mask",
    "smoothed_nll",
    "vl_pretrain_loss",
    "whole_word_mask",
]

DCL_LOGIT_SCALE = 2.5  # 1 / temperature 0.4


# ---------------------------------------------------------------------------------------------------------- masking
def block_mask_1d(length: int, mask_prob: float = 0.55, mask_length: int = 5, mask_prob_adjust: float = 0.1,
                  generator: torch.Generator | None = None) -> torch.BoolTensor:
    """Span mask over ``length`` frames with exactly ``int(length * mask_prob)`` frames masked.

    ``int(length * (mask_prob + mask_prob_adjust) / mask_length)`` centres are drawn uniformly (with replacement) and
    each masks ``mask_length`` frames around it (clipped at the edges); random frames are then unmasked / masked
    until the count is exact (data2vec's ``require_same_masks``).
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if not 0.0 <= mask_prob < 1.0:
        raise ValueError(f"mask_prob must be in [0, 1), got {mask_prob}")
    mask = torch.zeros(length, dtype=torch.bool)
    n_centres = int(length * (mask_prob + mask_prob_adjust) / mask_length)
    if n_centres > 0:
        centres = torch.randint(0, length, (n_centres,), generator=generator)
        offsets = torch.arange(mask_length) - mask_length // 2
        mask[(centres[:, None] + offsets[None, :]).clamp(0, length - 1).flatten()] = True
    target = int(length * mask_prob)
    n = int(mask.sum())
    if n > target:
        on = mask.nonzero().flatten()
        mask[on[torch.randperm(on.numel(), generator=generator)[: n - target]]] = False
    elif n < target:
        off = (~mask).nonzero().flatten()
        mask[off[torch.randperm(off.numel(), generator=generator)[: target - n]]] = True
    return mask


def random_mask(length: int, ratio: float, generator: torch.Generator | None = None) -> torch.BoolTensor:
    """``int(length * ratio)`` units masked uniformly at random (at least one kept visible)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    n = min(int(length * ratio), length - 1)
    mask = torch.zeros(length, dtype=torch.bool)
    mask[torch.randperm(length, generator=generator)[:n]] = True
    return mask


def whole_word_mask(word_ids: list, ratio: float, generator: torch.Generator | None = None) -> torch.BoolTensor:
    """Mask ``ceil(n_words * ratio)`` whole words; ``word_ids[i]`` is the word of token ``i`` (``None`` = special token,
    never masked), as a fast tokenizer's ``BatchEncoding.word_ids()`` gives."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    words = sorted({w for w in word_ids if w is not None})
    mask = torch.zeros(len(word_ids), dtype=torch.bool)
    if not words:
        return mask
    n = min(math.ceil(len(words) * ratio), len(words))
    chosen = {words[i] for i in torch.randperm(len(words), generator=generator)[:n].tolist()}
    for i, w in enumerate(word_ids):
        if w is not None and w in chosen:
            mask[i] = True
    return mask


def mask_to_preserve_ids(mask: torch.BoolTensor, padding: torch.BoolTensor) -> torch.LongTensor:
    """``(B, L)`` masked / padding flags (CLS at 0, never masked) -> ``(B, K)`` kept positions, -1 padded."""
    keep = ~mask & ~padding
    keep[:, 0] = True
    rows = [row.nonzero().flatten() for row in keep]
    width = max(r.numel() for r in rows)
    out = torch.full((mask.shape[0], width), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : r.numel()] = r
    return out


# ---------------------------------------------------------------------------------------------------------- losses
def smoothed_nll(lprobs: torch.Tensor, target: torch.Tensor, epsilon: float = 0.0) -> torch.Tensor:
    """Mean label-smoothed NLL as ONE-PEACE computes it: ``(1 - eps - eps_i) * nll + eps_i * sum(-lprobs)`` with
    ``eps_i = eps / (C - 1)``."""
    nll = -lprobs.gather(-1, target[:, None]).squeeze(-1)
    if epsilon == 0:
        return nll.mean()
    eps_i = epsilon / (lprobs.shape[-1] - 1)
    return ((1.0 - epsilon - eps_i) * nll + eps_i * -lprobs.sum(-1)).mean()


def denoising_contrast_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.BoolTensor,
                            padding: torch.BoolTensor | None = None, *, logit_scale: float = DCL_LOGIT_SCALE,
                            label_smoothing: float = 0.1) -> torch.Tensor:
    """DCL of one modality: ``student`` / ``teacher`` ``(B, L, D)`` over the full sequence (CLS at 0), ``mask`` True at
    masked units. Candidates: every non-padded non-CLS unit of the batch; target: the unit itself."""
    if student.shape != teacher.shape or mask.shape != student.shape[:2]:
        raise ValueError(f"student {tuple(student.shape)}, teacher {tuple(teacher.shape)} and mask "
                         f"{tuple(mask.shape)} must agree")
    dim = student.shape[-1]
    s = student[:, 1:].reshape(-1, dim)
    t = teacher.detach()[:, 1:].reshape(-1, dim)
    m = mask[:, 1:].reshape(-1)
    if padding is not None:
        keep = ~padding[:, 1:].reshape(-1)
        s, t, m = s[keep], t[keep], m[keep]
    idx = m.nonzero().flatten()
    if idx.numel() == 0:
        return student.sum() * 0.0
    s = F.normalize(s[idx].float(), dim=-1)
    t = F.normalize(t.float(), dim=-1)
    lprobs = F.log_softmax(logit_scale * s @ t.t(), dim=-1)
    return smoothed_nll(lprobs, idx, label_smoothing)


def _cl(model, a_emb, b_emb):
    """The cross-modal (aligning) contrast: symmetric InfoNCE without label smoothing. The original's criteria smooth
    only the denoising contrast (``atc_without_ls`` / ``itc_without_ls`` default to True), matching the paper's L_CL."""
    from hf_alm.training.losses import contrastive_loss

    return contrastive_loss(a_emb, b_emb, model.logit_scale_exp())


def _unwrap(model):
    return getattr(model, "module", model)


@dataclass
class LossWeights:
    text: float = 0.5
    image: float = 1.0
    audio: float = 1.0
    pair_text: float = 0.5
    pair_other: float = 0.5


def _through_forward(model, impl, batch, **kw):
    """Run ``impl(unwrapped, batch, **kw)`` inside the model's ``forward`` when it is wrapped (DDP), so that gradient
    synchronisation is prepared for the step's backward."""
    if hasattr(model, "module"):
        return model(pretraining_step=functools.partial(impl, **kw), batch=batch)
    return impl(model, batch, **kw)


def vl_pretrain_loss(model, batch: dict, *, label_smoothing: float = 0.1, weights: LossWeights = LossWeights(),
                     use_dcl: bool = True):
    """Vision-language step (``OnePeaceForPreTraining`` and a ``VLCollator`` batch) -> ``(loss, logs)``."""
    return _through_forward(model, _vl_step, batch, label_smoothing=label_smoothing, weights=weights,
                            use_dcl=use_dcl)


def _vl_step(m, batch, *, label_smoothing, weights, use_dcl):
    text_kw = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    text_out = m.encode(**text_kw)
    image_out = m.encode(pixel_values=batch["pixel_values"])
    cl = _cl(m, m.embed("image", image_out.image_last_hidden_state), m.embed("text", text_out.text_last_hidden_state))
    logs = {"cl": cl.detach(), "logit_scale": m.logit_scale_exp().detach()}
    loss = cl
    if use_dcl:
        with torch.no_grad():
            joint = m.encode(**text_kw, pixel_values=batch["pixel_values"])
        text_pad = text_out.text_padding_mask
        s = m.encode(**text_kw, text_preserve_ids=batch["text_preserve_ids"])
        d_text = m.decode(s, {"text": text_pad}, {"text": batch["text_preserve_ids"]})["text"]
        dcl_l = denoising_contrast_loss(d_text, text_out.text_last_hidden_state, batch["text_mask"], text_pad,
                                        label_smoothing=label_smoothing)
        s = m.encode(pixel_values=batch["pixel_values"], image_preserve_ids=batch["image_preserve_ids"])
        image_pad = image_out.image_padding_mask
        d_image = m.decode(s, {"image": image_pad}, {"image": batch["image_preserve_ids"]})["image"]
        dcl_v = denoising_contrast_loss(d_image, image_out.image_last_hidden_state, batch["image_mask"], image_pad,
                                        label_smoothing=label_smoothing)
        s = m.encode(**text_kw, pixel_values=batch["pixel_values"], text_preserve_ids=batch["vl_text_preserve_ids"],
                     image_preserve_ids=batch["vl_image_preserve_ids"])
        d = m.decode(s, {"text": text_pad, "image": image_pad},
                     {"text": batch["vl_text_preserve_ids"], "image": batch["vl_image_preserve_ids"]})
        dcl_vl_t = denoising_contrast_loss(d["text"], joint.text_last_hidden_state, batch["vl_text_mask"], text_pad,
                                           label_smoothing=label_smoothing)
        dcl_vl_i = denoising_contrast_loss(d["image"], joint.image_last_hidden_state, batch["vl_image_mask"],
                                           image_pad, label_smoothing=label_smoothing)
        loss = loss + weights.text * dcl_l + weights.image * dcl_v + weights.pair_text * dcl_vl_t \
            + weights.pair_other * dcl_vl_i
        logs.update(dcl_text=dcl_l.detach(), dcl_image=dcl_v.detach(), dcl_vl_text=dcl_vl_t.detach(),
                    dcl_vl_image=dcl_vl_i.detach())
    return loss, logs


def al_pretrain_loss(model, batch: dict, *, label_smoothing: float = 0.1, weights: LossWeights = LossWeights(),
                     use_dcl: bool = True, text_grad: bool = False):
    """Audio-language step (``OnePeaceForPreTraining`` and an ``ALCollator`` batch) -> ``(loss, logs)``.

    ``text_grad=False`` (the original) computes the text side of the contrast without gradient.
    """
    return _through_forward(model, _al_step, batch, label_smoothing=label_smoothing, weights=weights,
                            use_dcl=use_dcl, text_grad=text_grad)


def _al_step(m, batch, *, label_smoothing, weights, use_dcl, text_grad):
    text_kw = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    # the conv feature extractor runs once per step; every pass below shares its output (same gradients as
    # recomputing it per pass, a fraction of the cost)
    feats = m.one_peace.encoder.audio_adapter.extract_features(batch["input_values"])
    audio_kw = dict(input_values=batch["input_values"], audio_attention_mask=batch["audio_attention_mask"],
                    audio_features=feats)
    with torch.set_grad_enabled(text_grad and torch.is_grad_enabled()):
        text_out = m.encode(**text_kw)
        t_emb = m.embed("text", text_out.text_last_hidden_state)
    audio_out = m.encode(**audio_kw)
    cl = _cl(m, m.embed("audio", audio_out.audio_last_hidden_state), t_emb)
    logs = {"cl": cl.detach(), "logit_scale": m.logit_scale_exp().detach()}
    loss = cl
    if use_dcl:
        with torch.no_grad():
            joint = m.encode(**text_kw, **{**audio_kw, "audio_features": feats.detach()})
        audio_pad, text_pad = joint.audio_padding_mask, joint.text_padding_mask
        s = m.encode(**audio_kw, audio_preserve_ids=batch["audio_preserve_ids"])
        d_audio = m.decode(s, {"audio": audio_pad}, {"audio": batch["audio_preserve_ids"]})["audio"]
        dcl_a = denoising_contrast_loss(d_audio, joint.audio_last_hidden_state, batch["audio_mask"], audio_pad,
                                        label_smoothing=label_smoothing)
        s = m.encode(**text_kw, **audio_kw, text_preserve_ids=batch["al_text_preserve_ids"],
                     audio_preserve_ids=batch["al_audio_preserve_ids"])
        d = m.decode(s, {"text": text_pad, "audio": audio_pad},
                     {"text": batch["al_text_preserve_ids"], "audio": batch["al_audio_preserve_ids"]})
        dcl_al_t = denoising_contrast_loss(d["text"], joint.text_last_hidden_state, batch["al_text_mask"], text_pad,
                                           label_smoothing=label_smoothing)
        dcl_al_a = denoising_contrast_loss(d["audio"], joint.audio_last_hidden_state, batch["al_audio_mask"],
                                           audio_pad, label_smoothing=label_smoothing)
        loss = loss + weights.audio * dcl_a + weights.pair_text * dcl_al_t + weights.pair_other * dcl_al_a
        logs.update(dcl_audio=dcl_a.detach(), dcl_al_text=dcl_al_t.detach(), dcl_al_audio=dcl_al_a.detach())
    return loss, logs


def freeze_for_audio_stage(model, reset_logit_scale: bool = True) -> list[str]:
    """ONE-PEACE stage 2: freeze the whole encoder except the audio adapter, every layer's audio FFN and the audio
    final LayerNorm; ``text_proj`` (and ``image_proj``) frozen; ``audio_proj``, the decoder parts and the logit scale
    (re-initialised to log(1/0.07)) stay trainable. Returns the names of the trainable parameters."""
    m = _unwrap(model)
    enc = m.one_peace.encoder
    m.one_peace.requires_grad_(False)
    enc.audio_adapter.requires_grad_(True)
    enc.fusion_model.audio_layer_norm.requires_grad_(True)
    for layer in enc.fusion_model.layers:
        layer.audio_ffn.requires_grad_(True)
    for name in ("text_proj", "image_proj"):
        if hasattr(m, name):
            getattr(m, name).requires_grad_(False)
    if reset_logit_scale:
        with torch.no_grad():
            m.logit_scale.fill_(math.log(m.config.logit_scale_init_value))
    return [n for n, p in m.named_parameters() if p.requires_grad]


# ---------------------------------------------------------------------------------------------------------- collators
def _tokenize(tokenizer, texts, max_length):
    enc = tokenizer([t.lower() for t in texts], padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt")
    word_ids = [enc.word_ids(i) for i in range(len(texts))]
    return enc["input_ids"], enc["attention_mask"], word_ids


def _text_masks(word_ids, attention_mask, ratio):
    """(B, L+1) masks over CLS-included text positions."""
    rows = [F.pad(whole_word_mask(w, ratio), (1, 0), value=False) for w in word_ids]
    mask = torch.stack(rows)
    padding = F.pad(~attention_mask.bool(), (1, 0), value=False)
    return mask & ~padding, padding


class VLCollator:
    """Image-caption rows (``image``: PIL / array, ``caption`` or ``captions``) -> a ``vl_pretrain_loss`` batch."""

    def __init__(self, image_processor, tokenizer, *, max_text_length=32, text_mask_ratio=0.15,
                 vl_text_mask_ratio=0.4, image_mask_ratio=0.75, vl_image_mask_ratio=0.6875, with_masks=True):
        self.image_processor, self.tokenizer = image_processor, tokenizer
        self.max_text_length = max_text_length
        self.ratios = (text_mask_ratio, vl_text_mask_ratio, image_mask_ratio, vl_image_mask_ratio)
        self.with_masks = with_masks

    def __call__(self, rows):
        texts = [_caption(r) for r in rows]
        ids, att, word_ids = _tokenize(self.tokenizer, texts, self.max_text_length)
        pixels = self.image_processor([np.asarray(r["image"]) for r in rows], return_tensors="pt")["pixel_values"]
        batch = {"input_ids": ids, "attention_mask": att, "pixel_values": pixels}
        if not self.with_masks:
            return batch
        t_ratio, vlt_ratio, i_ratio, vli_ratio = self.ratios
        for key, ratio in (("text", t_ratio), ("vl_text", vlt_ratio)):
            mask, pad = _text_masks(word_ids, att, ratio)
            batch[f"{key}_mask"], batch[f"{key}_preserve_ids"] = mask, mask_to_preserve_ids(mask, pad)
        n_patch = (pixels.shape[-1] // 16) ** 2
        for key, ratio in (("image", i_ratio), ("vl_image", vli_ratio)):
            mask = torch.stack([F.pad(random_mask(n_patch, ratio), (1, 0), value=False) for _ in rows])
            batch[f"{key}_mask"] = mask
            batch[f"{key}_preserve_ids"] = mask_to_preserve_ids(mask, torch.zeros_like(mask))
        return batch


class ALCollator:
    """Audio-caption rows (``audio``: 1-D float array at the feature extractor's rate, ``caption``/``captions``) ->
    an ``al_pretrain_loss`` batch. ``conv_layers`` is the model's ``audio_config.conv_feature_layers``."""

    def __init__(self, feature_extractor, tokenizer, conv_layers, *, max_text_length=32, audio_mask_ratio=0.55,
                 al_audio_mask_ratio=0.45, al_text_mask_ratio=0.4, mask_length=5, mask_prob_adjust=0.1,
                 with_masks=True):
        self.fe, self.tokenizer, self.conv_layers = feature_extractor, tokenizer, [tuple(c) for c in conv_layers]
        self.max_text_length = max_text_length
        self.audio_ratios = (audio_mask_ratio, al_audio_mask_ratio)
        self.al_text_mask_ratio = al_text_mask_ratio
        self.mask_length, self.mask_prob_adjust = mask_length, mask_prob_adjust
        self.with_masks = with_masks

    def __call__(self, rows):
        texts = [_caption(r) for r in rows]
        ids, att, word_ids = _tokenize(self.tokenizer, texts, self.max_text_length)
        clips = [np.asarray(_audio_array(r["audio"]), dtype=np.float32) for r in rows]
        feats = self.fe(clips, sampling_rate=self.fe.sampling_rate, return_tensors="pt", return_attention_mask=True)
        batch = {"input_ids": ids, "attention_mask": att, "input_values": feats["input_values"],
                 "audio_attention_mask": feats["attention_mask"]}
        if not self.with_masks:
            return batch
        mask, pad = _text_masks(word_ids, att, self.al_text_mask_ratio)
        batch["al_text_mask"], batch["al_text_preserve_ids"] = mask, mask_to_preserve_ids(mask, pad)
        lengths = conv_output_lengths(feats["attention_mask"].sum(-1), self.conv_layers)
        total = int(conv_output_lengths(torch.tensor([feats["input_values"].shape[1]]), self.conv_layers))
        padding = F.pad(torch.arange(total)[None, :] >= lengths[:, None], (1, 0), value=False)
        for key, ratio in zip(("audio", "al_audio"), self.audio_ratios):
            rows_m = []
            for n in lengths.tolist():
                m = torch.zeros(total + 1, dtype=torch.bool)
                m[1 : n + 1] = block_mask_1d(n, ratio, self.mask_length, self.mask_prob_adjust)
                rows_m.append(m)
            mask = torch.stack(rows_m)
            batch[f"{key}_mask"], batch[f"{key}_preserve_ids"] = mask, mask_to_preserve_ids(mask, padding)
        return batch


def _caption(row) -> str:
    """``captions`` (one drawn at random from torch's RNG), else ``caption``, else ``the sound of <label_name>``."""
    caps = row.get("captions") or []
    if caps:
        return str(caps[int(torch.randint(len(caps), ()))])
    if row.get("caption"):
        return str(row["caption"])
    if row.get("label_name"):
        return f"the sound of {row['label_name']}"
    raise ValueError(f"row has no caption / captions / label_name: keys {sorted(row)}")


def _audio_array(audio):
    if isinstance(audio, dict) and "array" in audio:
        return audio["array"]
    if torch.is_tensor(audio):
        return audio.numpy()
    return audio
