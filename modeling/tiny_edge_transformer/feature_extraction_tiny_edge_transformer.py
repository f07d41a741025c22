"""Log-mel front-end of the tiny edge transformer: simple enough to port to a microcontroller.

For a mono waveform ``x`` at ``sampling_rate`` (16 kHz) in [-1, 1] (float32):

1. a clip shorter than one analysis frame (``n_fft`` samples) is an error naming it (zero-padded it gave a
   near-constant, mostly floor output); no centring, no pre-emphasis, no dither. (The exported spec's zero-padding rule
   for shorter inputs is never reached from here.)
2. frames ``t = 0 .. F-1`` with ``F = 1 + (len(x) - n_fft) // hop_length``; ``frame_t[n] = x[t*hop_length + n] * w[n]``
   with the *periodic* Hann window ``w[n] = 0.5 - 0.5*cos(2*pi*n / n_fft)``, ``n = 0 .. n_fft-1`` (window length =
   ``n_fft`` = 1024, hop 512, i.e. 64 ms windows every 32 ms).
3. power spectrum ``P_t[k] = |sum_n frame_t[n] * exp(-2j*pi*k*n / n_fft)|**2``, ``k = 0 .. n_fft/2`` (a real FFT).
4. mel energies ``E_t[j] = sum_k fb[j, k] * P_t[k]``: ``num_mel_bins`` (40) triangular filters, HTK mel scale
   ``mel(f) = 2595 * log10(1 + f / 700)``, ``num_mel_bins + 2`` points equally spaced in mel between ``f_min`` (0 Hz)
   and ``f_max`` (``sampling_rate / 2``); filter ``j`` rises linearly (in Hz) from point ``j`` to 1 at point ``j+1``
   and falls to 0 at point ``j+2``, evaluated at the bin frequencies ``k * sampling_rate / n_fft``; peak height 1,
   no area normalisation (``torchaudio.functional.melscale_fbanks(..., norm=None, mel_scale="htk")``).
5. ``L_t[j] = ln(max(E_t[j], log_floor))`` with ``log_floor = 1e-6``.
6. ``features_t[j] = (L_t[j] - mean) / std`` with two scalars ``mean``, ``std`` (set from the training data by the
   recipe; 0 and 1 by default).

At most ``max_frames`` (192 = 6.1 s) frames are kept (truncation from the start); a batch is right-padded with
``padding_value`` (0.0) to its longest clip and ``attention_mask`` (1 = real frame) marks the real frames.
``hf-alm export tiny`` writes all of these constants, and the filter matrix itself, to ``frontend.json``.

Input checks shared with the other hf-alm extractors: float audio whose peak exceeds ``MAX_PEAK`` (64) is an error
unless ``float_scale=`` says its scale (samples are then divided by it); so is an empty batch and a 2-D array whose rows
are shorter than one frame and outnumber their length ((samples, channels) audio).
"""

from __future__ import annotations

import math

import numpy as np
from transformers import BatchFeature, SequenceFeatureExtractor


def hz_to_mel_htk(freq):
    return 2595.0 * np.log10(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def mel_to_hz_htk(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def htk_mel_filter_bank(num_mel_bins: int, n_fft: int, sampling_rate: int, f_min: float, f_max: float) -> np.ndarray:
    """Triangular HTK mel filters, shape ``(num_mel_bins, n_fft // 2 + 1)``, float64 (step 4 of the module doc)."""
    bin_freqs = np.arange(n_fft // 2 + 1, dtype=np.float64) * sampling_rate / n_fft
    mel_points = np.linspace(hz_to_mel_htk(f_min), hz_to_mel_htk(f_max), num_mel_bins + 2)
    hz_points = mel_to_hz_htk(mel_points)
    lower, centre, upper = hz_points[:-2, None], hz_points[1:-1, None], hz_points[2:, None]
    rising = (bin_freqs[None, :] - lower) / (centre - lower)
    falling = (upper - bin_freqs[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def periodic_hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n, dtype=np.float64) / n)


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


def _tensor_to_numpy(tensor) -> np.ndarray:
    """A torch tensor as numpy (bf16 / fp16 through float32, which numpy can hold), without importing torch."""
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.is_floating_point() else tensor).numpy()


def _check_sampling_rate(sampling_rate) -> int:
    """``sampling_rate`` as an int: an int, a numpy integer or an integral float; anything else is refused."""
    if isinstance(sampling_rate, (int, np.integer)) and not isinstance(sampling_rate, (bool, np.bool_)):
        return int(sampling_rate)
    if isinstance(sampling_rate, (float, np.floating)) and float(sampling_rate).is_integer():
        return int(sampling_rate)
    raise ValueError(f"sampling_rate must be a whole number of Hz, got {sampling_rate!r}")


class TinyEdgeTransformerFeatureExtractor(SequenceFeatureExtractor):
    r"""Log-mel features for [`TinyEdgeTransformerForAudioClassification`] (formula in the module docstring).

    Returns ``input_values`` of shape ``(batch, frames, num_mel_bins)`` and ``attention_mask`` ``(batch, frames)``.
    """

    model_input_names = ["input_values", "attention_mask"]

    def __init__(self, feature_size: int = 40, sampling_rate: int = 16000, padding_value: float = 0.0,
                 n_fft: int = 1024, hop_length: int = 512, f_min: float = 0.0, f_max: float | None = None,
                 log_floor: float = 1e-6, mean: float = 0.0, std: float = 1.0, max_frames: int = 192,
                 return_attention_mask: bool = True, **kwargs):
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value,
                         return_attention_mask=return_attention_mask, **kwargs)
        f_max = float(sampling_rate) / 2 if f_max is None else float(f_max)
        checks = {
            "feature_size": isinstance(feature_size, int) and feature_size > 0,
            "sampling_rate": isinstance(sampling_rate, int) and sampling_rate > 0,
            "n_fft": isinstance(n_fft, int) and n_fft > 1,
            "hop_length": isinstance(hop_length, int) and hop_length > 0,
            "max_frames": isinstance(max_frames, int) and max_frames > 0,
            "log_floor": log_floor > 0,
            "std": std > 0,
            "f_min": 0 <= f_min < f_max,
            "f_max": f_max <= sampling_rate / 2,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"invalid {name} for the tiny edge feature extractor: {locals()[name]!r}")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.f_min = float(f_min)
        self.f_max = f_max
        self.log_floor = float(log_floor)
        self.mean = float(mean)
        self.std = float(std)
        self.max_frames = max_frames
        self.mel_filters = htk_mel_filter_bank(feature_size, n_fft, sampling_rate, self.f_min, self.f_max)
        self.window = periodic_hann(n_fft)

    @property
    def num_mel_bins(self) -> int:
        return self.feature_size

    def to_dict(self):
        out = super().to_dict()
        out.pop("mel_filters", None)  # derived from the scalars above; exported separately by `hf-alm export tiny`
        out.pop("window", None)
        return out

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a clip of ``num_samples`` samples (before ``max_frames`` truncation)."""
        return 1 + (max(int(num_samples), self.n_fft) - self.n_fft) // self.hop_length

    def log_mel(self, waveform, what: str = "clip 0", float_scale: float = 1.0) -> np.ndarray:
        """Un-normalised log-mel energies ``L`` (steps 1-5), ``(frames, num_mel_bins)`` float32, not truncated."""
        x = self._as_waveform(waveform, what, float_scale)
        if x.shape[0] < self.n_fft:  # one analysis frame is the minimum
            raise ValueError(f"{what} has {x.shape[0]} samples, shorter than one "
                             f"{1000 * self.n_fft / self.sampling_rate:.3g} ms frame ({self.n_fft} samples at "
                             f"{self.sampling_rate} Hz)")
        frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), self.n_fft)[:: self.hop_length]
        power = np.abs(np.fft.rfft(frames * self.window, n=self.n_fft, axis=-1)) ** 2
        mel = power @ self.mel_filters.T
        return np.log(np.maximum(mel, self.log_floor)).astype(np.float32)

    def normalize(self, log_mel: np.ndarray) -> np.ndarray:
        """Step 6: ``(L - mean) / std``."""
        return ((np.asarray(log_mel, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    @staticmethod
    def _as_waveform(waveform, what: str = "audio clip", float_scale: float = 1.0) -> np.ndarray:
        """One clip as a 1-D float32 array in [-1, 1] (divided by ``float_scale``); ``what`` ("clip 3") names it in the
        errors."""
        _check_not_a_path(waveform, what)
        if hasattr(waveform, "detach"):  # torch tensor, without importing torch
            waveform = _tensor_to_numpy(waveform)
        x = np.asarray(waveform)
        if x.dtype.kind != "f":
            raise ValueError(f"{what}: expected a floating-point waveform in [-1, 1], got dtype {x.dtype}; convert "
                             f"integer PCM first (e.g. int16 / 32768)")
        if x.ndim == 2 and 1 in x.shape:
            x = x.reshape(-1)
        if x.ndim != 1:
            raise ValueError(f"each audio clip must be a 1-D mono waveform, got shape {tuple(x.shape)} ({what})")
        if x.shape[0] == 0:
            raise ValueError(f"{what} is empty (0 samples)")
        _check_amplitude(x, what, float_scale)  # before the float32 cast: huge float64 values would become Inf
        # in float64: a scale beyond float16's / float32's range must not become Inf (and the audio 0)
        return (x.astype(np.float64) / float_scale if float_scale != 1.0 else x).astype(np.float32)

    def __call__(self, raw_speech, sampling_rate: int | None = None, return_tensors=None,
                 max_frames: int | None = None, padding: str = "longest", return_attention_mask: bool | None = None,
                 float_scale: float | None = None, **kwargs) -> BatchFeature:
        """Featurise one clip (1-D array) or a batch (list of 1-D arrays, or a 2-D array ``(batch, samples)``) of
        float samples in [-1, 1]; ``float_scale``: the sample value of full scale when they are not (e.g. ``32768``
        for int16 PCM stored as floats; samples are divided by it).

        ``padding="longest"`` (or ``True``) pads to the longest clip of the batch, ``"max_length"`` to ``max_frames``.
        """
        if sampling_rate is None:
            raise ValueError(f"pass sampling_rate= (this feature extractor expects {self.sampling_rate} Hz audio)")
        if _check_sampling_rate(sampling_rate) != self.sampling_rate:
            raise ValueError(f"the tiny edge feature extractor expects audio sampled at {self.sampling_rate} Hz, got "
                             f"sampling_rate={sampling_rate} Hz; resample first (e.g. hf_alm.data.audio.resample)")
        if padding is True:  # transformers' convention: True means "longest"
            padding = "longest"
        if padding not in ("longest", "max_length"):
            raise ValueError(f"padding must be True, 'longest' or 'max_length' (a batch is always padded), got "
                             f"{padding!r}")
        if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer))
                                       or max_frames < 1):
            raise ValueError(f"max_frames must be a positive whole number of frames, got {max_frames!r}")
        max_frames = self.max_frames if max_frames is None else int(max_frames)
        float_scale = 1.0 if float_scale is None else _check_float_scale(float_scale)
        _check_not_a_path(raw_speech)
        if hasattr(raw_speech, "detach"):
            raw_speech = _tensor_to_numpy(raw_speech)
        if isinstance(raw_speech, (list, tuple)) and len(raw_speech) == 0:
            raise ValueError("raw_speech is an empty batch (an empty list); pass at least one clip of audio")
        is_batched = isinstance(raw_speech, (list, tuple)) and hasattr(raw_speech[0], "__len__")
        if is_batched and len({len(c) for c in raw_speech}) == 1:  # e.g. audio.tolist() of (samples, channels)
            _check_batch_shape((len(raw_speech), len(raw_speech[0])), self.n_fft)
        if isinstance(raw_speech, np.ndarray) and raw_speech.ndim == 2:
            _check_batch_shape(raw_speech.shape, self.n_fft)
            is_batched = True
        clips = list(raw_speech) if is_batched else [raw_speech]
        feats = [self.normalize(self.log_mel(c, f"clip {i}", float_scale)[:max_frames]) for i, c in enumerate(clips)]
        length = max_frames if padding == "max_length" else max(f.shape[0] for f in feats)
        values = np.full((len(feats), length, self.feature_size), self.padding_value, dtype=np.float32)
        mask = np.zeros((len(feats), length), dtype=np.int32)
        for i, f in enumerate(feats):
            values[i, : f.shape[0]] = f
            mask[i, : f.shape[0]] = 1
        data = {"input_values": values}
        if return_attention_mask is None:
            return_attention_mask = self.return_attention_mask
        if return_attention_mask:
            data["attention_mask"] = mask
        return BatchFeature(data, tensor_type=return_tensors)


TinyEdgeTransformerFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")

__all__ = ["TinyEdgeTransformerFeatureExtractor", "htk_mel_filter_bank", "periodic_hann"]
