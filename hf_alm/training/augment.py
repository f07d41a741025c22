"""Waveform augmentation for recipes, through ``audiomentations`` (an optional dependency: ``hf-alm[augment]``).

The default chain follows the augmentations reported for the tiny-transformer work (models.md section 3.2): added
Gaussian noise, a circular time shift, gain and pitch shift, each applied with its own probability::

    augment = WaveformAugmenter()                 # or WaveformAugmenter.from_spec("noise,shift,gain,pitch")
    y = augment(x, sampling_rate=16000, seed=7)   # numpy float32 in, numpy float32 out, same length

Every call is reproducible: ``seed`` seeds the random generators audiomentations draws from (Python ``random`` and
the global numpy generator), whose previous state is restored afterwards, so augmenting never disturbs the caller's
randomness. The DSP itself (noise, shift, gain, pitch shift) is audiomentations', not ours.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["AUGMENTATIONS", "WaveformAugmenter", "require_audiomentations"]

#: name -> (audiomentations class name, keyword arguments, probability)
AUGMENTATIONS: dict[str, tuple[str, dict, float]] = {
    "noise": ("AddGaussianNoise", {"min_amplitude": 0.001, "max_amplitude": 0.015}, 0.5),
    "shift": ("Shift", {"min_shift": -0.25, "max_shift": 0.25, "shift_unit": "fraction", "rollover": True}, 0.5),
    "gain": ("Gain", {"min_gain_db": -6.0, "max_gain_db": 6.0}, 0.5),
    "pitch": ("PitchShift", {"min_semitones": -2.0, "max_semitones": 2.0}, 0.3),
}


def require_audiomentations():
    try:
        import audiomentations
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("waveform augmentation needs audiomentations: pip install 'hf-alm[augment]' "
                          "(or disable augmentation)") from err
    return audiomentations


@dataclass
class WaveformAugmenter:
    """An audiomentations ``Compose`` of the named ``augmentations`` (keys of :data:`AUGMENTATIONS`)."""

    augmentations: Sequence[str] = ("noise", "shift", "gain", "pitch")
    probabilities: dict[str, float] | None = None  # overrides of the default per-transform probabilities

    def __post_init__(self):
        self.augmentations = tuple(self.augmentations)
        overrides = dict(self.probabilities or {})
        unknown = [a for a in (*self.augmentations, *overrides) if a not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"unknown augmentation(s) {unknown}; choose from {sorted(AUGMENTATIONS)}")
        bad = {k: v for k, v in overrides.items() if not 0.0 <= float(v) <= 1.0}
        if bad:
            raise ValueError(f"augmentation probabilities must be in [0, 1], got {bad}")
        audiomentations = require_audiomentations()
        transforms = []
        for name in self.augmentations:
            cls_name, kwargs, p = AUGMENTATIONS[name]
            transforms.append(getattr(audiomentations, cls_name)(p=float(overrides.get(name, p)), **kwargs))
        self._compose = audiomentations.Compose(transforms) if transforms else None

    @classmethod
    def from_spec(cls, spec: str | None) -> "WaveformAugmenter | None":
        """``"noise,shift,gain,pitch"`` (any subset), or ``"none"`` / empty -> ``None``."""
        if spec is None or spec.strip().lower() in ("", "none"):
            return None
        return cls(tuple(s.strip() for s in spec.split(",") if s.strip()))

    def __call__(self, waveform, sampling_rate: int, seed: int | None = None) -> np.ndarray:
        x = np.asarray(waveform, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"augmentation expects a 1-D mono waveform, got shape {x.shape}")
        if self._compose is None:
            return x.copy()
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            if seed is not None:
                random.seed(int(seed))
                np.random.seed(int(seed) % 2**32)
            y = self._compose(samples=x, sample_rate=int(sampling_rate))
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        y = np.asarray(y, dtype=np.float32)
        if y.shape != x.shape:  # pitch shifting may change the length by a few samples
            y = np.pad(y, (0, max(0, x.shape[0] - y.shape[0])))[: x.shape[0]]
        return y
