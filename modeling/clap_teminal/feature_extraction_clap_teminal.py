"""CLAP log-mel features in batched torch (the numbers of transformers' `ClapFeatureExtractor`, much faster).

Per clip: repeat-pad (or pad / repeat) to `max_length_s`, or crop a longer clip; then one batched `torch.stft`
(periodic Hann window of 1024, hop 480, reflect-centred), power spectrum, mel filters from
`transformers.audio_utils.mel_filter_bank` (Slaney for `rand_trunc`, HTK for `fusion`, as `ClapFeatureExtractor`),
`10 * log10(max(mel, 1e-10))` dB. Output `input_features` of shape `(batch, 1, frames, mels)` (`(batch, 4, ...)` with
`truncation="fusion"`) and `is_longer` `(batch, 1)`.

Determinism: clips longer than `max_length_s` are cropped at a fixed position (`crop_position`, default the centre)
unless a seeded `torch.Generator` is passed as `generator=` (training-time random crops). Nothing reads numpy's or
torch's global random state, so the same clip gives the same features in any batch.
"""

import contextlib
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from transformers import BatchFeature, SequenceFeatureExtractor
from transformers.audio_utils import mel_filter_bank
from transformers.utils import logging

from .configuration_clap_teminal import PRESETS

logger = logging.get_logger(__name__)

TRUNCATIONS = ("rand_trunc", "fusion")
PADDINGS = ("repeatpad", "repeat", "pad")
CROP_POSITIONS = ("center", "start", "end")
COMPUTE_DTYPES = ("float32", "float64")
BLOCK_FRAMES = 128  # STFT frames processed at once (cache-sized: 128 x 1024 float64 = 1 MiB)
# Float audio is expected in [-1, 1]; a peak above this bound (+36 dBFS) is not a loud clip but samples on another
# scale (int16 PCM stored as floats peaks near 32768: 72-85 dB features) and is refused unless the caller says the
# scale (`float_scale=`). The same bound and rule in every hf-alm feature extractor; it also keeps every output finite.
MAX_PEAK = 64.0

_THREADS_LOCK = threading.Lock()
_THREADS_STATE = {"active": 0, "saved": 1}


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


def _check_amplitude(clip: torch.Tensor, index: int, float_scale: float = 1.0) -> None:
    """NaN / Inf samples, or a peak above ``MAX_PEAK * float_scale``: an error naming the clip, the sample and its
    value. One reduction on the happy path (``aminmax`` propagates NaN)."""
    low, high = torch.aminmax(clip)
    peak = max(-float(low), float(high))
    bound = MAX_PEAK * float_scale
    if peak <= bound:  # False for NaN
        return
    bad = (~torch.isfinite(clip)).nonzero()
    if len(bad):
        sample = int(bad[0])
        raise ValueError(f"clip {index} has a non-finite sample ({float(clip[sample])}) at index {sample}")
    sample = int((clip.abs() > bound).nonzero()[0])
    clip_peak = float(clip.abs().max())
    if float_scale == 1.0:
        raise ValueError(f"clip {index} has a peak amplitude of {clip_peak:g} (index {sample} is the first sample "
                         f"above {MAX_PEAK:g}): float audio must be in [-1, 1] and a peak above {MAX_PEAK:g} means "
                         f"samples on another scale (e.g. int16 PCM stored as floats); divide it by its full scale "
                         f"(e.g. audio / 32768) or pass float_scale= (e.g. float_scale=32768)")
    raise ValueError(f"clip {index} has a peak amplitude of {clip_peak:g} (index {sample} is the first sample above "
                     f"{bound:g}), more than {MAX_PEAK:g} x float_scale={float_scale:g}; check float_scale")


def _not_float(index: int, dtype) -> ValueError:
    """The error for integer / bool samples: int16 PCM used as it is would give features ~90 dB too loud."""
    return ValueError(
        f"clip {index}: expected float audio in [-1, 1], got dtype {dtype}; convert integer PCM first "
        "(e.g. int16 / 32768)"
    )


def _check_sampling_rate(sampling_rate) -> int:
    """``sampling_rate`` as an int: an int, a numpy integer or a float with an integral value."""
    value = sampling_rate
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"sampling_rate must be a whole number of Hz, got {sampling_rate!r}")
    return value


@contextlib.contextmanager
def _single_threaded_ops():
    """Set torch's intra-op threads to 1 while `log_mel` runs its own Python threads, then restore the setting.

    Without this, every Python thread would open its own team of `torch.get_num_threads()` OpenMP / MKL threads
    (n^2 threads on n cores). Re-entrant and safe for concurrent calls: the first one in saves the setting and the
    last one out restores it.
    """
    with _THREADS_LOCK:
        if _THREADS_STATE["active"] == 0:
            _THREADS_STATE["saved"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _THREADS_STATE["active"] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_STATE["active"] -= 1
            if _THREADS_STATE["active"] == 0:
                torch.set_num_threads(_THREADS_STATE["saved"])


def banded_blocks(weights: torch.Tensor, overhead: int = 1500) -> list:
    """Cut a banded filter matrix `(bins, filters)` (each filter non-zero on a run of consecutive bins, the runs
    moving up with the filter index, as mel triangles do) into dense blocks `(lo, hi, first, last, weights[lo:hi,
    first:last])` of consecutive filters, each spanning only the bins its filters touch.

    `x @ weights` then equals the concatenation of `x[:, lo:hi] @ block` (skipped entries are exact zeros) at a
    fraction of the multiply-adds: the cut minimises (dynamic programming) the block multiply-adds per row plus
    `overhead` per block (the fixed cost of one more small matrix product, in multiply-adds per row).

    (The BEATs feature extractor cuts its Kaldi mel matrix the same way. Model folders share no code: an HTSAT-tower
    remote-code folder ships without the BEATs files.)
    """
    bins, count = weights.shape
    nonzero = weights != 0
    first = [int(nonzero[:, m].nonzero().min()) if bool(nonzero[:, m].any()) else bins for m in range(count)]
    last = [int(nonzero[:, m].nonzero().max()) + 1 if bool(nonzero[:, m].any()) else 0 for m in range(count)]

    def span(i, j):
        lo, hi = min(first[i:j]), max(last[i:j])
        return (lo, hi) if hi > lo else (0, 1)  # all-zero filters still need one (zero) row

    cost, cut = [0.0] + [float("inf")] * count, [0] * (count + 1)
    for j in range(1, count + 1):
        for i in range(j):
            lo, hi = span(i, j)
            c = cost[i] + (hi - lo) * (j - i) + overhead
            if c < cost[j]:
                cost[j], cut[j] = c, i
    blocks, j = [], count
    while j > 0:
        i = cut[j]
        lo, hi = span(i, j)
        blocks.append((lo, hi, i, j, weights[lo:hi, i:j].contiguous()))
        j = i
    return blocks[::-1]


# feature-extractor settings of each model preset
PRESET_FEATURES = {
    name: preset["feature_extractor"] for name, preset in PRESETS.items() if "type" not in preset["feature_extractor"]
}


class ClapTeminalFeatureExtractor(SequenceFeatureExtractor):
    r"""CLAP log-mel feature extractor computed in batched torch.

    With `truncation="rand_trunc"` and clips not longer than `max_length_s` it reproduces transformers'
    `ClapFeatureExtractor` (same settings) to ~1e-5 dB; longer clips are cropped deterministically (or randomly with a
    seeded `generator`), never with numpy's global random state.

    Args:
        feature_size (`int`, defaults to 64): number of mel bins.
        sampling_rate (`int`, defaults to 48000): the rate the audio must have; another `sampling_rate=` raises.
        hop_length (`int`, defaults to 480), fft_window_size (`int`, defaults to 1024): STFT hop and window.
        max_length_s (`float`, defaults to 10): clip length in seconds after padding / cropping.
        frequency_min (`float`, defaults to 50), frequency_max (`float`, defaults to 14000): mel filter range.
        top_db (`float`, *optional*): clip each log-mel to `max - top_db`.
        truncation (`str`, defaults to `"rand_trunc"`): `"rand_trunc"` (one crop) or `"fusion"` (4 channels).
        padding (`str`, defaults to `"repeatpad"`): `"repeatpad"`, `"repeat"` or `"pad"` (as `ClapFeatureExtractor`).
        crop_position (`str`, defaults to `"center"`): where a too-long clip is cropped without a generator.
        compute_dtype (`str`, defaults to `"float64"`): STFT precision; `"float32"` is faster but drifts from
            `ClapFeatureExtractor` by up to ~0.4 dB in quiet bins next to loud ones (float64 stays below 1e-5).
    """

    model_input_names = ["input_features", "is_longer"]

    def __init__(
        self,
        feature_size: int = 64,
        sampling_rate: int = 48_000,
        hop_length: int = 480,
        max_length_s: float = 10,
        fft_window_size: int = 1024,
        padding_value: float = 0.0,
        return_attention_mask: bool = False,
        frequency_min: float = 50,
        frequency_max: float = 14_000,
        top_db: float | None = None,
        truncation: str = "rand_trunc",
        padding: str = "repeatpad",
        crop_position: str = "center",
        compute_dtype: str = "float64",
        **kwargs,
    ):
        for name in ("nb_max_samples", "nb_frequency_bins", "mel_filters", "mel_filters_slaney"):
            kwargs.pop(name, None)  # derived fields that a ClapFeatureExtractor JSON may carry
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        if truncation not in TRUNCATIONS:
            raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {truncation!r}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if crop_position not in CROP_POSITIONS:
            raise ValueError(f"crop_position must be one of {CROP_POSITIONS}, got {crop_position!r}")
        if compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute_dtype must be one of {COMPUTE_DTYPES}, got {compute_dtype!r}")
        if max_length_s <= 0:
            raise ValueError(f"max_length_s must be positive, got {max_length_s}")
        self.hop_length = int(hop_length)
        self.fft_window_size = int(fft_window_size)
        self.max_length_s = max_length_s
        self.frequency_min = frequency_min
        self.frequency_max = frequency_max
        self.top_db = top_db
        self.truncation = truncation
        self.padding = padding
        self.crop_position = crop_position
        self.compute_dtype = compute_dtype

    # ------------------------------------------------------------------ helpers
    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "ClapTeminalFeatureExtractor":
        """The feature extractor that matches `ClapTeminalConfig.from_preset(name)`."""
        if name in PRESETS and name not in PRESET_FEATURES:
            raise ValueError(f"preset {name!r} has a BEATs audio tower: use ClapTeminalProcessor.from_preset({name!r}, "
                             "tokenizer), which builds its BeatsFeatureExtractor")
        if name not in PRESET_FEATURES:
            raise ValueError(f"unknown CLAP-TeminAL preset {name!r}; available: {', '.join(PRESET_FEATURES)}")
        return cls(**{**PRESET_FEATURES[name], **kwargs})

    @classmethod
    def from_clap_feature_extractor(cls, clap_fe, **kwargs) -> "ClapTeminalFeatureExtractor":
        """Mirror the settings of a transformers `ClapFeatureExtractor` (as found in a laion/clap-* folder)."""
        settings = dict(
            feature_size=clap_fe.feature_size,
            sampling_rate=clap_fe.sampling_rate,
            hop_length=clap_fe.hop_length,
            max_length_s=clap_fe.max_length_s,
            fft_window_size=clap_fe.fft_window_size,
            padding_value=clap_fe.padding_value,
            frequency_min=clap_fe.frequency_min,
            frequency_max=clap_fe.frequency_max,
            top_db=clap_fe.top_db,
            truncation=clap_fe.truncation,
            padding=clap_fe.padding,
        )
        settings.update(kwargs)
        return cls(**settings)

    @property
    def nb_max_samples(self) -> int:
        """Clip length in samples after padding / cropping."""
        return int(round(self.max_length_s * self.sampling_rate))

    @property
    def num_frames(self) -> int:
        """Frames per clip: `nb_max_samples // hop_length + 1`."""
        return self.nb_max_samples // self.hop_length + 1

    def to_dict(self):
        output = super().to_dict()
        for key in [k for k in output if k.startswith("_cache")]:
            del output[key]
        return output

    def _dtype(self):
        return torch.float64 if self.compute_dtype == "float64" else torch.float32

    def mel_filters(self, truncation: str | None = None) -> torch.Tensor:
        """The `(n_freq, n_mels)` filter bank: Slaney for `rand_trunc`, HTK for `fusion` (as `ClapFeatureExtractor`)."""
        truncation = truncation or self.truncation
        cache = self.__dict__.setdefault("_cache_filters", {})
        key = (truncation, self.compute_dtype)
        if key not in cache:
            htk = truncation == "fusion"
            filters = mel_filter_bank(
                num_frequency_bins=(self.fft_window_size >> 1) + 1,
                num_mel_filters=self.feature_size,
                min_frequency=self.frequency_min,
                max_frequency=self.frequency_max,
                sampling_rate=self.sampling_rate,
                norm=None if htk else "slaney",
                mel_scale="htk" if htk else "slaney",
            )
            cache[key] = torch.from_numpy(np.asarray(filters)).to(self._dtype())
        return cache[key]

    def _kernel(self, truncation: str, device) -> tuple:
        """(window, banded blocks of the interleaved filters over the non-zero FFT bins, first bin, last bin + 1),
        cached; see `banded_blocks`."""
        cache = self.__dict__.setdefault("_cache_kernel", {})
        key = (truncation, self.compute_dtype, str(device))
        if key not in cache:
            filters = self.mel_filters(truncation)
            nonzero = torch.nonzero(filters.abs().sum(dim=1) > 0).flatten()
            kmin, kmax = int(nonzero.min()), int(nonzero.max()) + 1
            # (re, im) pairs interleaved: |X|^2 @ W == (view_as_real(X) ** 2).flatten(-2) @ repeat_interleave(W, 2)
            # the mel stage runs in float32 whatever the STFT precision: it sums non-negative terms (no cancellation),
            # so float32 keeps ~1e-7 relative precision (~1e-6 dB); only the FFT needs float64
            blocks = tuple(
                (2 * lo, 2 * hi, first, last, w.repeat_interleave(2, dim=0).float().contiguous().to(device))
                for lo, hi, first, last, w in banded_blocks(filters[kmin:kmax])
            )
            window = torch.hann_window(self.fft_window_size, periodic=True, dtype=self._dtype(), device=device)
            cache[key] = (window, blocks, kmin, kmax)
        return cache[key]

    def log_mel(self, waveforms, truncation: str | None = None) -> torch.Tensor:
        """Batched CLAP log-mel spectrogram in dB: `(batch, samples)` (or a list of equal-length 1-D clips) ->
        `(batch, frames, mels)` float32.

        Equivalent to `torch.stft(center=True, pad_mode="reflect")` with a periodic Hann window, power 2, the mel
        filters and `10 * log10(max(mel, 1e-10))`; computed clip by clip in blocks of `BLOCK_FRAMES` frames
        (cache-friendly, several times faster than one big STFT), only over the FFT bins the filters use, into
        reused buffers. The STFT runs in `compute_dtype`; the power / mel / log stage in float32 (sums of
        non-negative terms lose no precision there; spectral magnitudes above ~1e19, i.e. samples far outside
        [-1, 1] x 1e15, would overflow it: `__call__` refuses peaks above `MAX_PEAK`). With
        `torch.get_num_threads() > 1` the clips are shared among that many Python threads (torch releases the GIL),
        which scales far better than torch's intra-op threading on these small blocks.
        """
        truncation = truncation or self.truncation
        clips = list(waveforms)
        if not clips:
            raise ValueError("log_mel needs at least one clip")
        length = clips[0].shape[-1]
        if any(c.shape[-1] != length for c in clips):
            raise ValueError(f"log_mel needs clips of equal length, got {sorted({c.shape[-1] for c in clips})}")
        half = self.fft_window_size // 2
        if length <= half:
            raise ValueError(f"clips must be longer than {half} samples for the reflect-padded STFT, got {length}")
        device = clips[0].device
        kernel = self._kernel(truncation, device)
        frames = 1 + length // self.hop_length
        out = torch.empty(len(clips), frames, self.feature_size, dtype=torch.float32, device=device)
        workers = min(torch.get_num_threads(), len(clips)) if device.type == "cpu" else 1
        if workers <= 1:
            self._log_mel_into(clips, range(len(clips)), out, kernel)
        else:
            with _single_threaded_ops():  # each Python thread runs its ops on one core: no nested thread teams
                # a fresh pool per call: cheap next to the work, and safe across fork (DataLoader workers)
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    jobs = [pool.submit(self._log_mel_into, clips, range(w, len(clips), workers), out, kernel)
                            for w in range(workers)]
                    for job in jobs:
                        job.result()
        if self.top_db is not None:
            peak = out.amax(dim=(1, 2), keepdim=True)
            out = torch.maximum(out, peak - self.top_db)
        return out

    def _log_mel_into(self, clips, indices, out, kernel) -> None:
        """Write the log-mels of `clips[i]` for `i in indices` into `out[i]` (one thread's share of `log_mel`)."""
        window, blocks, kmin, kmax = kernel
        n_fft, hop, half = self.fft_window_size, self.hop_length, self.fft_window_size // 2
        dtype, device = self._dtype(), out.device
        length = clips[0].shape[-1]
        block = min(BLOCK_FRAMES, out.shape[1])
        # buffers reused for every clip and block: no allocation (nor page faults) in the loop
        padded = torch.empty(length + 2 * half, dtype=dtype, device=device)
        windowed = torch.empty(block, n_fft, dtype=dtype, device=device)
        power = torch.empty(block, 2 * (kmax - kmin), dtype=torch.float32, device=device)
        mel = torch.empty(block, self.feature_size, dtype=torch.float32, device=device)
        for i in indices:
            clip = clips[i]
            # reflect padding (as torch.stft(center=True)), cast to the compute dtype in the same copy
            padded[half : half + length].copy_(clip)
            padded[:half].copy_(clip[1 : half + 1].flip(0))
            padded[half + length :].copy_(clip[length - half - 1 : length - 1].flip(0))
            framed = padded.unfold(0, n_fft, hop)  # a view, (frames, n_fft)
            for start in range(0, framed.shape[0], block):
                rows = min(block, framed.shape[0] - start)
                frame_in = torch.mul(framed[start : start + rows], window, out=windowed[:rows])
                spec = torch.fft.rfft(frame_in)
                # (re, im) pairs interleaved: |X|^2 @ W == (view_as_real(X) ** 2).flatten(-2) @ repeat_interleave(W, 2)
                parts = torch.view_as_real(spec).reshape(rows, -1)[:, 2 * kmin : 2 * kmax]
                # squared in the compute dtype, stored as float32: the cancellation-prone part is done
                squares = torch.square(parts, out=power[:rows])
                mel_rows = mel[:rows]
                for lo, hi, first, last, weights in blocks:
                    torch.mm(squares[:, lo:hi], weights, out=mel_rows[:, first:last])
                target = out[i, start : start + rows]
                torch.log10(mel_rows.clamp_(min=1e-10), out=target)
            out[i].mul_(10.0)  # dB, once per clip

    def _as_clips(self, raw_speech, float_scale: float = 1.0) -> list:
        """Normalise the accepted input types to a list of 1-D float tensors in [-1, 1] (divided by ``float_scale``),
        rejecting what would give silently wrong features: (samples, channels) audio, an empty batch, clips shorter
        than one analysis frame, integer / bool samples (unscaled PCM), NaN / Inf samples and a peak above
        ``MAX_PEAK`` (samples on another scale)."""
        frame = self.fft_window_size
        if isinstance(raw_speech, torch.Tensor):
            raw_speech = raw_speech.detach().cpu()
            if raw_speech.dim() > 2 or raw_speech.dim() == 0:
                raise ValueError(
                    "audio must be mono: a 1-D clip or a 2-D (batch, samples) array, got shape "
                    f"{tuple(raw_speech.shape)}"
                )
            _check_batch_shape(tuple(raw_speech.shape), frame)
            clips = [raw_speech] if raw_speech.dim() == 1 else list(raw_speech)
        elif isinstance(raw_speech, np.ndarray):
            if raw_speech.ndim > 2 or raw_speech.ndim == 0:
                raise ValueError(
                    f"audio must be mono: a 1-D clip or a 2-D (batch, samples) array, got shape {raw_speech.shape}"
                )
            _check_batch_shape(raw_speech.shape, frame)
            clips = [raw_speech] if raw_speech.ndim == 1 else list(raw_speech)
        elif isinstance(raw_speech, (list, tuple)):
            if len(raw_speech) == 0:
                raise ValueError("raw_speech is an empty batch (an empty list); pass at least one clip of audio")
            for i, c in enumerate(raw_speech):
                if c is None or isinstance(c, (str, bytes, os.PathLike)):
                    shown = "None" if c is None else f"a {type(c).__name__} ({os.fspath(c)!r})"
                    raise TypeError(f"clip {i} is {shown}; load the audio first (e.g. hf_alm.data.load_audio) and "
                                    f"pass the array")
            if isinstance(raw_speech[0], (np.ndarray, torch.Tensor, list, tuple)):
                clips = list(raw_speech)
                lengths = {c.shape[0] if getattr(c, "ndim", 1) == 1 else None for c in clips if hasattr(c, "shape")}
                lengths |= {len(c) for c in clips if isinstance(c, (list, tuple))}
                if len(lengths) == 1 and None not in lengths:  # a nested list of (samples, channels) rows (.tolist())
                    _check_batch_shape((len(clips), lengths.pop()), frame)
            else:
                clips = [raw_speech]
        elif raw_speech is None or isinstance(raw_speech, (str, bytes, os.PathLike)):
            shown = "None" if raw_speech is None else f"a {type(raw_speech).__name__} ({os.fspath(raw_speech)!r})"
            raise TypeError(f"raw_speech is {shown}; load the audio first (e.g. hf_alm.data.load_audio) and pass the "
                            f"array")
        else:
            raise TypeError(f"raw_speech must be a numpy array, a torch tensor or a list of them, got "
                            f"{type(raw_speech).__name__} ({raw_speech!r})")
        out = []
        for i, clip in enumerate(clips):
            if isinstance(clip, torch.Tensor):
                tensor = clip
                if not torch.is_floating_point(tensor):
                    raise _not_float(i, tensor.dtype)
            else:
                # float32 / float64 arrays are used as they are (no copy); `log_mel` casts each clip to the compute
                # dtype in its padding copy, which is exact for the float32 -> float64 the reference does
                array = np.asarray(clip)
                if array.dtype.kind != "f":  # a list of Python ints too
                    raise _not_float(i, array.dtype)
                if array.dtype not in (np.float32, np.float64):
                    array = array.astype(np.float64)
                tensor = torch.from_numpy(np.ascontiguousarray(array))
            if tensor.dim() != 1:
                raise ValueError(f"clip {i} must be mono (1-D), got shape {tuple(tensor.shape)}")
            if tensor.numel() == 0:
                raise ValueError(f"clip {i} is empty (0 samples)")
            if tensor.numel() < frame:  # repeat-padded, it would be a buzz at its repetition rate, or -100 dB
                raise ValueError(f"clip {i} has {tensor.numel()} samples, shorter than one "
                                 f"{1000 * frame / self.sampling_rate:.3g} ms frame ({frame} samples at "
                                 f"{self.sampling_rate} Hz)")
            if tensor.dtype not in (torch.float32, torch.float64):
                tensor = tensor.to(self._dtype())
            _check_amplitude(tensor, i, float_scale)
            if float_scale != 1.0:  # in float64: a scale beyond float32's range must not become Inf (and the audio 0)
                tensor = tensor.to(torch.float64) / float_scale
            out.append(tensor)
        return out

    def _crop_offset(self, overflow: int, generator) -> int:
        if generator is not None:
            return int(torch.randint(0, overflow + 1, (1,), generator=generator).item())
        if self.crop_position == "start":
            return 0
        if self.crop_position == "end":
            return overflow
        return overflow // 2

    def _fit(self, clip: torch.Tensor, max_length: int, padding: str) -> tuple:
        """Repeat / pad a short clip to `max_length`; returns (clip, number of real samples)."""
        length = clip.shape[0]
        if length >= max_length:
            return clip[:max_length], max_length
        if padding == "repeat":
            clip = clip.repeat(max_length // length + 1)[:max_length]
            return clip, max_length
        if padding == "repeatpad":
            clip = clip.repeat(max_length // length)
        real = clip.shape[0]
        return torch.nn.functional.pad(clip, (0, max_length - real), value=self.padding_value), real

    def _fusion_crops(self, mel: torch.Tensor, chunk_frames: int, generator) -> torch.Tensor:
        """The 4-channel fusion input of one long clip: shrunk whole mel + front / middle / back crops."""
        total = mel.shape[0]
        starts = np.array_split(np.arange(0, total - chunk_frames + 1), 3)
        picks = []
        for part in starts:
            if len(part) == 0:
                picks.append(0)
            elif generator is not None:
                picks.append(int(part[int(torch.randint(0, len(part), (1,), generator=generator).item())]))
            else:
                picks.append(int(part[len(part) // 2]))
        crops = [mel[p : p + chunk_frames] for p in picks]
        shrink = torch.nn.functional.interpolate(
            mel[None, None], size=[chunk_frames, mel.shape[1]], mode="bilinear", align_corners=False
        )[0, 0]
        return torch.stack([shrink, *crops], dim=0)

    # ------------------------------------------------------------------ main entry
    def __call__(
        self,
        raw_speech,
        truncation: str | None = None,
        padding: bool | str | None = None,
        max_length: int | None = None,
        sampling_rate: int | None = None,
        return_tensors=None,
        return_attention_mask: bool | None = None,
        generator: torch.Generator | None = None,
        float_scale: float | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Featurise one clip or a batch (numpy arrays, torch tensors or lists of floats, mono, at `sampling_rate`).

        A batch is a `(clips, samples)` array or a list of 1-D clips; samples are floats in [-1, 1]. `(samples,
        channels)` audio (a 2-D array whose rows are shorter than one analysis frame and outnumber their length), an
        empty batch, clips shorter than one analysis frame (`fft_window_size` samples), integer / bool samples, NaN /
        Inf samples and a peak above `MAX_PEAK` (64) raise `ValueError` naming the problem.

        Args:
            truncation, padding: override the instance settings (`padding=True` keeps the instance's).
            max_length: clip length in samples (default `max_length_s * sampling_rate`).
            sampling_rate: the rate of `raw_speech` (a whole number of Hz); must equal `self.sampling_rate` (resample
                first otherwise).
            return_tensors: `"pt"` or `"np"` (default numpy arrays).
            return_attention_mask: also return a frame mask `attention_mask` `(batch, frames)` (1 = real audio).
            generator: a seeded `torch.Generator` for random crops of long clips (training); `None` = deterministic.
            float_scale: the sample value of full scale when the audio is not in [-1, 1] (e.g. `32768` for int16 PCM
                stored as floats); samples are divided by it. Without it, a peak above `MAX_PEAK` is an error.
        """
        truncation = truncation if truncation is not None else self.truncation
        if padding is True or padding is None or padding is False or padding == "longest" or padding == "max_length":
            padding = self.padding
        if truncation not in TRUNCATIONS:
            raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {truncation!r}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if sampling_rate is not None:
            if _check_sampling_rate(sampling_rate) != int(self.sampling_rate):
                raise ValueError(
                    f"{self.__class__.__name__} expects audio sampled at {self.sampling_rate} Hz, got sampling_rate="
                    f"{sampling_rate}; resample the audio to {self.sampling_rate} Hz first"
                )
        else:
            logger.warning_once(
                f"It is strongly recommended to pass the `sampling_rate` argument to `{self.__class__.__name__}()`. "
                "Failing to do so can result in silent errors that might be hard to debug."
            )
        return_attention_mask = self.return_attention_mask if return_attention_mask is None else return_attention_mask
        if max_length is None:
            max_length = self.nb_max_samples
        elif isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 1:
            raise ValueError(f"max_length must be a positive whole number of samples, got {max_length!r}")
        max_length = int(max_length)
        float_scale = 1.0 if float_scale is None else _check_float_scale(float_scale)
        clips = self._as_clips(raw_speech, float_scale)

        fitted, real_lengths, is_longer, long_full = [], [], [], {}
        for i, clip in enumerate(clips):
            if clip.shape[0] > max_length:
                if truncation == "fusion":
                    long_full[i] = clip
                    fitted.append(clip[:max_length])
                    real_lengths.append(max_length)
                    is_longer.append(None)  # decided below
                    continue
                offset = self._crop_offset(clip.shape[0] - max_length, generator)
                fitted.append(clip[offset : offset + max_length])
                real_lengths.append(max_length)
                is_longer.append(True)
            else:
                fitted_clip, real = self._fit(clip, max_length, padding)
                fitted.append(fitted_clip)
                real_lengths.append(real)
                is_longer.append(False)

        features = self.log_mel(fitted, truncation)  # (batch, frames, mels)
        if truncation == "fusion":
            chunk_frames = max_length // self.hop_length + 1
            channels = []
            for i in range(len(clips)):
                if i in long_full:
                    mel = self.log_mel(long_full[i][None], truncation)[0]
                    if mel.shape[0] == chunk_frames:  # barely longer: the whole clip, as ClapFeatureExtractor
                        channels.append(mel.expand(4, -1, -1))
                        is_longer[i] = False
                    else:
                        channels.append(self._fusion_crops(mel, chunk_frames, generator))
                        is_longer[i] = True
                else:
                    channels.append(features[i].expand(4, -1, -1))
            input_features = torch.stack(channels).contiguous()
        else:
            input_features = features[:, None]

        data = {
            "input_features": input_features,
            "is_longer": torch.tensor([[bool(v)] for v in is_longer], dtype=torch.bool),
        }
        if return_attention_mask:
            frames = input_features.shape[-2]
            centers = torch.arange(frames) * self.hop_length
            data["attention_mask"] = (centers[None, :] < torch.tensor(real_lengths)[:, None]).to(torch.int32)
        if return_tensors in (None, "np"):
            data = {k: v.numpy() for k, v in data.items()}
            return BatchFeature(data)
        return BatchFeature(data, tensor_type=return_tensors)


ClapTeminalFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")

__all__ = ["ClapTeminalFeatureExtractor", "PRESET_FEATURES"]
