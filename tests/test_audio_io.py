"""hf_alm.data.audio: load_audio over every source type, resample, pad_batch, and the error messages.

Independent references: soundfile (libsndfile) for decoding and for the integer PCM scales, torchaudio's
``functional.resample`` for the resampler, analytic sine waves for frequency preservation and aliasing.
"""

from __future__ import annotations

import io
import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from hf_alm.data.audio import AudioInputError, decode_audio, load_audio, pad_batch, resample

SR = 8000


def _tone(freq: float, sr: int, seconds: float, amp: float = 0.5, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


@pytest.fixture(scope="module")
def stereo() -> np.ndarray:
    """(samples, 2): a 440 Hz tone left, a 660 Hz tone right, 0.25 s at 8 kHz."""
    return np.stack([_tone(440, SR, 0.25), _tone(660, SR, 0.25, amp=0.3)], axis=1)


@pytest.fixture(scope="module")
def files(tmp_path_factory, stereo):
    """The same stereo clip as PCM16 wav, flac, ogg vorbis, plus a mono mp3 (written by torchcodec's encoder)."""
    from torchcodec.encoders import AudioEncoder

    folder = tmp_path_factory.mktemp("audio")
    out = {}
    for ext, fmt, subtype in (("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS")):
        path = folder / f"clip.{ext}"
        sf.write(path, stereo, SR, format=fmt, subtype=subtype)
        out[ext] = path
    out["mp3"] = folder / "clip.mp3"
    AudioEncoder(torch.from_numpy(stereo[:, 0]).unsqueeze(0), sample_rate=SR).to_file(out["mp3"])
    return out


def _dominant_frequency(x: torch.Tensor | np.ndarray, sr: int) -> float:
    x = np.asarray(x, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sr / len(x))


# ---------------------------------------------------------------------------------------------------------- sources


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_lossless_files_match_soundfile_downmix(files, ext):
    ref, sr = sf.read(files[ext], dtype="float32")  # libsndfile, independent of torchcodec/FFmpeg
    got = load_audio(files[ext], sr)
    assert got.dtype == torch.float32 and got.ndim == 1
    torch.testing.assert_close(got, torch.from_numpy(ref.mean(axis=1)), atol=1e-6, rtol=0)
    # str and Path give the same thing
    torch.testing.assert_close(load_audio(str(files[ext]), sr), got, atol=0, rtol=0)


def test_lossy_files_decode_to_the_right_signal(files, stereo):
    ref_mono = stereo.mean(axis=1)
    ogg_ref, _ = sf.read(files["ogg"], dtype="float32")  # libsndfile's own vorbis decode
    ogg = load_audio(files["ogg"], SR)
    # FFmpeg does not trim the final Vorbis block of this very short file the way libsndfile does (the real ESC-10
    # clips decode to identical lengths, see test_loaders): compare the common part
    assert len(ref_mono) <= ogg.shape[0] <= len(ref_mono) + 1024
    torch.testing.assert_close(ogg[: len(ogg_ref)], torch.from_numpy(ogg_ref.mean(axis=1)), atol=2e-3, rtol=0)
    mp3 = load_audio(files["mp3"], SR)
    assert abs(mp3.shape[0] - len(ref_mono)) <= 1152  # at most one mp3 frame of padding
    assert abs(_dominant_frequency(mp3, SR) - 440) < 10
    # correlation with the encoded tone, aligned over the common part
    n = min(len(mp3), len(stereo))
    corr = np.corrcoef(mp3[:n].numpy(), stereo[:n, 0])[0, 1]
    assert corr > 0.95


def test_file_resampling_equals_array_resampling_and_torchaudio(files):
    torchaudio_f = pytest.importorskip("torchaudio.functional")
    ref, sr = sf.read(files["wav"], dtype="float32")
    mono = torch.from_numpy(ref.mean(axis=1))
    got = load_audio(files["wav"], 16000)
    assert got.shape[0] == math.ceil(len(mono) * 16000 / sr)
    torch.testing.assert_close(got, load_audio(mono, 16000, source_sampling_rate=sr), atol=0, rtol=0)
    expected = torchaudio_f.resample(mono.double(), sr, 16000).float()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_every_source_kind_gives_the_same_tensor(files, stereo):
    from datasets import Audio, Dataset
    from torchcodec.decoders import AudioDecoder

    path = files["flac"]
    data = path.read_bytes()
    expected = load_audio(path, 16000)
    ref, _ = sf.read(path, dtype="float32")
    sources = {
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "BytesIO": io.BytesIO(data),
        "dict path": {"path": str(path), "bytes": None},
        "dict bytes": {"path": "clip.flac", "bytes": data},
        "dict array": {"array": ref, "sampling_rate": SR},
        "torchcodec decoder": AudioDecoder(str(path)),
        "torchcodec samples": AudioDecoder(str(path)).get_all_samples(),
        "gradio tuple": (SR, (ref * 32768).round().astype(np.int16)),
    }
    for name, source in sources.items():
        torch.testing.assert_close(load_audio(source, 16000), expected, atol=1e-6, rtol=0, msg=name)
    with open(path, "rb") as fh:
        torch.testing.assert_close(load_audio(fh, 16000), expected, atol=0, rtol=0)

    ds = Dataset.from_dict({"audio": [str(path)]}).cast_column("audio", Audio())
    row_audio = ds[0]["audio"]
    assert isinstance(row_audio, AudioDecoder)  # what datasets >= 4 yields
    torch.testing.assert_close(load_audio(row_audio, 16000), expected, atol=0, rtol=0)
    torch.testing.assert_close(load_audio(row_audio, 16000), expected, atol=0, rtol=0)  # decoder reusable
    raw = ds.cast_column("audio", Audio(decode=False))[0]["audio"]
    assert isinstance(raw, dict)
    torch.testing.assert_close(load_audio(raw, 16000), expected, atol=0, rtol=0)
    # decoded and resampled by datasets/FFmpeg: not bit-identical to our resampler, but the same signal
    at16k = ds.cast_column("audio", Audio(sampling_rate=16000))[0]["audio"]
    got = load_audio(at16k, 16000)
    assert got.shape == expected.shape
    assert float((got - expected)[50:-50].abs().max()) < 2e-2  # the ends differ more: FFmpeg pads differently


def test_array_layouts_and_downmix(stereo):
    mono = torch.from_numpy(stereo.mean(axis=1))
    for layout in (stereo, stereo.T, torch.from_numpy(stereo), torch.from_numpy(stereo.T.copy())):
        torch.testing.assert_close(load_audio(layout, SR, source_sampling_rate=SR), mono, atol=1e-7, rtol=0)
    for one in (stereo[:, :1], stereo[:, :1].T, stereo[:, 0]):
        torch.testing.assert_close(load_audio(one, SR, source_sampling_rate=SR), torch.from_numpy(stereo[:, 0]))
    # 8 channels is the most the shape rule accepts; the channel axis is the shorter one
    eight = np.random.default_rng(0).standard_normal((8, 50)).astype(np.float32)
    torch.testing.assert_close(load_audio(eight, SR, source_sampling_rate=SR), torch.from_numpy(eight.mean(0)))
    torch.testing.assert_close(load_audio(eight.T, SR, source_sampling_rate=SR), torch.from_numpy(eight.mean(0)))
    # a list of floats is mono audio
    torch.testing.assert_close(load_audio([0.5, -0.25], SR, source_sampling_rate=SR), torch.tensor([0.5, -0.25]))


def test_decode_audio_keeps_channels_and_rate(files):
    samples, sr = decode_audio(files["wav"])
    ref, ref_sr = sf.read(files["wav"], dtype="float32")
    assert sr == ref_sr and samples.shape == (2, len(ref))
    torch.testing.assert_close(samples, torch.from_numpy(ref.T.copy()), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "subtype, dtype",
    [("PCM_16", np.int16), ("PCM_32", np.int32), ("PCM_U8", np.uint8), ("PCM_S8", np.int8)],
)
def test_integer_pcm_scales_match_libsndfile(tmp_path, subtype, dtype):
    """libsndfile converts integer PCM to float with the same full-scale rule: an independent check of the scales."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(1)
    ints = rng.integers(info.min, info.max, size=400, endpoint=True).astype(dtype)
    ints[:2] = [info.min, info.max]
    if subtype == "PCM_S8":  # libsndfile writes 8-bit signed only into formats like AIFF/RAW; use AIFF
        path, fmt = tmp_path / "x.aiff", "AIFF"
    else:
        path, fmt = tmp_path / "x.wav", "WAV"
    # write the exact integer codes: float input k / full_scale is stored bit-exactly as code k
    full = {np.int16: 32768.0, np.int32: 2.0**31, np.uint8: 128.0, np.int8: 128.0}[dtype]
    offset = 128.0 if dtype == np.uint8 else 0.0
    sf.write(path, ((ints.astype(np.float64) - offset) / full), SR, format=fmt, subtype=subtype)
    ref, _ = sf.read(path, dtype="float64")
    got = load_audio(ints, SR, source_sampling_rate=SR)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), torch.from_numpy(ref), atol=1e-7, rtol=0)
    assert float(got.min()) == -1.0 and float(got.max()) <= 1.0  # int32 max rounds to 1.0 in float32


def test_float_dtypes_become_float32():
    x64 = np.array([0.1, -0.7, 0.3], dtype=np.float64)
    got = load_audio(x64, SR, source_sampling_rate=SR)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, torch.tensor([0.1, -0.7, 0.3]))
    half = load_audio(torch.tensor([0.5, -0.5], dtype=torch.float16), SR, source_sampling_rate=SR)
    assert half.dtype == torch.float32 and half.tolist() == [0.5, -0.5]
    big_endian = np.array([1000, -2000], dtype=">i2")
    torch.testing.assert_close(load_audio(big_endian, SR, source_sampling_rate=SR),
                               torch.tensor([1000 / 32768, -2000 / 32768]))


# ----------------------------------------------------------------------------------------------------------- errors


def _raises(match: str, *args, **kwargs):
    return pytest.raises(AudioInputError, match=match)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros(0, dtype=np.float32), r"^audio is empty \(0 samples\)$"),
        (torch.zeros(2, 0), r"^audio is empty \(0 samples\)$"),
        (np.zeros((0, 2), dtype=np.float32), r"^audio is empty \(0 samples\)$"),
        (np.where(np.arange(40) == 17, np.nan, 0.1), r"^audio contains NaN at sample 17$"),
        (np.where(np.arange(40) == 3, np.inf, 0.1), r"^audio contains \+Inf at sample 3$"),
        (np.where(np.arange(40) == 39, -np.inf, 0.1), r"^audio contains -Inf at sample 39$"),
        (np.stack([np.zeros(30), np.where(np.arange(30) == 5, np.nan, 0.0)]), r"NaN at sample 5 of channel 1$"),
        (np.zeros((2, 3, 4)), r"got shape \(2, 3, 4\)"),
        (np.float32(0.5), r"got shape \(\)"),
        (np.zeros((10, 10)), r"ambiguous 2-D audio of shape \(10, 10\)"),
        (np.zeros((9, 100)), r"ambiguous 2-D audio of shape \(9, 100\).*at most 8 channels"),
        (np.arange(10, dtype=np.int64), r"unsupported audio dtype int64"),
        (np.ones(10, dtype=bool), r"unsupported audio dtype bool"),
        (np.ones(10, dtype=np.uint16), r"unsupported audio dtype uint16"),
    ],
)
def test_bad_arrays_are_named(array, message):
    with pytest.raises(AudioInputError, match=message):
        load_audio(array, 16000, source_sampling_rate=16000)


def test_nan_after_decoding_a_file_names_the_file(tmp_path):
    path = tmp_path / "nan.wav"
    x = np.zeros(100, dtype=np.float32)
    x[42] = np.nan
    sf.write(path, x, SR, subtype="FLOAT")
    with pytest.raises(AudioInputError, match=r"audio file '.*nan\.wav' contains NaN at sample 42"):
        load_audio(path, SR)


def test_unknown_or_bad_rates():
    with pytest.raises(AudioInputError, match=r"^unknown sampling rate: pass source_sampling_rate for a raw array"):
        load_audio(np.zeros(10, dtype=np.float32), 16000)
    with pytest.raises(AudioInputError, match=r"unknown sampling rate: .*no 'sampling_rate'"):
        load_audio({"array": np.zeros(10)}, 16000)
    for bad in (0, -16000, 16000.5, "16k", True, float("nan")):
        with pytest.raises(AudioInputError, match=r"^sampling_rate must be a positive integer number of Hz, got"):
            load_audio(np.zeros(10), bad, source_sampling_rate=8000)
        with pytest.raises(AudioInputError, match=r"^source_sampling_rate must be a positive integer"):
            load_audio(np.zeros(10), 8000, source_sampling_rate=bad)
    # integral floats are accepted
    assert load_audio(np.zeros(10), 16000.0, source_sampling_rate=8000.0).shape == (20,)


def test_rate_of_encoded_audio_cannot_be_overridden(files):
    with pytest.raises(AudioInputError, match=r"source_sampling_rate=16000 contradicts the rate 8000 Hz stored in"):
        load_audio(files["wav"], 16000, source_sampling_rate=16000)
    assert load_audio(files["wav"], 16000, source_sampling_rate=SR).shape[0] > 0  # agreeing is fine


def test_corrupt_missing_and_unreadable_files(tmp_path):
    corrupt = tmp_path / "corrupt.ogg"
    corrupt.write_bytes(b"OggS" + bytes(range(256)) * 4)
    with pytest.raises(AudioInputError, match=r"^cannot decode audio file '.*corrupt\.ogg': \S"):
        load_audio(corrupt, 16000)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    with pytest.raises(AudioInputError, match=r"^cannot decode audio file '.*notes\.wav'"):
        load_audio(str(text), 16000)
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    with pytest.raises(AudioInputError, match=r"^cannot decode audio file '.*empty\.flac': the file is empty"):
        load_audio(empty, 16000)
    missing = tmp_path / "nope" / "missing.wav"
    with pytest.raises(AudioInputError, match=r"^audio file not found: '.*nope/missing\.wav'$"):
        load_audio(missing, 16000)
    with pytest.raises(AudioInputError, match=r"^audio path is a directory, not a file: '"):
        load_audio(tmp_path, 16000)
    with pytest.raises(AudioInputError, match=r"^cannot decode audio bytes \(12 bytes\): .*for raw PCM samples pass"):
        load_audio(b"not an audio", 16000)
    with pytest.raises(AudioInputError, match=r"^cannot decode audio bytes: empty \(0 bytes\)"):
        load_audio(b"", 16000)
    with pytest.raises(AudioInputError, match=r"download it first"):
        load_audio("https://example.com/a.wav", 16000)
    with open(text, encoding="utf-8") as fh, pytest.raises(AudioInputError, match=r"opened in text mode"):
        load_audio(fh, 16000)
    wav = _write_tone_wav(tmp_path / "tone_for_text_mode.wav")  # a real wav opened in text mode: not a decode error
    with open(wav, encoding="utf-8") as fh, pytest.raises(AudioInputError, match=r"'.*tone_for_text_mode.wav' is "
                                                                                 r"opened in text mode; open it with 'rb'"):
        load_audio(fh, 16000)
    with pytest.raises(AudioInputError, match=r"^a list of booleans is not audio"):
        load_audio([True, False] * 10, 16000, source_sampling_rate=16000)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_is_named(tmp_path):
    path = _write_tone_wav(tmp_path / "locked.wav")
    path.chmod(0)
    try:
        with pytest.raises(AudioInputError, match=r"^audio file is not readable \(permission denied\): '.*locked\.wav'"):
            load_audio(path, 16000)
    finally:
        path.chmod(0o644)


def _write_tone_wav(path):
    sf.write(path, _tone(440, SR, 0.05), SR)
    return path


def test_header_only_wav_is_reported_empty_with_its_path(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(AudioInputError, match=r"'.*silent\.wav'.* (is empty \(0 samples\)|cannot decode)"):
        load_audio(path, SR)


def test_unsupported_sources():
    with pytest.raises(AudioInputError, match=r"^audio source is None$"):
        load_audio(None, 16000)
    with pytest.raises(AudioInputError, match=r"unsupported audio source of type object"):
        load_audio(object(), 16000)
    with pytest.raises(AudioInputError, match=r"audio dict has no usable 'array', 'bytes' or 'path' entry \(keys: \['foo'\]"):
        load_audio({"foo": 1}, 16000)


# --------------------------------------------------------------------------------------------------------- resample


@pytest.mark.parametrize("orig, new", [(44100, 16000), (16000, 44100), (8000, 16000), (48000, 16000),
                                       (22050, 16000), (16000, 8000), (11025, 16000), (3, 7)])
def test_resample_matches_torchaudio(orig, new):
    """Same filter as torchaudio's default: in float64 only rounding differs (measured ~1e-13)."""
    torchaudio_f = pytest.importorskip("torchaudio.functional")
    x = torch.randn(3, 1000, generator=torch.Generator().manual_seed(orig + new), dtype=torch.float64)
    ours = resample(x, orig, new)
    ref = torchaudio_f.resample(x, orig, new)
    assert ours.shape == ref.shape == (3, math.ceil(1000 * new / orig))
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)
    # float32: our kernel is built in float64 then cast, so it stays within float32 rounding of the float64 result
    torch.testing.assert_close(resample(x.float(), orig, new), ref.float(), atol=2e-6, rtol=0)


def test_resample_dense_and_gather_paths_agree(monkeypatch):
    import hf_alm.data.audio as audio

    x = torch.randn(2, 3000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    dense = resample(x, 44100, 16000)
    monkeypatch.setattr(audio, "_CHUNK_ELEMENTS", 5000)  # forces several chunks in both paths
    torch.testing.assert_close(resample(x, 44100, 16000), dense, atol=1e-12, rtol=0)
    monkeypatch.setattr(audio, "_DENSE_MAX_WEIGHTS", 0)
    gather = resample(x, 44100, 16000)
    torch.testing.assert_close(dense, gather, atol=1e-12, rtol=0)


@pytest.mark.parametrize("orig, new, freq", [(44100, 16000, 1000.0), (8000, 16000, 440.0), (44100, 16001, 3000.0),
                                             (16000, 8000, 1234.0)])
def test_resample_preserves_a_pure_tone(orig, new, freq):
    x = torch.from_numpy(_tone(freq, orig, 0.5, amp=0.8, phase=0.3)).double()
    y = resample(x, orig, new)
    expected = torch.from_numpy(_tone(freq, new, y.shape[0] / new + 1e-9, amp=0.8, phase=0.3)).double()[: y.shape[0]]
    interior = slice(new // 50, y.shape[0] - new // 50)  # away from the zero-padded ends
    assert float((y[interior] - expected[interior]).abs().max()) < 0.8 * 2e-2  # passband ripple < ~0.2 dB
    assert abs(_dominant_frequency(y[interior], new) - freq) < new / (y[interior].shape[0]) + 1


def test_resample_removes_what_the_new_rate_cannot_hold():
    x = torch.from_numpy(_tone(12000.0, 44100, 0.5, amp=1.0)).double()  # above 8 kHz, the 16 kHz Nyquist
    y = resample(x, 44100, 16000)
    interior = y[400:-400]
    assert float(interior.abs().max()) < 0.01  # > 40 dB down instead of aliasing to 4 kHz at full level


def test_resample_batched_equals_per_row_and_equal_rates_is_identity():
    x = torch.randn(2, 3, 777, generator=torch.Generator().manual_seed(3))
    y = resample(x, 22050, 16000)
    assert y.shape == (2, 3, math.ceil(777 * 16000 / 22050))
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(y[i, j], resample(x[i, j], 22050, 16000), atol=1e-6, rtol=0)
    assert resample(x, 16000, 16000) is x
    with pytest.raises(AudioInputError, match=r"orig_sr must be a positive integer number of Hz, got 0"):
        resample(x, 0, 16000)


# -------------------------------------------------------------------------------------------------------- pad_batch


def test_pad_batch_values_and_mask():
    clips = [torch.arange(1, 4, dtype=torch.float32), np.array([5.0, 6.0], dtype=np.float64), torch.ones(5)]
    waves, mask = pad_batch(clips)
    assert waves.dtype == torch.float32 and mask.dtype == torch.bool and waves.shape == mask.shape == (3, 5)
    assert waves.tolist() == [[1, 2, 3, 0, 0], [5, 6, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert mask.sum(1).tolist() == [3, 2, 5]
    assert mask.tolist()[0] == [True, True, True, False, False]
    waves, mask = pad_batch(clips, max_length=4)
    assert waves.shape == (3, 4) and mask.sum(1).tolist() == [3, 2, 4]
    assert waves[2].tolist() == [1, 1, 1, 1]
    waves, mask = pad_batch(clips, max_length=8)
    assert waves.shape == (3, 8) and not mask[:, 5:].any() and not waves[:, 5:].any()


def test_pad_batch_batched_equals_single():
    """A masked computation on the padded batch equals the same computation on each clip alone."""
    gen = torch.Generator().manual_seed(0)
    clips = [torch.randn(n, generator=gen) for n in (7, 300, 41, 1)]
    waves, mask = pad_batch(clips)

    def masked_stats(w, m):
        n = m.sum(-1, keepdim=True)
        mean = (w * m).sum(-1, keepdim=True) / n
        var = (((w - mean) * m) ** 2).sum(-1, keepdim=True) / n
        return torch.cat([mean, var, (w * m).abs().amax(-1, keepdim=True)], -1)

    batched = masked_stats(waves, mask)
    for i, clip in enumerate(clips):
        single_w, single_m = pad_batch([clip])
        torch.testing.assert_close(batched[i], masked_stats(single_w, single_m)[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(batched[i], torch.stack([clip.mean(), clip.var(unbiased=False), clip.abs().max()]),
                                   atol=1e-6, rtol=0)


def test_pad_batch_errors():
    with pytest.raises(AudioInputError, match=r"^pad_batch got an empty list of clips$"):
        pad_batch([])
    with pytest.raises(AudioInputError, match=r"^clip 1 must be 1-D \(samples,\), got shape \(2, 5\)$"):
        pad_batch([torch.zeros(3), torch.zeros(2, 5)])
    with pytest.raises(AudioInputError, match=r"^clip 0 is empty \(0 samples\)$"):
        pad_batch([torch.zeros(0)])
    with pytest.raises(AudioInputError, match=r"^clip 1 has dtype int16: pad_batch expects float samples"):
        pad_batch([torch.zeros(3), np.ones(3, np.int16) * 16384])
    with pytest.raises(AudioInputError, match=r"^clip 1 contains NaN at sample 2$"):
        pad_batch([torch.zeros(3), np.array([0.0, 0.1, np.nan, 0.2])])
    with pytest.raises(AudioInputError, match=r"^clip 0 contains -Inf at sample 0$"):
        pad_batch([torch.tensor([-float("inf"), 0.0])])
    with pytest.raises(AudioInputError, match=r"max_length must be a positive integer, got 0"):
        pad_batch([torch.zeros(3)], max_length=0)
    with pytest.raises(AudioInputError, match=r"expects a list of 1-D clips, got Tensor of shape \(2, 3\)"):
        pad_batch(torch.zeros(2, 3))
