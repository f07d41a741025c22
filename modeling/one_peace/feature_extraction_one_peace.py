# Copyright 2026 the hf-alm developers. MIT licence.
"""ONE-PEACE audio feature extractor: 16 kHz mono waveforms, per-utterance layer normalisation, 1 s .. 15 s.

As the original ``process_audio``: each clip is normalised over its own samples (``F.layer_norm(wav, wav.shape)``,
i.e. zero mean / unit variance with eps 1e-5), truncated to ``max_duration`` seconds and, when shorter than
``min_duration``, repeated and cut to exactly ``min_duration``. A batch is zero-padded to the longest clip; the
``attention_mask`` (1 = real sample) is returned when the clips differ in length or when asked for.
"""

from __future__ import annotations

import math

import numpy as np
from transformers import BatchFeature, SequenceFeatureExtractor


class OnePeaceFeatureExtractor(SequenceFeatureExtractor):
    model_input_names = ["input_values", "attention_mask"]

    def __init__(self, feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                 max_duration=15.0, min_duration=1.0, return_attention_mask=True, **kwargs):
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value,
                         return_attention_mask=return_attention_mask, **kwargs)
        self.do_normalize = do_normalize
        self.max_duration = max_duration
        self.min_duration = min_duration

    @staticmethod
    def layer_norm(wave: np.ndarray, eps: float = 1e-5) -> np.ndarray:
        wave = wave.astype(np.float64)
        return ((wave - wave.mean()) / np.sqrt(wave.var() + eps)).astype(np.float32)

    def _prepare_one(self, wave) -> np.ndarray:
        if hasattr(wave, "detach"):
            wave = wave.detach().cpu().numpy()
        wave = np.asarray(wave)
        if wave.ndim != 1:
            raise ValueError(f"expected a mono waveform of shape (samples,), got shape {wave.shape}; down-mix first")
        if wave.size == 0:
            raise ValueError("got an empty waveform (0 samples)")
        if not np.issubdtype(wave.dtype, np.floating):
            raise ValueError(f"expected a floating-point waveform, got dtype {wave.dtype}")
        if not np.isfinite(wave).all():
            raise ValueError("the waveform contains NaN or infinite samples")
        wave = wave.astype(np.float32)
        if self.do_normalize:
            wave = self.layer_norm(wave)
        if self.max_duration:
            wave = wave[: int(round(self.max_duration * self.sampling_rate))]
        min_len = int(round((self.min_duration or 0) * self.sampling_rate))
        if wave.shape[0] < min_len:
            wave = np.tile(wave, math.ceil(min_len / wave.shape[0]))[:min_len]
        return wave

    def __call__(self, raw_speech, sampling_rate: int | None = None, return_tensors=None,
                 return_attention_mask: bool | None = None, padding=True, **kwargs) -> BatchFeature:
        """``raw_speech``: one waveform or a list of them (numpy / torch / lists), at ``sampling_rate`` Hz."""
        if sampling_rate is None:
            raise ValueError(f"pass sampling_rate= (this feature extractor expects {self.sampling_rate} Hz audio) so "
                             "that a wrong rate is caught instead of silently misread")
        if int(sampling_rate) != self.sampling_rate:
            raise ValueError(f"audio sampled at {sampling_rate} Hz but ONE-PEACE expects {self.sampling_rate} Hz; "
                             "resample first (e.g. hf_alm.data.audio.resample)")
        is_batched = isinstance(raw_speech, (list, tuple)) and len(raw_speech) > 0 and (
            hasattr(raw_speech[0], "__len__") or hasattr(raw_speech[0], "shape"))
        if not is_batched and hasattr(raw_speech, "ndim") and raw_speech.ndim == 2:
            raw_speech, is_batched = list(raw_speech), True
        clips = [self._prepare_one(np.asarray(w) if isinstance(w, list) else w)
                 for w in (raw_speech if is_batched else [raw_speech])]
        lengths = [c.shape[0] for c in clips]
        longest = max(lengths)
        values = np.full((len(clips), longest), self.padding_value, dtype=np.float32)
        mask = np.zeros((len(clips), longest), dtype=np.int32)
        for i, c in enumerate(clips):
            values[i, : c.shape[0]] = c
            mask[i, : c.shape[0]] = 1
        data = {"input_values": values}
        if return_attention_mask is None:
            return_attention_mask = len(set(lengths)) > 1
        if return_attention_mask:
            data["attention_mask"] = mask
        return BatchFeature(data, tensor_type=return_tensors)


__all__ = ["OnePeaceFeatureExtractor"]

OnePeaceFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
