"""Parity with Microsoft's original BEATs, through the converter and the Auto classes (fixtures from the unmodified
reference code; see ../shared/fixtures/beats_reference/README.md for provenance and tolerances)."""

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch

import hf_alm  # noqa: F401  (registers the Auto classes)
from hf_alm.convert.beats import convert

NAMES = {"beats_dev_pretrained": "model", "beats_dev_finetuned": "classifier", "tokenizer_dev": "tokenizer"}
ATOL_HIDDEN = dict(atol=1e-4, rtol=1e-4)
ATOL_LOGITS = dict(atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def converted(beats_reference_path, tmp_path_factory):
    """Every .pt of the fixtures folder converted once; fails if the folder holds a checkpoint we don't know."""
    found = sorted(p.stem for p in beats_reference_path.glob("*.pt"))
    assert found == sorted(NAMES), f"fixture checkpoints changed: {found}"
    root = tmp_path_factory.mktemp("beats_converted")
    # the original's padded-batch rule, for bit-parity with the reference's padded calls
    return {name: convert(beats_reference_path / f"{name}.pt", root / name, padding_mode="reference")
            for name in NAMES}


@pytest.fixture(scope="module")
def converted_default(beats_reference_path, tmp_path_factory):
    """Every .pt converted with the default settings (padding_mode="time_aligned")."""
    root = tmp_path_factory.mktemp("beats_converted_default")
    return {name: convert(beats_reference_path / f"{name}.pt", root / name) for name in NAMES}


def _io(ref, name):
    from safetensors.torch import load_file

    return load_file(ref / f"{name}_io.safetensors")


def test_fixture_files_are_the_documented_ones(beats_reference_path):
    expected = json.loads((beats_reference_path / "expected.json").read_text())
    for name in NAMES:
        for fname, meta in expected["models"][name]["files"].items():
            digest = hashlib.sha256((beats_reference_path / fname).read_bytes()).hexdigest()
            assert digest == meta["sha256"], fname


def test_converted_folder_layout(converted):
    for name, path in converted.items():
        files = {p.name for p in path.iterdir()}
        assert {"config.json", "model.safetensors", "preprocessor_config.json", "configuration_beats.py",
                "modeling_beats.py", "feature_extraction_beats.py"} <= files, (name, files)
        cfg = json.loads((path / "config.json").read_text())
        # the tokenizer has its own model_type, so that AutoModel gives the tokenizer with and without hf-alm
        config_cls = "BeatsTokenizerConfig" if NAMES[name] == "tokenizer" else "BeatsConfig"
        assert cfg["model_type"] == ("hf_alm_beats_tokenizer" if NAMES[name] == "tokenizer" else "hf_alm_beats")
        assert cfg["auto_map"]["AutoConfig"] == f"configuration_beats.{config_cls}"
        pre = json.loads((path / "preprocessor_config.json").read_text())
        assert pre["auto_map"]["AutoFeatureExtractor"] == "feature_extraction_beats.BeatsFeatureExtractor"
    cfg = json.loads((converted["beats_dev_finetuned"] / "config.json").read_text())
    assert cfg["auto_map"]["AutoModelForAudioClassification"] == "modeling_beats.BeatsForAudioClassification"
    assert cfg["problem_type"] == "multi_label_classification"
    assert cfg["id2label"]["3"] == "/m/fake_dev_03"
    cfg = json.loads((converted["tokenizer_dev"] / "config.json").read_text())
    assert cfg["auto_map"]["AutoModel"] == "modeling_beats.BeatsAcousticTokenizer"  # a model, not a text tokenizer


def _capture(model, beats):
    """Forward hooks on the stages the fixtures recorded (the model itself is run through its public forward)."""
    store = {}
    hooks = [
        beats.layer_norm.register_forward_hook(lambda m, i, o: store.__setitem__("patch_ln", o)),
        beats.post_extract_proj.register_forward_hook(lambda m, i, o: store.__setitem__("encoder_input", o)),
        beats.encoder.pos_conv.register_forward_hook(lambda m, i, o: store.__setitem__("pos_conv", o)),
    ]
    return store, hooks


@pytest.mark.parametrize("padded", [True, False], ids=["padded", "nopad"])
def test_pretrained_parity_via_auto(beats_reference_path, converted, padded):
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

    from hf_alm.modeling.beats import BeatsConfig, BeatsModel

    path = converted["beats_dev_pretrained"]
    io = _io(beats_reference_path, "beats_dev_pretrained")
    assert isinstance(AutoConfig.from_pretrained(path), BeatsConfig)
    fe = AutoFeatureExtractor.from_pretrained(path)
    model = AutoModel.from_pretrained(path)
    assert type(model) is BeatsModel and not model.training
    inputs = fe(io["waveform"], sampling_rate=16000, attention_mask=~io["padding_mask"] if padded else None,
                return_tensors="pt")
    torch.testing.assert_close(inputs["input_values"], io["fbank"], **ATOL_LOGITS)
    store, hooks = _capture(model, model)
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    for h in hooks:
        h.remove()
    sfx = "" if padded else "_nopad"
    torch.testing.assert_close(out.last_hidden_state, io["features" + sfx], **ATOL_HIDDEN)
    if padded:
        assert torch.equal(out.padding_mask, io["out_padding_mask"])
        assert int(out.padding_mask[1].sum()) == 31
        torch.testing.assert_close(store["pos_conv"], io["hidden.pos_conv"], **ATOL_HIDDEN)
        torch.testing.assert_close(out.hidden_states[1], io["hidden.layer_0"], **ATOL_HIDDEN)
    else:
        assert not out.padding_mask.any()
        for key in ("patch_ln", "encoder_input", "pos_conv"):
            torch.testing.assert_close(store[key], io[f"hidden_nopad.{key}"], **ATOL_HIDDEN)
        torch.testing.assert_close(out.hidden_states[0], io["hidden_nopad.encoder_ln"], **ATOL_HIDDEN)
        for i in range(model.config.encoder_layers):
            torch.testing.assert_close(out.hidden_states[i + 1], io[f"hidden_nopad.layer_{i}"], **ATOL_HIDDEN)


@pytest.mark.parametrize("padded", [True, False], ids=["padded", "nopad"])
def test_finetuned_parity_via_auto(beats_reference_path, converted, padded):
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    path = converted["beats_dev_finetuned"]
    io = _io(beats_reference_path, "beats_dev_finetuned")
    fe = AutoFeatureExtractor.from_pretrained(path)
    model = AutoModelForAudioClassification.from_pretrained(path)
    inputs = fe(io["waveform"], sampling_rate=16000, attention_mask=~io["padding_mask"] if padded else None,
                return_tensors="pt")
    torch.testing.assert_close(inputs["input_values"], io["fbank"], **ATOL_LOGITS)
    store, hooks = _capture(model, model.beats)
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    for h in hooks:
        h.remove()
    sfx = "" if padded else "_nopad"
    torch.testing.assert_close(out.logits, io["logits" + sfx], **ATOL_LOGITS)
    torch.testing.assert_close(out.logits.sigmoid(), io["probs" + sfx], **ATOL_LOGITS)
    torch.testing.assert_close(out.frame_logits, io["frame_logits" + sfx], **ATOL_HIDDEN)
    torch.testing.assert_close(out.hidden_states[-1], io["encoder_output" + sfx], **ATOL_HIDDEN)
    if padded:
        assert torch.equal(out.padding_mask, io["out_padding_mask"])
        torch.testing.assert_close(store["pos_conv"], io["hidden.pos_conv"], **ATOL_HIDDEN)
        torch.testing.assert_close(out.hidden_states[1], io["hidden.layer_0"], **ATOL_HIDDEN)
    else:
        for key in ("patch_ln", "encoder_input", "pos_conv"):
            torch.testing.assert_close(store[key], io[f"hidden_nopad.{key}"], **ATOL_HIDDEN)
        torch.testing.assert_close(out.hidden_states[0], io["hidden_nopad.encoder_ln"], **ATOL_HIDDEN)
        for i in range(model.config.encoder_layers):
            torch.testing.assert_close(out.hidden_states[i + 1], io[f"hidden_nopad.layer_{i}"], **ATOL_HIDDEN)


@pytest.mark.parametrize("padded", [True, False], ids=["padded", "nopad"])
def test_tokenizer_parity(beats_reference_path, converted, padded):
    from transformers import AutoFeatureExtractor

    from hf_alm.modeling.beats import BeatsAcousticTokenizer

    path = converted["tokenizer_dev"]
    io = _io(beats_reference_path, "tokenizer_dev")
    fe = AutoFeatureExtractor.from_pretrained(path)
    tok = BeatsAcousticTokenizer.from_pretrained(path)
    assert float(tok.quantizer.initted) == 1.0
    inputs = fe(io["waveform"], sampling_rate=16000, attention_mask=~io["padding_mask"] if padded else None,
                return_tensors="pt")
    torch.testing.assert_close(inputs["input_values"], io["fbank"], **ATOL_LOGITS)
    store, hooks = _capture(tok, tok.beats)
    labels = tok.extract_labels(**inputs)
    with torch.no_grad():
        out = tok(**inputs)
    for h in hooks:
        h.remove()
    sfx = "" if padded else "_nopad"
    assert labels.shape == (2, 96)
    assert torch.equal(labels.flatten(), io["labels" + sfx])
    assert torch.equal(out.labels, labels)
    torch.testing.assert_close(out.quantize_input, io["quantize_input" + sfx], **ATOL_HIDDEN)
    torch.testing.assert_close(out.last_hidden_state, io["encoder_output" + sfx], **ATOL_HIDDEN)
    if padded:
        assert torch.equal(out.padding_mask, io["out_padding_mask"])
        torch.testing.assert_close(store["pos_conv"], io["hidden.pos_conv"], **ATOL_HIDDEN)
    else:
        for key in ("patch_ln", "encoder_input", "pos_conv"):
            torch.testing.assert_close(store[key], io[f"hidden_nopad.{key}"], **ATOL_HIDDEN)


def test_default_conversion_is_time_aligned_and_matches_the_original_without_padding(beats_reference_path,
                                                                                    converted_default):
    """Unpadded clips give the original's numbers in the default (time-aligned) mode too."""
    from transformers import AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification

    from hf_alm.modeling.beats import BeatsAcousticTokenizer

    for name, path in converted_default.items():
        cfg = json.loads((path / "config.json").read_text())
        pre = json.loads((path / "preprocessor_config.json").read_text())
        assert cfg["padding_mode"] == "time_aligned" and pre["padding_mode"] == "time_aligned", name
    io = _io(beats_reference_path, "beats_dev_finetuned")
    path = converted_default["beats_dev_finetuned"]
    fe = AutoFeatureExtractor.from_pretrained(path)
    model = AutoModelForAudioClassification.from_pretrained(path)
    assert model.config.padding_mode == "time_aligned"
    with torch.no_grad():
        out = model(**fe(io["waveform"], sampling_rate=16000, return_tensors="pt"))
    torch.testing.assert_close(out.logits, io["logits_nopad"], **ATOL_LOGITS)
    torch.testing.assert_close(out.frame_logits, io["frame_logits_nopad"], **ATOL_HIDDEN)
    io = _io(beats_reference_path, "beats_dev_pretrained")
    model = AutoModel.from_pretrained(converted_default["beats_dev_pretrained"])
    with torch.no_grad():
        out = model(**fe(io["waveform"], sampling_rate=16000, return_tensors="pt"))
    torch.testing.assert_close(out.last_hidden_state, io["features_nopad"], **ATOL_HIDDEN)
    io = _io(beats_reference_path, "tokenizer_dev")
    tok = AutoModel.from_pretrained(converted_default["tokenizer_dev"])
    assert type(tok) is BeatsAcousticTokenizer
    labels = tok.extract_labels(**fe(io["waveform"], sampling_rate=16000, return_tensors="pt"))
    assert torch.equal(labels.flatten(), io["labels_nopad"])


def test_default_conversion_gives_each_padded_clip_its_own_logits(beats_reference_path, converted, converted_default):
    """In the padded fixture batch (2.0 s + 1.3 s clip), the time-aligned default gives the short clip exactly what it
    gets alone; the reference mode reproduces the original's padded call, which differs from that."""
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    io = _io(beats_reference_path, "beats_dev_finetuned")
    real = int((~io["padding_mask"][1]).sum())
    results = {}
    for mode, folders in (("time_aligned", converted_default), ("reference", converted)):
        path = folders["beats_dev_finetuned"]
        fe = AutoFeatureExtractor.from_pretrained(path)
        model = AutoModelForAudioClassification.from_pretrained(path)
        assert model.config.padding_mode == mode and fe.padding_mode == mode
        with torch.no_grad():
            batched = model(**fe(io["waveform"], sampling_rate=16000, attention_mask=~io["padding_mask"],
                                 return_tensors="pt")).logits
            alone = model(**fe(io["waveform"][1, :real], sampling_rate=16000, return_tensors="pt")).logits[0]
        results[mode] = (batched, alone)
    batched, alone = results["time_aligned"]
    torch.testing.assert_close(batched[1], alone, **ATOL_LOGITS)
    torch.testing.assert_close(batched[0], io["logits"][0], **ATOL_LOGITS)  # the unpadded row: the original's
    # the clip alone is the same in both modes; only the padded-batch rule differs
    torch.testing.assert_close(results["reference"][1], alone, **ATOL_LOGITS)
    torch.testing.assert_close(results["reference"][0], io["logits"], **ATOL_LOGITS)
    assert float((results["reference"][0][1] - alone).abs().max()) > 1e-4


def test_eager_and_sdpa_agree_on_the_converted_classifier(beats_reference_path, converted):
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    path = converted["beats_dev_finetuned"]
    io = _io(beats_reference_path, "beats_dev_finetuned")
    inputs = AutoFeatureExtractor.from_pretrained(path)(io["waveform"], sampling_rate=16000,
                                                        attention_mask=~io["padding_mask"], return_tensors="pt")
    outs = {}
    for impl in ("eager", "sdpa"):
        model = AutoModelForAudioClassification.from_pretrained(path, attn_implementation=impl)
        assert model.config._attn_implementation == impl
        with torch.no_grad():
            outs[impl] = model(**inputs, output_hidden_states=True)
    torch.testing.assert_close(outs["eager"].logits, outs["sdpa"].logits, atol=1e-5, rtol=0)
    for a, b in zip(outs["eager"].hidden_states, outs["sdpa"].hidden_states):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outs["sdpa"].logits, io["logits"], **ATOL_LOGITS)


def test_pipeline_audio_classification_returns_label_names(beats_reference_path, converted):
    from transformers import pipeline

    path = converted["beats_dev_finetuned"]
    io = _io(beats_reference_path, "beats_dev_finetuned")
    classifier = pipeline("audio-classification", model=str(path))
    result = classifier({"array": io["waveform"][0].numpy(), "sampling_rate": 16000}, top_k=10)
    assert len(result) == 10
    probs = io["probs_nopad"][0]  # the clip alone = row 0 (full length) of the unpadded reference call
    expected = sorted(((float(p), f"/m/fake_dev_{i:02d}") for i, p in enumerate(probs)), reverse=True)
    assert [r["label"] for r in result] == [label for _, label in expected]
    for r, (p, _) in zip(result, expected):  # multi-label -> sigmoid scores, as the original's probabilities
        assert abs(r["score"] - p) < 1e-5


def test_cli_conversion(beats_reference_path, tmp_path):
    from hf_alm.cli import main

    for flags, mode in (([], "time_aligned"), (["--padding_mode", "reference"], "reference")):
        dst = tmp_path / f"cli_out_{mode}"
        assert main(["convert", "beats", str(beats_reference_path / "beats_dev_finetuned.pt"), str(dst),
                     *flags]) == 0
        cfg = json.loads((dst / "config.json").read_text())
        pre = json.loads((dst / "preprocessor_config.json").read_text())
        assert cfg["padding_mode"] == mode and pre["padding_mode"] == mode
    out = subprocess.run([sys.executable, "-m", "hf_alm.cli", "convert", "beats", "--help"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and "--padding_mode" in out.stdout and "--problem_type" in out.stdout


def test_converter_rejects_unknown_and_missing_keys(beats_reference_path, tmp_path):
    ckpt = torch.load(beats_reference_path / "beats_dev_pretrained.pt", weights_only=True)
    bad = {"cfg": ckpt["cfg"], "model": dict(ckpt["model"])}
    bad["model"]["encoder.layers.0.self_attn.extra_gate"] = torch.zeros(3)
    del bad["model"]["encoder.layers.1.fc2.bias"]
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="extra_gate"):
        convert(tmp_path / "bad.pt", tmp_path / "out")
    del bad["model"]["encoder.layers.0.self_attn.extra_gate"]
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"missing \['encoder\.layers\.1\.fc2\.bias'\]"):
        convert(tmp_path / "bad.pt", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="release format"):
        convert(tmp_path / "other.pt", tmp_path / "out")
    shared = {"cfg": ckpt["cfg"], "model": dict(ckpt["model"])}
    shared["model"]["encoder.layers.1.self_attn.relative_attention_bias.weight"] = torch.zeros(320, 4)
    torch.save(shared, tmp_path / "unshared.pt")
    with pytest.raises(ValueError, match="relative position bias table must be shared"):
        convert(tmp_path / "unshared.pt", tmp_path / "out")



def test_converter_checks_dst_before_writing(beats_reference_path, tmp_path, monkeypatch, capsys):
    """A non-empty DST is replaced only with overwrite (it used to be deleted silently); an empty folder, "." and a
    missing folder are written."""
    from hf_alm.cli import main

    src = beats_reference_path / "beats_dev_pretrained.pt"
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=rf"output folder {re.escape(str(dst))} exists and is not empty; "
                                              r"pass --overwrite"):
        convert(src, dst)
    assert [p.name for p in dst.iterdir()] == ["notes.txt"]
    assert convert(src, dst, overwrite=True) == dst
    assert (dst / "config.json").is_file() and not (dst / "notes.txt").exists()
    assert main(["convert", "beats", str(src), str(dst)]) == 1  # a converted folder is not empty either
    assert "pass --overwrite to replace it" in capsys.readouterr().err
    assert main(["convert", "beats", str(src), str(dst), "--overwrite"]) == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    assert convert(src, empty) == empty and (empty / "model.safetensors").is_file()
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["convert", "beats", str(src), "."]) == 0
    assert f"-> {here}" in capsys.readouterr().out and (here / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "here", "out"]  # no temporary folder left


def test_converter_explains_unreadable_sources(tmp_path):
    """0-byte file, not a torch file, a pickle of Python objects (never advise weights_only=False), a folder."""
    import argparse

    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=rf"{re.escape(str(tmp_path / 'empty.pt'))}: file is empty \(0 bytes\)"):
        convert(tmp_path / "empty.pt", tmp_path / "out")
    (tmp_path / "notes.pt").write_text("hello, not a checkpoint")
    with pytest.raises(ValueError, match=rf"{re.escape(str(tmp_path / 'notes.pt'))} is not a torch checkpoint"):
        convert(tmp_path / "notes.pt", tmp_path / "out")
    torch.save({"cfg": argparse.Namespace(encoder_layers=2), "model": {}}, tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match=rf"{re.escape(str(tmp_path / 'pickled.pt'))} is not a BEATs checkpoint: it "
                                         r"pickles the Python object argparse\.Namespace") as info:
        convert(tmp_path / "pickled.pt", tmp_path / "out")
    text = str(info.value)  # torch's blanket advice is not relayed; the only unsafe load shown is conditional
    assert "weights_only` set to `False" not in text and "will likely succeed" not in text
    assert text.count("weights_only=False") == 1 and text.index("if you trust this file") < text.index("weights_only")
    assert info.value.__cause__ is None and info.value.__suppress_context__  # torch's advice is not chained either
    folder = tmp_path / "release"
    folder.mkdir()
    (folder / "BEATs_iter3.pt").write_bytes(b"x")
    with pytest.raises(IsADirectoryError, match=rf"BEATs checkpoint {re.escape(str(folder))} is a folder; pass the "
                                                r"\.pt file itself \(it holds BEATs_iter3\.pt\)"):
        convert(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_converter_rejects_non_finite_weights_and_incomplete_cfg(beats_reference_path, tmp_path):
    ckpt = torch.load(beats_reference_path / "beats_dev_finetuned.pt", weights_only=True)
    bad = {**ckpt, "model": dict(ckpt["model"])}
    keys = list(bad["model"])
    first, later = keys[3], keys[-1]
    bad["model"][later] = bad["model"][later].clone().fill_(float("inf"))
    bad["model"][first] = bad["model"][first].clone()
    bad["model"][first].view(-1)[1] = float("nan")
    torch.save(bad, tmp_path / "nan.pt")
    with pytest.raises(ValueError, match=rf"checkpoint weight {re.escape(first)} has non-finite values "
                                         r"\(first: nan\)"):
        convert(tmp_path / "nan.pt", tmp_path / "out")
    for key in ("encoder_embed_dim", "predictor_class"):
        cfg = {k: v for k, v in ckpt["cfg"].items() if k != key}
        torch.save({**ckpt, "cfg": cfg}, tmp_path / "nocfg.pt")
        # used to default encoder_embed_dim to 768 and fail later with a list of shape mismatches
        with pytest.raises(ValueError, match=rf"the checkpoint's cfg lacks the required key\(s\) \['{key}'\]"):
            convert(tmp_path / "nocfg.pt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


REMOTE_SCRIPT = textwrap.dedent("""
    import importlib.abc, sys, json
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "hf_alm" or name.startswith("hf_alm."):
                raise ImportError("hf_alm is blocked in this process")
    sys.meta_path.insert(0, Block())
    try:
        import hf_alm
        raise SystemExit("hf_alm could be imported")
    except ImportError:
        pass
    import torch
    from safetensors.torch import load_file
    from transformers import AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification
    ft, pre, io_ft, io_pre, tok_dir, io_tok = sys.argv[1:7]
    result = {}
    fe = AutoFeatureExtractor.from_pretrained(ft, trust_remote_code=True)
    model = AutoModelForAudioClassification.from_pretrained(ft, trust_remote_code=True)
    io = load_file(io_ft)
    with torch.no_grad():
        out = model(**fe(io["waveform"], sampling_rate=16000, attention_mask=~io["padding_mask"], return_tensors="pt"))
    result["classes"] = [type(fe).__module__, type(model).__module__]
    result["logits"] = (out.logits - io["logits"]).abs().max().item()
    model = AutoModel.from_pretrained(pre, trust_remote_code=True)
    io = load_file(io_pre)
    with torch.no_grad():
        out = model(**fe(io["waveform"], sampling_rate=16000, attention_mask=~io["padding_mask"], return_tensors="pt"))
    result["features"] = (out.last_hidden_state - io["features"]).abs().max().item()
    result["mask"] = bool(torch.equal(out.padding_mask, io["out_padding_mask"]))
    tok = AutoModel.from_pretrained(tok_dir, trust_remote_code=True)  # auto_map points AutoModel at the tokenizer
    io = load_file(io_tok)
    labels = tok.extract_labels(**fe(io["waveform"], sampling_rate=16000, attention_mask=~io["padding_mask"],
                                     return_tensors="pt"))
    result["tokenizer"] = type(tok).__name__
    result["labels"] = bool(torch.equal(labels.flatten(), io["labels"]))
    result["hf_alm_loaded"] = any(m == "hf_alm" or m.startswith("hf_alm.") for m in sys.modules)
    print(json.dumps(result))
""")


def test_remote_code_loads_without_hf_alm(beats_reference_path, converted, tmp_path):
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", PYTHONPATH="")
    args = [str(converted["beats_dev_finetuned"]), str(converted["beats_dev_pretrained"]),
            str(beats_reference_path / "beats_dev_finetuned_io.safetensors"),
            str(beats_reference_path / "beats_dev_pretrained_io.safetensors"), str(converted["tokenizer_dev"]),
            str(beats_reference_path / "tokenizer_dev_io.safetensors")]
    out = subprocess.run([sys.executable, "-c", REMOTE_SCRIPT, *args], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert not result["hf_alm_loaded"]
    assert all(not m.startswith("hf_alm") for m in result["classes"]), result["classes"]
    assert result["logits"] < 1e-5 and result["features"] < 1e-4 and result["mask"], result
    assert result["tokenizer"] == "BeatsAcousticTokenizer" and result["labels"], result
