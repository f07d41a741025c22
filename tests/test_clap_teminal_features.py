"""CLAP-TeminAL features: equal to transformers' ClapFeatureExtractor (the reference) in its deterministic mode,
batch-invariant, deterministic without a generator and reproducible with a seeded one; clear errors."""

import numpy as np
import pytest
import torch

from hf_alm.modeling.clap_teminal import ClapTeminalFeatureExtractor

SR = 48_000


def _clips():
    rng = np.random.default_rng(0)
    t = np.arange(int(2.5 * SR)) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-t)).astype(np.float32)
    tone[40_000:70_000] = 0.0  # silence next to a loud tone: the hard case for float precision
    chirp = (0.3 * np.sin(2 * np.pi * (200 + 3000 * t[: SR]) * t[: SR])).astype(np.float32)
    return [
        (0.1 * rng.standard_normal(SR * 3)).astype(np.float32),   # 3 s noise, shorter than max length (repeatpad)
        tone,
        chirp,
        (0.01 * rng.standard_normal(1500)).astype(np.float32),    # very short clip (31 ms), many repeats
        (0.2 * rng.standard_normal(SR * 10)).astype(np.float32),  # exactly max length
    ]


@pytest.mark.parametrize("padding", ["repeatpad", "repeat", "pad"])
def test_matches_transformers_clap_feature_extractor(padding):
    from transformers import ClapFeatureExtractor

    clips = _clips()
    reference = ClapFeatureExtractor(frequency_min=50, frequency_max=14000, truncation="rand_trunc", padding=padding)
    ours = ClapTeminalFeatureExtractor(padding=padding)
    expected = reference(clips, sampling_rate=SR, return_tensors="pt")
    got = ours(clips, sampling_rate=SR, return_tensors="pt")
    assert got["input_features"].shape == expected["input_features"].shape == (5, 1, 1001, 64)
    assert got["input_features"].dtype == torch.float32
    diff = (got["input_features"] - expected["input_features"].float()).abs().max().item()
    assert diff <= 1e-4, f"max abs difference {diff} dB"
    assert got["is_longer"].tolist() == expected["is_longer"].tolist() == [[False]] * 5


def test_float32_mode_is_what_the_float64_default_protects_against():
    """The hard clip (silence beside a loud tone) drifts in float32; the float64 default stays within 1e-4."""
    from transformers import ClapFeatureExtractor

    tone = _clips()[1]
    reference = ClapFeatureExtractor(frequency_min=50, truncation="rand_trunc")([tone], sampling_rate=SR)
    ref = torch.as_tensor(np.asarray(reference["input_features"])).float()
    fast = ClapTeminalFeatureExtractor(compute_dtype="float32")([tone], sampling_rate=SR, return_tensors="pt")
    exact = ClapTeminalFeatureExtractor()([tone], sampling_rate=SR, return_tensors="pt")
    assert (exact["input_features"] - ref).abs().max() <= 1e-4
    assert (fast["input_features"] - ref).abs().max() > 1e-4


def test_batched_equals_one_by_one_and_input_types():
    fe = ClapTeminalFeatureExtractor.from_preset("small")
    clips = _clips()[:3]
    batch = fe(clips, sampling_rate=SR, return_tensors="pt")["input_features"]
    for i, clip in enumerate(clips):
        single = fe(clip, sampling_rate=SR, return_tensors="pt")["input_features"]
        as_tensor = fe(torch.from_numpy(clip), sampling_rate=SR, return_tensors="pt")["input_features"]
        as_list = fe(clip.tolist(), sampling_rate=SR, return_tensors="pt")["input_features"]
        assert single.shape == (1, 1, fe.num_frames, 64)
        assert torch.equal(single[0], batch[i])
        assert torch.allclose(as_tensor, single) and torch.allclose(as_list, single, atol=1e-5)
    # float64 input gives float32 features; numpy by default
    out = fe([clips[0].astype(np.float64)], sampling_rate=SR)
    assert isinstance(out["input_features"], np.ndarray) and out["input_features"].dtype == np.float32


def test_long_clips_deterministic_without_generator_and_seeded_with_one():
    fe = ClapTeminalFeatureExtractor.from_preset("small")  # 2 s
    rng = np.random.default_rng(1)
    long_clip = (0.1 * rng.standard_normal(SR * 5)).astype(np.float32)
    a = fe([long_clip], sampling_rate=SR, return_tensors="pt")
    b = fe([long_clip, long_clip[: SR]], sampling_rate=SR, return_tensors="pt")
    assert torch.equal(a["input_features"][0], b["input_features"][0])
    assert a["is_longer"].tolist() == [[True]] and b["is_longer"].tolist() == [[True], [False]]
    # the deterministic crop is the centre: same as featurising the centre 2 s directly
    offset = (len(long_clip) - 2 * SR) // 2
    centre = fe([long_clip[offset: offset + 2 * SR]], sampling_rate=SR, return_tensors="pt")
    assert torch.equal(a["input_features"], centre["input_features"])
    # global random state plays no part
    np.random.seed(123)
    torch.manual_seed(123)
    assert torch.equal(fe([long_clip], sampling_rate=SR, return_tensors="pt")["input_features"], a["input_features"])
    # training crops: reproducible with the same seed, different crops across draws
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    r1 = fe([long_clip] * 4, sampling_rate=SR, return_tensors="pt", generator=g1)["input_features"]
    r2 = fe([long_clip] * 4, sampling_rate=SR, return_tensors="pt", generator=g2)["input_features"]
    assert torch.equal(r1, r2)
    assert not all(torch.equal(r1[0], r1[i]) for i in range(1, 4))


def test_fusion_mode_short_clips_match_transformers():
    """Fusion: short clips are four copies of the HTK-filter mel, as in ClapFeatureExtractor."""
    from transformers import ClapFeatureExtractor

    clips = _clips()[:2]
    reference = ClapFeatureExtractor(frequency_min=50, truncation="fusion")(clips, sampling_rate=SR,
                                                                              return_tensors="pt")
    ours = ClapTeminalFeatureExtractor(truncation="fusion")(clips, sampling_rate=SR, return_tensors="pt")
    assert ours["input_features"].shape == reference["input_features"].shape == (2, 4, 1001, 64)
    assert (ours["input_features"] - reference["input_features"].float()).abs().max() <= 1e-4
    # transformers marks a random short clip as "longer" when none is; we do not (deterministic)
    assert ours["is_longer"].tolist() == [[False], [False]]


def test_attention_mask_marks_real_frames_for_zero_padding():
    fe = ClapTeminalFeatureExtractor.from_preset("small", padding="pad")
    out = fe([np.ones(SR, dtype=np.float32) * 0.1], sampling_rate=SR, return_attention_mask=True,
             return_tensors="pt")
    mask = out["attention_mask"][0]
    assert mask.shape == (fe.num_frames,)
    assert mask[: SR // 480].all() and not mask[SR // 480:].any()


def test_errors_name_the_problem_and_value():
    fe = ClapTeminalFeatureExtractor()
    with pytest.raises(ValueError, match="48000 Hz, got sampling_rate=16000"):
        fe(np.zeros(16000, dtype=np.float32), sampling_rate=16000)
    with pytest.raises(ValueError, match=r"mono.*shape \(2, 2, 10\)"):
        fe(np.zeros((2, 2, 10), dtype=np.float32), sampling_rate=SR)
    with pytest.raises(ValueError, match="clip 1 is empty"):
        fe([np.zeros(2000), np.zeros(0)], sampling_rate=SR)
    with pytest.raises(ValueError, match="truncation must be one of"):
        ClapTeminalFeatureExtractor(truncation="random")
    with pytest.raises(ValueError, match="unknown CLAP-TeminAL preset"):
        ClapTeminalFeatureExtractor.from_preset("medium")


def test_save_and_load_round_trip(tmp_path):
    from transformers import AutoFeatureExtractor

    import hf_alm  # noqa: F401  (registers the Auto classes)

    fe = ClapTeminalFeatureExtractor.from_preset("tiny", top_db=80)
    fe.save_pretrained(tmp_path)
    loaded = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert type(loaded) is ClapTeminalFeatureExtractor
    assert loaded.to_dict() == fe.to_dict()
    clip = _clips()[0]
    assert np.array_equal(loaded([clip], sampling_rate=SR)["input_features"],
                          fe([clip], sampling_rate=SR)["input_features"])


def test_fusion_mode_long_clips_match_transformers_with_the_same_crops(monkeypatch):
    """Fusion on a long clip: the shrunk full mel + front / middle / back crops. transformers draws the crop starts
    with np.random.choice; pinned to the middle of each range it must equal our deterministic choice."""
    from transformers import ClapFeatureExtractor

    monkeypatch.setattr(np.random, "choice", lambda options: np.asarray(options)[len(options) // 2])
    rng = np.random.default_rng(5)
    long_clip = (0.1 * rng.standard_normal(int(SR * 2.7))).astype(np.float32)
    short_clip = (0.1 * rng.standard_normal(SR // 2)).astype(np.float32)
    reference = ClapFeatureExtractor(frequency_min=50, max_length_s=1, truncation="fusion")(
        [long_clip, short_clip], sampling_rate=SR, return_tensors="pt")
    ours = ClapTeminalFeatureExtractor(max_length_s=1, truncation="fusion")(
        [long_clip, short_clip], sampling_rate=SR, return_tensors="pt")
    assert ours["input_features"].shape == reference["input_features"].shape == (2, 4, 101, 64)
    assert (ours["input_features"] - reference["input_features"].float()).abs().max() <= 1e-4
    assert ours["is_longer"].tolist() == reference["is_longer"].tolist() == [[True], [False]]


@pytest.mark.parametrize("truncation", ["rand_trunc", "fusion"])
def test_banded_blocks_cover_every_nonzero_filter_weight(truncation):
    """The mel product runs over dense blocks of the banded filter matrix: put back together they must be the
    matrix itself (every weight inside a block, nothing non-zero left out), with far fewer multiply-adds."""
    from hf_alm.modeling.clap_teminal.feature_extraction_clap_teminal import banded_blocks

    filters = ClapTeminalFeatureExtractor().mel_filters(truncation)
    blocks = banded_blocks(filters)
    rebuilt = torch.zeros_like(filters)
    covered = torch.zeros_like(filters, dtype=torch.bool)
    columns = []
    for lo, hi, first, last, weights in blocks:
        rebuilt[lo:hi, first:last] = weights
        covered[lo:hi, first:last] = True
        columns.extend(range(first, last))
    assert columns == list(range(filters.shape[1]))  # consecutive filters, each in exactly one block
    assert torch.equal(rebuilt, filters) and not bool((filters[~covered] != 0).any())
    assert sum((hi - lo) * (last - first) for lo, hi, first, last, _ in blocks) < 0.5 * filters.numel()
    x = torch.rand(7, filters.shape[0], dtype=filters.dtype)
    pieces = torch.cat([x[:, lo:hi] @ w for lo, hi, _, _, w in blocks], dim=1)
    torch.testing.assert_close(pieces, x @ filters)


CHANNEL_LAST = (r"raw_speech of shape \(24000, 2\) looks like \(samples, channels\) audio; down-mix it to mono first "
                r"\(e\.g\. audio\.mean\(axis=1\)\); a batch is \(clips, samples\) or a list of 1-D clips")


def test_channel_last_audio_is_rejected_not_read_as_tiny_clips():
    """(samples, channels) audio from soundfile.read would otherwise be 24000 clips of 2 samples."""
    fe = ClapTeminalFeatureExtractor.from_preset("tiny")
    stereo = (0.1 * np.random.default_rng(0).standard_normal((SR // 2, 2))).astype(np.float32)
    for value in (stereo, torch.from_numpy(stereo), stereo.tolist()):
        with pytest.raises(ValueError, match=CHANNEL_LAST):
            fe(value, sampling_rate=SR)
    # a (clips, samples) batch and the down-mixed clip still work
    assert fe(stereo.T.copy(), sampling_rate=SR)["input_features"].shape == (2, 1, fe.num_frames, 16)
    assert fe(stereo.mean(axis=1), sampling_rate=SR)["input_features"].shape == (1, 1, fe.num_frames, 16)


def test_integer_and_bool_samples_are_rejected():
    """int16 PCM used unscaled gives features ~90 dB too loud: name the dtype and the conversion instead."""
    fe = ClapTeminalFeatureExtractor.from_preset("tiny")
    clip = (0.1 * np.random.default_rng(0).standard_normal(SR // 2)).astype(np.float32)
    pcm = np.round(clip * 32767).astype(np.int16)
    hint = r"; convert integer PCM first \(e\.g\. int16 / 32768\)"
    with pytest.raises(ValueError, match=r"clip 0: expected float audio in \[-1, 1\], got dtype int16" + hint):
        fe(pcm, sampling_rate=SR)
    with pytest.raises(ValueError, match=r"clip 1: expected float audio in \[-1, 1\], got dtype torch\.int32" + hint):
        fe([torch.from_numpy(clip), torch.from_numpy(pcm.astype(np.int32))], sampling_rate=SR)
    with pytest.raises(ValueError, match=r"clip 0: expected float audio .* got dtype bool" + hint):
        fe(clip > 0, sampling_rate=SR)
    with pytest.raises(ValueError, match=r"clip 0: expected float audio .* got dtype int64" + hint):
        fe(pcm.tolist(), sampling_rate=SR)  # a Python list of ints
    # the suggested conversion gives the features of the float clip
    scaled = fe(pcm / 32768, sampling_rate=SR, return_tensors="pt")["input_features"]
    expected = fe(clip, sampling_rate=SR, return_tensors="pt")["input_features"]
    assert (scaled - expected).abs().max() < 0.5 and expected.max() < 0


def test_non_finite_samples_are_rejected_with_clip_index_and_value():
    fe = ClapTeminalFeatureExtractor.from_preset("tiny")
    clip = (0.1 * np.random.default_rng(0).standard_normal(SR // 2)).astype(np.float32)
    bad = clip.copy()
    bad[100] = np.nan
    bad[300] = np.inf
    with pytest.raises(ValueError, match=r"^clip 0 has a non-finite sample \(nan\) at index 100$"):
        fe(bad, sampling_rate=SR)
    with pytest.raises(ValueError, match=r"^clip 1 has a non-finite sample \(-inf\) at index 7$"):
        fe(torch.stack([torch.from_numpy(clip), torch.from_numpy(np.where(np.arange(clip.size) == 7, -np.inf, clip))]),
           sampling_rate=SR)
    # finite float64 samples so large that their sum overflows: refused by the peak bound, finite with float_scale
    with pytest.raises(ValueError, match=r"^clip 0 has a peak amplitude of 1e\+305 "):
        fe(np.full(SR // 2, 1e305), sampling_rate=SR)
    out = fe(np.full(SR // 2, 1e305), sampling_rate=SR, float_scale=1e305)["input_features"]
    assert out.shape == (1, 1, fe.num_frames, 16) and np.isfinite(out).all()


def test_sampling_rate_must_be_a_whole_number_of_hz():
    fe = ClapTeminalFeatureExtractor.from_preset("tiny")
    clip = (0.1 * np.random.default_rng(0).standard_normal(SR // 2)).astype(np.float32)
    with pytest.raises(ValueError, match=r"^sampling_rate must be a whole number of Hz, got '16k'$"):
        fe(clip, sampling_rate="16k")
    with pytest.raises(ValueError, match=r"^sampling_rate must be a whole number of Hz, got 48000\.5$"):
        fe(clip, sampling_rate=48000.5)
    with pytest.raises(ValueError, match=r"48000 Hz, got sampling_rate=16000\.0"):
        fe(clip, sampling_rate=16000.0)
    expected = fe(clip, sampling_rate=SR)["input_features"]
    for rate in (48000.0, np.int64(48000), np.float32(48000)):
        assert np.array_equal(fe(clip, sampling_rate=rate)["input_features"], expected)


def test_a_path_or_none_instead_of_audio_says_to_load_the_file_first():
    """Like the other extractors (it was "got dtype <U5; convert integer PCM first" for a list of paths)."""
    import re

    fe = ClapTeminalFeatureExtractor()
    clip = np.zeros(SR, np.float32)
    hint = "; load the audio first (e.g. hf_alm.data.load_audio) and pass the array"
    with pytest.raises(TypeError, match=re.escape("raw_speech is a str ('a.wav')" + hint)):
        fe("a.wav", sampling_rate=SR)
    with pytest.raises(TypeError, match=re.escape("raw_speech is None" + hint)):
        fe(None, sampling_rate=SR)
    with pytest.raises(TypeError, match=re.escape("clip 1 is a str ('b.wav')" + hint)):
        fe([clip, "b.wav"], sampling_rate=SR)
    with pytest.raises(TypeError, match=re.escape("clip 0 is a str ('a.wav')" + hint)):
        fe(["a.wav", "b.wav"], sampling_rate=SR)


@pytest.mark.parametrize("make", [lambda a: a, torch.from_numpy, lambda a: a.tolist()], ids=["numpy", "torch", "list"])
@pytest.mark.parametrize("channels", [9, 16, 64])
def test_multichannel_audio_with_more_than_8_channels_is_not_a_batch(make, channels):
    """(24000, 16) (a mic array from soundfile.read) passed the old "at most 8 channels" guard: features of shape
    (24000, 1, 51, 16), 4.3 GB of one-frame clips. A row shorter than one analysis frame cannot be a clip."""
    import re

    fe = ClapTeminalFeatureExtractor.from_preset("tiny")
    audio = (0.1 * np.random.default_rng(0).standard_normal((24000, channels))).astype(np.float32)
    with pytest.raises(ValueError, match=re.escape(
            f"raw_speech of shape (24000, {channels}) looks like (samples, channels) audio; down-mix it to mono first "
            f"(e.g. audio.mean(axis=1)); a batch is (clips, samples) or a list of 1-D clips, and rows of {channels} "
            f"samples are shorter than one analysis frame (1024 samples)")):
        fe(make(audio), sampling_rate=SR)
    assert fe(audio.mean(axis=1), sampling_rate=SR)["input_features"].shape == (1, 1, fe.num_frames, 16)


@pytest.mark.parametrize("batch, shown", [
    (np.zeros((0, SR), np.float32), r"\(shape \(0, 48000\)\)"),
    (torch.zeros(0, SR), r"\(shape \(0, 48000\)\)"),
    ([], r"\(an empty list\)"),
])
def test_an_empty_batch_is_a_value_error_naming_it(batch, shown):
    with pytest.raises(ValueError, match=r"^raw_speech is an empty batch " + shown + r"; pass at least one clip of "
                                         r"audio$"):
        ClapTeminalFeatureExtractor.from_preset("tiny")(batch, sampling_rate=SR)


@pytest.mark.parametrize("length", [1, 3, 100, 1023])
def test_a_clip_shorter_than_one_analysis_frame_names_clip_length_and_minimum(length):
    """Repeat-padded, a clip of 1-3 samples gave all -100 dB (a constant or a tone above 14 kHz), with no error."""
    fe = ClapTeminalFeatureExtractor.from_preset("tiny")
    clip = (0.1 * np.random.default_rng(0).standard_normal(SR // 2)).astype(np.float32)
    with pytest.raises(ValueError, match=rf"^clip 1 has {length} samples, shorter than one 21\.3 ms frame \(1024 "
                                         r"samples at 48000 Hz\)$"):
        fe([clip, clip[:length]], sampling_rate=SR)
    out = fe(clip[:1024], sampling_rate=SR)["input_features"]  # one frame of audio is enough
    assert np.isfinite(out).all() and out.max() > -100


def test_int16_range_float_audio_is_refused_unless_its_float_scale_is_given():
    """Float audio holding int16 values (peak 30,000) was used as is: features of 72-85 dB instead of about -10."""
    import re

    fe = ClapTeminalFeatureExtractor.from_preset("tiny")
    clip = (0.1 * np.random.default_rng(0).standard_normal(SR // 2)).astype(np.float32)
    pcm = np.round(clip * 32767)  # float64 holding int16 values
    first = int(np.argmax(np.abs(pcm) > 64))
    with pytest.raises(ValueError, match=re.escape(
            f"clip 1 has a peak amplitude of {np.abs(pcm).max():g} (index {first} is the first sample above 64): float "
            f"audio must be in [-1, 1] and a peak above 64 means samples on another scale (e.g. int16 PCM stored as "
            f"floats); divide it by its full scale (e.g. audio / 32768) or pass float_scale= (e.g. float_scale=32768)")):
        fe([clip, pcm.astype(np.float32)], sampling_rate=SR)
    got = fe(pcm, sampling_rate=SR, float_scale=32768, return_tensors="pt")["input_features"]
    expected = fe(pcm / 32768, sampling_rate=SR, return_tensors="pt")["input_features"]
    torch.testing.assert_close(got, expected)
    assert expected.max() < 0
    with pytest.raises(ValueError, match=r"^float_scale must be a positive finite number .*got -1$"):
        fe(clip, sampling_rate=SR, float_scale=-1)
    with pytest.raises(ValueError, match=r"^max_length must be a positive whole number of samples, got -1$"):
        fe(clip, sampling_rate=SR, max_length=-1)


@pytest.mark.parametrize("scalar", [np.array(0.5, np.float32), torch.tensor(0.5), np.float32(0.5)])
def test_a_scalar_is_a_clear_error_naming_the_input(scalar):
    """Found by the fuzz (tests/test_fuzz_inputs.py): a 0-d array raised numpy's 'iteration over a 0-d array'."""
    with pytest.raises((ValueError, TypeError), match=r"got shape \(\)|raw_speech must be"):
        ClapTeminalFeatureExtractor.from_preset("tiny")(scalar, sampling_rate=SR)
