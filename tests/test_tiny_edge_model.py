"""Tiny edge transformer: parameter budget, front-end against independent references, model behaviour, Auto classes,
pipeline and remote code."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import hf_alm  # noqa: F401  (registers the Auto classes)
from hf_alm.modeling.tiny_edge_transformer import (
    PRESETS,
    TinyEdgeTransformerConfig,
    TinyEdgeTransformerFeatureExtractor,
    TinyEdgeTransformerForAudioClassification,
    TinyEdgeTransformerModel,
    num_parameters_for,
)

SR = 16000


def _count(model):
    return sum(p.numel() for p in model.parameters())


def _noise(seconds, seed=0, amp=0.1):
    return (np.random.default_rng(seed).standard_normal(int(seconds * SR)) * amp).astype(np.float32)


def _tone(seconds, freq, amp=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ---------------------------------------------------------------- parameter budget

def test_tiny_preset_is_just_over_6000_parameters_with_10_classes():
    model = TinyEdgeTransformerForAudioClassification(TinyEdgeTransformerConfig.from_preset("tiny", num_labels=10))
    assert 6000 <= _count(model) <= 6500, _count(model)


def test_small_preset_is_under_20000_parameters_with_10_classes():
    model = TinyEdgeTransformerForAudioClassification(TinyEdgeTransformerConfig.from_preset("small", num_labels=10))
    assert 10000 < _count(model) < 20000, _count(model)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_documented_parameter_formula_matches_the_module(preset, pooling):
    config = TinyEdgeTransformerConfig.from_preset(preset, num_labels=7, pooling=pooling)
    assert num_parameters_for(config) == _count(TinyEdgeTransformerForAudioClassification(config))


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match="num_attention_heads"):
        TinyEdgeTransformerConfig(hidden_size=16, num_attention_heads=3)
    with pytest.raises(ValueError, match="pooling.*'max'"):
        TinyEdgeTransformerConfig(pooling="max")
    with pytest.raises(ValueError, match="preset 'huge'"):
        TinyEdgeTransformerConfig.from_preset("huge")


# ---------------------------------------------------------------- front-end

def test_log_mel_matches_torchaudio_melspectrogram():
    torchaudio = pytest.importorskip("torchaudio")
    fe = TinyEdgeTransformerFeatureExtractor()
    x = _noise(1.3) + _tone(1.3, 440.0)
    ours = fe.log_mel(x)
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=SR, n_fft=1024, win_length=1024, hop_length=512, f_min=0.0, f_max=8000.0, n_mels=40,
        window_fn=torch.hann_window, power=2.0, center=False, norm=None, mel_scale="htk").double()
    ref = torch.log(mel(torch.from_numpy(x).double()).clamp(min=1e-6)).T.numpy()
    assert ours.shape == ref.shape == (fe.num_frames(len(x)), 40)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_log_mel_matches_a_direct_dft_with_transformers_filters():
    """Independent numpy formula: explicit DFT sums (no FFT) and transformers' own HTK mel filter bank."""
    from transformers.audio_utils import mel_filter_bank

    fe = TinyEdgeTransformerFeatureExtractor(n_fft=256, hop_length=128, feature_size=24, f_min=50.0, f_max=7000.0,
                                             log_floor=1e-5)
    x = _noise(0.1, seed=3) * np.linspace(0, 1, int(0.1 * SR), dtype=np.float32) + _tone(0.1, 1000.0)
    n = np.arange(256)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / 256)
    k = np.arange(129)[:, None]
    cos, sin = np.cos(2 * np.pi * k * n / 256), np.sin(2 * np.pi * k * n / 256)
    frames = np.stack([x[t * 128: t * 128 + 256].astype(np.float64) * window
                       for t in range(1 + (len(x) - 256) // 128)])
    power = (frames @ cos.T) ** 2 + (frames @ sin.T) ** 2
    filters = mel_filter_bank(num_frequency_bins=129, num_mel_filters=24, min_frequency=50.0, max_frequency=7000.0,
                              sampling_rate=SR, norm=None, mel_scale="htk")
    ref = np.log(np.maximum(power @ filters, 1e-5))
    np.testing.assert_allclose(fe.log_mel(x), ref, atol=1e-4)


def test_log_floor_applies_to_silence_and_normalisation_is_affine():
    fe = TinyEdgeTransformerFeatureExtractor(mean=-3.0, std=2.0)
    silence = fe.log_mel(np.zeros(SR, dtype=np.float32))
    assert np.allclose(silence, np.log(1e-6))
    out = fe(np.zeros(SR, dtype=np.float32), sampling_rate=SR)["input_values"][0]
    assert np.allclose(out, (np.log(1e-6) + 3.0) / 2.0)


def test_a_tone_peaks_in_the_mel_band_that_contains_it():
    fe = TinyEdgeTransformerFeatureExtractor()
    for freq in (300.0, 1500.0, 5000.0):
        peak = int(fe.log_mel(_tone(0.5, freq)).mean(axis=0).argmax())
        # filter centres from the HTK formula, written out independently of the implementation
        centres = 700 * (10 ** (np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 42)[1:-1] / 2595) - 1)
        assert abs(peak - int(np.abs(centres - freq).argmin())) <= 1, (freq, peak)


def test_batch_padding_truncation_and_mask():
    fe = TinyEdgeTransformerFeatureExtractor(max_frames=20)
    long, short = _noise(2.0, 1), _noise(0.3, 2)
    out = fe([long, short], sampling_rate=SR, return_tensors="pt")
    assert out["input_values"].shape == (2, 20, 40)  # long clip truncated to max_frames
    assert out["attention_mask"].sum(1).tolist() == [20, fe.num_frames(len(short))]
    single = fe(short, sampling_rate=SR, return_tensors="np")
    n = fe.num_frames(len(short))
    np.testing.assert_array_equal(single["input_values"][0], out["input_values"][1, :n].numpy())
    assert np.all(out["input_values"][1, n:].numpy() == 0.0)
    padded = fe(short, sampling_rate=SR, padding="max_length")
    assert padded["input_values"].shape == (1, 20, 40)
    # shorter than one window: an error naming the clip, its length and the minimum (zero-padded, it was a
    # near-constant frame); exactly one window is one frame
    with pytest.raises(ValueError, match=r"^clip 1 has 100 samples, shorter than one 64 ms frame \(1024 samples at "
                                         r"16000 Hz\)$"):
        fe([long, np.ones(100, dtype=np.float32) * 0.1], sampling_rate=SR)
    assert fe(np.ones(1024, dtype=np.float32) * 0.1, sampling_rate=SR)["input_values"].shape == (1, 1, 40)


def test_bad_audio_input_errors_name_the_problem():
    fe = TinyEdgeTransformerFeatureExtractor()
    with pytest.raises(ValueError, match="44100 Hz"):
        fe(_noise(0.5), sampling_rate=44100)
    with pytest.raises(ValueError, match="sampling_rate="):
        fe(_noise(0.5))
    with pytest.raises(ValueError, match="NaN"):
        fe(np.array([0.0, np.nan] * 600, dtype=np.float32), sampling_rate=SR)
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4\)"):
        fe.log_mel(np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="empty"):
        fe(np.zeros(0, dtype=np.float32), sampling_rate=SR)
    with pytest.raises(ValueError, match="invalid hop_length"):
        TinyEdgeTransformerFeatureExtractor(hop_length=0)


def test_feature_extractor_round_trips_through_save_pretrained(tmp_path):
    from transformers import AutoFeatureExtractor

    fe = TinyEdgeTransformerFeatureExtractor(mean=-5.5, std=3.25)
    fe.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert "mel_filters" not in saved and saved["mean"] == -5.5
    loaded = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert type(loaded) is TinyEdgeTransformerFeatureExtractor
    x = _noise(0.7)
    np.testing.assert_array_equal(loaded(x, sampling_rate=SR)["input_values"], fe(x, sampling_rate=SR)["input_values"])


# ---------------------------------------------------------------- model

def _model(attn="eager", **kw):
    torch.manual_seed(0)
    config = TinyEdgeTransformerConfig.from_preset("tiny", num_labels=4, **kw)
    return TinyEdgeTransformerForAudioClassification._from_config(config, attn_implementation=attn).eval()


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_eager_and_sdpa_agree_and_padding_does_not_change_outputs(pooling):
    eager = _model("eager", pooling=pooling)
    sdpa = _model("sdpa", pooling=pooling)
    sdpa.load_state_dict(eager.state_dict())
    assert eager.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
    x = torch.randn(3, 37, 40)
    mask = torch.ones(3, 37, dtype=torch.long)
    mask[1, 20:] = 0
    mask[2, 5:] = 0
    with torch.no_grad():
        a = eager(x, attention_mask=mask).logits
        b = sdpa(x, attention_mask=mask).logits
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        # a padded row equals the same clip alone, whatever is in its padding
        x_garbage = x.clone()
        x_garbage[1, 20:] = 100.0
        alone = eager(x[1:2, :20]).logits
        torch.testing.assert_close(eager(x_garbage, attention_mask=mask).logits[1:2], alone, atol=1e-5, rtol=1e-5)


def test_attention_weights_ignore_padding_and_hidden_states_are_returned():
    model = _model("eager")
    x = torch.randn(2, 12, 40)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[0, 8:] = 0
    with torch.no_grad():
        out = model(x, attention_mask=mask, output_attentions=True, output_hidden_states=True)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    att = out.attentions[0]
    assert att.shape == (2, 2, 12, 12)
    assert float(att[0, :, :, 8:].abs().max()) == 0.0
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 2, 12))


def test_mean_pooling_is_the_masked_mean_of_the_last_hidden_state():
    base = TinyEdgeTransformerModel(TinyEdgeTransformerConfig.from_preset("tiny")).eval()
    x = torch.randn(2, 10, 40)
    mask = torch.tensor([[1] * 10, [1] * 6 + [0] * 4])
    out = base(x, attention_mask=mask)
    torch.testing.assert_close(out.pooler_output[1], out.last_hidden_state[1, :6].mean(0))
    torch.testing.assert_close(out.pooler_output[0], out.last_hidden_state[0].mean(0))


def test_loss_is_cross_entropy_and_model_learns_a_separable_task():
    torch.manual_seed(0)
    model = TinyEdgeTransformerForAudioClassification(TinyEdgeTransformerConfig.from_preset("tiny", num_labels=2))
    x = torch.randn(16, 8, 40)
    y = torch.arange(16) % 2
    x[y == 1, :, :10] += 1.5  # class 1 has more low-band energy
    out = model.eval()(x, labels=y)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, y))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        opt.zero_grad()
        model(x, labels=y).loss.backward()
        opt.step()
    assert (model.eval()(x).logits.argmax(-1) == y).float().mean() == 1.0


def test_bad_model_inputs_name_the_problem():
    model = _model()
    with pytest.raises(ValueError, match=r"\(batch, frames, 40\), got \(2, 10, 39\)"):
        model(torch.randn(2, 10, 39))
    with pytest.raises(ValueError, match="193 frames"):
        model(torch.randn(1, 193, 40))
    with pytest.raises(ValueError, match="attention_mask must have shape"):
        model(torch.randn(2, 10, 40), attention_mask=torch.ones(2, 9))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\]"):
        model(torch.randn(2, 10, 40), labels=torch.tensor([0, 4]))


# ---------------------------------------------------------------- Auto classes, pipeline, remote code

@pytest.fixture()
def saved_model(tmp_path):
    labels = ["dog", "rain", "clock", "baby"]
    config = TinyEdgeTransformerConfig.from_preset(
        "tiny", num_labels=4, id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    torch.manual_seed(1)
    model = TinyEdgeTransformerForAudioClassification(config).eval()
    fe = TinyEdgeTransformerFeatureExtractor(mean=-6.0, std=4.0)
    out = tmp_path / "model"
    model.save_pretrained(out)
    fe.save_pretrained(out)
    return out, model, fe


def test_auto_classes_load_a_saved_folder(saved_model):
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification

    path, model, fe = saved_model
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "hf_alm_tiny_edge_transformer"
    assert config["auto_map"]["AutoModelForAudioClassification"].endswith("TinyEdgeTransformerForAudioClassification")
    assert sorted(p.name for p in path.glob("*.py")) == [
        "configuration_tiny_edge_transformer.py", "feature_extraction_tiny_edge_transformer.py",
        "modeling_tiny_edge_transformer.py"]
    assert type(AutoConfig.from_pretrained(path)) is TinyEdgeTransformerConfig
    loaded = AutoModelForAudioClassification.from_pretrained(path).eval()
    assert type(loaded) is TinyEdgeTransformerForAudioClassification
    assert type(AutoFeatureExtractor.from_pretrained(path)) is TinyEdgeTransformerFeatureExtractor
    feats = fe(_noise(1.0), sampling_rate=SR, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded(**feats).logits, model(**feats).logits)
    base = AutoModel.from_pretrained(path)
    assert type(base) is TinyEdgeTransformerModel


def test_audio_classification_pipeline(saved_model):
    from transformers import pipeline

    path, model, fe = saved_model
    clf = pipeline("audio-classification", model=str(path), device="cpu")
    audio = _tone(1.0, 700.0) + _noise(1.0, 5, 0.02)
    result = clf({"array": audio, "sampling_rate": SR}, top_k=4)
    with torch.no_grad():
        probs = model(**fe(audio, sampling_rate=SR, return_tensors="pt")).logits.softmax(-1)[0]
    expected = {model.config.id2label[i]: float(p) for i, p in enumerate(probs)}
    assert {r["label"] for r in result} == set(expected)
    for r in result:
        assert r["score"] == pytest.approx(expected[r["label"]], abs=1e-5)
    # a different sampling rate is resampled by the pipeline, not rejected
    assert len(clf({"array": audio[::2].copy(), "sampling_rate": 8000}, top_k=2)) == 2


def test_remote_code_loads_in_a_fresh_process_without_hf_alm(saved_model, tmp_path):
    path, model, fe = saved_model
    audio = _noise(0.8, 9) + _tone(0.8, 2000.0)
    np.save(tmp_path / "audio.npy", audio)
    with torch.no_grad():
        expected = model(**fe(audio, sampling_rate=SR, return_tensors="pt")).logits.numpy()
    code = textwrap.dedent(f"""
        import sys, numpy as np, torch
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification
        path = {str(path)!r}
        model = AutoModelForAudioClassification.from_pretrained(path, trust_remote_code=True).eval()
        fe = AutoFeatureExtractor.from_pretrained(path, trust_remote_code=True)
        audio = np.load({str(tmp_path / "audio.npy")!r})
        with torch.no_grad():
            logits = model(**fe(audio, sampling_rate=16000, return_tensors="pt")).logits.numpy()
        np.save({str(tmp_path / "logits.npy")!r}, logits)
        assert not any(m == "hf_alm" or m.startswith("hf_alm.") for m in sys.modules), "hf_alm was imported"
        print(type(model).__module__)
        """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "transformers_modules" in out.stdout
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, atol=1e-6)


# ---------------------------------------------------------------- audit fixes

def test_output_attentions_under_sdpa_fall_back_to_eager():
    """Before: under the default sdpa, output_attentions=True returned (None,) with no warning."""
    sdpa = _model("sdpa")
    eager = _model("eager")
    eager.load_state_dict(sdpa.state_dict())
    x = torch.randn(2, 12, 40)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 7:] = 0
    with torch.no_grad():
        out = sdpa(x, attention_mask=mask, output_attentions=True)
        ref = eager(x, attention_mask=mask, output_attentions=True)
        base = sdpa.tiny_edge_transformer(x, attention_mask=mask, output_attentions=True)
        plain = sdpa(x, attention_mask=mask)
    layers, heads = sdpa.config.num_hidden_layers, sdpa.config.num_attention_heads
    assert sdpa.config._attn_implementation == "sdpa"
    assert len(out.attentions) == layers and all(a is not None for a in out.attentions)
    assert all(a.shape == (2, heads, 12, 12) for a in out.attentions)
    for a, b, c in zip(out.attentions, ref.attentions, base.attentions):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(c, b)
    assert float(out.attentions[0][1, :, :, 7:].abs().max()) == 0.0
    torch.testing.assert_close(out.logits, plain.logits, atol=1e-5, rtol=1e-5)  # only the kernel changed


def test_set_attn_implementation_switches_at_run_time(monkeypatch):
    """Before: set_attn_implementation("eager") warned "does not support setting its attention implementation
    dynamically" and the model stayed on sdpa."""
    from hf_alm.modeling.tiny_edge_transformer import modeling_tiny_edge_transformer as mod

    model = _model("sdpa")
    calls = []
    eager = mod.eager_attention_forward

    def counting(*args, **kwargs):
        calls.append(1)
        return eager(*args, **kwargs)

    monkeypatch.setattr(mod, "eager_attention_forward", counting)
    x = torch.randn(2, 15, 40)
    with torch.no_grad():
        sdpa_logits = model(x).logits
        assert calls == []
        assert type(model)._can_set_attn_implementation()
        model.set_attn_implementation("eager")
        assert model.config._attn_implementation == "eager"
        eager_logits = model(x).logits
        assert len(calls) == model.config.num_hidden_layers
        torch.testing.assert_close(eager_logits, sdpa_logits, atol=1e-5, rtol=1e-5)
        out = model(x, output_attentions=True)  # attentions without any fallback now
        assert all(a.shape == (2, model.config.num_attention_heads, 15, 15) for a in out.attentions)


def test_bf16_model_takes_the_feature_extractors_float32_features():
    """Before: "mat1 and mat2 must have the same dtype, but got Float and BFloat16"."""
    model = _model("sdpa")
    feats = TinyEdgeTransformerFeatureExtractor()(_noise(1.0), sampling_rate=SR, return_tensors="pt")
    assert feats["input_values"].dtype == torch.float32
    with torch.no_grad():
        ref = model(**feats).logits
        out = model.to(torch.bfloat16)(**feats).logits
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.1)


def test_return_dict_false_gives_tuples():
    model = _model("eager")
    tuple_model = _model("eager", return_dict=False)
    tuple_model.load_state_dict(model.state_dict())
    x, y = torch.randn(2, 10, 40), torch.tensor([0, 3])
    with torch.no_grad():
        ref = model(x, labels=y)
        out = tuple_model(x, labels=y)
        base = tuple_model.tiny_edge_transformer(x)
    assert isinstance(out, tuple) and isinstance(base, tuple)
    torch.testing.assert_close(out[0], ref.loss)
    torch.testing.assert_close(out[1], ref.logits)
    torch.testing.assert_close(base[1], model.tiny_edge_transformer(x).pooler_output)


def test_feature_extractor_rejects_ambiguous_and_bad_inputs_naming_them():
    fe = TinyEdgeTransformerFeatureExtractor()
    clip = _noise(0.5)
    # channel-last audio (soundfile.read) was read as thousands of one-sample clips; (N, 1) too
    for shape in ((8000, 2), (8000, 1)):
        with pytest.raises(ValueError, match=re.escape(
                f"raw_speech of shape {shape} looks like (samples, channels) audio; down-mix it to mono first "
                f"(e.g. audio.mean(axis=1)); a batch is (clips, samples) or a list of 1-D clips")):
            fe(np.zeros(shape, np.float32), sampling_rate=SR)
        audio = np.zeros(shape, np.float32)
        for nested in (audio.tolist(), list(audio)):  # the same audio as a list of (channels,) rows
            with pytest.raises(ValueError, match=re.escape(f"raw_speech of shape {shape} looks like (samples, ")):
                fe(nested, sampling_rate=SR)
    assert fe(np.stack([clip, clip]), sampling_rate=SR)["input_values"].shape[0] == 2  # (clips, samples)
    assert fe(clip[None], sampling_rate=SR)["input_values"].shape[0] == 1
    # integer PCM was featurised unscaled (features ~21..26 instead of ~0.6..5)
    for pcm in ((clip * 32767).astype(np.int16), (clip * 2**31).astype(np.int32), [1, 2, 3] * 400):
        dtype = np.asarray(pcm).dtype
        with pytest.raises(ValueError, match=re.escape(
                f"got dtype {dtype}; convert integer PCM first (e.g. int16 / 32768)")):
            fe(pcm, sampling_rate=SR)
    bad = clip.copy()
    bad[100] = np.nan
    with pytest.raises(ValueError, match=re.escape("clip 1 has a non-finite sample (nan) at index 100")):
        fe([clip, bad], sampling_rate=SR)
    bad[100], bad[3] = 0.0, np.inf
    with pytest.raises(ValueError, match=re.escape("clip 0 has a non-finite sample (inf) at index 3")):
        fe(bad, sampling_rate=SR)
    with pytest.raises(ValueError, match=re.escape("clip 2 is empty (0 samples)")):
        fe([clip, clip, np.zeros(0, np.float32)], sampling_rate=SR)
    with pytest.raises(TypeError, match=re.escape(
            "raw_speech is a str ('foo.wav'); load the audio first (e.g. hf_alm.data.load_audio) and pass the array")):
        fe("foo.wav", sampling_rate=SR)
    with pytest.raises(TypeError, match="raw_speech is None"):
        fe(None, sampling_rate=SR)
    with pytest.raises(TypeError, match=re.escape("clip 1 is a str ('b.wav'); load the audio first")):
        fe([clip, "b.wav"], sampling_rate=SR)
    for rate in ("16k", 16000.5):
        with pytest.raises(ValueError, match=re.escape(f"sampling_rate must be a whole number of Hz, got {rate!r}")):
            fe(clip, sampling_rate=rate)
    expected = fe(clip, sampling_rate=SR)["input_values"]
    for rate in (np.int64(SR), float(SR)):
        np.testing.assert_array_equal(fe(clip, sampling_rate=rate)["input_values"], expected)


def test_padding_true_means_longest_as_in_transformers():
    fe = TinyEdgeTransformerFeatureExtractor()
    clips = [_noise(0.3), _noise(0.5)]
    longest = fe(clips, sampling_rate=SR, padding="longest")
    as_true = fe(clips, sampling_rate=SR, padding=True)
    np.testing.assert_array_equal(as_true["input_values"], longest["input_values"])
    np.testing.assert_array_equal(as_true["attention_mask"], longest["attention_mask"])
    with pytest.raises(ValueError, match=r"padding must be True, 'longest' or 'max_length' .*got False"):
        fe(clips, sampling_rate=SR, padding=False)


FE = TinyEdgeTransformerFeatureExtractor
FRAME, FRAME_MS = 1024, 64  # n_fft


# ----------------------------------------------------------------- hostile input (issue 16), same rules as BEATs / CLAP
@pytest.mark.parametrize("make", [lambda a: a, torch.from_numpy, lambda a: a.tolist()], ids=["numpy", "torch", "list"])
@pytest.mark.parametrize("channels", [9, 16, 64])
def test_hostile_multichannel_audio_with_more_than_8_channels_is_not_a_batch(make, channels):
    """(24000, 16) from soundfile.read passed the old "at most 8 channels" guard and became 24000 clips."""
    fe = FE()
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (24000, channels)).astype(np.float32)
    with pytest.raises(ValueError, match=re.escape(
            f"raw_speech of shape (24000, {channels}) looks like (samples, channels) audio; down-mix it to mono first "
            f"(e.g. audio.mean(axis=1)); a batch is (clips, samples) or a list of 1-D clips, and rows of {channels} "
            f"samples are shorter than one analysis frame ({FRAME} samples)")):
        fe(make(audio), sampling_rate=16000)
    assert fe(np.ascontiguousarray(audio.T), sampling_rate=16000)["input_values"].shape[0] == channels


@pytest.mark.parametrize("batch, shown", [
    (np.zeros((0, 16000), np.float32), r"\(shape \(0, 16000\)\)"),
    (torch.zeros(0, 16000), r"\(shape \(0, 16000\)\)"),
    ([], r"\(an empty list\)"),
])
def test_hostile_empty_batch_is_a_value_error_naming_it(batch, shown):
    with pytest.raises(ValueError, match=r"^raw_speech is an empty batch " + shown + r"; pass at least one clip of "
                                         r"audio$"):
        FE()(batch, sampling_rate=16000)


@pytest.mark.parametrize("length", [1, 2, FRAME - 1])
def test_hostile_clip_shorter_than_one_frame_names_clip_length_and_minimum(length):
    clip = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    with pytest.raises(ValueError, match=rf"^clip 1 has {length} samples, shorter than one {FRAME_MS} ms frame "
                                         rf"\({FRAME} samples at 16000 Hz\)$"):
        FE()([clip, clip[:length]], sampling_rate=16000)
    out = FE()(clip[:FRAME], sampling_rate=16000)["input_values"]
    assert np.isfinite(out).all() and np.ptp(out) > 0  # one frame is enough, and not constant


def test_hostile_int16_range_or_huge_float_audio_is_refused_unless_its_float_scale_is_given():
    fe = FE()
    clip = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    for peak in (30000.0, 1e13, 1e300):
        loud = clip.astype(np.float64) / 0.5 * peak
        first = int(np.argmax(np.abs(loud) > 64))
        with pytest.raises(ValueError, match=re.escape(
                f"clip 1 has a peak amplitude of {np.abs(loud).max():g} (index {first} is the first sample above 64): "
                f"float audio must be in [-1, 1] and a peak above 64 means samples on another scale (e.g. int16 PCM "
                f"stored as floats); divide it by its full scale (e.g. audio / 32768) or pass float_scale= (e.g. "
                f"float_scale=32768)")):
            fe([clip, loud], sampling_rate=16000)
        got = fe(loud, sampling_rate=16000, float_scale=peak / 0.5)["input_values"]
        np.testing.assert_allclose(got, fe(clip, sampling_rate=16000)["input_values"], atol=1e-4)
    with pytest.raises(ValueError, match=r"more than 64 x float_scale=2; check float_scale"):
        fe(clip * 1000, sampling_rate=16000, float_scale=2)
    for bad in (0, float("nan"), "x", True):
        with pytest.raises(ValueError, match=rf"^float_scale must be a positive finite number .*got {re.escape(repr(bad))}$"):
            fe(clip, sampling_rate=16000, float_scale=bad)


def test_hostile_float16_audio_with_a_scale_beyond_float16_is_not_silenced():
    """float16 samples divided by a scale past float16's range (65504) became x / Inf = 0: silent features."""
    clip = np.random.default_rng(0).uniform(-0.5, 0.5, 16000)
    loud = (clip * 60000).astype(np.float16)
    got = FE()(loud, sampling_rate=16000, float_scale=120000.0)["input_values"]
    expected = FE()((loud.astype(np.float64) / 120000.0).astype(np.float32), sampling_rate=16000)["input_values"]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.ptp(got) > 1
