"""Waveform augmentation through audiomentations: each transform does what it claims, reproducibly."""

import random

import numpy as np
import pytest

pytest.importorskip("audiomentations")

from hf_alm.training.augment import AUGMENTATIONS, WaveformAugmenter  # noqa: E402

SR = 16000


def _signal(seconds=0.5, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_same_seed_same_output_and_global_random_state_is_untouched():
    aug = WaveformAugmenter()
    x = _signal()
    random.seed(123)
    np.random.seed(123)
    before = (random.random(), np.random.random())
    random.seed(123)
    np.random.seed(123)
    a, b = aug(x, SR, seed=5), aug(x, SR, seed=5)
    after = (random.random(), np.random.random())
    np.testing.assert_array_equal(a, b)
    assert before == after  # augmenting did not consume the caller's random numbers
    assert a.shape == x.shape and a.dtype == np.float32
    assert any(not np.array_equal(aug(x, SR, seed=s), a) for s in range(6, 12))


def test_gain_only_scales_by_a_constant_within_the_documented_range():
    aug = WaveformAugmenter(("gain",), probabilities={"gain": 1.0})
    x = _signal()
    for seed in range(5):
        y = aug(x, SR, seed=seed)
        ratio = y[np.abs(x) > 1e-3] / x[np.abs(x) > 1e-3]
        assert np.allclose(ratio, ratio[0], rtol=1e-4)
        gain_db = 20 * np.log10(ratio[0])
        assert -6.0 - 1e-6 <= gain_db <= 6.0 + 1e-6


def test_shift_only_is_a_circular_roll_of_the_input():
    aug = WaveformAugmenter(("shift",), probabilities={"shift": 1.0})
    x = _signal(0.25)
    y = aug(x, SR, seed=3)
    # cross-correlation through the FFT finds the roll; the output matches it away from the short fades
    k = int(np.argmax(np.fft.irfft(np.fft.rfft(y) * np.conj(np.fft.rfft(x)), n=x.size)))
    assert k != 0 and min(k, x.size - k) <= 0.25 * x.size + 1
    rolled = np.roll(x, k)
    fade = int(0.005 * SR) + 1
    inner = np.ones(x.size, bool)
    inner[max(0, k - fade): k + fade] = False
    inner[:fade] = False
    inner[-fade:] = False
    np.testing.assert_allclose(y[inner], rolled[inner], atol=1e-5)


def test_noise_only_adds_gaussian_noise_of_the_documented_amplitude():
    aug = WaveformAugmenter(("noise",), probabilities={"noise": 1.0})
    x = _signal(1.0)
    residual = aug(x, SR, seed=1) - x
    lo, hi = AUGMENTATIONS["noise"][1]["min_amplitude"], AUGMENTATIONS["noise"][1]["max_amplitude"]
    assert lo * 0.9 <= residual.std() <= hi * 1.1
    assert abs(float(residual.mean())) < 3 * residual.std() / np.sqrt(residual.size) + 1e-4


def test_pitch_shift_moves_a_tone_within_two_semitones():
    aug = WaveformAugmenter(("pitch",), probabilities={"pitch": 1.0})
    t = np.arange(SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    shifts = []
    for seed in range(4):
        spectrum = np.abs(np.fft.rfft(aug(x, SR, seed=seed) * np.hanning(SR)))
        shifts.append(12 * np.log2(np.argmax(spectrum) / 1000.0))  # 1 Hz bins
    assert all(abs(s) <= 2.1 for s in shifts) and max(abs(s) for s in shifts) > 0.1


def test_bad_configuration_and_input_are_named():
    with pytest.raises(ValueError, match=r"unknown augmentation\(s\) \['reverb'\]"):
        WaveformAugmenter(("noise", "reverb"))
    with pytest.raises(ValueError, match=r"probabilities must be in \[0, 1\], got \{'gain': 1.5\}"):
        WaveformAugmenter(("gain",), probabilities={"gain": 1.5})
    assert WaveformAugmenter.from_spec("none") is None
    assert WaveformAugmenter.from_spec(" gain , shift").augmentations == ("gain", "shift")
    with pytest.raises(ValueError, match=r"1-D mono waveform, got shape \(2, 10\)"):
        WaveformAugmenter()(np.zeros((2, 10), np.float32), SR)
