"""BEATs training logic shared by ``recipes/beats_pretrain.py`` and ``recipes/beats_finetune.py``.

Everything here is model-side glue around :mod:`hf_alm.modeling.beats` and the shared loop
(:func:`hf_alm.training.loop.fit`); the recipes only parse flags and call these pieces.

* **Features once per clip.** :func:`prepare_clips` decodes every clip at 16 kHz with
  :func:`hf_alm.data.audio.load_audio`, optionally keeps only its loudest ``max_seconds`` window, and computes the
  normalised Kaldi fbank with :class:`BeatsFeatureExtractor` one clip at a time (so no padding enters the features).
  Batches are padded afterwards by :func:`pad_features` with a frame ``attention_mask``.
* **SpecAugment** (:class:`SpecAugment`): time and frequency masking on the fbank batch, per example, inside the valid
  frames only, with configurable maximum widths and counts.
* **Masked audio modelling** (:func:`mam_collate`, :func:`mam_loss`): ``BeatsForPreTraining`` on fbank batches and
  one tokenizer label per patch (labels are computed once per clip: the random-projection tokenizer of iteration 1, or
  the trained acoustic tokenizer of later iterations, see :func:`clip_labels`).
* **Tokenizer distillation** (:class:`BeatsTokenizerDistiller`): a :class:`BeatsAcousticTokenizer` (encoder,
  ``quantize_layer``, normalised EMA vector quantiser with k-means initialisation) followed by a small Transformer
  "tokenizer estimator" on the quantised vectors; the loss is ``1 - cos(estimator output, teacher last layer)``
  averaged over the valid patches plus the quantiser's commitment term ``beta * ||l2(e) - sg[l2(v)]||^2``; the
  codebook itself moves only by EMA (models.md section 2.5, Eq. 3). The teacher (the previous iteration's encoder) is
  frozen, so its last-layer outputs are computed once per clip (:func:`teacher_targets`).
* **Linear probe** (:func:`pooled_embeddings`): the frozen encoder's masked-mean patch embedding per clip, computed
  once; a linear classifier on it equals ``BeatsForAudioClassification``'s head (linear-then-mean = mean-then-linear).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "SAMPLING_RATE",
    "BEATS_PRESETS",
    "beats_preset_config",
    "load_labelled_dataset",
    "loudest_window",
    "prepare_clips",
    "cached_clips",
    "pad_features",
    "SpecAugment",
    "clip_labels",
    "mam_collate",
    "mam_loss",
    "TokenizerEstimator",
    "BeatsTokenizerDistiller",
    "teacher_targets",
    "distill_collate",
    "pooled_embeddings",
    "classifier_collate",
    "evaluation_units",
    "unit_indices",
]

SAMPLING_RATE = 16000

#: Small from-scratch configurations (``padding_mode="time_aligned"``: a padded batch gives each clip's own outputs;
#: no layer-wise gradient decay and no layer drop, which are fine-tuning settings of the released checkpoints).
BEATS_PRESETS: dict[str, dict] = {
    "tiny": dict(embed_dim=32, encoder_layers=2, encoder_embed_dim=64, encoder_ffn_embed_dim=128,
                 encoder_attention_heads=4, conv_pos=16, conv_pos_groups=2, num_buckets=32, max_distance=64,
                 quant_n=64, quant_dim=16, predictor_layers=1),
    "small": dict(embed_dim=64, encoder_layers=4, encoder_embed_dim=128, encoder_ffn_embed_dim=512,
                  encoder_attention_heads=4, conv_pos=16, conv_pos_groups=4, num_buckets=64, max_distance=128,
                  quant_n=256, quant_dim=32, predictor_layers=2),
    "base": dict(),  # the released architecture (12 x 768), for GPUs
}


def beats_preset_config(preset: str = "tiny", **overrides):
    """A :class:`BeatsConfig` for training from scratch: ``preset`` (tiny / small / base) plus ``overrides``
    (``None`` values are ignored)."""
    from hf_alm.modeling.beats import BeatsConfig

    if preset not in BEATS_PRESETS:
        raise ValueError(f"unknown BEATs preset {preset!r}; choose from {sorted(BEATS_PRESETS)}")
    values = dict(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, encoder_layerdrop=0.0,
                  dropout_input=0.0, layer_wise_gradient_decay_ratio=1.0, padding_mode="time_aligned")
    values.update(BEATS_PRESETS[preset])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return BeatsConfig(**values)


# ------------------------------------------------------------------------------------------------------------- data
def loudest_window(wave: torch.Tensor, num_samples: int) -> torch.Tensor:
    """The ``num_samples`` window of ``wave`` (1-D) with the largest energy; the clip itself when it is shorter."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    n = wave.shape[0]
    if n <= num_samples:
        return wave
    energy = torch.cat([wave.new_zeros(1, dtype=torch.float64), wave.double().pow(2).cumsum(0)])
    window = energy[num_samples:] - energy[:-num_samples]  # energy of wave[s : s + num_samples] for every start s
    start = int(window.argmax())
    return wave[start: start + num_samples]


def prepare_clips(ds, feature_extractor, *, max_seconds: float | None = None, crop: str = "loudest",
                  progress: bool = True) -> list[torch.Tensor]:
    """Normalised fbank ``(T_i, num_mel_bins)`` of every row of ``ds``, each clip featurised on its own.

    ``max_seconds`` keeps the loudest (``crop="loudest"``) or the first (``crop="start"``) ``max_seconds`` of each clip;
    clips shorter than one 16-frame patch (~0.17 s) are padded with silence to that length.
    """
    from tqdm.auto import tqdm

    from hf_alm.data.audio import load_audio

    if crop not in ("loudest", "start"):
        raise ValueError(f"crop must be 'loudest' or 'start', got {crop!r}")
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
    min_samples = int(0.025 * SAMPLING_RATE) + 15 * int(0.010 * SAMPLING_RATE)  # 16 frames of 25 ms / 10 ms
    limit = int(round(max_seconds * SAMPLING_RATE)) if max_seconds else None
    audio = ds.select_columns(["audio"])
    features = []
    for i in tqdm(range(len(ds)), desc="fbank", disable=not progress, leave=False):
        wave = load_audio(audio[i]["audio"], SAMPLING_RATE)
        if limit is not None:
            wave = loudest_window(wave, limit) if crop == "loudest" else wave[:limit]
        if wave.shape[0] < min_samples:
            wave = F.pad(wave, (0, min_samples - wave.shape[0]))
        with torch.no_grad():
            features.append(feature_extractor.extract(wave.unsqueeze(0).float())[0].contiguous())
    return features


def cached_clips(cache_dir, ds, feature_extractor, *, dataset_spec: str, max_seconds: float | None = None,
                 crop: str = "loudest", progress: bool = True, is_main: bool = True, wait=None) -> list[torch.Tensor]:
    """:func:`prepare_clips` with an on-disk cache ``cache_dir/fbank_<key>.pt`` keyed by the dataset spec, its size,
    the crop and the feature extractor settings (written atomically by the main process; ``wait`` is called before
    the others read it). ``cache_dir=None`` disables the cache."""
    import hashlib
    import json
    import os
    from pathlib import Path

    if cache_dir is None:
        return prepare_clips(ds, feature_extractor, max_seconds=max_seconds, crop=crop, progress=progress)
    payload = json.dumps({"dataset": dataset_spec, "n": len(ds), "max_seconds": max_seconds, "crop": crop,
                          "fe": feature_extractor.to_dict()}, sort_keys=True, default=str)
    path = Path(cache_dir) / f"fbank_{hashlib.sha1(payload.encode()).hexdigest()[:16]}.pt"
    if not path.is_file() and is_main:
        features = prepare_clips(ds, feature_extractor, max_seconds=max_seconds, crop=crop, progress=progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(features, tmp)
        os.replace(tmp, path)
    if wait is not None:
        wait()
    from hf_alm.utils import load_torch_file

    # tensors only, never a full unpickle; a truncated or foreign cache file is a CheckpointError naming it
    return load_torch_file(path, what=f"fbank feature cache (delete {path} to rebuild it)")


def pad_features(features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad per-clip fbank ``(T_i, F)`` into ``(B, T, F)`` (zeros) and a frame ``attention_mask`` ``(B, T)``
    (1 = real frame)."""
    if not features:
        raise ValueError("pad_features got no clips")
    length = max(int(f.shape[0]) for f in features)
    bins = int(features[0].shape[1])
    values = torch.zeros(len(features), length, bins)
    mask = torch.zeros(len(features), length, dtype=torch.long)
    for i, f in enumerate(features):
        values[i, : f.shape[0]] = f
        mask[i, : f.shape[0]] = 1
    return values, mask


# ------------------------------------------------------------------------------------------------------ SpecAugment
@dataclass
class SpecAugment:
    """SpecAugment (Park et al., 2019) time and frequency masking of fbank batches ``(B, T, F)``.

    Each example gets ``num_time_masks`` time masks and ``num_freq_masks`` frequency masks. A mask's width is drawn
    uniformly from ``0 .. time_mask_width`` frames (``freq_mask_width`` mel bins), or is exactly that width with
    ``fixed_width=True``; its start is uniform among the positions where it fits inside the example's **valid**
    frames (padding is never counted as masked). Masked cells are set to ``mask_value`` (0.0 = the mean of the
    normalised fbank). Widths of 0 disable that axis. Masks may overlap.
    """

    time_mask_width: int = 0
    freq_mask_width: int = 0
    num_time_masks: int = 2
    num_freq_masks: int = 2
    fixed_width: bool = False
    mask_value: float = 0.0

    def __post_init__(self):
        for name in ("time_mask_width", "freq_mask_width", "num_time_masks", "num_freq_masks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"SpecAugment {name} must be a non-negative integer, got {value!r}")

    @property
    def enabled(self) -> bool:
        return (self.time_mask_width > 0 and self.num_time_masks > 0) or (
            self.freq_mask_width > 0 and self.num_freq_masks > 0)

    def _band(self, size: int, max_width: int, count: int, generator) -> torch.Tensor:
        mask = torch.zeros(size, dtype=torch.bool)
        if size <= 0 or max_width <= 0:
            return mask
        for _ in range(count):
            cap = min(max_width, size)
            width = cap if self.fixed_width else int(torch.randint(0, cap + 1, (), generator=generator))
            if width == 0:
                continue
            start = int(torch.randint(0, size - width + 1, (), generator=generator))
            mask[start: start + width] = True
        return mask

    def masks(self, num_frames: int, num_bins: int, valid_frames: Sequence[int] | None = None, batch: int = 1,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Boolean ``(B, T)`` time masks and ``(B, F)`` frequency masks (True = masked)."""
        valid_frames = [num_frames] * batch if valid_frames is None else [int(v) for v in valid_frames]
        time = torch.zeros(len(valid_frames), num_frames, dtype=torch.bool)
        freq = torch.zeros(len(valid_frames), num_bins, dtype=torch.bool)
        for b, valid in enumerate(valid_frames):
            time[b, :valid] = self._band(valid, self.time_mask_width, self.num_time_masks, generator)
            freq[b] = self._band(num_bins, self.freq_mask_width, self.num_freq_masks, generator)
        return time, freq

    def __call__(self, features: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """A masked copy of ``features`` ``(B, T, F)``; ``attention_mask`` ``(B, T)`` marks the valid frames."""
        if features.dim() != 3:
            raise ValueError(f"SpecAugment expects fbank features of shape (batch, frames, bins), got "
                             f"{tuple(features.shape)}")
        if not self.enabled:
            return features
        batch, frames, bins = features.shape
        valid = (attention_mask.bool().sum(1).tolist() if attention_mask is not None else [frames] * batch)
        time, freq = self.masks(frames, bins, valid, generator=generator)
        cells = time.unsqueeze(-1) | freq.unsqueeze(1)
        return features.masked_fill(cells.to(features.device), self.mask_value)


# ----------------------------------------------------------------------------------------- masked audio modelling
@torch.no_grad()
def clip_labels(tokenizer, features: Sequence[torch.Tensor], *, progress: bool = False) -> list[torch.Tensor]:
    """Tokenizer labels ``(N_i,)`` of every clip (each clip tokenised on its own, the tokenizer in eval mode)."""
    from tqdm.auto import tqdm

    was_training = tokenizer.training
    tokenizer.eval()
    device = next(tokenizer.parameters()).device
    try:
        return [tokenizer.extract_labels(f.unsqueeze(0).to(device))[0].cpu()
                for f in tqdm(features, desc="labels", disable=not progress, leave=False)]
    finally:
        tokenizer.train(was_training)


def _patch_count(num_frames: int, config) -> int:
    return (num_frames // config.input_patch_size) * config.num_patch_columns


def mam_collate(features: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], config):
    """``collate_fn`` for masked audio modelling; dataset items are clip indices. Returns ``input_values``,
    ``attention_mask`` and ``labels`` ``(B, N)`` (0 at padded patches, which the loss ignores)."""

    def collate(indices):
        values, mask = pad_features([features[i] for i in indices])
        n = _patch_count(values.shape[1], config)
        target = torch.zeros(len(indices), n, dtype=torch.long)
        for row, i in enumerate(indices):
            lab = labels[i]
            target[row, : lab.shape[0]] = lab[:n]
        return {"input_values": values, "attention_mask": mask, "labels": target}

    return collate


def mam_loss(model, batch):
    """Masked-prediction cross-entropy of ``BeatsForPreTraining`` plus its masked-label accuracy as a log."""
    out = model(**batch)
    return out.loss, {"mam_accuracy": out.accuracy}


# ----------------------------------------------------------------------------------------- tokenizer distillation
class TokenizerEstimator(nn.Module):
    """The "tokenizer estimator" of BEATs' tokenizer training: ``Linear(quant_dim -> D)``, ``num_layers`` BEATs
    transformer layers (their own positional convolution and relative position bias) and a final LayerNorm, predicting
    the teacher's last-layer output ``(B, N, D)`` from the quantised vectors. Discarded after training (the
    released tokenizers do not hold it either)."""

    def __init__(self, config, target_dim: int, num_layers: int = 3):
        super().__init__()
        from hf_alm.modeling.beats.modeling_beats import BeatsEncoder

        sub = copy.deepcopy(config)
        sub.encoder_layers = int(num_layers)
        sub.layer_wise_gradient_decay_ratio = 1.0
        sub.encoder_layerdrop = 0.0
        self.proj = nn.Linear(config.quant_dim, config.encoder_embed_dim)
        self.encoder = BeatsEncoder(sub)
        self.norm = nn.LayerNorm(config.encoder_embed_dim)
        self.head = (nn.Linear(config.encoder_embed_dim, target_dim) if target_dim != config.encoder_embed_dim
                     else nn.Identity())

    def forward(self, quantized: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x, _, _ = self.encoder(self.proj(quantized), padding_mask)
        return self.head(self.norm(x))


class BeatsTokenizerDistiller(nn.Module):
    """Acoustic tokenizer + estimator, trained to reproduce a frozen teacher's last layer (models.md section 2.5).

    ``forward(input_values, attention_mask, teacher)`` returns ``(loss, logs)`` with
    ``loss = mean over valid patches of (1 - cos(o_t, teacher_t)) + beta * mse(sg[z_q], l2(e))``; in training mode
    the tokenizer's quantiser initialises its codebook with k-means on the first batch and then updates it by EMA.
    """

    def __init__(self, tokenizer, target_dim: int, estimator_layers: int = 3):
        super().__init__()
        self.tokenizer = tokenizer
        self.estimator = TokenizerEstimator(tokenizer.config, target_dim, estimator_layers)

    def forward(self, input_values, attention_mask=None, teacher=None):
        out = self.tokenizer(input_values, attention_mask=attention_mask, return_dict=True)
        padding = out.padding_mask if attention_mask is not None else None
        predicted = self.estimator(out.quantized, padding)
        if teacher is None:
            raise ValueError("BeatsTokenizerDistiller needs the teacher's last-layer outputs (teacher=...)")
        if teacher.shape != predicted.shape:
            raise ValueError(f"teacher outputs have shape {tuple(teacher.shape)}, the estimator predicts "
                             f"{tuple(predicted.shape)}; the teacher and the tokenizer must share the patch layout")
        valid = ~out.padding_mask
        cosine = F.cosine_similarity(predicted.float(), teacher.float(), dim=-1)[valid].mean()
        loss = (1.0 - cosine) + out.loss
        used = torch.unique(out.labels[valid]).numel()
        return loss, {"cosine": cosine.detach(), "commitment": out.loss.detach(), "codes_used": used}


@torch.no_grad()
def teacher_targets(teacher, features: Sequence[torch.Tensor], *, progress: bool = False) -> list[torch.Tensor]:
    """The frozen teacher encoder's last hidden state ``(N_i, D)`` for every clip (each clip on its own)."""
    from tqdm.auto import tqdm

    teacher.eval()
    device = next(teacher.parameters()).device
    return [teacher(f.unsqueeze(0).to(device)).last_hidden_state[0].cpu()
            for f in tqdm(features, desc="teacher", disable=not progress, leave=False)]


def distill_collate(features: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], config):
    """``collate_fn`` for tokenizer distillation; items are clip indices; ``teacher`` ``(B, N, D)`` zero-padded."""

    def collate(indices):
        values, mask = pad_features([features[i] for i in indices])
        n = _patch_count(values.shape[1], config)
        dim = targets[indices[0]].shape[-1]
        teacher = torch.zeros(len(indices), n, dim)
        for row, i in enumerate(indices):
            t = targets[i][:n]
            teacher[row, : t.shape[0]] = t
        return {"input_values": values, "attention_mask": mask, "teacher": teacher}

    return collate


# ----------------------------------------------------------------------------------------------- linear probe
@torch.no_grad()
def pooled_embeddings(encoder, features: Sequence[torch.Tensor], *, batch_size: int = 32,
                      progress: bool = False) -> torch.Tensor:
    """Masked-mean last-layer patch embedding ``(num_clips, D)`` of a frozen :class:`BeatsModel`.

    Clips are batched only with clips of the same length, so no padding enters (exactly each clip on its own).
    """
    from tqdm.auto import tqdm

    encoder.eval()
    device = next(encoder.parameters()).device
    by_length: dict[int, list[int]] = {}
    for i, f in enumerate(features):
        by_length.setdefault(int(f.shape[0]), []).append(i)
    out = [None] * len(features)
    chunks = [idx[s: s + batch_size] for idx in by_length.values() for s in range(0, len(idx), batch_size)]
    for chunk in tqdm(chunks, desc="embeddings", disable=not progress, leave=False):
        values = torch.stack([features[i] for i in chunk]).to(device)
        pooled = encoder(values).last_hidden_state.mean(dim=1).float().cpu()
        for row, i in enumerate(chunk):
            out[i] = pooled[row]
    return torch.stack(out)


def classifier_collate(features: Sequence[torch.Tensor], targets, spec_augment: SpecAugment | None = None,
                       generator: torch.Generator | None = None):
    """``collate_fn`` for fine-tuning ``BeatsForAudioClassification``; items are clip indices; SpecAugment (if any)
    is applied to the padded fbank batch. ``targets[i]`` is a class id or a multi-hot vector."""

    def collate(indices):
        values, mask = pad_features([features[i] for i in indices])
        if spec_augment is not None and spec_augment.enabled:
            values = spec_augment(values, mask, generator=generator)
        labels = torch.stack([torch.as_tensor(targets[i]) for i in indices])
        return {"input_values": values, "attention_mask": mask, "labels": labels}

    return collate


# evaluation units and the labelled-dataset loader live in the data layer (shared with the tiny-edge recipe);
# re-exported here
from hf_alm.data.loaders import evaluation_units, load_labelled_dataset, unit_indices  # noqa: E402


def summarize(values: Sequence[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "stdev": float(arr.std())} if arr.size else {}


def config_dict(obj) -> dict:
    return {k: v for k, v in dataclasses.asdict(obj).items() if isinstance(v, (int, float, str, bool)) or v is None}

