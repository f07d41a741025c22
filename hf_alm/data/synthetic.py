"""The embedded default dataset: a deterministic, seeded generator of synthetic sound events.

Twenty classes of short sound events that differ in spectrum *and* in time structure (steady tones, up/down chirps,
FM and AM tones, harmonic stacks, noise of different colours, regular and irregular impulse trains, gated tones,
decaying resonances, ...). Every clip draws its own pitch, duration, level and background noise, so that loudness
says nothing about the class and a model has to listen to what the sound *is*. Everything is synthesised with numpy
at any sampling rate (all parameters are in Hz and seconds; every partial is kept below 0.45 x the sampling rate, so
nothing aliases). No download, ever.

Determinism: clip ``i`` of class ``c`` is drawn from ``numpy.random.default_rng([seed, crc32(c.name), i])``, so a
clip depends only on ``(seed, class name, index)`` and not on how many other clips (or which other classes) were
generated. The same call gives byte-identical audio.

Public API:

* :data:`SYNTHETIC_CLASSES` - list of :class:`SyntheticClass` (``name``, ``noun`` phrase for captions such as "a
  rising chirp", natural ``captions``); :data:`SYNTHETIC_CLASS_NAMES`; :func:`get_synthetic_class`.
* :func:`generate_event` - one event as a float32 array.
* :func:`make_synthetic_dataset` - a ``datasets.Dataset`` with the common schema of ``hf_alm.data``.
"""

from __future__ import annotations

import math
import numbers
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "SyntheticClass",
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_CLASS_NAMES",
    "get_synthetic_class",
    "generate_event",
    "make_synthetic_dataset",
    "clip_rng",
    "render_clip",
]

#: No partial is ever placed above this fraction of the sampling rate (0.5 = Nyquist).
MAX_FREQ_FRACTION = 0.45
#: Lowest sampling rate the generator accepts.
MIN_SAMPLING_RATE = 4000
#: Event RMS level range in dBFS (drawn uniformly per clip; the same for every class).
LEVEL_DB_RANGE = (-36.0, -20.0)
#: Peaks are kept at or below this value.
PEAK_LIMIT = 0.99
#: Number of folds (round-robin per class, like ESC-50).
NUM_FOLDS = 5


@dataclass(frozen=True)
class SyntheticClass:
    """One synthetic sound-event class.

    Attributes:
        name: short distinct class name (the ClassLabel name), e.g. ``"rising chirp"``.
        noun: noun phrase used inside composed captions, e.g. ``"a rising chirp"`` ("a rising chirp before a bell
            ringing").
        captions: several natural captions of a single event of this class.
        synth: ``synth(rng, num_samples, sampling_rate) -> (float64 waveform, params dict)``; the waveform is
            normalised afterwards, so its scale does not matter.
    """

    name: str
    noun: str
    captions: tuple[str, ...]
    synth: Callable[[np.random.Generator, int, int], tuple[np.ndarray, dict]] = field(repr=False, compare=False)


# --------------------------------------------------------------------------------------------------------------------
# building blocks (all vectorised numpy, float64)


def _fmax(sr: int) -> float:
    return MAX_FREQ_FRACTION * sr


def _cap(freq: float, sr: int, fraction: float = 0.4) -> float:
    """Keep a drawn frequency safely below Nyquist at low sampling rates."""
    return float(min(freq, fraction * sr))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _time(n: int, sr: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / sr


def _phase_cycles(freq: np.ndarray | float, n: int, sr: int, start: float = 0.0) -> np.ndarray:
    """Phase in cycles of a tone with (instantaneous) frequency ``freq`` Hz."""
    if np.isscalar(freq):
        return start + float(freq) * _time(n, sr)
    inc = np.asarray(freq, dtype=np.float64) / sr
    return start + np.concatenate(([0.0], np.cumsum(inc[:-1])))


_TABLE_SIZE = 8192


def _additive(phase: np.ndarray, amps: Sequence[float]) -> np.ndarray:
    """Sum of ``amps[k-1] * sin(2 pi k phase)`` (harmonics 1..K) by band-limited wavetable lookup.

    The single-period table is built with an inverse FFT and read with linear interpolation (8192 points; for the
    <= 80 harmonics used here the interpolation error is below -80 dB), which is ~K times faster than K ``sin`` calls.
    """
    amps = np.asarray(amps, dtype=np.float64)
    spec = np.zeros(_TABLE_SIZE // 2 + 1, dtype=np.complex128)
    spec[1 : len(amps) + 1] = -0.5j * amps * _TABLE_SIZE  # irfft of -j A N/2 at bin k = A sin(2 pi k x)
    table = np.fft.irfft(spec, n=_TABLE_SIZE)
    table = np.append(table, table[0])
    pos = np.mod(phase, 1.0) * _TABLE_SIZE
    idx = np.minimum(pos.astype(np.int64), _TABLE_SIZE - 1)
    frac = pos - idx
    return table[idx] * (1.0 - frac) + table[idx + 1] * frac


def _harmonic_count(f_top: float, sr: int, limit: float | None = None) -> int:
    ceiling = _fmax(sr) if limit is None else min(limit, _fmax(sr))
    return max(1, int(ceiling // max(f_top, 1e-9)))


def _shaped_noise(
    rng: np.random.Generator, n: int, sr: int, *, exponent: float = 0.0, lo: float = 20.0, hi: float | None = None
) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent between ``lo`` and ``hi`` Hz (smooth 1-octave-ish edges)."""
    hi = _fmax(sr) if hi is None else min(hi, _fmax(sr))
    lo = min(lo, 0.5 * hi)
    size = _fast_len(n)  # FFTs of arbitrary (prime-ish) lengths are many times slower
    white = rng.standard_normal(size)
    spec = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(size, 1.0 / sr)
    f = np.maximum(freqs, lo)
    gain = f ** (-exponent / 2.0)
    # smooth band edges: 2nd-order-like roll-off outside [lo, hi]
    with np.errstate(divide="ignore"):
        gain = gain / np.sqrt(1.0 + (lo / np.maximum(freqs, 1e-9)) ** 4) / np.sqrt(1.0 + (freqs / hi) ** 8)
    gain[0] = 0.0
    gain[freqs >= 0.5 * sr * 0.98] = 0.0
    return np.fft.irfft(spec * gain, n=size)[:n]


def _fast_len(n: int) -> int:
    """Smallest 5-smooth integer (2^a 3^b 5^c) >= n."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _fftconv(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Linear convolution truncated to ``len(x)``."""
    n = len(x) + len(kernel) - 1
    size = 1 << (n - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(kernel, size), size)
    return y[: len(x)]


def _fade(x: np.ndarray, sr: int, attack: float, release: float) -> np.ndarray:
    """Raised-cosine fade-in and fade-out (in seconds), in place; returns ``x``."""
    n = len(x)
    a = min(int(round(attack * sr)), n // 2)
    r = min(int(round(release * sr)), n - a)
    if a > 0:
        x[:a] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)
    if r > 0:
        x[n - r :] *= 0.5 + 0.5 * np.cos(np.pi * (np.arange(r) + 1) / r)
    return x


def _impulses(n: int, times: np.ndarray, amps: np.ndarray, sr: int) -> np.ndarray:
    out = np.zeros(n)
    idx = np.round(np.asarray(times) * sr).astype(np.int64)
    keep = (idx >= 0) & (idx < n)
    np.add.at(out, idx[keep], np.asarray(amps, dtype=np.float64)[keep])
    return out


def _damped(freq: float, tau: float, sr: int, length: float | None = None, phase: float = 0.0) -> np.ndarray:
    length = 6.0 * tau if length is None else length
    t = _time(max(2, int(round(length * sr))), sr)
    return np.exp(-t / tau) * np.sin(2 * np.pi * freq * t + phase)


def _steady_fades(rng: np.random.Generator, x: np.ndarray, sr: int) -> np.ndarray:
    return _fade(x, sr, rng.uniform(0.005, 0.03), rng.uniform(0.02, 0.08))


# --------------------------------------------------------------------------------------------------------------------
# the classes' synthesisers: (rng, n, sr) -> (waveform, params). Parameters are drawn before any sr-dependent noise.


def _pure_tone(rng, n, sr):
    f = _cap(_log_uniform(rng, 250.0, 2000.0), sr)
    x = np.sin(2 * np.pi * _phase_cycles(f, n, sr, rng.uniform()))
    return _steady_fades(rng, x, sr), {"frequency": f}


def _chirp(direction: int):
    def synth(rng, n, sr):
        lo = _log_uniform(rng, 150.0, 500.0)
        hi = _cap(lo * rng.uniform(3.0, 6.0), sr)
        f0, f1 = (lo, hi) if direction > 0 else (hi, lo)
        u = np.arange(n) / max(n - 1, 1)
        freq = f0 * (f1 / f0) ** u  # exponential sweep
        x = np.sin(2 * np.pi * _phase_cycles(freq, n, sr, rng.uniform()))
        return _steady_fades(rng, x, sr), {"start_frequency": f0, "end_frequency": f1}

    return synth


def _siren(rng, n, sr):
    fc = _log_uniform(rng, 600.0, 1100.0)
    depth = rng.uniform(0.2, 0.35)
    rate = rng.uniform(1.5, 3.5)
    fc = _cap(fc, sr, 0.3)
    freq = fc * (1.0 + depth * np.sin(2 * np.pi * rate * _time(n, sr) + rng.uniform(0, 2 * np.pi)))
    k = min(3, _harmonic_count(fc * (1 + depth), sr))
    x = _additive(_phase_cycles(freq, n, sr, rng.uniform()), [1.0, 0.5, 0.3][:k])
    return _steady_fades(rng, x, sr), {"frequency": fc, "depth": depth, "rate": rate}


def _tremolo(rng, n, sr):
    f = _cap(_log_uniform(rng, 300.0, 1500.0), sr)
    rate = rng.uniform(5.0, 12.0)
    depth = rng.uniform(0.75, 1.0)
    t = _time(n, sr)
    env = 1.0 - depth * (0.5 - 0.5 * np.cos(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    x = env * np.sin(2 * np.pi * _phase_cycles(f, n, sr, rng.uniform()))
    return _steady_fades(rng, x, sr), {"frequency": f, "rate": rate, "depth": depth}


def _hum(rng, n, sr):
    f0 = rng.uniform(50.0, 140.0)
    k = _harmonic_count(f0, sr, limit=1500.0)
    amps = 1.0 / np.arange(1, k + 1) ** 1.3
    x = _additive(_phase_cycles(f0, n, sr, rng.uniform()), amps)
    return _steady_fades(rng, x, sr), {"frequency": f0, "harmonics": k}


def _buzz(rng, n, sr):
    f0 = _log_uniform(rng, 90.0, 320.0)
    square = bool(rng.integers(2))
    k = _harmonic_count(f0, sr, limit=8000.0)
    h = np.arange(1, k + 1)
    amps = 1.0 / h
    if square:
        amps = np.where(h % 2 == 1, amps, 0.0)
    x = _additive(_phase_cycles(f0, n, sr, rng.uniform()), amps)
    return _steady_fades(rng, x, sr), {"frequency": f0, "harmonics": k, "waveform": "square" if square else "saw"}


def _noise_burst(exponent: float, lo: float, hi_range: tuple[float, float] | None):
    def synth(rng, n, sr):
        hi = None if hi_range is None else rng.uniform(*hi_range)
        attack, release = rng.uniform(0.002, 0.015), rng.uniform(0.02, 0.1)
        x = _shaped_noise(rng, n, sr, exponent=exponent, lo=lo, hi=hi)
        return _fade(x, sr, attack, release), {"exponent": exponent, "cutoff": hi}

    return synth


def _hiss(rng, n, sr):
    lo = min(rng.uniform(3500.0, 5000.0), 0.3 * sr)
    attack, release = rng.uniform(0.01, 0.05), rng.uniform(0.03, 0.12)
    x = _shaped_noise(rng, n, sr, exponent=0.0, lo=lo)
    return _fade(x, sr, attack, release), {"cutoff": lo}


def _click_train(rng, n, sr):
    rate = rng.uniform(8.0, 30.0)
    fr = _cap(_log_uniform(rng, 1500.0, 4000.0), sr, 0.35)
    tau = rng.uniform(0.0005, 0.0015)
    start = rng.uniform(0.0, min(1.0 / rate, 0.5 * n / sr))  # at least one click in any clip
    times = np.arange(start, n / sr, 1.0 / rate)
    times = times + rng.uniform(-0.0005, 0.0005, size=len(times))
    x = _fftconv(_impulses(n, times, np.ones(len(times)), sr), _damped(fr, tau, sr))
    return x, {"rate": rate, "resonance": fr}


def _crackle(rng, n, sr):
    rate = rng.uniform(40.0, 100.0)
    count = max(3, int(rng.poisson(rate * n / sr)))
    times = np.sort(rng.uniform(0.0, n / sr, size=count))
    amps = np.minimum(rng.lognormal(0.0, 0.4, size=count), 2.0) * rng.choice([-1.0, 1.0], size=count)
    tau = rng.uniform(0.0005, 0.0015)
    klen = max(4, int(round(5 * tau * sr)))
    kernel = rng.standard_normal(klen) * np.exp(-np.arange(klen) / (tau * sr))
    x = _fftconv(_impulses(n, times, amps, sr), kernel)
    return x, {"rate": rate}


def _beeping(rng, n, sr):
    f = _cap(_log_uniform(rng, 800.0, 2500.0), sr)
    rate = rng.uniform(3.0, 7.0)
    duty = rng.uniform(0.4, 0.6)
    phase0 = rng.uniform(0.0, 0.3)
    gate = (np.mod(rate * _time(n, sr) + phase0, 1.0) < duty).astype(np.float64)
    ramp = np.hanning(max(3, int(round(0.004 * sr))))
    gate = _fftconv(gate, ramp / ramp.sum())
    x = gate * np.sin(2 * np.pi * _phase_cycles(f, n, sr, rng.uniform()))
    return _fade(x, sr, 0.002, 0.005), {"frequency": f, "rate": rate, "duty": duty}


def _knocking(rng, n, sr):
    f = rng.uniform(100.0, 300.0)
    tau = rng.uniform(0.008, 0.025)
    spacing = rng.uniform(0.12, 0.3)
    dur = n / sr
    count = max(2, int((dur - 0.05) / spacing))
    times = 0.01 + spacing * np.arange(count) + rng.uniform(-0.015, 0.015, size=count)
    amps = rng.uniform(0.6, 1.0, size=count)
    kernel = _damped(f, tau, sr) + 0.4 * _damped(_cap(2.3 * f, sr), tau * 0.6, sr, length=6 * tau)
    tlen = max(8, int(0.003 * sr))  # the dull "tock" of the impact: low-passed noise, 3 ms
    kernel[:tlen] += 0.3 * _shaped_noise(rng, tlen, sr, exponent=1.0, lo=100.0, hi=2500.0) * np.linspace(1, 0, tlen)
    x = _fftconv(_impulses(n, np.clip(times, 0.0, None), amps, sr), kernel)
    return x, {"frequency": f, "knocks": count, "spacing": spacing}


def _whistle(rng, n, sr):
    f = _cap(_log_uniform(rng, 1200.0, 3000.0), sr, 0.37)
    vib_rate, vib_depth = rng.uniform(4.0, 7.0), rng.uniform(0.005, 0.02)
    t = _time(n, sr)
    freq = f * (1.0 + vib_depth * np.sin(2 * np.pi * vib_rate * t + rng.uniform(0, 2 * np.pi)))
    tone = np.sin(2 * np.pi * _phase_cycles(freq, n, sr, rng.uniform()))
    breath = _shaped_noise(rng, n, sr, lo=0.85 * f, hi=1.15 * f)
    breath *= 0.12 / max(np.sqrt(np.mean(breath**2)), 1e-12)
    x = 0.7 * tone + breath
    return _fade(x, sr, rng.uniform(0.02, 0.06), rng.uniform(0.03, 0.1)), {"frequency": f, "vibrato_rate": vib_rate}


def _dripping(rng, n, sr):
    f_a = _cap(_log_uniform(rng, 500.0, 1000.0), sr, 0.15)
    ratio = rng.uniform(1.8, 3.0)
    length = rng.uniform(0.015, 0.04)
    dur = n / sr
    count = int(rng.integers(2, 6))
    times = np.sort(rng.uniform(0.0, max(dur - length - 0.02, 0.01), size=count))
    amps = rng.uniform(0.5, 1.0, size=count)
    m = max(4, int(round(length * sr)))
    u = np.arange(m) / m
    freq = f_a * ratio**u
    drop = np.sin(2 * np.pi * _phase_cycles(freq, m, sr)) * np.exp(-3.0 * u) * np.sin(np.pi * np.minimum(u * 8, 0.5))
    x = _fftconv(_impulses(n, times, amps, sr), drop)
    return x, {"frequency": f_a, "drops": count}


_BELL_RATIOS = (0.5, 1.0, 1.19, 1.5, 2.0, 2.51, 2.66, 3.01, 4.1)


def _bell(rng, n, sr):
    f = _log_uniform(rng, 250.0, 800.0)
    t60 = rng.uniform(0.4, 1.2)
    detune = rng.uniform(-0.01, 0.01, size=len(_BELL_RATIOS))
    amps = rng.uniform(0.3, 1.0, size=len(_BELL_RATIOS)) / np.sqrt(np.arange(1, len(_BELL_RATIOS) + 1))
    phases = rng.uniform(0.0, 2 * np.pi, size=len(_BELL_RATIOS))
    t = _time(n, sr)
    x = np.zeros(n)
    for r, d, a, p in zip(_BELL_RATIOS, detune, amps, phases):
        fk = f * r * (1.0 + d)
        if fk >= _fmax(sr):
            continue
        tau = t60 / 6.9 / r**0.7
        x += a * np.exp(-t / tau) * np.sin(2 * np.pi * fk * t + p)
    return _fade(x, sr, 0.001, 0.01), {"frequency": f, "t60": t60}


def _trill(rng, n, sr):
    f_low = _cap(_log_uniform(rng, 900.0, 2200.0), sr, 0.3)
    ratio = rng.uniform(1.12, 1.35)
    rate = rng.uniform(8.0, 14.0)  # notes per second
    t = _time(n, sr)
    note = np.mod(np.floor(rate * t + rng.uniform()), 2.0)
    ramp = np.hanning(max(3, int(round(0.008 * sr))))
    note = _fftconv(note, ramp / ramp.sum())
    freq = f_low * ratio**note
    env = 0.6 + 0.4 * np.sin(np.pi * np.mod(rate * t, 1.0))
    x = env * np.sin(2 * np.pi * _phase_cycles(freq, n, sr, rng.uniform()))
    return _steady_fades(rng, x, sr), {"frequency": f_low, "ratio": ratio, "rate": rate}


def _chord(rng, n, sr):
    root = _log_uniform(rng, 180.0, 450.0)
    minor = bool(rng.integers(2))
    semis = [0, 3 if minor else 4, 7] + ([12] if rng.uniform() < 0.5 else [])
    x = np.zeros(n)
    for s in semis:
        f = root * 2.0 ** (s / 12.0)
        k = min(3, _harmonic_count(f, sr))
        x += _additive(_phase_cycles(f * (1 + rng.uniform(-0.002, 0.002)), n, sr, rng.uniform()), [1.0, 0.4, 0.2][:k])
    return _fade(x, sr, rng.uniform(0.02, 0.06), rng.uniform(0.04, 0.1)), {"frequency": root, "minor": minor}


SYNTHETIC_CLASSES: list[SyntheticClass] = [
    SyntheticClass("pure tone", "a pure tone", (
        "a steady pure tone", "a constant sine tone at a single pitch", "an electronic tone holding one pitch",
        "a clean tone that does not change in pitch"), _pure_tone),
    SyntheticClass("rising chirp", "a rising chirp", (
        "a chirp that rises in pitch", "a tone sweeping upward from low to high", "an upward frequency sweep",
        "a sound gliding up in pitch"), _chirp(+1)),
    SyntheticClass("falling chirp", "a falling chirp", (
        "a chirp that falls in pitch", "a tone sweeping downward from high to low", "a downward frequency sweep",
        "a sound gliding down in pitch"), _chirp(-1)),
    SyntheticClass("siren", "a siren", (
        "a wailing siren", "an alarm tone whose pitch swings up and down", "a siren rising and falling in pitch",
        "a warbling emergency siren"), _siren),
    SyntheticClass("tremolo tone", "a tremolo tone", (
        "a tone pulsing quickly in loudness", "a wobbling tone with fast tremolo", "a tone whose volume throbs rapidly",
        "an amplitude-modulated tone"), _tremolo),
    SyntheticClass("harmonic hum", "an electrical hum", (
        "a low electrical hum", "a deep humming drone", "a steady low-pitched hum with overtones",
        "the hum of mains power"), _hum),
    SyntheticClass("buzz", "a buzz", (
        "a harsh buzzing sound", "a bright raspy buzz", "a loud buzzer", "a rough nasal buzzing tone"), _buzz),
    SyntheticClass("white noise burst", "a burst of white noise", (
        "a burst of static", "a short blast of white noise", "a sharp hissing burst of static",
        "broadband noise like radio static"), _noise_burst(0.0, 20.0, None)),
    SyntheticClass("pink noise burst", "a burst of pink noise", (
        "a soft rushing noise", "a burst of pink noise like a waterfall", "a rushing sound like running water",
        "a smooth broadband noise"), _noise_burst(1.0, 30.0, None)),
    SyntheticClass("brown noise rumble", "a low rumble", (
        "a deep rumbling noise", "a low rumble like distant thunder", "a muffled roar of low noise",
        "a dark rumbling sound"), _noise_burst(2.0, 20.0, (300.0, 800.0))),
    SyntheticClass("hiss", "a hiss", (
        "a high-pitched hiss", "air hissing out of a valve", "a thin sharp hissing sound", "steam hissing"), _hiss),
    SyntheticClass("click train", "a click train", (
        "a rapid series of regular clicks", "clicks repeating at a steady rate", "a fast ticking sound",
        "a ratchet-like clicking"), _click_train),
    SyntheticClass("crackle", "crackling", (
        "irregular crackling", "random pops and crackles", "a crackling sound like a fire",
        "sporadic clicks and pops"), _crackle),
    SyntheticClass("beeping", "beeping", (
        "a series of short beeps", "rapid electronic beeping", "a tone switching on and off",
        "an alarm beeping repeatedly"), _beeping),
    SyntheticClass("knocking", "knocking", (
        "someone knocking on a door", "a few dull knocks", "knocking on wood", "several low thuds in a row"),
        _knocking),
    SyntheticClass("whistle", "a whistle", (
        "a high whistle", "someone whistling one note", "a breathy high-pitched whistle",
        "a whistling tone with slight vibrato"), _whistle),
    SyntheticClass("dripping", "water dripping", (
        "drops of water falling", "a tap dripping", "water drops plinking", "a few drips of water"), _dripping),
    SyntheticClass("bell", "a bell ringing", (
        "a bell being struck", "a ringing metallic bell", "the chime of a bell fading away",
        "a bell tone slowly dying out"), _bell),
    SyntheticClass("trill", "a trill", (
        "a bird-like trill", "a fast warble between two notes", "a rapid trilling sound",
        "a tone flickering between two pitches"), _trill),
    SyntheticClass("chord", "a chord", (
        "a sustained musical chord", "several notes played together", "an organ-like chord",
        "a steady chord of three notes"), _chord),
]

SYNTHETIC_CLASS_NAMES: list[str] = [c.name for c in SYNTHETIC_CLASSES]
_BY_NAME = {c.name: c for c in SYNTHETIC_CLASSES}


def get_synthetic_class(cls: SyntheticClass | str | int) -> SyntheticClass:
    """Look a class up by object, name or index into :data:`SYNTHETIC_CLASSES`."""
    if isinstance(cls, SyntheticClass):
        return cls
    if isinstance(cls, str):
        try:
            return _BY_NAME[cls]
        except KeyError:
            raise ValueError(
                f"unknown synthetic class {cls!r}; known classes: {', '.join(SYNTHETIC_CLASS_NAMES)}"
            ) from None
    if isinstance(cls, numbers.Integral) and not isinstance(cls, bool):
        if not 0 <= int(cls) < len(SYNTHETIC_CLASSES):
            raise ValueError(f"synthetic class index {cls!r} out of range 0..{len(SYNTHETIC_CLASSES) - 1}")
        return SYNTHETIC_CLASSES[int(cls)]
    raise ValueError(f"expected a SyntheticClass, class name or index, got {cls!r} ({type(cls).__name__})")


# --------------------------------------------------------------------------------------------------------------------
# public generation API


def _check_sampling_rate(sampling_rate: Any) -> int:
    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, numbers.Integral):
        if not (isinstance(sampling_rate, float) and sampling_rate.is_integer()):
            raise ValueError(f"sampling_rate must be an integer number of Hz, got {sampling_rate!r}")
    sampling_rate = int(sampling_rate)
    if sampling_rate < MIN_SAMPLING_RATE:
        raise ValueError(f"sampling_rate must be at least {MIN_SAMPLING_RATE} Hz, got {sampling_rate!r}")
    return sampling_rate


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_range(value: Any, name: str, *, positive: bool = False) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair of numbers, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi or (positive and lo <= 0):
        need = "0 < low <= high" if positive else "low <= high"
        raise ValueError(f"{name} must be a finite (low, high) pair with {need}, got {value!r}")
    return lo, hi


def clip_rng(seed: int, cls: SyntheticClass | str | int, index: int) -> np.random.Generator:
    """The generator of clip ``index`` of class ``cls`` for ``seed`` (independent of any other clip)."""
    name = get_synthetic_class(cls).name
    return np.random.default_rng([_check_seed(seed), zlib.crc32(name.encode("utf-8")), int(index)])


def generate_event(
    cls: SyntheticClass | str | int,
    *,
    sampling_rate: int,
    rng: np.random.Generator | int,
    duration: float | None = None,
    level_db: float | None = None,
    return_params: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict]:
    """Synthesise one sound event of class ``cls``.

    Args:
        cls: a :class:`SyntheticClass`, its name or its index in :data:`SYNTHETIC_CLASSES`.
        sampling_rate: output rate in Hz (>= 4000); every partial stays below 0.45 x this rate.
        rng: a ``numpy.random.Generator`` (or an int seed for one); pitch, timing, level etc. are drawn from it.
        duration: event length in seconds; drawn uniformly from 0.6-1.5 s when ``None``.
        level_db: RMS level in dBFS; drawn uniformly from :data:`LEVEL_DB_RANGE` when ``None`` (peaks are kept at or
            below 0.99 whatever the level).
        return_params: also return the drawn parameters (``frequency`` etc., ``duration``, ``level_db``).

    Returns:
        float32 array of ``round(duration * sampling_rate)`` samples, with fades at both ends (plus the parameters
        when ``return_params``).
    """
    klass = get_synthetic_class(cls)
    sampling_rate = _check_sampling_rate(sampling_rate)
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        rng = np.random.default_rng(int(rng))
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator or an int seed, got {type(rng).__name__}")
    if duration is None:
        duration = float(rng.uniform(0.6, 1.5))
    if isinstance(duration, bool) or not isinstance(duration, numbers.Real) or not math.isfinite(duration):
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
    n = int(round(float(duration) * sampling_rate))
    if n < int(0.05 * sampling_rate):
        raise ValueError(f"duration must be at least 0.05 s, got {duration!r}")
    if level_db is None:
        level_db = float(rng.uniform(*LEVEL_DB_RANGE))
    x, params = klass.synth(rng, n, sampling_rate)
    rms = float(np.sqrt(np.mean(x * x)))
    if not rms > 0:  # pragma: no cover - every synthesiser produces sound
        raise RuntimeError(f"synthesiser of class {klass.name!r} produced silence")
    x = x * (10.0 ** (level_db / 20.0) / rms)
    peak = float(np.max(np.abs(x)))
    if peak > PEAK_LIMIT:
        x *= PEAK_LIMIT / peak
    out = x.astype(np.float32)
    if return_params:
        params = dict(params, duration=n / sampling_rate, level_db=float(level_db))
        return out, params
    return out


def _float_wav_bytes(x: np.ndarray, sampling_rate: int) -> bytes:
    """Mono 32-bit IEEE-float WAV (lossless for float32 samples; every FFmpeg / libsndfile reads it)."""
    data = np.ascontiguousarray(x, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHHH", 3, 1, sampling_rate, sampling_rate * 4, 4, 32, 0)  # WAVE_FORMAT_IEEE_FLOAT
    chunks = (
        b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"fact" + struct.pack("<II", 4, len(x))
        + b"data" + struct.pack("<I", len(data)) + data
    )
    return b"RIFF" + struct.pack("<I", len(chunks)) + chunks


class _ChunkedBuilder:
    """Collect rows column-wise and turn them into Arrow every ``rows`` rows, so that peak memory stays close to
    the size of the final table (one big ``from_dict`` holds several copies of all the audio bytes at once)."""

    def __init__(self, features, rows: int = 256):
        self.features, self.rows = features, rows
        self.columns: dict[str, list] = {k: [] for k in features}
        self.parts: list = []

    def maybe_flush(self, force: bool = False) -> None:
        import datasets

        n = len(next(iter(self.columns.values())))
        if n and (force or n >= self.rows):
            self.parts.append(datasets.Dataset.from_dict(self.columns, features=self.features))
            for values in self.columns.values():
                values.clear()

    def finish(self):
        import datasets

        self.maybe_flush(force=True)
        if not self.parts:
            return datasets.Dataset.from_dict({k: [] for k in self.features}, features=self.features)
        return self.parts[0] if len(self.parts) == 1 else datasets.concatenate_datasets(self.parts)


def _resolve_classes(classes: Sequence[SyntheticClass | str | int] | None) -> list[SyntheticClass]:
    if classes is None:
        return list(SYNTHETIC_CLASSES)
    if isinstance(classes, (str, SyntheticClass)):
        classes = [classes]
    resolved = [get_synthetic_class(c) for c in classes]
    if not resolved:
        raise ValueError("classes must name at least one synthetic class, got an empty list")
    names = [c.name for c in resolved]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"classes lists these classes more than once: {dupes}")
    return resolved


def render_clip(
    cls: SyntheticClass | str | int,
    index: int,
    *,
    sampling_rate: int = 16000,
    seed: int = 0,
    duration_range: tuple[float, float] = (0.6, 1.5),
    noise_snr_db_range: tuple[float, float] | None = (10.0, 30.0),
) -> np.ndarray:
    """Clip ``index`` of class ``cls`` exactly as :func:`make_synthetic_dataset` stores it (event + background)."""
    klass = get_synthetic_class(cls)
    sampling_rate = _check_sampling_rate(sampling_rate)
    lo, hi = _check_range(duration_range, "duration_range", positive=True)
    rng = clip_rng(seed, klass, index)
    duration = float(rng.uniform(lo, hi))
    event = generate_event(klass, sampling_rate=sampling_rate, rng=rng, duration=duration).astype(np.float64)
    if noise_snr_db_range is not None:
        snr_lo, snr_hi = _check_range(noise_snr_db_range, "noise_snr_db_range")
        snr = rng.uniform(snr_lo, snr_hi)
        exponent = rng.uniform(0.0, 2.0)  # background colour from white to brown, independent of the class
        noise = _shaped_noise(rng, len(event), sampling_rate, exponent=exponent, lo=30.0)
        target = np.sqrt(np.mean(event * event)) * 10.0 ** (-snr / 20.0)
        event = event + noise * (target / max(np.sqrt(np.mean(noise * noise)), 1e-12))
    peak = float(np.max(np.abs(event)))
    if peak > PEAK_LIMIT:
        event *= PEAK_LIMIT / peak
    return event.astype(np.float32)


def make_synthetic_dataset(
    num_per_class: int = 20,
    *,
    sampling_rate: int = 16000,
    seed: int = 0,
    duration_range: tuple[float, float] = (0.6, 1.5),
    noise_snr_db_range: tuple[float, float] | None = (10.0, 30.0),
    classes: Sequence[SyntheticClass | str | int] | None = None,
):
    """The embedded synthetic sound-event corpus as a ``datasets.Dataset`` (common ``hf_alm.data`` schema).

    Args:
        num_per_class: clips per class.
        sampling_rate: rate of the stored audio in Hz (any rate >= 4000).
        seed: corpus seed; clip ``i`` of class ``c`` depends only on ``(seed, c.name, i)``.
        duration_range: event duration range in seconds (drawn uniformly per clip).
        noise_snr_db_range: background-noise SNR range in dB relative to the event (random colour per clip);
            ``None`` for clean events.
        classes: subset of classes (objects, names or indices); all of :data:`SYNTHETIC_CLASSES` by default. The
            label ids follow this order.

    Returns:
        ``datasets.Dataset`` with ``len = len(classes) * num_per_class`` rows in class-major order and columns
        ``audio`` (``datasets.Audio(sampling_rate)``; stored as lossless float32 WAV bytes, decoded lazily),
        ``label`` (``ClassLabel`` of the class names), ``label_name``, ``captions`` (the class noun phrase and four
        natural captions), ``fold`` (1..5, round-robin within each class) and ``source_id`` (unique row id).
    """
    import datasets

    if isinstance(num_per_class, bool) or not isinstance(num_per_class, numbers.Integral) or num_per_class < 1:
        raise ValueError(f"num_per_class must be a positive integer, got {num_per_class!r}")
    sampling_rate = _check_sampling_rate(sampling_rate)
    seed = _check_seed(seed)
    duration_range = _check_range(duration_range, "duration_range", positive=True)
    if duration_range[0] < 0.05:
        raise ValueError(f"duration_range must start at 0.05 s or more, got {duration_range!r}")
    if noise_snr_db_range is not None:
        noise_snr_db_range = _check_range(noise_snr_db_range, "noise_snr_db_range")
    resolved = _resolve_classes(classes)

    features = datasets.Features(
        {
            "audio": datasets.Audio(sampling_rate=sampling_rate),
            "label": datasets.ClassLabel(names=[c.name for c in resolved]),
            "label_name": datasets.Value("string"),
            "captions": datasets.List(datasets.Value("string")),
            "fold": datasets.Value("int64"),
            "source_id": datasets.Value("int64"),
        }
    )
    chunks = _ChunkedBuilder(features)
    columns = chunks.columns
    for label, klass in enumerate(resolved):
        class_captions = [klass.noun, *klass.captions]
        for i in range(int(num_per_class)):
            clip = render_clip(
                klass, i, sampling_rate=sampling_rate, seed=seed, duration_range=duration_range,
                noise_snr_db_range=noise_snr_db_range,
            )
            columns["audio"].append({"bytes": _float_wav_bytes(clip, sampling_rate), "path": None})
            columns["label"].append(label)
            columns["label_name"].append(klass.name)
            columns["captions"].append(list(class_captions))
            columns["fold"].append(i % NUM_FOLDS + 1)
            columns["source_id"].append(label * int(num_per_class) + i)
            chunks.maybe_flush()
    return chunks.finish()
