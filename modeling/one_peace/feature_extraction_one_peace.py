# Copyright 2026 the hf-alm developers. MIT licence.
"""ONE-PEACE audio feature extractor: 16 kHz mono waveforms, per-utterance layer normalisation, 1 s .. 15 s.

Input checks shared with the other hf-alm extractors: a clip shorter than one analysis frame (``frame_length_ms``,
25 ms: the 400-sample receptive field of ONE-PEACE's convolutional front end) is an error (normalised and repeated it
would be zeros or a buzz), so is float audio whose peak exceeds ``MAX_PEAK`` (64) unless ``float_scale=`` says its
scale, an empty batch, and a 2-D array whose rows are shorter than one frame and outnumber their length ((samples,
channels) audio).

As the original ``process_audio``: each clip is normalised over its own samples (``F.layer_norm(wav, wav.shape)``,
i.e. zero mean / unit variance with eps 1e-5), truncated to ``max_duration`` seconds and, when shorter than
``min_duration``, repeated and cut to exactly ``min_duration``. A batch is zero-padded to the longest clip; the
``attention_mask`` (1 = real sample) is returned when the clips differ in length or when asked for.
"""

from __future__ import annotations

import math

import numpy as np
from transformers import BatchFeature, SequenceFeatureExtractor

# Float audio is expected in [-1, 1]; a peak above this bound (+36 dBFS) is not a loud clip but samples on another
# scale (int16 PCM stored as floats peaks near 32768) and is refused unless the caller says the scale (`float_scale=`).
# The same bound and rule in every hf-alm feature extractor; it also keeps every output finite.
MAX_PEAK = 64.0


def _check_batch_shape(shape, min_samples: int) -> None:
    """The rule for a 2-D ``(a, b)`` input, the same in every hf-alm feature extractor: it is a batch of ``a`` clips
    of ``b`` samples. An empty batch is an error; rows shorter than one analysis frame (``min_samples``) cannot be
    clips, so when there are more of them than they are long the array is ``(samples, channels)`` audio (what
    ``soundfile.read`` returns, for any number of channels) and the error says to down-mix it."""
    shape = tuple(int(n) for n in shape)
    if len(shape) != 2:
        return
    if shape[0] == 0:
        raise ValueError(f"raw_speech is an empty batch (shape {shape}); pass at least one clip of audio")
    if shape[1] == 0:
        raise ValueError(f"raw_speech of shape {shape} has no samples: clip 0 is empty (0 samples)")
    if shape[1] < min_samples and shape[0] > shape[1]:
        raise ValueError(f"raw_speech of shape {shape} looks like (samples, channels) audio; down-mix it to mono "
                         f"first (e.g. audio.mean(axis=1)); a batch is (clips, samples) or a list of 1-D clips, and "
                         f"rows of {shape[1]} samples are shorter than one analysis frame ({min_samples} samples)")


def _check_float_scale(float_scale) -> float:
    """``float_scale`` (the sample value of a full-scale signal) as a positive finite float."""
    try:
        value = float(float_scale)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(float_scale, bool) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"float_scale must be a positive finite number (the sample value of full scale, e.g. 32768 "
                         f"for int16-range floats), got {float_scale!r}")
    return value


def _check_amplitude(wave: np.ndarray, what: str, float_scale: float = 1.0) -> None:
    """NaN / Inf samples, or a peak above ``MAX_PEAK * float_scale``: an error naming the clip (``what``), the sample
    and its value."""
    peak = float(np.max(np.abs(wave)))  # NaN propagates
    bound = MAX_PEAK * float_scale
    if peak <= bound:  # False for NaN
        return
    finite = np.isfinite(wave)
    if not finite.all():
        index = int(np.argmin(finite))
        raise ValueError(f"{what} has a non-finite sample ({float(wave[index])}) at index {index}: the waveform "
                         f"contains NaN or infinite samples")
    sample = int(np.argmax(np.abs(wave) > bound))
    if float_scale == 1.0:
        raise ValueError(f"{what} has a peak amplitude of {peak:g} (index {sample} is the first sample above "
                         f"{MAX_PEAK:g}): float audio must be in [-1, 1] and a peak above {MAX_PEAK:g} means samples "
                         f"on another scale (e.g. int16 PCM stored as floats); divide it by its full scale (e.g. "
                         f"audio / 32768) or pass float_scale= (e.g. float_scale=32768)")
    raise ValueError(f"{what} has a peak amplitude of {peak:g} (index {sample} is the first sample above {bound:g}), "
                     f"more than {MAX_PEAK:g} x float_scale={float_scale:g}; check float_scale")


def _check_not_a_path(raw_speech, what: str = "raw_speech") -> None:
    """A file path (or None) where audio is expected: say to load the audio first."""
    if raw_speech is None:
        raise TypeError(f"{what} is None; pass the audio as a float array (load a file first, e.g. "
                         f"hf_alm.data.load_audio)")
    if isinstance(raw_speech, (str, bytes)) or hasattr(raw_speech, "__fspath__"):
        raise TypeError(f"{what} is a {type(raw_speech).__name__} ({str(raw_speech)!r}); load the audio first "
                         f"(e.g. hf_alm.data.load_audio) and pass the array")


def _check_sampling_rate(sampling_rate) -> int:
    """``sampling_rate`` as an int: an int, a numpy integer or an integral float; anything else is refused."""
    if isinstance(sampling_rate, (int, np.integer)) and not isinstance(sampling_rate, (bool, np.bool_)):
        return int(sampling_rate)
    if isinstance(sampling_rate, (float, np.floating)) and float(sampling_rate).is_integer():
        return int(sampling_rate)
    raise ValueError(f"sampling_rate must be a whole number of Hz, got {sampling_rate!r}")


class OnePeaceFeatureExtractor(SequenceFeatureExtractor):
    model_input_names = ["input_values", "attention_mask"]

    def __init__(self, feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                 max_duration=15.0, min_duration=1.0, return_attention_mask=True, frame_length_ms=25.0, **kwargs):
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value,
                         return_attention_mask=return_attention_mask, **kwargs)
        self.do_normalize = do_normalize
        self.max_duration = max_duration
        self.min_duration = min_duration
        self.frame_length_ms = float(frame_length_ms)

    @property
    def min_samples(self) -> int:
        """The shortest clip accepted: one analysis frame (``frame_length_ms``) at ``sampling_rate``."""
        return max(1, int(self.sampling_rate * self.frame_length_ms * 0.001))

    @staticmethod
    def layer_norm(wave: np.ndarray, eps: float = 1e-5) -> np.ndarray:
        wave = wave.astype(np.float64)
        return ((wave - wave.mean()) / np.sqrt(wave.var() + eps)).astype(np.float32)

    def _prepare_one(self, wave, what: str = "clip 0", float_scale: float = 1.0) -> np.ndarray:
        """One clip, checked and normalised; ``what`` ("clip 3") names it in the errors."""
        _check_not_a_path(wave, what)
        if hasattr(wave, "detach"):
            wave = wave.detach().cpu()
            wave = (wave.float() if wave.is_floating_point() else wave).numpy()  # bf16 has no numpy dtype
        wave = np.asarray(wave)
        if wave.ndim != 1:
            raise ValueError(f"{what}: expected a mono waveform of shape (samples,), got shape {wave.shape}; "
                             f"down-mix first")
        if wave.size == 0:
            raise ValueError(f"{what} is empty (0 samples)")
        if not np.issubdtype(wave.dtype, np.floating):
            raise ValueError(f"{what}: expected a floating-point waveform, got dtype {wave.dtype}; convert integer "
                             f"PCM first (e.g. int16 / 32768)")
        if wave.shape[0] < self.min_samples:  # normalised it is all zeros (1 sample) or, repeated, a buzz
            raise ValueError(f"{what} has {wave.shape[0]} samples, shorter than one {self.frame_length_ms:g} ms "
                             f"frame ({self.min_samples} samples at {self.sampling_rate} Hz)")
        _check_amplitude(wave, what, float_scale)
        # in float64: a scale beyond float16's / float32's range must not become Inf (and the audio 0)
        wave = (wave.astype(np.float64) / float_scale if float_scale != 1.0 else wave).astype(np.float32)
        if self.do_normalize:
            wave = self.layer_norm(wave)
        if self.max_duration:
            wave = wave[: int(round(self.max_duration * self.sampling_rate))]
        min_len = int(round((self.min_duration or 0) * self.sampling_rate))
        if wave.shape[0] < min_len:
            wave = np.tile(wave, math.ceil(min_len / wave.shape[0]))[:min_len]
        return wave

    def __call__(self, raw_speech, sampling_rate: int | None = None, return_tensors=None,
                 return_attention_mask: bool | None = None, padding=True, float_scale: float | None = None,
                 **kwargs) -> BatchFeature:
        """``raw_speech``: one waveform or a list of them (numpy / torch / lists), at ``sampling_rate`` Hz, float
        samples in [-1, 1]; ``float_scale``: the sample value of full scale when they are not (e.g. ``32768`` for int16
        PCM stored as floats; samples are divided by it)."""
        if sampling_rate is None:
            raise ValueError(f"pass sampling_rate= (this feature extractor expects {self.sampling_rate} Hz audio) so "
                             "that a wrong rate is caught instead of silently misread")
        if _check_sampling_rate(sampling_rate) != self.sampling_rate:
            raise ValueError(f"ONE-PEACE expects audio sampled at {self.sampling_rate} Hz, got sampling_rate="
                             f"{sampling_rate} Hz; resample first (e.g. hf_alm.data.audio.resample)")
        float_scale = 1.0 if float_scale is None else _check_float_scale(float_scale)
        _check_not_a_path(raw_speech)
        if isinstance(raw_speech, (list, tuple)) and len(raw_speech) == 0:
            raise ValueError("raw_speech is an empty batch (an empty list); pass at least one clip of audio")
        is_batched = isinstance(raw_speech, (list, tuple)) and (
            hasattr(raw_speech[0], "__len__") or hasattr(raw_speech[0], "shape"))
        if is_batched and len({len(c) for c in raw_speech}) == 1:  # e.g. audio.tolist() of (samples, channels)
            _check_batch_shape((len(raw_speech), len(raw_speech[0])), self.min_samples)
        if not is_batched and hasattr(raw_speech, "ndim") and raw_speech.ndim == 2:
            _check_batch_shape(raw_speech.shape, self.min_samples)
            raw_speech, is_batched = list(raw_speech), True
        clips = [self._prepare_one(np.asarray(w) if isinstance(w, list) else w, f"clip {i}", float_scale)
                 for i, w in enumerate(raw_speech if is_batched else [raw_speech])]
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
