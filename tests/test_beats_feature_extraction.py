"""BeatsFeatureExtractor: exact Kaldi fbank (vs torchaudio and the original's recorded output), masks, errors."""

import json
import re

import numpy as np
import pytest
import torch

from hf_alm.modeling.beats import BeatsFeatureExtractor, frame_padding_mask, kaldi_fbank

MEAN, STD = 15.41663, 6.55582


def _audio(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 16000
    x = 0.3 * torch.sin(2 * torch.pi * (200 + 900 * t) * t) + 0.05 * torch.randn(n, generator=g)
    return (torch.round(x.clamp(-1, 1) * 32767) / 32768).float()  # int16-exact values, as real decoded audio


def test_matches_torchaudio_kaldi_fbank_clip_by_clip():
    kaldi = pytest.importorskip("torchaudio.compliance.kaldi")
    clips = [_audio(n, seed=i) for i, n in enumerate([16000, 4321, 400, 23999])]
    fe = BeatsFeatureExtractor()
    out = fe([c.numpy() for c in clips], sampling_rate=16000, return_tensors="pt")
    aligned = BeatsFeatureExtractor(padding_mode="time_aligned")([c.numpy() for c in clips], sampling_rate=16000,
                                                                return_tensors="pt")
    torch.testing.assert_close(aligned["input_values"], out["input_values"], atol=0, rtol=0)
    for i, clip in enumerate(clips):
        ref = kaldi.fbank(clip.unsqueeze(0) * 2**15, num_mel_bins=128, sample_frequency=16000, frame_length=25,
                          frame_shift=10)
        ref = (ref - MEAN) / (2 * STD)
        frames = ref.shape[0]
        assert frames == 1 + (clip.shape[0] - 400) // 160
        # time-aligned mask: exactly the clip's own frames are real
        assert int(aligned["attention_mask"][i].sum()) == frames and bool(aligned["attention_mask"][i, :frames].all())
        torch.testing.assert_close(out["input_values"][i, :frames], ref, atol=1e-5, rtol=0)


def test_unnormalised_fbank_matches_torchaudio():
    kaldi = pytest.importorskip("torchaudio.compliance.kaldi")
    x = _audio(8000, seed=3).unsqueeze(0) * 2**15
    ref = kaldi.fbank(x, num_mel_bins=128, sample_frequency=16000, frame_length=25, frame_shift=10)
    torch.testing.assert_close(kaldi_fbank(x)[0], ref, atol=2e-4, rtol=1e-5)


def test_fbank_matches_every_reference_fixture(beats_reference_path):
    from safetensors.torch import load_file

    fe = BeatsFeatureExtractor()
    files = sorted(beats_reference_path.glob("*_io.safetensors"))
    assert len(files) == 3
    for path in files:
        io = load_file(path)
        for mask in (~io["padding_mask"], None):
            out = fe(io["waveform"], sampling_rate=16000, attention_mask=mask, return_tensors="pt")
            torch.testing.assert_close(out["input_values"], io["fbank"], atol=1e-5, rtol=0)


def test_reference_frame_mask_rule_and_time_aligned_rule():
    # 2 s batch, second clip 1.3 s: reference chunk rule -> frames 130.. padded; time-aligned -> frames whose 25 ms
    # window touches sample 20800 onwards, i.e. t >= (20800 - 400) / 160 + 1 = 128.5 -> 128
    padding = torch.zeros(2, 32000, dtype=torch.bool)
    padding[1, 20800:] = True
    ref = frame_padding_mask(padding, 198, "reference")
    assert ref[0].sum() == 0 and ref[1].nonzero().min() == 130 and ref[1].sum() == 68
    aligned = frame_padding_mask(padding, 198, "time_aligned")
    assert aligned[1].nonzero().min() == 128 and aligned[1].sum() == 70
    expected = torch.tensor([t * 160 + 400 > 20800 for t in range(198)])
    assert torch.equal(aligned[1], expected)


def test_inputs_list_batch_single_and_numpy_output():
    fe = BeatsFeatureExtractor()
    clips = [_audio(9000, 1), _audio(6000, 2)]
    batch = torch.zeros(2, 9000)
    batch[0], batch[1, :6000] = clips[0], clips[1]
    mask = torch.zeros(2, 9000, dtype=torch.long)
    mask[0], mask[1, :6000] = 1, 1
    a = fe(clips, sampling_rate=16000, return_tensors="pt")
    b = fe(batch, sampling_rate=16000, attention_mask=mask, return_tensors="pt")
    assert torch.equal(a["input_values"], b["input_values"]) and torch.equal(a["attention_mask"], b["attention_mask"])
    single = fe(clips[0].numpy().astype(np.float64), sampling_rate=16000)
    assert isinstance(single["input_values"], np.ndarray) and single["input_values"].dtype == np.float32
    assert single["input_values"].shape == (1, 1 + (9000 - 400) // 160, 128)
    np.testing.assert_allclose(single["input_values"][0], a["input_values"][0].numpy(), atol=1e-6)


@pytest.mark.parametrize("bad, match", [
    (dict(sampling_rate=44100), "44100"),
    (dict(sampling_rate=8000), "8000"),
])
def test_wrong_sampling_rate_is_a_clear_error(bad, match):
    with pytest.raises(ValueError, match=match):
        BeatsFeatureExtractor()(_audio(4000).numpy(), **bad)


def test_bad_inputs_are_clear_errors():
    fe = BeatsFeatureExtractor()
    with pytest.raises(ValueError, match="int16"):
        fe(np.zeros(4000, dtype=np.int16), sampling_rate=16000)
    with pytest.raises(ValueError, match="shorter than one 25 ms frame"):
        fe(np.zeros(300, dtype=np.float32), sampling_rate=16000)
    with pytest.raises(ValueError, match="shape"):
        fe(np.zeros((2, 2, 4000), dtype=np.float32), sampling_rate=16000)
    with pytest.raises(ValueError, match="attention_mask shape"):
        fe(np.zeros((2, 4000), dtype=np.float32), sampling_rate=16000, attention_mask=np.ones((2, 3000)))
    with pytest.raises(ValueError, match="padding_mode"):
        BeatsFeatureExtractor(padding_mode="centre")


def test_save_and_reload_round_trip(tmp_path):
    fe = BeatsFeatureExtractor(padding_mode="time_aligned")
    fe.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["padding_mode"] == "time_aligned" and saved["fbank_mean"] == MEAN and saved["sampling_rate"] == 16000
    again = BeatsFeatureExtractor.from_pretrained(tmp_path)
    x = _audio(5000).numpy()
    np.testing.assert_array_equal(again(x, sampling_rate=16000)["input_values"], fe(x, sampling_rate=16000)["input_values"])


def test_padding_to_max_length_and_truncation():
    fe = BeatsFeatureExtractor()
    clips = [_audio(8000, 1).numpy(), _audio(5000, 2).numpy()]
    out = fe(clips, sampling_rate=16000, padding="max_length", max_length=16000, return_tensors="pt")
    assert out["input_values"].shape == (2, 98, 128)
    longest = fe(clips, sampling_rate=16000, return_tensors="pt")
    torch.testing.assert_close(out["input_values"][:, :48], longest["input_values"], atol=0, rtol=0)
    cut = fe(clips, sampling_rate=16000, max_length=4000, truncation=True, return_tensors="pt")
    assert cut["input_values"].shape == (2, 1 + (4000 - 400) // 160, 128)
    with pytest.raises(ValueError, match="longer than max_length=4000"):
        fe(clips, sampling_rate=16000, max_length=4000)
    with pytest.raises(ValueError, match="need max_length"):
        fe(clips, sampling_rate=16000, padding="max_length")
    with pytest.raises(TypeError, match="unexpected arguments"):
        fe(clips, sampling_rate=16000, do_normalize=False)


def test_chunked_and_reused_buffers_give_identical_features(monkeypatch):
    """kaldi_fbank reuses per-thread work buffers and processes long inputs in chunks of frames: chunked, repeated,
    differently sized and concurrent calls must all give the same features (bit-identical where the chunks are not
    degenerate)."""
    import threading

    from hf_alm.modeling.beats import feature_extraction_beats as fb

    g = torch.Generator().manual_seed(5)
    big = torch.randn(3, 16000, generator=g) * 0.2
    small = torch.randn(2, 4000, generator=g) * 0.2
    whole_big, whole_small = kaldi_fbank(big.clone()), kaldi_fbank(small.clone())
    assert torch.equal(kaldi_fbank(big), whole_big) and torch.equal(kaldi_fbank(small), whole_small)
    monkeypatch.setattr(fb, "_CHUNK_ROWS", 7 * 3)  # 7 frames per clip and chunk: 98 frames -> 14 chunks
    assert torch.equal(kaldi_fbank(big), whole_big)
    monkeypatch.setattr(fb, "_CHUNK_ROWS", 2)  # fewer rows than clips: one frame per chunk (3-row GEMMs and FFTs
    torch.testing.assert_close(kaldi_fbank(big), whole_big, atol=1e-5, rtol=0)  # may round differently)
    monkeypatch.setattr(fb, "_CHUNK_ROWS", 4096)
    results, errors = {}, []

    def work(name, x):
        try:
            results[name] = [kaldi_fbank(x) for _ in range(5)]
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n, x)) for n, x in (("big", big), ("small", small))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(torch.equal(r, whole_big) for r in results["big"])
    assert all(torch.equal(r, whole_small) for r in results["small"])


@pytest.mark.parametrize("make", [lambda a: a, torch.from_numpy], ids=["numpy", "torch"])
def test_channel_last_audio_is_not_read_as_a_batch_of_tiny_clips(make):
    """soundfile.read gives (samples, channels): it used to become 16000 clips of 2 samples ("shorter than one 25 ms
    frame")."""
    stereo = np.stack([_audio(16000, 1).numpy(), _audio(16000, 2).numpy()], axis=1)  # (16000, 2)
    fe = BeatsFeatureExtractor()
    with pytest.raises(ValueError, match=r"raw_speech of shape \(16000, 2\) looks like \(samples, channels\) audio; "
                                         r"down-mix it to mono first \(e\.g\. audio\.mean\(axis=1\)\)"):
        fe(make(stereo), sampling_rate=16000)
    with pytest.raises(ValueError, match=r"shape \(16000, 2\) looks like \(samples, channels\)"):
        fe(stereo.tolist(), sampling_rate=16000)  # the same as nested lists
    # the down-mix the message suggests works; a real (clips, samples) batch is still a batch
    assert fe(make(stereo.mean(axis=1)), sampling_rate=16000)["input_values"].shape == (1, 98, 128)
    assert fe(make(np.ascontiguousarray(stereo.T)), sampling_rate=16000)["input_values"].shape == (2, 98, 128)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_samples_are_an_error_naming_clip_index_and_value(value):
    fe = BeatsFeatureExtractor()
    clip = _audio(8000).numpy()
    clip[100] = value
    with pytest.raises(ValueError, match=rf"clip 0 has a non-finite sample \({value}\) at index 100"):
        fe(clip, sampling_rate=16000)
    clean = _audio(9000, 1).numpy()
    with pytest.raises(ValueError, match=rf"clip 1 has a non-finite sample \({value}\) at index 100"):
        fe([clean, clip], sampling_rate=16000)
    batch = np.stack([clean[:8000], clean[:8000], clip])
    batch[2, 3000] = value  # two bad samples in clip 2: the first one is named
    with pytest.raises(ValueError, match=rf"clip 2 has a non-finite sample \({value}\) at index 100"):
        fe(batch, sampling_rate=16000)


@pytest.mark.parametrize("make", [lambda a: a, torch.from_numpy, lambda a: a.tolist()], ids=["numpy", "torch", "list"])
@pytest.mark.parametrize("channels", [9, 16, 64])
def test_multichannel_audio_with_more_than_8_channels_is_not_a_batch(make, channels):
    """A mic array read by soundfile, (24000, 16), slipped past the old "at most 8 channels" guard and became 24000
    one-frame clips. A row shorter than one frame cannot be a clip, whatever the channel count."""
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (24000, channels)).astype(np.float32)
    with pytest.raises(ValueError, match=re.escape(
            f"raw_speech of shape (24000, {channels}) looks like (samples, channels) audio; down-mix it to mono first "
            f"(e.g. audio.mean(axis=1)); a batch is (clips, samples) or a list of 1-D clips, and rows of {channels} "
            f"samples are shorter than one analysis frame (400 samples)")):
        BeatsFeatureExtractor()(make(audio), sampling_rate=16000)
    # channels first is a batch of one clip per channel
    out = BeatsFeatureExtractor()(np.ascontiguousarray(audio.T), sampling_rate=16000)
    assert out["input_values"].shape == (channels, 148, 128)


@pytest.mark.parametrize("batch, shown", [
    (np.zeros((0, 16000), np.float32), r"\(shape \(0, 16000\)\)"),
    (torch.zeros(0, 16000), r"\(shape \(0, 16000\)\)"),
    ([], r"\(an empty list\)"),
])
def test_an_empty_batch_is_a_value_error_naming_it(batch, shown):
    """(0, 16000) used to raise ZeroDivisionError from the frame chunking."""
    with pytest.raises(ValueError, match=r"^raw_speech is an empty batch " + shown + r"; pass at least one clip of "
                                         r"audio$"):
        BeatsFeatureExtractor()(batch, sampling_rate=16000)
    with pytest.raises(ValueError, match=r"kaldi_fbank got an empty batch \(shape \(0, 16000\)\)"):
        kaldi_fbank(torch.zeros(0, 16000))


def test_a_single_clip_shorter_than_a_frame_names_clip_length_and_minimum():
    with pytest.raises(ValueError, match=r"^clip 0 has 399 samples, shorter than one 25 ms frame \(400 samples at "
                                         r"16000 Hz\)$"):
        BeatsFeatureExtractor()(_audio(399).numpy(), sampling_rate=16000)
    with pytest.raises(ValueError, match=r"^raw_speech of shape \(3, 0\) has no samples: clip 0 is empty"):
        BeatsFeatureExtractor()(np.zeros((3, 0), np.float32), sampling_rate=16000)


def test_int16_range_float_audio_is_refused_unless_its_float_scale_is_given():
    """Float audio holding int16 values (peak ~30,000) was used as is: features ~90 dB too loud."""
    fe = BeatsFeatureExtractor()
    clip = _audio(8000).numpy()
    pcm = clip * 32768.0  # float32 holding int16-range values
    with pytest.raises(ValueError, match=re.escape(
            f"clip 1 has a peak amplitude of {np.abs(pcm).max():g} (index {int(np.argmax(np.abs(pcm) > 64))} is the "
            f"first sample above 64): float audio must be in [-1, 1] and a peak above 64 means samples on another "
            f"scale (e.g. int16 PCM stored as floats); divide it by its full scale (e.g. audio / 32768) or pass "
            f"float_scale= (e.g. float_scale=32768)")):
        fe([clip, pcm], sampling_rate=16000)
    with pytest.raises(ValueError, match=r"^clip 2 has a peak amplitude of "):
        fe(np.stack([clip, clip, pcm]), sampling_rate=16000)  # a 2-D batch names the row
    expected = fe(clip, sampling_rate=16000, return_tensors="pt")["input_values"]
    got = fe(pcm, sampling_rate=16000, float_scale=32768, return_tensors="pt")["input_values"]
    torch.testing.assert_close(got, expected)
    # a loud but plausible clip (peak 4, e.g. after a gain) is not refused
    assert np.isfinite(fe(clip * 4 / np.abs(clip).max(), sampling_rate=16000)["input_values"]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_finite_amplitudes_are_refused_and_finite_with_float_scale(dtype):
    """1e13 gave NaN features; 3e38 (and float64 1e300, Inf once cast to float32) too."""
    fe = BeatsFeatureExtractor()
    for peak in (1e13, 3e38) + ((1e300,) if dtype == np.float64 else ()):
        audio = (_audio(4000).numpy().astype(dtype) / 0.4 * peak).astype(dtype)
        with pytest.raises(ValueError, match=r"^clip 0 has a peak amplitude of [0-9.e+]+ \(index \d+ is the first "):
            fe(audio, sampling_rate=16000)
        out = fe(audio, sampling_rate=16000, float_scale=peak, return_tensors="pt")["input_values"]
        assert out.shape == (1, 1 + (4000 - 400) // 160, 128) and bool(torch.isfinite(out).all())
    with pytest.raises(ValueError, match=r"more than 64 x float_scale=2; check float_scale"):
        fe(_audio(4000).numpy() * 1000, sampling_rate=16000, float_scale=2)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "loud", True])
def test_float_scale_must_be_a_positive_finite_number(bad):
    with pytest.raises(ValueError, match=rf"^float_scale must be a positive finite number .*got {re.escape(repr(bad))}$"):
        BeatsFeatureExtractor()(_audio(4000).numpy(), sampling_rate=16000, float_scale=bad)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_max_length_must_be_a_positive_whole_number(bad):
    """max_length=-1 with truncation silently dropped the last sample."""
    with pytest.raises(ValueError, match=rf"^max_length must be a positive whole number of samples, got {bad!r}$"):
        BeatsFeatureExtractor()(_audio(4000).numpy(), sampling_rate=16000, max_length=bad, truncation=True)


@pytest.mark.parametrize("length, match", [
    (0, r"clip 1 is empty \(0 samples\)"),
    (399, r"clip 1 has 399 samples, shorter than one 25 ms frame \(400 samples at 16000 Hz\)"),
])
def test_empty_or_too_short_clip_in_a_list_is_an_error(length, match):
    """It used to be padded with silence and come out all masked (a classifier then gives logits 0)."""
    fe = BeatsFeatureExtractor()
    with pytest.raises(ValueError, match=match):
        fe([_audio(8000).numpy(), _audio(length).numpy(), _audio(8000).numpy()], sampling_rate=16000)
    assert fe([_audio(8000).numpy(), _audio(400).numpy()], sampling_rate=16000)["attention_mask"][1].sum() >= 1


def test_fully_masked_row_of_a_batch_is_an_error():
    mask = np.ones((2, 8000), dtype=np.int64)
    mask[1, 100:] = 0
    with pytest.raises(ValueError, match=r"clip 1 has 100 unmasked samples in attention_mask, fewer than one 25 ms "
                                         r"frame"):
        BeatsFeatureExtractor()(np.zeros((2, 8000), np.float32), sampling_rate=16000, attention_mask=mask)


@pytest.mark.parametrize("raw, shown", [
    ("foo.wav", r"raw_speech is a str \('foo\.wav'\)"),
    (None, r"raw_speech is None"),
    (b"RIFF", r"raw_speech is a bytes \(b'RIFF'\)"),
    (__import__("pathlib").Path("foo.wav"), r"raw_speech is a \w*Path \('foo\.wav'\)"),
    (["a.wav", "b.wav"], r"clip 0 is a str \('a\.wav'\)"),
])
def test_a_path_or_none_instead_of_audio_says_to_load_it(raw, shown):
    with pytest.raises(TypeError, match=shown + r"; load the audio first \(e\.g\. hf_alm\.data\.load_audio\) and "
                                                r"pass the array"):
        BeatsFeatureExtractor()(raw, sampling_rate=16000)


@pytest.mark.parametrize("bad", ["16k", 16000.5, float("nan"), True, "16000"])
def test_sampling_rate_must_be_a_whole_number_of_hz(bad):
    with pytest.raises(ValueError, match=rf"sampling_rate must be a whole number of Hz, got {re.escape(repr(bad))}"):
        BeatsFeatureExtractor()(_audio(4000).numpy(), sampling_rate=bad)


@pytest.mark.parametrize("good", [16000, np.int64(16000), np.int32(16000), 16000.0, np.float32(16000)])
def test_sampling_rate_accepts_integral_numbers(good):
    assert BeatsFeatureExtractor()(_audio(4000).numpy(), sampling_rate=good)["input_values"].shape == (1, 23, 128)
