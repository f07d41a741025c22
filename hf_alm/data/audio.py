"""Audio input for hf-alm: one way in (:func:`load_audio`), resampling and batching.

``load_audio(source, sampling_rate)`` turns any audio source into a float32 mono ``torch.Tensor`` of shape
``(samples,)`` at ``sampling_rate``:

* a file path (``str`` / ``os.PathLike``; wav, flac, ogg, mp3 and whatever else FFmpeg reads) or encoded ``bytes`` /
  ``bytearray`` / ``memoryview`` / a binary file object. Uncompressed WAV (PCM 8/16/24/32-bit, float 32/64) is read
  directly from its header and data with numpy (fast, and exact about the length); everything else is decoded with
  ``torchcodec.decoders.AudioDecoder``. The file type is recognised from its content, not its extension;
* a numpy array, a torch tensor or a list of numbers (read as float samples) together with
  ``source_sampling_rate``;
* a ``{"array": ..., "sampling_rate": ...}`` dict, or a ``{"path": ..., "bytes": ...}`` dict (what ``datasets``
  stores for ``Audio(decode=False)`` columns);
* a ``torchcodec`` ``AudioDecoder`` (what ``datasets`` >= 4 yields for ``Audio`` columns) or ``AudioSamples``;
* a ``(sampling_rate, array)`` tuple (what ``gradio.Audio(type="numpy")`` passes) or an ``(array, sampling_rate)``
  tuple (what ``soundfile.read`` and ``librosa.load`` return).

Rules, in order:

1. **Limits** (hostile or broken files must not exhaust memory). Sampling rates, of sources and of the requested
   output, must lie in [:data:`MIN_SAMPLING_RATE`, :data:`MAX_SAMPLING_RATE`] (1 kHz to 768 kHz). Audio longer than
   ``max_seconds`` (default :data:`MAX_SECONDS`, 600 s, or the ``HF_ALM_MAX_AUDIO_SECONDS`` environment variable) is
   refused with :class:`AudioTooLongError`, or cut to its first ``max_seconds`` with ``truncate=True``. Encoded audio
   is decoded only up to that limit, whatever its header says (a header that omits or understates the length cannot
   make it decode more), and never to more than ``max_samples`` values (samples x channels; default
   :data:`MAX_SAMPLES`, 2**26 = 256 MiB of float32) whatever its rate and channel count. ``max_seconds=None`` /
   ``max_samples=None`` lift them for one call; assigning ``hf_alm.data.audio.MAX_SECONDS`` / ``MAX_SAMPLES`` changes
   them for the process.
2. **Layout.** Decoded files carry their channel layout in their header: it is used as it is (a 1-frame stereo file
   is one sample). For arrays, 1-D is mono; a 2-D ``(a, b)`` array is ``(channels, samples)`` with
   ``channels_first=True`` and ``(samples, channels)`` (what ``soundfile.read`` returns) with
   ``channels_first=False``, any number of channels. Left unset (``None``), the channels are on the *smaller* axis,
   which must hold at most :data:`MAX_CHANNELS` (8) channels while the other axis is strictly longer; so
   ``(2, 48000)`` and ``(48000, 2)`` are both stereo, while square shapes, shapes with more than 8 rows *and*
   columns (a 16-microphone ``(24000, 16)`` array), 0-D and 3-D (or more) arrays are refused, naming the shape.
3. **Dtype.** ``int16 / 32768``, ``int32 / 2**31``, ``uint8 (x - 128) / 128``, ``int8 / 128``; float16 / bfloat16 /
   float64 are cast to float32. Other dtypes (``int64``, ``bool``, complex) are refused: their scale is unknown.
   Float samples are expected in [-1, 1]: a peak above :data:`MAX_FLOAT_PEAK` (64, i.e. 36 dB over full scale) is
   refused (float32 arrays holding int16 values, 1e13 amplitudes) unless ``float_scale`` says what they are divided by
   (``float_scale=32768`` for int16-range floats).
4. **Checks.** Empty audio (0 samples) and NaN / Inf values are refused; the message gives the first offending
   sample index (and channel). A file whose header declares more samples than it holds (a truncated WAV, FLAC or
   AIFF) is refused with :class:`AudioInputError` naming the declared and the decoded counts.
5. **Down-mix** by the mean over channels.
6. **Resample** with :func:`resample` (band-limited windowed-sinc, Hann window, 6 zero crossings, roll-off 0.99: the
   same filter as ``torchaudio.functional.resample``'s default, implemented here in plain torch). Files are decoded at
   their native rate and resampled by the same function as arrays, so a file and the array decoded from it give the
   same tensor. A ``datasets`` decoder already cast with ``Audio(sampling_rate=...)`` hands over samples at that rate
   (resampled by FFmpeg); they are used as they are when that rate is the requested one.

Tensors keep their device (a CUDA tensor comes back on CUDA); decoded audio is on the CPU.
Every error is an :class:`AudioInputError` (a ``ValueError``) whose message names the problem, the argument and the
value.
"""

from __future__ import annotations

import functools
import io
import math
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "AudioInputError",
    "AudioTooLongError",
    "MAX_CHANNELS",
    "MAX_FLOAT_PEAK",
    "MAX_SAMPLES",
    "MAX_SAMPLING_RATE",
    "MAX_SECONDS",
    "MIN_SAMPLING_RATE",
    "AUDIO_EXTENSIONS",
    "load_audio",
    "decode_audio",
    "resample",
    "pad_batch",
]

#: Largest channel count the shape rule accepts for 2-D arrays given without ``channels_first``; it decides which
#: axis holds the channels.
MAX_CHANNELS = 8

#: Lowest and highest sampling rate (Hz) accepted for audio sources and requested outputs. A rate outside this range
#: is a broken or hostile header (a WAV claiming 1 Hz would be resampled into billions of samples).
MIN_SAMPLING_RATE = 1_000
MAX_SAMPLING_RATE = 768_000

#: Largest float sample magnitude accepted (float audio is expected in [-1, 1]; 64 leaves 36 dB of headroom for hot
#: mixes and resampling overshoot, and refuses float arrays holding integer PCM values or absurd amplitudes).
MAX_FLOAT_PEAK = 64.0

#: Most values (samples x channels) decoding may produce, whatever the rate and channel count: 2**26 float32 values
#: are 256 MiB (11.6 min of 48 kHz stereo). ``None`` removes this bound.
MAX_SAMPLES: int | None = 1 << 26

_SECONDS_ENV = "HF_ALM_MAX_AUDIO_SECONDS"
_DEFAULT_MAX_SECONDS = 600.0


def _seconds_from_env() -> float | None:
    raw = os.environ.get(_SECONDS_ENV)
    if raw is None or not raw.strip():
        return _DEFAULT_MAX_SECONDS
    if raw.strip().lower() == "none":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{_SECONDS_ENV} must be a positive number of seconds or 'none', got {raw!r}")
    return value


#: Default longest audio (seconds) :func:`load_audio` / :func:`decode_audio` accept: 600, or the
#: ``HF_ALM_MAX_AUDIO_SECONDS`` environment variable read at import (a number, or ``none`` for no limit). Assign a
#: new value to change it for the process; pass ``max_seconds=`` to change it for one call.
MAX_SECONDS: float | None = _seconds_from_env()

#: File extensions the loaders treat as audio (lower case, with the dot).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff", ".wma", ".webm")


class AudioInputError(ValueError):
    """Audio that cannot be used: empty, NaN/Inf, wrong shape or dtype, unknown rate, missing or undecodable file."""


class AudioTooLongError(AudioInputError):
    """Audio longer than the caller's ``max_seconds`` (or decoding to more values than ``max_samples``).

    ``seconds`` is its length when known (from a trusted header or an array), else ``None`` (decoding stopped at the
    limit); ``limit_seconds`` is the limit that applied, in seconds at the audio's rate; ``limit`` names it
    (``"max_seconds"`` or ``"max_samples"``).
    """

    def __init__(self, message: str, *, seconds: float | None, limit_seconds: float, limit: str = "max_seconds"):
        super().__init__(message)
        self.seconds = seconds
        self.limit_seconds = limit_seconds
        self.limit = limit


class _Default:
    """Marks an argument left at its module-level default (read at call time)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


_MAX_SECONDS_DEFAULT: Any = _Default("MAX_SECONDS")
_MAX_SAMPLES_DEFAULT: Any = _Default("MAX_SAMPLES")


# --------------------------------------------------------------------------------------------------------------------
# small validators


def _check_rate(value: Any, name: str, *, bounded: bool = True) -> int:
    """A positive integer sampling rate (an integral float such as ``16000.0`` is accepted); with ``bounded``, also
    within [MIN_SAMPLING_RATE, MAX_SAMPLING_RATE]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 0 and not value.dtype == torch.bool:
            value = value.item()
        else:
            raise AudioInputError(f"{name} must be a positive integer number of Hz, got {value!r}")
    if isinstance(value, bool) or not math.isfinite(value) or value <= 0 or float(value) != int(value):
        raise AudioInputError(f"{name} must be a positive integer number of Hz, got {value!r}")
    rate = int(value)
    if bounded and not MIN_SAMPLING_RATE <= rate <= MAX_SAMPLING_RATE:
        raise AudioInputError(
            f"{name} must be between {MIN_SAMPLING_RATE} and {MAX_SAMPLING_RATE} Hz "
            f"(hf_alm.data.audio.MIN_SAMPLING_RATE / MAX_SAMPLING_RATE), got {value!r}"
        )
    return rate


def _check_max_seconds(value: Any) -> float | None:
    if isinstance(value, _Default):
        value = MAX_SECONDS
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise AudioInputError(f"max_seconds must be a positive number of seconds or None (no limit), got {value!r}")
    return float(value)


def _check_max_samples(value: Any) -> int | None:
    if isinstance(value, _Default):
        value = MAX_SAMPLES
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise AudioInputError(f"max_samples must be a positive integer number of decoded values or None, got "
                              f"{value!r}")
    return int(value)


def _check_float_scale(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise AudioInputError(f"float_scale must be a positive number (e.g. 32768 for int16-range floats), got "
                              f"{value!r}")
    return float(value)


def _check_flag(value: Any, name: str, *, optional: bool) -> bool | None:
    if value is None and optional:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise AudioInputError(f"{name} must be True or False{' or None' if optional else ''}, got {value!r}")
    return bool(value)


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    return type(source).__name__


@dataclass
class _Limits:
    """What the caller allows: ``max_seconds`` (``None`` = no limit) and whether longer audio is cut or refused."""

    max_seconds: float | None
    truncate: bool
    max_samples: int | None = None

    def max_frames(self, rate: int, channels: int) -> tuple[int | None, str | None]:
        """Most frames allowed at ``rate`` with ``channels`` and which limit sets it (``"seconds"`` / ``"samples"``)."""
        frames, which = None, None
        if self.max_seconds is not None:
            frames, which = math.floor(self.max_seconds * rate + 1e-6), "seconds"
        if self.max_samples is not None:
            by_samples = max(1, self.max_samples // max(1, channels))
            if frames is None or by_samples < frames:
                frames, which = by_samples, "samples"
        return frames, which

    def too_long(self, what: str, rate: int, channels: int, which: str, *, frames: int | None,
                 stated: str = "") -> AudioTooLongError:
        """The error for audio over the limit; ``frames`` is its length when known, ``None`` when decoding stopped."""
        limit_frames, _ = self.max_frames(rate, channels)
        limit_s = limit_frames / rate
        seconds = None if frames is None else frames / rate
        if which == "samples":
            length = f"is {seconds:.1f} s long" if seconds is not None else f"is longer than {limit_s:g} s"
            return AudioTooLongError(
                f"{what} {length} ({channels} channel(s) at {rate} Hz): decoding it would exceed max_samples="
                f"{self.max_samples} values (samples x channels); pass a larger max_samples (default "
                "hf_alm.data.audio.MAX_SAMPLES) or truncate=True to keep the beginning"
                + (f" ({stated})" if stated else ""),
                seconds=seconds, limit_seconds=limit_s, limit="max_samples")
        if seconds is not None:
            length = f"is {seconds:.1f} s long, over max_seconds={self.max_seconds:g}"
        else:
            length = f"is longer than max_seconds={self.max_seconds:g} (decoding stopped there; {stated})"
        return AudioTooLongError(
            f"{what} {length}: pass a larger max_seconds (max_seconds=None for no limit) or truncate=True to keep "
            "the first max_seconds",
            seconds=seconds, limit_seconds=limit_s)


# --------------------------------------------------------------------------------------------------------------------
# arrays


_INT_SCALES = {
    torch.int16: (0.0, 32768.0),
    torch.int32: (0.0, 2147483648.0),
    torch.int8: (0.0, 128.0),
    torch.uint8: (128.0, 128.0),
}


def _as_tensor(array: Any) -> torch.Tensor:
    """numpy / torch / nested lists -> torch tensor, keeping the dtype (the scale depends on it)."""
    if isinstance(array, torch.Tensor):
        return array
    if isinstance(array, np.generic):
        array = np.asarray(array)
    if isinstance(array, np.ndarray):
        if array.dtype == np.uint16 or array.dtype == np.uint32 or array.dtype == np.uint64:
            raise AudioInputError(f"unsupported audio dtype {array.dtype}: use int16, int32, uint8 or float samples")
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        if array.dtype.kind not in "iufcb":
            raise AudioInputError(f"unsupported audio dtype {array.dtype}: use int16, int32, uint8 or float samples")
        return torch.from_numpy(array if array.flags.c_contiguous else np.ascontiguousarray(array))
    if isinstance(array, (list, tuple)):
        if any(isinstance(v, (bool, np.bool_)) for v in (array[:1] if len(array) else ())):
            raise AudioInputError("a list of booleans is not audio: pass float samples in [-1, 1]")
        try:
            arr = np.asarray(array, dtype=np.float32)
        except (TypeError, ValueError, OverflowError) as err:
            raise AudioInputError(f"cannot read a {type(array).__name__} of {len(array)} items as audio samples: "
                                  f"{err}") from None
        return torch.from_numpy(arr)
    raise AudioInputError(f"unsupported audio source of type {type(array).__name__}")


def _to_channels_first(x: torch.Tensor, channels_first: bool | None = None) -> torch.Tensor:
    """Apply the layout (``channels_first`` when given, else the documented shape rule): ``(channels, samples)``."""
    if x.ndim == 1:
        return x.unsqueeze(0)
    if x.ndim == 2:
        a, b = x.shape
        if channels_first is not None and (b if channels_first is False else a) == 0 and x.numel() == 0 and (a or b):
            raise AudioInputError(f"audio of shape {tuple(x.shape)} with channels_first={channels_first} has 0 channels")
        if channels_first is True:
            return x if b else x.reshape(1, 0)
        if channels_first is False:
            return x.transpose(0, 1) if a else x.reshape(1, 0)
        if a == 0 or b == 0:
            return x.reshape(1, 0)
        if a < b and a <= MAX_CHANNELS:
            return x
        if b < a and b <= MAX_CHANNELS:
            return x.transpose(0, 1)
        raise AudioInputError(
            f"ambiguous 2-D audio of shape {tuple(x.shape)}: without channels_first, expected (channels, samples) or "
            f"(samples, channels) with at most {MAX_CHANNELS} channels on the shorter axis; pass channels_first=False "
            "for (samples, channels) (what soundfile.read returns) or channels_first=True for (channels, samples)"
        )
    raise AudioInputError(f"expected mono (samples,) or (channels, samples) audio, got shape {tuple(x.shape)}")


def _first_where(mask: torch.Tensor) -> tuple[int, int]:
    """``(channel, sample)`` of the first True of a ``(channels, samples)`` mask in time order (then lowest channel)."""
    bad = mask.nonzero()
    order = torch.argmin(bad[:, 1] * mask.shape[0] + bad[:, 0])
    channel, sample = (int(v) for v in bad[order])
    return channel, sample


def _where(x: torch.Tensor, channel: int, sample: int) -> str:
    return f"sample {sample}" + (f" of channel {channel}" if x.shape[0] > 1 else "")


def _check_values(x: torch.Tensor, what: str = "audio") -> None:
    """``x`` is ``(channels, samples)``; reject empty audio and non-finite values, naming the first bad sample."""
    if x.shape[-1] == 0:
        raise AudioInputError(f"{what} is empty (0 samples)")
    if not x.is_floating_point():
        return
    finite = torch.isfinite(x)
    if bool(finite.all()):
        return
    channel, sample = _first_where(~finite)
    value = float(x[channel, sample])
    kind = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    raise AudioInputError(f"{what} contains {kind} at {_where(x, channel, sample)}")


def _check_peak(x: torch.Tensor, what: str, float_scale: float | None, advice: str | None = None) -> None:
    """``x`` is finite float ``(channels, samples)``, already divided by ``float_scale``: its peak must stay within
    :data:`MAX_FLOAT_PEAK`."""
    peak = max(float(x.max()), -float(x.min())) if x.numel() else 0.0  # no full-size temporary
    if peak <= MAX_FLOAT_PEAK:
        return
    flat = int(x.abs().argmax())
    channel, sample = divmod(flat, x.shape[-1])
    if advice is not None:
        pass
    elif float_scale is None:
        advice = ("float samples are expected in [-1, 1]; if they hold integer PCM values pass float_scale (e.g. "
                  "float_scale=32768 for int16-range values)")
    else:
        advice = f"even after dividing by float_scale={float_scale:g}; float samples are expected in [-1, 1]"
    raise AudioInputError(
        f"{what} has peak amplitude {peak:g} at {_where(x, channel, sample)}, above MAX_FLOAT_PEAK="
        f"{MAX_FLOAT_PEAK:g}: {advice}"
    )


def _to_float32(x: torch.Tensor, what: str, float_scale: float | None) -> torch.Tensor:
    """``(channels, samples)`` in any supported dtype -> checked float32 in [-1, 1] (ints) / within the peak bound."""
    _check_values(x, what)  # empty, NaN/Inf (in the source precision: 1e300 in float64 is not called "Inf")
    if x.dtype in _INT_SCALES:
        if float_scale is not None:
            raise AudioInputError(
                f"float_scale={float_scale:g} applies to float samples, but {what} holds "
                f"{str(x.dtype).replace('torch.', '')} PCM, whose scale its dtype fixes; leave float_scale unset"
            )
        offset, scale = _INT_SCALES[x.dtype]
        x = x.to(torch.float32)
        return (x - offset) / scale if offset else x / scale
    if x.is_floating_point() and not x.is_complex():
        if float_scale is not None:
            x = x / float_scale
        _check_peak(x, what, float_scale)
        return x.to(torch.float32)
    raise AudioInputError(
        f"unsupported audio dtype {str(x.dtype).replace('torch.', '')}: integer PCM must be int16, int32, int8 or "
        "uint8 (int64 has no defined full scale), otherwise pass float samples in [-1, 1]"
    )


def _apply_duration_limit(x: torch.Tensor, rate: int, what: str, limits: _Limits) -> torch.Tensor:
    """``x`` is ``(channels, samples)`` in memory (an array): refuse it, or cut it, when over ``max_seconds``."""
    if limits.max_seconds is None:
        return x
    limit = math.floor(limits.max_seconds * rate + 1e-6)
    if x.shape[-1] <= limit:
        return x
    if limits.truncate:
        return x[:, :limit]
    raise AudioTooLongError(
        f"{what} is {x.shape[-1] / rate:.1f} s long ({x.shape[-1]} samples at {rate} Hz), over "
        f"max_seconds={limits.max_seconds:g}: pass a larger max_seconds (max_seconds=None for no limit) or "
        "truncate=True to keep the first max_seconds",
        seconds=x.shape[-1] / rate, limit_seconds=limit / rate)


# --------------------------------------------------------------------------------------------------------------------
# uncompressed WAV, read directly (exact length and layout from the header, ~100x faster than a general decoder)

_WAV_PCM, _WAV_FLOAT, _WAV_EXTENSIBLE = 1, 3, 0xFFFE
_WAV_DTYPES = {(_WAV_PCM, 8): "u1", (_WAV_PCM, 16): "<i2", (_WAV_PCM, 24): "i24", (_WAV_PCM, 32): "<i4",
               (_WAV_FLOAT, 32): "<f4", (_WAV_FLOAT, 64): "<f8"}
_WAV_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # what streaming writers put in the data chunk's size: "up to the end"
_WAV_MAX_CHUNKS = 10_000


class _Reader:
    """Random access to a file's or a buffer's bytes (a file is kept open until :meth:`close`)."""

    def __init__(self, source: str | bytes):
        self._fh = open(source, "rb") if isinstance(source, str) else None
        self._data = None if isinstance(source, str) else memoryview(source)
        self.size = os.fstat(self._fh.fileno()).st_size if self._fh is not None else len(source)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()

    def read(self, offset: int, n: int) -> bytes:
        if self._data is not None:
            return bytes(self._data[offset : offset + n])
        self._fh.seek(offset)
        return self._fh.read(n)

    def array(self, offset: int, count: int, dtype: str) -> np.ndarray:
        if dtype == "i24":  # 3-byte little-endian PCM -> int32 with the sample in the top 24 bits (same full scale)
            raw = np.frombuffer(self.read(offset, 3 * count), dtype=np.uint8)
            out = np.zeros((raw.size // 3, 4), dtype=np.uint8)
            out[:, 1:] = raw[: out.shape[0] * 3].reshape(-1, 3)
            return out.view("<i4").reshape(-1)
        if self._data is not None:
            width = np.dtype(dtype).itemsize
            return np.frombuffer(self._data[offset : offset + width * count], dtype=dtype)
        self._fh.seek(offset)
        return np.fromfile(self._fh, dtype=dtype, count=count)


def _read_wav(reader: _Reader, what: str, limits: _Limits) -> tuple[torch.Tensor, int] | None:
    """``((channels, frames) samples in their own dtype, rate)`` of an uncompressed WAV; ``None`` when ``reader`` is
    not a RIFF/WAVE file or uses a codec this reader does not handle (then FFmpeg decodes it, with the same limits).

    The header decides everything before a sample is read: the rate range, the channel count, the length (refused or
    cut when over the limits) and truncation (a data chunk declaring more bytes than the file holds)."""
    head = reader.read(0, 12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, fmt, data_at, declared = 12, None, None, None
    for _ in range(_WAV_MAX_CHUNKS):
        if pos + 8 > reader.size:
            break
        chunk = reader.read(pos, 8)
        cid, size = chunk[:4], int.from_bytes(chunk[4:8], "little")
        if cid == b"fmt ":
            fmt = reader.read(pos + 8, min(size, 64))
        elif cid == b"data":
            data_at, declared = pos + 8, size
            break
        pos += 8 + size + (size & 1)
    else:
        return None  # an absurd number of chunks: leave it to FFmpeg
    if fmt is None or len(fmt) < 16:
        raise AudioInputError(f"cannot decode {what}: its WAV header has no valid 'fmt ' chunk")
    if data_at is None:
        raise AudioInputError(f"cannot decode {what}: WAV file without a 'data' chunk")
    tag = int.from_bytes(fmt[0:2], "little")
    channels = int.from_bytes(fmt[2:4], "little")
    rate = int.from_bytes(fmt[4:8], "little")
    block_align = int.from_bytes(fmt[12:14], "little")
    bits = int.from_bytes(fmt[14:16], "little")
    if tag == _WAV_EXTENSIBLE and len(fmt) >= 26:
        tag = int.from_bytes(fmt[24:26], "little")
    dtype = _WAV_DTYPES.get((tag, bits))
    if dtype is None:
        return None  # ADPCM, mu-law, ...: FFmpeg
    if channels == 0:
        raise AudioInputError(f"cannot decode {what}: its WAV header declares 0 channels")
    rate = _check_rate(rate, f"the sampling rate in the header of {what}")
    frame_bytes = channels * bits // 8
    if block_align != frame_bytes:
        return None  # an inconsistent header: FFmpeg's rules apply
    available = reader.size - data_at
    if declared in _WAV_UNKNOWN_SIZES:
        nbytes = available
    elif declared > available:
        raise AudioInputError(
            f"{what} is truncated: its WAV header declares {declared // frame_bytes} samples "
            f"({declared // frame_bytes / rate:.3f} s at {rate} Hz) but the file holds {available // frame_bytes}"
        )
    else:
        nbytes = declared
    frames = nbytes // frame_bytes
    if frames == 0:
        raise AudioInputError(f"{what} is empty (0 samples)")
    limit, which = limits.max_frames(rate, channels)
    if limit is not None and frames > limit:
        if not limits.truncate:
            raise limits.too_long(what, rate, channels, which, frames=frames)
        frames = limit
    samples = reader.array(data_at, frames * channels, dtype)
    if samples.size < frames * channels:  # the file shrank while we read it
        raise AudioInputError(f"{what} is truncated: expected {frames} samples, read {samples.size // channels}")
    return torch.from_numpy(samples.reshape(frames, channels).copy() if not samples.flags.writeable else
                            samples.reshape(frames, channels)).transpose(0, 1), rate


# --------------------------------------------------------------------------------------------------------------------
# decoding with torchcodec (FFmpeg)

# codecs whose header states the exact length (truncation is detectable); lossy codecs only estimate it
_EXACT_LENGTH_CODECS = ("flac", "alac", "wavpack", "tta")


def _exact_length_codec(codec: Any) -> bool:
    return isinstance(codec, str) and (codec.startswith("pcm_") or codec in _EXACT_LENGTH_CODECS)


def _decoder_class():
    try:
        from torchcodec.decoders import AudioDecoder
    except ImportError as err:  # pragma: no cover - torchcodec is a core dependency
        raise ImportError("decoding audio files needs torchcodec (pip install torchcodec) and FFmpeg") from err
    return AudioDecoder


def _bounded_samples(decoder: Any, what: str, limits: _Limits) -> tuple[torch.Tensor, int, bool]:
    """Decode at most the allowed length: ``((channels, frames), rate, float_source)``.

    The header's rate and channel count set the bound before anything is decoded; decoding asks torchcodec for the
    range [0, limit + 1 sample) only, so a header that omits or understates the length cannot make it decode more.
    """
    meta = getattr(decoder, "metadata", None)
    native = getattr(meta, "sample_rate", None)
    rate = getattr(decoder, "_desired_sample_rate", None) or native
    if rate is None:
        raise AudioInputError(f"cannot decode {what}: its header states no sampling rate")
    if native is not None:
        _check_rate(native, f"the sampling rate in the header of {what}")
    rate = _check_rate(rate, f"the sampling rate of {what}")
    channels = getattr(meta, "num_channels", None) or 1
    limit, which = limits.max_frames(rate, channels)
    codec = getattr(meta, "codec", None)
    header_s = getattr(meta, "duration_seconds_from_header", None)
    exact = _exact_length_codec(codec) and (native is None or native == rate) and header_s
    declared = round(float(header_s) * rate) if exact else None
    if declared is not None and limit is not None and declared > limit and not limits.truncate:
        raise limits.too_long(what, rate, channels, which, frames=declared)  # refused from its header, undecoded
    stop = None if limit is None else (limit + 1) / rate
    hint = f" (a {codec} stream that cannot be decoded to its end is truncated or corrupt)" if codec else ""
    def read(dec):
        ranged = getattr(dec, "get_samples_played_in_range", None)
        # a decoder-like object without ranges (not torchcodec's) is read whole, then held to the same limits
        return ranged(0.0, stop) if callable(ranged) else dec.get_all_samples()

    try:
        samples = read(decoder)
    except Exception as err:  # torchcodec raises RuntimeError with FFmpeg's message
        # A torchcodec decoder that was already read may fail to seek back to the start (seen with FLAC files that
        # have no seek table). A decoder made by ``datasets`` remembers its source: read it again with a fresh one.
        fresh = _reopen(decoder)
        if fresh is None:
            raise _decode_error(what, err, hint) from err
        try:
            samples = read(fresh)
        except Exception as err2:
            raise _decode_error(what, err2, hint) from err2
    data = samples.data
    if int(samples.sample_rate) != rate:
        rate = _check_rate(samples.sample_rate, f"the sampling rate of {what}")
    if limit is not None and data.shape[-1] > limit:
        if not limits.truncate:
            stated = f"its header states {float(header_s):.1f} s" if header_s else "its header states no length"
            raise limits.too_long(what, rate, data.shape[0], which, frames=None, stated=stated)
        data = data[:, :limit]
    elif declared is not None and 0 < data.shape[-1] < declared:
        raise AudioInputError(
            f"{what} is truncated: its header declares {declared} samples ({declared / rate:.3f} s at {rate} Hz) but "
            f"only {data.shape[-1]} could be decoded"
        )
    sample_format = str(getattr(meta, "sample_format", "") or "")
    return data, rate, sample_format.startswith(("flt", "dbl"))


def _decode_error(what: str, err: BaseException, hint: str = "") -> AudioInputError:
    message = _first_line(err)
    if "No audio frames were decoded" in message:
        return AudioInputError(f"{what} is empty (0 samples)")
    return AudioInputError(f"cannot decode {what}: {message}{hint}")


def _reopen(decoder: Any):
    encoded = getattr(decoder, "_hf_encoded", None)
    if not isinstance(encoded, dict):
        return None
    source = encoded.get("bytes")
    if source is None:
        path = encoded.get("path")
        if not isinstance(path, str) or not os.path.isfile(path):
            return None
        source = path
    metadata = getattr(decoder, "metadata", None)
    rate = getattr(decoder, "_desired_sample_rate", None)
    native = getattr(metadata, "sample_rate", None)
    try:
        return _decoder_class()(
            source,
            stream_index=getattr(decoder, "stream_index", None),
            sample_rate=rate if rate is not None and rate != native else None,
        )
    except Exception:
        return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    # torchcodec prefixes C++ locations ("SingleStreamDecoder, /path/file.cpp:70, message"); keep the message
    parts = [p.strip() for p in text.splitlines()[0].split(", ")]
    tail = [p for p in parts if not (".cpp:" in p or p == "SingleStreamDecoder" or p.startswith("decode_av_frame"))]
    return ", ".join(tail) if tail else text.splitlines()[0]


@dataclass
class _Raw:
    """Samples as read: ``layout`` is ``"channels_first"`` for decoded audio (known from the header) and ``"array"``
    for arrays (the shape rule or ``channels_first`` decides); ``float_source`` says whether ``float_scale`` may
    apply."""

    samples: torch.Tensor
    rate: int
    what: str
    layout: str
    float_source: bool = True


def _decode_encoded(source: str | bytes, what: str, limits: _Limits, open_hint: str = "") -> _Raw:
    """A path (already checked to exist) or encoded bytes: the WAV reader, else torchcodec (``open_hint`` is added to
    the message when FFmpeg does not recognise the data at all)."""
    reader = _Reader(source)
    try:
        wav = _read_wav(reader, what, limits)
    finally:
        reader.close()
    if wav is not None:
        data, rate = wav
        return _Raw(data, rate, what, "channels_first", data.is_floating_point())
    AudioDecoder = _decoder_class()
    try:
        decoder = AudioDecoder(source)
    except Exception as err:
        raise _decode_error(what, err, open_hint) from err
    data, rate, is_float = _bounded_samples(decoder, what, limits)
    return _Raw(data, rate, what, "channels_first", is_float)


def _decode_file(path: str | os.PathLike, limits: _Limits) -> _Raw:
    path_str = os.fspath(path)
    what = f"audio file {path_str!r}"
    if "://" in path_str:
        raise AudioInputError(f"cannot read audio from a URL ({path_str!r}): download it first and pass the local path")
    if not os.path.exists(path_str):
        raise AudioInputError(f"audio file not found: {path_str!r}")
    if os.path.isdir(path_str):
        raise AudioInputError(f"audio path is a directory, not a file: {path_str!r}")
    if not os.access(path_str, os.R_OK):
        raise AudioInputError(f"audio file is not readable (permission denied): {path_str!r}")
    if os.path.getsize(path_str) == 0:
        raise AudioInputError(f"cannot decode audio file {path_str!r}: the file is empty (0 bytes)")
    return _decode_encoded(path_str, what, limits)


def _decode_bytes(data: bytes, limits: _Limits, what: str = "audio bytes") -> _Raw:
    if len(data) == 0:
        raise AudioInputError(f"cannot decode {what}: empty (0 bytes)")
    hint = (" (bytes must hold an encoded file such as wav/flac/ogg/mp3; for raw PCM samples pass "
            "np.frombuffer(data, dtype=np.int16) with source_sampling_rate)")
    return _decode_encoded(bytes(data), f"{what} ({len(data)} bytes)", limits, hint)


def _is_decoder(obj: Any) -> bool:
    return callable(getattr(obj, "get_all_samples", None))


def _is_samples(obj: Any) -> bool:
    return hasattr(obj, "data") and hasattr(obj, "sample_rate") and isinstance(getattr(obj, "data"), torch.Tensor)


def _is_rate_scalar(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, numbers.Real):
        return True
    return isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 0


def _is_array_like(value: Any) -> bool:
    return isinstance(value, (np.ndarray, torch.Tensor, list)) and not (
        isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 0)


def _read(source: Any, source_sampling_rate: Any, limits: _Limits) -> _Raw:
    """Dispatch on the source type: the samples in their own dtype/shape, the rate and a description for errors."""
    declared = None if source_sampling_rate is None else _check_rate(source_sampling_rate, "source_sampling_rate")

    def stored(raw: _Raw, where: str | None = None) -> _Raw:
        if declared is not None and declared != raw.rate:
            raise AudioInputError(
                f"source_sampling_rate={declared} contradicts the rate {raw.rate} Hz stored in {where or raw.what}; "
                "leave source_sampling_rate unset for encoded audio"
            )
        return raw

    if source is None:
        raise AudioInputError("audio source is None")
    if isinstance(source, (str, os.PathLike)):
        return stored(_decode_file(source, limits))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return stored(_decode_bytes(bytes(source), limits))
    if isinstance(source, (io.IOBase,)) or (hasattr(source, "read") and not _is_decoder(source)):
        name = getattr(source, "name", None)
        what = f"audio file object {name!r}" if isinstance(name, str) else "audio file object"
        if isinstance(source, io.TextIOBase):  # reading would fail first, with a UnicodeDecodeError
            raise AudioInputError(f"{what} is opened in text mode; open it with 'rb'")
        try:
            data = source.read()
        except (OSError, ValueError) as err:
            raise AudioInputError(f"cannot read {what}: {err}") from err
        if isinstance(data, str):
            raise AudioInputError(f"{what} is opened in text mode; open it with 'rb'")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise AudioInputError(f"{what}.read() returned {type(data).__name__}, not bytes")
        return stored(_decode_bytes(bytes(data), limits, what))
    if isinstance(source, dict):
        return _read_dict(source, declared, stored, limits)
    if _is_decoder(source):
        meta = getattr(source, "metadata", None)
        path = getattr(meta, "path", None)
        what = f"audio decoder for {path!r}" if path else "audio decoder"
        data, rate, is_float = _bounded_samples(source, what, limits)
        return stored(_Raw(data, rate, what, "channels_first", is_float))
    if _is_samples(source):
        rate = _check_rate(source.sample_rate, "the AudioSamples' sample_rate")
        return stored(_Raw(source.data, rate, "audio", "channels_first"), "the AudioSamples")
    if isinstance(source, tuple) and len(source) == 2 and _is_rate_scalar(source[0]) and _is_array_like(source[1]):
        rate = _check_rate(source[0], "sampling rate of the (sampling_rate, array) tuple")  # gradio's form
        return stored(_Raw(_as_tensor(source[1]), rate, "audio", "array"), "the (sampling_rate, array) tuple")
    if isinstance(source, tuple) and len(source) == 2 and _is_array_like(source[0]) and _is_rate_scalar(source[1]):
        rate = _check_rate(source[1], "sampling rate of the (array, sampling_rate) tuple")  # soundfile's / librosa's
        return stored(_Raw(_as_tensor(source[0]), rate, "audio", "array"), "the (array, sampling_rate) tuple")
    if isinstance(source, tuple) and any(isinstance(v, (np.ndarray, torch.Tensor)) for v in source):
        raise AudioInputError(
            f"a tuple audio source must be (sampling_rate, array) or (array, sampling_rate), got a {len(source)}-tuple "
            f"of ({', '.join(type(v).__name__ for v in source)})"
        )
    if isinstance(source, (np.ndarray, np.generic, torch.Tensor, list, tuple)):
        tensor = _as_tensor(source)
        if declared is None:
            raise AudioInputError(
                f"unknown sampling rate: pass source_sampling_rate for a raw array (got a {type(source).__name__} of "
                f"shape {tuple(tensor.shape)} and no rate)"
            )
        return _Raw(tensor, declared, "audio", "array")
    raise AudioInputError(
        f"unsupported audio source of type {type(source).__name__}: expected a path, bytes, an array with "
        "source_sampling_rate, an {'array', 'sampling_rate'} or {'path', 'bytes'} dict, an (array, sampling_rate) "
        "tuple, or an audio decoder"
    )


def _read_dict(source: dict, declared: int | None, stored, limits: _Limits) -> _Raw:
    if source.get("array") is not None:
        rate = source.get("sampling_rate")
        if rate is None:
            if declared is None:
                raise AudioInputError(
                    "unknown sampling rate: the audio dict has an 'array' but no 'sampling_rate' "
                    "(pass source_sampling_rate)"
                )
            rate = declared
        rate = _check_rate(rate, "the audio dict's 'sampling_rate'")
        return stored(_Raw(_as_tensor(source["array"]), rate, "audio", "array"), "the audio dict")
    if source.get("bytes") is not None:
        path = source.get("path")
        what = f"audio bytes of {path!r}" if path else "audio bytes"
        if not isinstance(source["bytes"], (bytes, bytearray, memoryview)):
            raise AudioInputError(f"the audio dict's 'bytes' must be bytes, got {type(source['bytes']).__name__}")
        return stored(_decode_bytes(source["bytes"], limits, what))
    if source.get("path") is not None:
        if not isinstance(source["path"], (str, os.PathLike)):
            raise AudioInputError(f"the audio dict's 'path' must be a path, got {type(source['path']).__name__}")
        return stored(_decode_file(source["path"], limits))
    raise AudioInputError(
        f"audio dict has no usable 'array', 'bytes' or 'path' entry (keys: {sorted(map(str, source))})"
    )


def _samples(source: Any, source_sampling_rate: Any, max_seconds: Any, truncate: Any, channels_first: Any,
             float_scale: Any, max_samples: Any) -> tuple[torch.Tensor, int, str]:
    """Shared by :func:`load_audio` and :func:`decode_audio`: checked float32 ``(channels, samples)`` and its rate."""
    limits = _Limits(_check_max_seconds(max_seconds), _check_flag(truncate, "truncate", optional=False),
                     _check_max_samples(max_samples))
    channels_first = _check_flag(channels_first, "channels_first", optional=True)
    float_scale = _check_float_scale(float_scale)
    raw = _read(source, source_sampling_rate, limits)
    if raw.layout == "array":
        x = _to_channels_first(raw.samples, channels_first)
        x = _apply_duration_limit(x, raw.rate, raw.what, limits)
    else:
        if channels_first is not None:
            raise AudioInputError(
                f"channels_first={channels_first} applies to arrays; {raw.what} states its channel layout itself "
                "(leave channels_first unset)"
            )
        if float_scale is not None and not raw.float_source:
            raise AudioInputError(
                f"float_scale={float_scale:g} applies to float samples, but {raw.what} holds integer PCM, whose "
                "scale its format fixes; leave float_scale unset"
            )
        x = raw.samples
    return _to_float32(x, raw.what, float_scale), raw.rate, raw.what


def decode_audio(source: Any, *, source_sampling_rate: int | None = None,
                 max_seconds: float | None = _MAX_SECONDS_DEFAULT, truncate: bool = False,
                 channels_first: bool | None = None, float_scale: float | None = None,
                 max_samples: int | None = _MAX_SAMPLES_DEFAULT) -> tuple[torch.Tensor, int]:
    """Read ``source`` as it is: ``(samples (channels, samples) float32, sampling_rate)``, no down-mix, no resampling.

    Accepts the same sources and arguments as :func:`load_audio` and applies the same limits, layout, dtype and value
    checks.
    """
    x, rate, _ = _samples(source, source_sampling_rate, max_seconds, truncate, channels_first, float_scale,
                          max_samples)
    return x, rate


def load_audio(source: Any, sampling_rate: int, *, source_sampling_rate: int | None = None,
               max_seconds: float | None = _MAX_SECONDS_DEFAULT, truncate: bool = False,
               channels_first: bool | None = None, float_scale: float | None = None,
               max_samples: int | None = _MAX_SAMPLES_DEFAULT) -> torch.Tensor:
    """Return ``source`` as a float32 mono tensor ``(samples,)`` at ``sampling_rate`` Hz.

    Args:
        source: a path, encoded bytes or binary file object, a numpy array / torch tensor / list (needs
            ``source_sampling_rate``), a ``{"array", "sampling_rate"}`` or ``{"path", "bytes"}`` dict, a torchcodec
            ``AudioDecoder`` (as yielded by ``datasets``) or ``AudioSamples``, or a ``(sampling_rate, array)`` /
            ``(array, sampling_rate)`` tuple. See the module docstring for the rules.
        sampling_rate: the rate of the returned samples, in Hz (1 kHz to 768 kHz).
        source_sampling_rate: the rate of a raw array. For encoded audio the rate comes from the file; passing a
            different value there raises.
        max_seconds: longest audio accepted, in seconds; encoded audio is decoded only up to it. Default
            :data:`MAX_SECONDS` (600 s unless changed); ``None``: no duration limit (still at most
            :data:`MAX_SAMPLES` decoded values).
        truncate: keep the first ``max_seconds`` of longer audio instead of raising :class:`AudioTooLongError`.
        channels_first: the layout of a 2-D array: ``True`` for ``(channels, samples)``, ``False`` for
            ``(samples, channels)``; ``None`` applies the shape rule (at most 8 channels, on the shorter axis).
            Files state their layout; passing it for them raises.
        float_scale: float samples are divided by it (``32768`` for floats holding int16 values); by default float
            samples must already be within :data:`MAX_FLOAT_PEAK` of full scale.
        max_samples: most values (samples x channels) decoding may produce, whatever the rate and channel count;
            default :data:`MAX_SAMPLES` (2**26); ``None``: no such bound.

    Raises:
        AudioInputError: empty audio, NaN/Inf, a peak over :data:`MAX_FLOAT_PEAK`, a shape or dtype that is not
            audio, an unknown or out-of-range rate, a missing, unreadable, truncated or undecodable file (the
            message names the path); :class:`AudioTooLongError` (a subclass) for audio over the limits.
    """
    sampling_rate = _check_rate(sampling_rate, "sampling_rate")
    x, source_sr, _ = _samples(source, source_sampling_rate, max_seconds, truncate, channels_first, float_scale,
                               max_samples)
    mono = x.mean(dim=0) if x.shape[0] > 1 else x[0]
    return resample(mono, source_sr, sampling_rate).contiguous()


# --------------------------------------------------------------------------------------------------------------------
# resampling


@functools.lru_cache(maxsize=16)
def _sinc_kernel_f64(up: int, down: int, lowpass_filter_width: int, rolloff: float) -> tuple[torch.Tensor, int]:
    """Polyphase windowed-sinc weights, shape ``(up, taps)``, float64 on the CPU (cached: built once per rate pair).

    Output sample ``n`` sits at input time ``t = n * down / up`` (in input samples). With ``c = floor(t)`` and the
    phase ``p = n mod up`` (``t - c = (p * down mod up) / up``), it is ``sum_j x[c - half + 1 + j] * w[p, j]``,
    ``w[p, j] = h(t - k_j)``, ``h(tau) = s * sinc(s * tau) * hann(tau / half_width)`` with the cut-off
    ``s = rolloff * min(up, down) / down`` (cycles per input sample x 2) and ``half_width = lowpass_filter_width / s``.
    """
    scale = rolloff * min(up, down) / down
    half_width = lowpass_filter_width / scale
    half = math.ceil(half_width)
    taps = 2 * half
    phase = torch.arange(up, dtype=torch.float64)
    frac = torch.remainder(phase * down, up) / up  # t - floor(t) for each phase, exact for integer rates
    j = torch.arange(taps, dtype=torch.float64)
    tau = frac[:, None] + (half - 1) - j[None, :]  # t - k
    u = (tau / half_width).clamp(-1.0, 1.0)
    window = torch.cos(u * (math.pi / 2)) ** 2
    window = torch.where(tau.abs() <= half_width, window, torch.zeros_like(window))
    weights = scale * torch.special.sinc(scale * tau) * window
    return weights, half


@functools.lru_cache(maxsize=16)
def _dense_kernel_f64(up: int, down: int, lowpass_filter_width: int, rolloff: float) -> torch.Tensor:
    """``(up, span)``: phase ``p``'s taps placed at offset ``floor(p * down / up)`` of a frame of ``span`` inputs."""
    weights, _ = _sinc_kernel_f64(up, down, lowpass_filter_width, rolloff)
    taps = weights.shape[1]
    starts = (torch.arange(up, dtype=torch.int64) * down) // up
    span = taps + int(starts[-1])
    kernel = torch.zeros(up, span, dtype=torch.float64)
    kernel[torch.arange(up)[:, None], starts[:, None] + torch.arange(taps)[None, :]] = weights
    return kernel


@functools.lru_cache(maxsize=8)
def _on_cached(build: Callable, key: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    out = build(*key)
    return (out[0] if isinstance(out, tuple) else out).to(dtype=dtype, device=device)


def _on(build: Callable, key: tuple, dtype: torch.dtype, device: torch.device, weights: int) -> torch.Tensor:
    """A kernel converted to the data's dtype and device, cached for the next clip at the same rates when it is small
    (large kernels of unusual rate pairs are rebuilt each time: hostile rates must not fill the caches)."""
    if weights <= _CACHE_MAX_WEIGHTS:
        return _on_cached(build, key, dtype, device)
    out = build.__wrapped__(*key)
    return (out[0] if isinstance(out, tuple) else out).to(dtype=dtype, device=device)


_DENSE_MAX_WEIGHTS = 1 << 20
_CACHE_MAX_WEIGHTS = 1 << 19  # kernels larger than this (4 MiB in float64) are not kept in the caches
#: Largest resampling filter (phases x taps) :func:`resample` builds: 2**24 weights (128 MiB in float64). Every pair of
#: rates within [MIN_SAMPLING_RATE, MAX_SAMPLING_RATE] needs at most ~1.1e7; 1e12 Hz -> 16 kHz would need 7.6e8.
_MAX_KERNEL_WEIGHTS = 1 << 24
_CHUNK_ELEMENTS = 1 << 22  # bound on the temporary (batch x outputs x taps) tensors, in elements


def _resample_dense(x: torch.Tensor, kernel: torch.Tensor, half: int, up: int, down: int, out_len: int):
    """Polyphase resampling as matmuls: frames of ``span`` inputs every ``down`` samples times the ``(up, span)``
    phase kernels; ``x`` is ``(B, samples)``. Frames are taken in chunks so the copy a matmul of the overlapping
    (unfolded) frames makes stays bounded."""
    span = kernel.shape[1]
    frames = -(-out_len // up)
    needed = (frames - 1) * down + span  # padded input length the frames cover
    left = half - 1
    right = max(0, needed - left - x.shape[-1])
    xp = torch.nn.functional.pad(x, (left, right))
    windows = xp.unfold(-1, span, down)[:, :frames]  # (B, frames, span), a view
    # a matmul, not conv1d: cuDNN convolutions run in TF32 by default on recent GPUs (1e-3 errors, measured on an
    # H100), while float32 matmuls stay exact unless the user opted in with torch.set_float32_matmul_precision
    step = max(1, _CHUNK_ELEMENTS // (span * x.shape[0]))
    if step >= frames:
        y = windows @ kernel.T  # (B, frames, up)
    else:
        y = torch.cat([windows[:, i : i + step] @ kernel.T for i in range(0, frames, step)], dim=1)
    return y.reshape(x.shape[0], -1)[:, :out_len]


def resample(
    waveform: torch.Tensor | np.ndarray,
    orig_sr: int,
    new_sr: int,
    *,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
) -> torch.Tensor:
    """Band-limited resampling of ``waveform`` (``(..., samples)``) from ``orig_sr`` to ``new_sr`` Hz.

    Windowed-sinc interpolation (Hann window, ``lowpass_filter_width`` zero crossings on each side, cut-off at
    ``rolloff`` times the lower Nyquist frequency), computed polyphase on the rates divided by their gcd: each output
    sample costs ``2 * ceil(lowpass_filter_width / cutoff)`` multiply-adds whatever the rates, and memory stays bounded
    (outputs are computed in chunks). The output has ``ceil(samples * new_sr / orig_sr)`` samples; the signal is taken
    as zero outside its ends. Same filter as ``torchaudio.functional.resample``'s default, without needing torchaudio.
    Works batched, on any device, in float32 or float64 (other dtypes are computed in float32). Returns ``waveform``
    itself when the rates are equal.
    """
    orig_sr = _check_rate(orig_sr, "orig_sr", bounded=False)
    new_sr = _check_rate(new_sr, "new_sr", bounded=False)
    if not isinstance(waveform, torch.Tensor):
        waveform = torch.as_tensor(np.asarray(waveform))
    if waveform.ndim == 0:
        raise AudioInputError("resample expects (..., samples), got a 0-d tensor")
    if not 0.0 < rolloff <= 1.0:
        raise AudioInputError(f"rolloff must be in (0, 1], got {rolloff!r}")
    if int(lowpass_filter_width) != lowpass_filter_width or lowpass_filter_width < 1:
        raise AudioInputError(f"lowpass_filter_width must be a positive integer, got {lowpass_filter_width!r}")
    if orig_sr == new_sr:
        return waveform
    if not waveform.is_floating_point() or waveform.dtype not in (torch.float32, torch.float64):
        waveform = waveform.to(torch.float32)

    g = math.gcd(orig_sr, new_sr)
    down, up = orig_sr // g, new_sr // g
    shape = waveform.shape
    length = shape[-1]
    x = waveform.reshape(-1, length)
    out_len = -(-length * up // down)  # ceil(length * up / down)
    key = (up, down, int(lowpass_filter_width), float(rolloff))
    half = math.ceil(lowpass_filter_width / (rolloff * min(up, down) / down))
    taps = 2 * half
    if up * taps > _MAX_KERNEL_WEIGHTS:
        raise AudioInputError(
            f"resampling from {orig_sr} Hz to {new_sr} Hz needs a filter of {up} phases x {taps} taps, more than "
            f"{_MAX_KERNEL_WEIGHTS} weights: these rates are not audio rates (load_audio accepts "
            f"{MIN_SAMPLING_RATE} to {MAX_SAMPLING_RATE} Hz)"
        )
    if out_len == 0:
        return x.new_zeros(*shape[:-1], 0)
    # Taps of output n are x[c - half + 1 : c + half + 1], c = floor(n * down / up). Two equivalent evaluations:
    # a dense polyphase matmul (fast, but each phase's kernel spans taps + down - 1 inputs, so it is used only while
    # up * that span stays small), else a chunked gather (2 * half taps per output, any rates, bounded memory).
    span = taps + ((up - 1) * down) // up
    if up * span <= _DENSE_MAX_WEIGHTS:
        kernel = _on(_dense_kernel_f64, key, x.dtype, x.device, up * span)
        return _resample_dense(x, kernel, half, up, down, out_len).reshape(*shape[:-1], out_len)
    weights = _on(_sinc_kernel_f64, key, x.dtype, x.device, up * taps)
    x = torch.nn.functional.pad(x, (half - 1, half + 1))
    offsets = torch.arange(taps, device=x.device)
    out = x.new_empty(x.shape[0], out_len)
    chunk = max(1, _CHUNK_ELEMENTS // (taps * max(1, x.shape[0])))
    for start in range(0, out_len, chunk):
        n = torch.arange(start, min(out_len, start + chunk), device=x.device, dtype=torch.int64)
        centre = torch.div(n * down, up, rounding_mode="floor")
        frames = x[:, centre[:, None] + offsets[None, :]]  # (B, n, taps)
        out[:, start : start + n.numel()] = (frames * weights[n % up]).sum(-1)
    return out.reshape(*shape[:-1], out_len)


# --------------------------------------------------------------------------------------------------------------------
# batching


def pad_batch(
    clips: Sequence[torch.Tensor | np.ndarray], *, max_length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad mono clips with zeros into one batch.

    Args:
        clips: 1-D float clips (e.g. :func:`load_audio` outputs), finite and within :data:`MAX_FLOAT_PEAK`; numpy
            arrays are accepted.
        max_length: when given, every row has exactly ``max_length`` samples: longer clips are cut at the end, shorter
            ones padded (fixed-size batches for compiled or exported models). Otherwise the longest clip sets ``T``.

    Returns:
        ``(waveforms, attention_mask)``: ``(B, T)`` float32 and ``(B, T)`` bool, ``True`` on real samples.
    """
    if isinstance(clips, (torch.Tensor, np.ndarray, str, bytes, bytearray)) or not isinstance(clips, Sequence):
        raise AudioInputError(
            f"pad_batch expects a list of 1-D clips, got {type(clips).__name__}"
            + (f" of shape {tuple(clips.shape)}" if hasattr(clips, "shape") else "")
        )
    if len(clips) == 0:
        raise AudioInputError("pad_batch got an empty list of clips")
    if max_length is not None:
        if isinstance(max_length, bool) or not isinstance(max_length, numbers.Integral) or max_length < 1:
            raise AudioInputError(f"max_length must be a positive integer, got {max_length!r}")
        max_length = int(max_length)
    tensors = []
    for i, clip in enumerate(clips):
        try:
            t = clip if isinstance(clip, torch.Tensor) else _as_tensor(clip)
        except AudioInputError as err:
            raise AudioInputError(f"clip {i}: {err}") from None
        if t.ndim != 1:
            raise AudioInputError(f"clip {i} must be 1-D (samples,), got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise AudioInputError(f"clip {i} has dtype {str(t.dtype).replace('torch.', '')}: pad_batch expects float "
                                  "samples in [-1, 1] (load_audio converts integer PCM)")
        _check_values(t.unsqueeze(0), f"clip {i}")  # empty, NaN, Inf
        _check_peak(t.unsqueeze(0), f"clip {i}", None,  # float samples hold [-1, 1] audio, not integer PCM values
                    "pad_batch expects float samples in [-1, 1] (load_audio(..., float_scale=32768) converts floats "
                    "holding int16 values)")
        tensors.append(t)
    device = tensors[0].device
    lengths = [t.numel() for t in tensors]
    total = max(lengths) if max_length is None else max_length
    waveforms = torch.zeros(len(tensors), total, dtype=torch.float32, device=device)
    mask = torch.zeros(len(tensors), total, dtype=torch.bool, device=device)
    for i, t in enumerate(tensors):
        n = min(lengths[i], total)
        waveforms[i, :n] = t[:n].to(device=device, dtype=torch.float32)
        mask[i, :n] = True
    return waveforms, mask
