"""Audio input for hf-alm: one way in (:func:`load_audio`), resampling and batching.

``load_audio(source, sampling_rate)`` turns any audio source into a float32 mono ``torch.Tensor`` of shape
``(samples,)`` at ``sampling_rate``:

* a file path (``str`` / ``os.PathLike``; wav, flac, ogg, mp3 and whatever else FFmpeg reads) or encoded ``bytes`` /
  ``bytearray`` / ``memoryview`` / a binary file object, decoded with ``torchcodec.decoders.AudioDecoder``;
* a numpy array, a torch tensor or a list of numbers (read as float samples) together with
  ``source_sampling_rate``;
* a ``{"array": ..., "sampling_rate": ...}`` dict, or a ``{"path": ..., "bytes": ...}`` dict (what ``datasets``
  stores for ``Audio(decode=False)`` columns);
* a ``torchcodec`` ``AudioDecoder`` (what ``datasets`` >= 4 yields for ``Audio`` columns) or ``AudioSamples``;
* a ``(sampling_rate, array)`` tuple (what ``gradio.Audio(type="numpy")`` passes).

Rules, in order:

1. **Shape.** 1-D arrays are mono. A 2-D array ``(a, b)`` has its channels on the *smaller* axis, which must hold at
   most :data:`MAX_CHANNELS` (8) channels while the other axis is strictly longer; so ``(2, 48000)`` and
   ``(48000, 2)`` are both stereo. Square shapes, shapes with more than 8 rows *and* columns, 0-D and 3-D (or more)
   arrays are rejected with :class:`AudioInputError`.
2. **Dtype.** ``int16 / 32768``, ``int32 / 2**31``, ``uint8 (x - 128) / 128``, ``int8 / 128``; float16 / bfloat16 /
   float64 are cast to float32. Other dtypes (``int64``, ``bool``, complex) are rejected: their scale is unknown.
3. **Checks.** Empty audio (0 samples) and NaN / Inf values are rejected; the message gives the first offending
   sample index (and channel).
4. **Down-mix** by the mean over channels.
5. **Resample** with :func:`resample` (band-limited windowed-sinc, Hann window, 6 zero crossings, roll-off 0.99: the
   same filter as ``torchaudio.functional.resample``'s default, implemented here in plain torch). Files are decoded at
   their native rate and resampled by the same function as arrays, so a file and the array decoded from it give the
   same tensor. A ``datasets`` decoder already cast with ``Audio(sampling_rate=...)`` hands over samples at that rate
   (resampled by FFmpeg); they are used as they are when that rate is the requested one.

Tensors keep their device (a CUDA tensor comes back on CUDA); decoded audio is on the CPU.
Every error is an :class:`AudioInputError` (a ``ValueError``) whose message names the problem and the value.
"""

from __future__ import annotations

import functools
import io
import math
import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "AudioInputError",
    "MAX_CHANNELS",
    "AUDIO_EXTENSIONS",
    "load_audio",
    "decode_audio",
    "resample",
    "pad_batch",
]

#: Largest channel count accepted for 2-D arrays; it decides which axis holds the channels.
MAX_CHANNELS = 8

#: File extensions the loaders treat as audio (lower case, with the dot).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff", ".wma", ".webm")


class AudioInputError(ValueError):
    """Audio that cannot be used: empty, NaN/Inf, wrong shape or dtype, unknown rate, missing or undecodable file."""


# --------------------------------------------------------------------------------------------------------------------
# small validators


def _check_rate(value: Any, name: str) -> int:
    """A positive integer sampling rate (an integral float such as ``16000.0`` is accepted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 0:
            value = value.item()
        else:
            raise AudioInputError(f"{name} must be a positive integer number of Hz, got {value!r}")
    if isinstance(value, bool) or not math.isfinite(value) or value <= 0 or float(value) != int(value):
        raise AudioInputError(f"{name} must be a positive integer number of Hz, got {value!r}")
    return int(value)


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    return type(source).__name__


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
        except (TypeError, ValueError) as err:
            raise AudioInputError(f"cannot read a list of {len(array)} items as audio samples: {err}") from None
        return torch.from_numpy(arr)
    raise AudioInputError(f"unsupported audio source of type {type(array).__name__}")


def _normalise_dtype(x: torch.Tensor) -> torch.Tensor:
    """Integer PCM -> float32 in [-1, 1); float16/bfloat16/float64 -> float32."""
    if x.dtype in _INT_SCALES:
        offset, scale = _INT_SCALES[x.dtype]
        x = x.to(torch.float32)
        return (x - offset) / scale if offset else x / scale
    if x.is_floating_point():
        return x.to(torch.float32)
    raise AudioInputError(
        f"unsupported audio dtype {str(x.dtype).replace('torch.', '')}: integer PCM must be int16, int32, int8 or "
        "uint8 (int64 has no defined full scale), otherwise pass float samples in [-1, 1]"
    )


def _to_channels_first(x: torch.Tensor) -> torch.Tensor:
    """Apply the documented shape rule and return ``(channels, samples)``."""
    if x.ndim == 1:
        return x.unsqueeze(0)
    if x.ndim == 2:
        a, b = x.shape
        if a == 0 or b == 0:
            return x.reshape(1, 0)
        if a < b and a <= MAX_CHANNELS:
            return x
        if b < a and b <= MAX_CHANNELS:
            return x.transpose(0, 1)
        raise AudioInputError(
            f"ambiguous 2-D audio of shape {tuple(x.shape)}: expected (channels, samples) or (samples, channels) with "
            f"at most {MAX_CHANNELS} channels on the shorter axis"
        )
    raise AudioInputError(f"expected mono (samples,) or (channels, samples) audio, got shape {tuple(x.shape)}")


def _check_values(x: torch.Tensor, what: str = "audio") -> None:
    """``x`` is ``(channels, samples)``; reject empty audio and non-finite values, naming the first bad sample."""
    if x.shape[-1] == 0:
        raise AudioInputError(f"{what} is empty (0 samples)")
    finite = torch.isfinite(x)
    if bool(finite.all()):
        return
    bad = (~finite).nonzero()
    # first bad sample in time order (then lowest channel)
    order = torch.argmin(bad[:, 1] * x.shape[0] + bad[:, 0])
    channel, sample = (int(v) for v in bad[order])
    value = float(x[channel, sample])
    kind = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    where = f"sample {sample}" + (f" of channel {channel}" if x.shape[0] > 1 else "")
    raise AudioInputError(f"{what} contains {kind} at {where}")


def _prepare(samples: torch.Tensor, source_sr: int, sampling_rate: int, what: str = "audio") -> torch.Tensor:
    x = _to_channels_first(_normalise_dtype(samples))
    _check_values(x, what)
    mono = x.mean(dim=0) if x.shape[0] > 1 else x[0]
    return resample(mono, source_sr, sampling_rate).contiguous()


# --------------------------------------------------------------------------------------------------------------------
# decoding


def _decoder_class():
    try:
        from torchcodec.decoders import AudioDecoder
    except ImportError as err:  # pragma: no cover - torchcodec is a core dependency
        raise ImportError("decoding audio files needs torchcodec (pip install torchcodec) and FFmpeg") from err
    return AudioDecoder


def _samples_from_decoder(decoder: Any, what: str) -> tuple[torch.Tensor, int]:
    try:
        samples = decoder.get_all_samples()
    except Exception as err:  # torchcodec raises RuntimeError with FFmpeg's message
        # A torchcodec decoder that was already read may fail to seek back to the start (seen with FLAC files that
        # have no seek table). A decoder made by ``datasets`` remembers its source: read it again with a fresh one.
        fresh = _reopen(decoder)
        if fresh is None:
            raise _decode_error(what, err) from err
        try:
            samples = fresh.get_all_samples()
        except Exception as err2:
            raise _decode_error(what, err2) from err2
    return samples.data, int(samples.sample_rate)


def _decode_error(what: str, err: BaseException) -> AudioInputError:
    message = _first_line(err)
    if "No audio frames were decoded" in message:
        return AudioInputError(f"{what} is empty (0 samples)")
    return AudioInputError(f"cannot decode {what}: {message}")


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
    tail = [p for p in parts if not (".cpp:" in p or p == "SingleStreamDecoder")]
    return ", ".join(tail) if tail else text.splitlines()[0]


def _decode_file(path: str | os.PathLike) -> tuple[torch.Tensor, int, str]:
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
    AudioDecoder = _decoder_class()
    try:
        decoder = AudioDecoder(path_str)
    except Exception as err:
        raise _decode_error(what, err) from err
    data, sr = _samples_from_decoder(decoder, f"audio file {path_str!r}")
    return data, sr, what


def _decode_bytes(data: bytes, what: str = "audio bytes") -> tuple[torch.Tensor, int, str]:
    if len(data) == 0:
        raise AudioInputError(f"cannot decode {what}: empty (0 bytes)")
    AudioDecoder = _decoder_class()
    try:
        decoder = AudioDecoder(bytes(data))
    except Exception as err:
        error = _decode_error(f"{what} ({len(data)} bytes)", err)
        raise AudioInputError(
            f"{error} (bytes must hold an encoded file such as wav/flac/ogg/mp3; for raw PCM samples pass "
            "np.frombuffer(data, dtype=np.int16) with source_sampling_rate)"
        ) from err
    samples, sr = _samples_from_decoder(decoder, f"{what} ({len(data)} bytes)")
    return samples, sr, what


def _is_decoder(obj: Any) -> bool:
    return callable(getattr(obj, "get_all_samples", None))


def _is_samples(obj: Any) -> bool:
    return hasattr(obj, "data") and hasattr(obj, "sample_rate") and isinstance(getattr(obj, "data"), torch.Tensor)


def decode_audio(source: Any, *, source_sampling_rate: int | None = None) -> tuple[torch.Tensor, int]:
    """Read ``source`` as it is: ``(samples (channels, samples) float32, sampling_rate)``, no down-mix, no resampling.

    Accepts the same sources as :func:`load_audio` and applies the same shape, dtype and value checks.
    """
    samples, sr, what = _read(source, source_sampling_rate)
    x = _to_channels_first(_normalise_dtype(samples))
    _check_values(x, what)
    return x, sr


def _read(source: Any, source_sampling_rate: Any) -> tuple[torch.Tensor, int, str]:
    """Dispatch on the source type: ``(raw samples in their own dtype/shape, rate, description for errors)``."""
    declared = None if source_sampling_rate is None else _check_rate(source_sampling_rate, "source_sampling_rate")

    def stored(rate: int, what: str) -> int:
        if declared is not None and declared != rate:
            raise AudioInputError(
                f"source_sampling_rate={declared} contradicts the rate {rate} Hz stored in {what}; "
                "leave source_sampling_rate unset for encoded audio"
            )
        return rate

    if source is None:
        raise AudioInputError("audio source is None")
    if isinstance(source, (str, os.PathLike)):
        data, sr, what = _decode_file(source)
        return data, stored(sr, what), what
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, sr, what = _decode_bytes(bytes(source))
        return data, stored(sr, what), what
    if isinstance(source, (io.IOBase,)) or (hasattr(source, "read") and not _is_decoder(source)):
        name = getattr(source, "name", None)
        what = f"audio file object {name!r}" if isinstance(name, str) else "audio file object"
        if isinstance(source, io.TextIOBase):  # reading would fail first, with a UnicodeDecodeError
            raise AudioInputError(f"{what} is opened in text mode; open it with 'rb'")
        data = source.read()
        if isinstance(data, str):
            raise AudioInputError(f"{what} is opened in text mode; open it with 'rb'")
        data, sr, what = _decode_bytes(data, what)
        return data, stored(sr, what), what
    if isinstance(source, dict):
        return _read_dict(source, declared, stored)
    if _is_decoder(source):
        meta = getattr(source, "metadata", None)
        path = getattr(meta, "path", None)
        what = f"audio decoder for {path!r}" if path else "audio decoder"
        data, sr = _samples_from_decoder(source, what)
        return data, stored(sr, what), what
    if _is_samples(source):
        return source.data, stored(int(source.sample_rate), "the AudioSamples"), "audio"
    if (
        isinstance(source, tuple)
        and len(source) == 2
        and isinstance(source[0], numbers.Integral)
        and not isinstance(source[0], bool)
        and isinstance(source[1], (np.ndarray, torch.Tensor, list))
    ):  # gradio's (sampling_rate, array)
        rate = _check_rate(source[0], "sampling rate of the (sampling_rate, array) tuple")
        return _as_tensor(source[1]), stored(rate, "the (sampling_rate, array) tuple"), "audio"
    if isinstance(source, (np.ndarray, np.generic, torch.Tensor, list, tuple)):
        tensor = _as_tensor(source)
        if declared is None:
            raise AudioInputError(
                f"unknown sampling rate: pass source_sampling_rate for a raw array (got a {type(source).__name__} of "
                f"shape {tuple(tensor.shape)} and no rate)"
            )
        return tensor, declared, "audio"
    raise AudioInputError(
        f"unsupported audio source of type {type(source).__name__}: expected a path, bytes, an array with "
        "source_sampling_rate, an {'array', 'sampling_rate'} or {'path', 'bytes'} dict, or an audio decoder"
    )


def _read_dict(source: dict, declared: int | None, stored) -> tuple[torch.Tensor, int, str]:
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
        return _as_tensor(source["array"]), stored(rate, "the audio dict"), "audio"
    if source.get("bytes") is not None:
        path = source.get("path")
        what = f"audio bytes of {path!r}" if path else "audio bytes"
        data, sr, what = _decode_bytes(source["bytes"], what)
        return data, stored(sr, what), what
    if source.get("path") is not None:
        data, sr, what = _decode_file(source["path"])
        return data, stored(sr, what), what
    raise AudioInputError(
        f"audio dict has no usable 'array', 'bytes' or 'path' entry (keys: {sorted(map(str, source))})"
    )


def load_audio(source: Any, sampling_rate: int, *, source_sampling_rate: int | None = None) -> torch.Tensor:
    """Return ``source`` as a float32 mono tensor ``(samples,)`` at ``sampling_rate`` Hz.

    Args:
        source: a path, encoded bytes or binary file object, a numpy array / torch tensor / list (needs
            ``source_sampling_rate``), a ``{"array", "sampling_rate"}`` or ``{"path", "bytes"}`` dict, a torchcodec
            ``AudioDecoder`` (as yielded by ``datasets``) or ``AudioSamples``, or a ``(sampling_rate, array)`` tuple.
            See the module docstring for the shape and dtype rules.
        sampling_rate: the rate of the returned samples, in Hz.
        source_sampling_rate: the rate of a raw array. For encoded audio the rate comes from the file; passing a
            different value there raises.

    Raises:
        AudioInputError: empty audio, NaN/Inf, a shape or dtype that is not audio, an unknown or invalid rate, a
            missing, unreadable or undecodable file (the message names the path).
    """
    sampling_rate = _check_rate(sampling_rate, "sampling_rate")
    samples, source_sr, what = _read(source, source_sampling_rate)
    return _prepare(samples, source_sr, sampling_rate, what)


# --------------------------------------------------------------------------------------------------------------------
# resampling


@functools.lru_cache(maxsize=32)
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


@functools.lru_cache(maxsize=32)
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
def _on(build: Callable, key: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A cached kernel converted to the data's dtype and device (kept for the next clip at the same rates)."""
    out = build(*key)
    return (out[0] if isinstance(out, tuple) else out).to(dtype=dtype, device=device)


_DENSE_MAX_WEIGHTS = 1 << 20
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
    orig_sr = _check_rate(orig_sr, "orig_sr")
    new_sr = _check_rate(new_sr, "new_sr")
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
    base, half = _sinc_kernel_f64(*key)
    taps = base.shape[1]
    if out_len == 0:
        return x.new_zeros(*shape[:-1], 0)
    # Taps of output n are x[c - half + 1 : c + half + 1], c = floor(n * down / up). Two equivalent evaluations:
    # a dense polyphase matmul (fast, but each phase's kernel spans taps + down - 1 inputs, so it is used only while
    # up * that span stays small), else a chunked gather (2 * half taps per output, any rates, bounded memory).
    span = taps + ((up - 1) * down) // up
    if up * span <= _DENSE_MAX_WEIGHTS:
        kernel = _on(_dense_kernel_f64, key, x.dtype, x.device)
        return _resample_dense(x, kernel, half, up, down, out_len).reshape(*shape[:-1], out_len)
    weights = _on(_sinc_kernel_f64, key, x.dtype, x.device)
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
        clips: 1-D float clips (e.g. :func:`load_audio` outputs); numpy arrays are accepted.
        max_length: when given, every row has exactly ``max_length`` samples: longer clips are cut at the end, shorter
            ones padded (fixed-size batches for compiled or exported models). Otherwise the longest clip sets ``T``.

    Returns:
        ``(waveforms, attention_mask)``: ``(B, T)`` float32 and ``(B, T)`` bool, ``True`` on real samples.
    """
    if isinstance(clips, (torch.Tensor, np.ndarray)) or not isinstance(clips, Sequence):
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
        t = clip if isinstance(clip, torch.Tensor) else _as_tensor(clip)
        if t.ndim != 1:
            raise AudioInputError(f"clip {i} must be 1-D (samples,), got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise AudioInputError(f"clip {i} has dtype {str(t.dtype).replace('torch.', '')}: pad_batch expects float "
                                  "samples in [-1, 1] (load_audio converts integer PCM)")
        _check_values(t.unsqueeze(0), f"clip {i}")  # empty, NaN, Inf
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
