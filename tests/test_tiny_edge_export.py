"""`hf-alm export tiny`: ONNX fp32 matches PyTorch, int8 model runs and agrees, front-end JSON is sufficient."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import hf_alm  # noqa: E402,F401
from hf_alm.export import (  # noqa: E402
    calibration_features,
    frontend_from_spec,
    onnx_session,
    run_onnx,
    save_calibration_features,
)
from hf_alm.modeling.tiny_edge_transformer import (  # noqa: E402
    TinyEdgeTransformerConfig,
    TinyEdgeTransformerFeatureExtractor,
    TinyEdgeTransformerForAudioClassification,
)

SR = 16000
FREQS = [250.0, 900.0, 2500.0, 6000.0]


def _clip(rng, label, seconds):
    n = int(seconds * SR)
    t = np.arange(n) / SR
    tone = np.sin(2 * np.pi * FREQS[label] * (1 + 0.02 * rng.standard_normal()) * t)
    return (rng.uniform(0.05, 0.5) * tone + 0.01 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny model trained for a few seconds on 4 tone classes, saved with calibration features, then exported."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    labels = [f"tone_{int(f)}" for f in FREQS]
    fe = TinyEdgeTransformerFeatureExtractor(max_frames=48)
    waves = [_clip(rng, i % 4, rng.uniform(0.5, 1.5)) for i in range(32)]
    ys = torch.tensor([i % 4 for i in range(32)])
    raw = [fe.log_mel(w) for w in waves]
    stacked = np.concatenate(raw)
    fe.mean, fe.std = float(stacked.mean()), float(stacked.std())
    config = TinyEdgeTransformerConfig.from_preset("tiny", num_labels=4, id2label=dict(enumerate(labels)),
                                                   label2id={n: i for i, n in enumerate(labels)},
                                                   max_position_embeddings=48)
    model = TinyEdgeTransformerForAudioClassification(config)
    batch = fe(waves, sampling_rate=SR, return_tensors="pt")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(40):
        opt.zero_grad()
        model(**batch, labels=ys).loss.backward()
        opt.step()
    model.eval()
    root = tmp_path_factory.mktemp("tiny_export")
    model_dir, out_dir = root / "model", root / "onnx"
    model.save_pretrained(model_dir)
    fe.save_pretrained(model_dir)
    save_calibration_features(model_dir / "calibration_features.npz",
                              [fe.normalize(r[: fe.max_frames]) for r in raw])
    from hf_alm.cli import main

    assert main(["export", "tiny", str(model_dir), str(out_dir), "--max_calibration_clips", "32"]) == 0
    return model, fe, out_dir, rng


def test_export_writes_the_documented_files(exported):
    _, _, out_dir, _ = exported
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "README.md", "export_report.json", "frontend.json", "model.onnx", "model_int8.onnx"]
    report = json.loads((out_dir / "export_report.json").read_text())
    assert report["num_calibration_clips"] == 32
    assert report["fp32_max_abs_diff_vs_pytorch"] < 1e-4
    assert report["model_int8_onnx_bytes"] == (out_dir / "model_int8.onnx").stat().st_size


def test_onnx_fp32_matches_pytorch_within_1e4_including_padded_batches(exported):
    model, fe, out_dir, rng = exported
    session = onnx_session(out_dir / "model.onnx")
    waves = [_clip(rng, k % 4, s) for k, s in enumerate([0.2, 0.75, 1.9, 3.0])]  # 3.0 s > max_frames: truncated
    batch = fe(waves, sampling_rate=SR, return_tensors="np")
    onnx_logits = session.run(["logits"], {"input_values": batch["input_values"],
                                           "attention_mask": batch["attention_mask"].astype(np.int64)})[0]
    with torch.no_grad():
        torch_logits = model(**fe(waves, sampling_rate=SR, return_tensors="pt")).logits.numpy()
    assert batch["input_values"].shape[1] == 48
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-4, rtol=0)
    assert np.abs(torch_logits).max() > 0.5  # a trained model, not all-zero logits


def test_int8_model_is_quantised_smaller_and_agrees_with_fp32(exported):
    import onnx

    model, fe, out_dir, rng = exported
    int8 = onnx.load(str(out_dir / "model_int8.onnx"))
    ops = {n.op_type for n in int8.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [i for i in int8.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 2]
    # the position table, q/k/v/o projections and feed-forward weights are int8; the input projection and the
    # classifier stay float32 (KEEP_FLOAT_DEFAULT)
    base = model.tiny_edge_transformer
    expected = base.embeddings.position_embeddings.weight.numel() + sum(
        p.numel() for layer in base.layers for p in layer.parameters() if p.ndim == 2)
    assert sum(int(np.prod(i.dims)) for i in int8_weights) == expected
    float_shapes = {tuple(i.dims) for i in int8.graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    assert (40, 16) in float_shapes and ({(16, 4), (4, 16)} & float_shapes)
    assert (out_dir / "model_int8.onnx").stat().st_size < (out_dir / "model.onnx").stat().st_size
    labels = [k % 4 for k in range(24)]
    feats = [fe(_clip(rng, y, 1.0), sampling_rate=SR)["input_values"][0] for y in labels]
    fp32 = run_onnx(out_dir / "model.onnx", feats)
    q8 = run_onnx(onnx_session(out_dir / "model_int8.onnx"), feats)
    assert (fp32.argmax(-1) == np.array(labels)).mean() >= 0.9  # the model learned the tones
    assert (q8.argmax(-1) == fp32.argmax(-1)).mean() >= 0.9
    assert np.abs(q8 - fp32).max() < 0.25 * np.abs(fp32).max()


def test_keep_float_none_quantises_every_weight_matrix(exported, tmp_path):
    import onnx

    from hf_alm.export import quantize_int8

    model, fe, out_dir, rng = exported
    feats = [fe(_clip(rng, k % 4, 1.0), sampling_rate=SR)["input_values"][0] for k in range(8)]
    path = quantize_int8(out_dir / "model.onnx", tmp_path / "all_int8.onnx", feats, max_frames=48, keep_float=())
    proto = onnx.load(str(path))
    int8 = sum(int(np.prod(i.dims)) for i in proto.graph.initializer
               if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 2)
    assert int8 == sum(p.numel() for p in model.parameters() if p.ndim == 2)
    with pytest.raises(ValueError, match=r"unknown keep_float part\(s\) \['softmax'\]"):
        quantize_int8(out_dir / "model.onnx", tmp_path / "x.onnx", feats, max_frames=48, keep_float=("softmax",))


def test_frontend_json_alone_reproduces_the_pipeline(exported):
    """A port that reads only frontend.json + model.onnx gets the PyTorch model's logits from raw audio."""
    model, fe, out_dir, rng = exported
    spec = json.loads((out_dir / "frontend.json").read_text())
    assert spec["sampling_rate"] == 16000 and spec["n_fft"] == 1024 and spec["hop_length"] == 512
    assert spec["window"] == "hann_periodic" and spec["mel_scale"] == "htk" and spec["log_floor"] == 1e-6
    assert spec["mel_filters_shape"] == [40, 513] and spec["labels"] == [model.config.id2label[i] for i in range(4)]
    assert spec["mean"] == pytest.approx(fe.mean) and spec["std"] == pytest.approx(fe.std)
    wave = _clip(rng, 2, 1.2)
    port = frontend_from_spec(spec)(wave)
    np.testing.assert_allclose(port, fe(wave, sampling_rate=SR)["input_values"][0], atol=1e-4)
    with torch.no_grad():
        expected = model(**fe(wave, sampling_rate=SR, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(run_onnx(out_dir / "model.onnx", [port]), expected, atol=1e-4)


def test_missing_or_bad_calibration_fails_clearly_and_writes_nothing(exported, tmp_path):
    from hf_alm.export import export_tiny

    model, fe, _, _ = exported
    model.save_pretrained(tmp_path / "m")
    fe.save_pretrained(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="calibration_features.npz does not exist"):
        export_tiny(tmp_path / "m", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    np.savez(tmp_path / "bad.npz", f0=np.zeros((5, 7), np.float32))
    with pytest.raises(ValueError, match=r"\(frames, 40\).*\(5, 7\)"):
        calibration_features(tmp_path / "bad.npz", fe)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        export_tiny(tmp_path / "nothing", tmp_path / "out")


def test_readme_names_where_the_calibration_clips_came_from(exported, tmp_path):
    """It said "training clips" whatever the source; with --calibration synthetic that was untrue."""
    from hf_alm.export import export_tiny

    model, fe, out_dir, _ = exported
    assert ("32 clips of training features saved by the recipe (calibration_features.npz)"
            in (out_dir / "README.md").read_text())
    model.save_pretrained(tmp_path / "m")
    fe.save_pretrained(tmp_path / "m")
    export_tiny(tmp_path / "m", tmp_path / "out", calibration="synthetic:1", max_calibration_clips=4)
    assert "4 clips of the synthetic corpus" in (tmp_path / "out" / "README.md").read_text()
