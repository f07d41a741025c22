"""The embedded synthetic sound-event corpus (hf_alm.data.synthetic)."""

import io

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")
sf = pytest.importorskip("soundfile")

from hf_alm.data.audio import load_audio  # noqa: E402
from hf_alm.data.synthetic import (  # noqa: E402
    SYNTHETIC_CLASS_NAMES,
    SYNTHETIC_CLASSES,
    clip_rng,
    generate_event,
    get_synthetic_class,
    make_synthetic_dataset,
    render_clip,
)

TONAL = ["pure tone", "rising chirp", "falling chirp", "siren", "tremolo tone", "harmonic hum", "buzz", "beeping",
         "trill", "chord", "bell"]


def _raw_bytes(ds):
    return [row["audio"]["bytes"] for row in ds.cast_column("audio", datasets.Audio(decode=False))]


def _stft_power(x, sr, win=512, hop=256):
    x = np.asarray(x, dtype=np.float64)
    n = 1 + (len(x) - win) // hop
    frames = np.stack([x[i * hop : i * hop + win] for i in range(n)]) * np.hanning(win)
    return np.abs(np.fft.rfft(frames, axis=1)) ** 2, np.fft.rfftfreq(win, 1.0 / sr)


def test_classes_are_many_distinct_and_captioned():
    assert len(SYNTHETIC_CLASSES) >= 16
    names = [c.name for c in SYNTHETIC_CLASSES]
    nouns = [c.noun for c in SYNTHETIC_CLASSES]
    assert names == SYNTHETIC_CLASS_NAMES
    assert len(set(names)) == len(names) and len(set(nouns)) == len(nouns)
    for c in SYNTHETIC_CLASSES:
        assert 1 <= len(c.name.split()) <= 3, c.name
        assert len(set(c.captions)) >= 3, c.name
        assert all(cap.strip() == cap and cap for cap in c.captions)
    all_captions = [cap for c in SYNTHETIC_CLASSES for cap in c.captions]
    assert len(set(all_captions)) == len(all_captions), "a caption is shared by two classes"


def test_dataset_schema_folds_ids_and_lossless_audio():
    classes = ["rising chirp", "bell", "crackle"]
    ds = make_synthetic_dataset(7, sampling_rate=16000, seed=3, classes=classes)
    assert len(ds) == 3 * 7
    assert isinstance(ds.features["label"], datasets.ClassLabel)
    assert ds.features["label"].names == classes
    assert isinstance(ds.features["audio"], datasets.Audio) and ds.features["audio"].sampling_rate == 16000
    assert ds["label_name"] == [classes[label] for label in ds["label"]]
    assert sorted(ds["source_id"]) == list(range(21))
    for label in range(3):
        folds = [f for f, lab in zip(ds["fold"], ds["label"]) if lab == label]
        assert folds == [1, 2, 3, 4, 5, 1, 2]
    row = ds[8]  # class "bell", index 1
    klass = get_synthetic_class(row["label_name"])
    assert row["captions"][0] == klass.noun and set(klass.captions) <= set(row["captions"])
    expected = render_clip("bell", 1, sampling_rate=16000, seed=3)
    decoded = load_audio(row["audio"], 16000).numpy()
    assert decoded.dtype == np.float32 and np.array_equal(decoded, expected)
    # an independent decoder (libsndfile) reads the stored bytes to the same samples
    raw = _raw_bytes(ds.select([8]))[0]
    samples, rate = sf.read(io.BytesIO(raw), dtype="float32")
    assert rate == 16000 and np.array_equal(samples, expected)
    assert 0.6 * 16000 <= len(expected) <= 1.5 * 16000


def test_same_seed_is_byte_identical_and_seed_matters():
    a = _raw_bytes(make_synthetic_dataset(3, seed=11))
    b = _raw_bytes(make_synthetic_dataset(3, seed=11))
    c = _raw_bytes(make_synthetic_dataset(3, seed=12))
    assert a == b
    assert all(x != y for x, y in zip(a, c))


def test_clip_depends_only_on_seed_class_and_index():
    small = make_synthetic_dataset(2, seed=5, classes=["whistle"])
    big = make_synthetic_dataset(4, seed=5, classes=["knocking", "whistle"])
    assert _raw_bytes(small) == _raw_bytes(big.select([4, 5]))


def _features(x, sr, bands=32):
    x = np.asarray(x, dtype=np.float64)
    x = x / np.sqrt(np.mean(x * x))  # level-normalised: loudness cannot help
    power, freqs = _stft_power(x, sr)
    edges = np.geomspace(50.0, sr / 2, bands + 1)
    logb = np.log(np.stack([power[:, (freqs >= lo) & (freqs < hi)].sum(1) for lo, hi in zip(edges, edges[1:])], 1)
                  + 1e-10)
    return np.concatenate([logb.mean(0), logb.std(0)])


def _nearest_centroid_accuracy(feats, labels, folds, n_classes):
    train, test = folds != 5, folds == 5
    centroids = np.stack([feats[train & (labels == k)].mean(0) for k in range(n_classes)])
    dist = ((feats[test][:, None, :] - centroids[None]) ** 2).sum(-1)
    return float((dist.argmin(1) == labels[test]).mean())


def test_classes_differ_in_more_than_loudness():
    sr = 16000
    ds = make_synthetic_dataset(10, sampling_rate=sr, seed=0)
    clips = [load_audio(a, sr).numpy() for a in ds["audio"]]
    labels, folds = np.asarray(ds["label"]), np.asarray(ds["fold"])
    n = len(SYNTHETIC_CLASSES)
    spectral = np.stack([_features(x, sr) for x in clips])
    loudness = np.stack([[10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2))] for x in clips])
    chance = 1.0 / n
    spectral_acc = _nearest_centroid_accuracy(spectral, labels, folds, n)
    loudness_acc = _nearest_centroid_accuracy(loudness, labels, folds, n)
    # a nearest-centroid classifier on log-spectra of level-normalised clips is far above chance ...
    assert spectral_acc >= 6 * chance, spectral_acc
    # ... while the level alone says (almost) nothing about the class
    assert loudness_acc <= 3 * chance, loudness_acc
    levels = loudness[:, 0]
    per_class = np.array([levels[labels == k].mean() for k in range(n)])
    assert per_class.max() - per_class.min() < 8.0, per_class


@pytest.mark.parametrize("sr", [8000, 16000, 48000])
def test_any_sampling_rate_pitch_is_right_and_nothing_aliases(sr):
    # the pure tone's spectral peak sits at the drawn frequency, the same at every rate
    for i in range(3):
        x, params = generate_event("pure tone", sampling_rate=sr, rng=clip_rng(0, "pure tone", i), duration=1.0,
                                   return_params=True)
        ref = generate_event("pure tone", sampling_rate=16000, rng=clip_rng(0, "pure tone", i), duration=1.0,
                             return_params=True)[1]
        assert params["frequency"] == ref["frequency"] and 250 <= params["frequency"] <= 2000
        assert len(x) == sr
        spec = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
        peak = np.fft.rfftfreq(len(x), 1.0 / sr)[spec.argmax()]
        assert abs(peak - params["frequency"]) <= 1.0, (peak, params["frequency"])
    # tonal classes put no energy near Nyquist (an aliasing synthesiser would fold partials back down)
    for name in TONAL:
        for i in range(2):
            x = generate_event(name, sampling_rate=sr, rng=clip_rng(1, name, i)).astype(np.float64)
            power = np.abs(np.fft.rfft(x)) ** 2
            freqs = np.fft.rfftfreq(len(x), 1.0 / sr)
            ratio = power[freqs > 0.46 * sr].sum() / power.sum()
            assert ratio < 1e-6, (name, sr, ratio)
    # the buzz (band-limited saw / square) has energy only at multiples of its f0; a naive saw fails this
    def harmonic_fraction(x, f0):
        spec = np.abs(np.fft.rfft(np.asarray(x, np.float64) * np.hanning(len(x)))) ** 2
        freqs = np.fft.rfftfreq(len(x), 1.0 / sr)
        k = np.round(freqs / f0)
        near = (k >= 1) & (np.abs(freqs - k * f0) <= 3.0)
        return spec[near].sum() / spec.sum()

    for i in range(3):
        x, p = generate_event("buzz", sampling_rate=sr, rng=clip_rng(0, "buzz", i), duration=1.0, return_params=True)
        assert harmonic_fraction(x, p["frequency"]) > 0.999, (sr, p)
    f0 = 233.3
    naive = 2 * np.mod(f0 * np.arange(sr) / sr, 1.0) - 1
    if sr == 8000:
        assert harmonic_fraction(naive, f0) < 0.99  # the check does catch aliasing


@pytest.mark.parametrize("name,direction", [("rising chirp", 1), ("falling chirp", -1)])
def test_chirps_move_in_their_direction(name, direction):
    sr = 16000
    for i in range(5):
        x = generate_event(name, sampling_rate=sr, rng=clip_rng(0, name, i))
        power, freqs = _stft_power(x, sr)
        q = len(power) // 4
        early, late = freqs[power[:q].sum(0).argmax()], freqs[power[-q:].sum(0).argmax()]
        assert (late / early if direction > 0 else early / late) > 1.8, (name, early, late)


def test_level_is_the_requested_rms():
    for name in ("pure tone", "pink noise burst", "beeping"):
        x = generate_event(name, sampling_rate=16000, rng=np.random.default_rng(0), level_db=-25.0)
        rms_db = 10 * np.log10(np.mean(x.astype(np.float64) ** 2))
        assert abs(rms_db + 25.0) < 0.01
    loud = generate_event("crackle", sampling_rate=16000, rng=np.random.default_rng(0), level_db=0.0)
    assert np.abs(loud).max() <= 0.99 + 1e-6


def test_noise_free_option_and_background_noise():
    clean = render_clip("pure tone", 0, noise_snr_db_range=None)
    noisy = render_clip("pure tone", 0, noise_snr_db_range=(10.0, 10.0))
    # with the same seed, the event is identical; the difference is the background at 10 dB below it
    residual = noisy.astype(np.float64) - clean
    snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(residual**2))
    assert abs(snr - 10.0) < 0.05


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_per_class": 0}, "num_per_class"),
        ({"sampling_rate": 1000}, "1000"),
        ({"seed": -1}, "seed"),
        ({"classes": ["rising chirp", "meow"]}, "meow"),
        ({"classes": ["bell", "bell"]}, "bell"),
        ({"duration_range": (1.0, 0.5)}, "duration_range"),
        ({"noise_snr_db_range": (1.0,)}, "noise_snr_db_range"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    kwargs = {"num_per_class": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_synthetic_dataset(**kwargs)


def test_generate_event_validates():
    with pytest.raises(ValueError, match="duration"):
        generate_event("bell", sampling_rate=16000, rng=np.random.default_rng(0), duration=0.0)
    with pytest.raises(ValueError, match="42"):
        generate_event(42, sampling_rate=16000, rng=np.random.default_rng(0))
    x = generate_event(0, sampling_rate=16000, rng=7, duration=0.5)
    assert x.dtype == np.float32 and x.shape == (8000,)


@pytest.mark.parametrize("sr", [4000, 96000])
@pytest.mark.parametrize("duration", [0.05, 3.0])
def test_every_class_sounds_at_extreme_rates_and_durations(sr, duration):
    for klass in SYNTHETIC_CLASSES:
        x = generate_event(klass, sampling_rate=sr, rng=clip_rng(0, klass, 0), duration=duration)
        assert x.shape == (round(duration * sr),) and np.isfinite(x).all()
        assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) > 1e-3, klass.name  # levels are -36..-20 dBFS
        assert np.abs(x).max() <= 0.99 + 1e-6


def test_large_dataset_is_assembled_in_order_across_chunks():
    ds = make_synthetic_dataset(13, sampling_rate=8000, duration_range=(0.1, 0.2), seed=4)  # 260 rows > 1 chunk
    assert len(ds) == 13 * len(SYNTHETIC_CLASSES)
    assert ds["source_id"] == list(range(len(ds)))
    for row in (0, 255, 256, len(ds) - 1):
        label, index = divmod(row, 13)
        expected = render_clip(label, index, sampling_rate=8000, seed=4, duration_range=(0.1, 0.2))
        assert ds[row]["label"] == label and ds[row]["fold"] == index % 5 + 1
        assert np.array_equal(load_audio(ds[row]["audio"], 8000).numpy(), expected)
