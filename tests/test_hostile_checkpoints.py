"""Hostile checkpoint files (issue 16): a corpus the tests generate themselves (pickle payloads whose ``__reduce__``
would create a marker file, zero-length, truncated and random files, a WAV renamed .pt, safetensors with a lying
header) through the one safe loader (``hf_alm.utils.load_torch_file`` / ``check_safetensors_file``), every converter,
the ``hf-alm`` CLI (in-process and as a real subprocess), the BEATs feature cache and training resume. Each gives one
clear error naming the file (a ValueError / OSError subclass), never a traceback, never torch's advice to unpickle,
and the marker file is never created."""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_alm.utils import (CheckpointError, UnsafeCheckpointError, check_safetensors_file, check_weight_files,
                          load_torch_file, pickled_globals)

TORCH_ADVICE = ("will likely succeed", "weights_only` set to `False", "Weights only load failed")


class _Payload:
    """Unpickling this runs ``open(marker, "w")``: the file appearing means code from a checkpoint was executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _wav_bytes() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(1600, dtype=np.int16).tobytes())
    return buf.getvalue()


def _safetensors_with_header(header: dict, data: bytes, claimed_len: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if claimed_len is None else claimed_len) + text + data


def make_corpus(folder: Path, marker: Path) -> dict[str, Path]:
    """name -> hostile file. Every file is refused; none may create ``marker``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}

    def put(name, data: bytes):
        files[name] = folder / name
        files[name].write_bytes(data)

    payload = _Payload(marker)
    buf = io.BytesIO()
    torch.save({"cfg": payload, "model": {"w": torch.zeros(2)}}, buf)
    put("payload_zip.pt", buf.getvalue())
    buf = io.BytesIO()
    torch.save({"cfg": payload, "model": {"w": torch.zeros(2)}}, buf, _use_new_zipfile_serialization=False)
    put("payload_legacy.pt", buf.getvalue())
    put("payload_raw_p2.pt", pickle.dumps({"model": payload}, protocol=2))
    put("payload_raw_p5.bin", pickle.dumps(payload, protocol=5))
    put("empty.pt", b"")
    buf = io.BytesIO()
    torch.save({"cfg": {}, "model": {"w": torch.randn(64, 64)}}, buf)
    put("truncated.pt", buf.getvalue()[: len(buf.getvalue()) // 2])
    put("wav_renamed.pt", _wav_bytes())
    put("random.pt", np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    put("text.pt", b"hello, not a checkpoint\n")
    put("lying_header.safetensors", _safetensors_with_header(
        {"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}, b"\0" * 16))
    put("header_len_lies.safetensors", _safetensors_with_header({"w": {"dtype": "F32", "shape": [2],
                                                                       "data_offsets": [0, 8]}}, b"\0" * 8,
                                                                claimed_len=10**12))
    return files


@pytest.fixture
def corpus(tmp_path):
    marker = tmp_path / "MARKER"
    files = make_corpus(tmp_path / "corpus", marker)
    yield files, marker
    assert not marker.exists(), "a hostile checkpoint ran code"


def _assert_clear(err: BaseException, path: Path):
    text = str(err)
    assert isinstance(err, (ValueError, OSError)), f"{type(err).__name__}: {text}"
    assert str(path) in text, text
    assert "\n" not in text and not any(a in text for a in TORCH_ADVICE), text


# ------------------------------------------------------------------------------------------------ the one loader
def test_payload_is_a_real_payload(tmp_path):
    """The corpus' payload does run code under a full unpickle (so the tests below would notice one)."""
    marker = tmp_path / "MARKER"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


def test_load_torch_file_refuses_every_hostile_file(corpus):
    files, marker = corpus
    for name, path in files.items():
        if path.suffix == ".safetensors":
            continue
        with pytest.raises((CheckpointError, OSError)) as info:
            load_torch_file(path)
        _assert_clear(info.value, path)
        if name.startswith("payload"):
            assert isinstance(info.value, UnsafeCheckpointError)
            assert "pickles the Python object builtins.exec" in str(info.value), str(info.value)
            assert "never unpickles" in str(info.value) and "if you trust this file" in str(info.value)
    assert "it is a RIFF/WAV audio file" in _message(load_torch_file, files["wav_renamed.pt"])
    assert "file is empty (0 bytes)" in _message(load_torch_file, files["empty.pt"])
    assert "truncated or corrupt" in _message(load_torch_file, files["truncated.pt"])
    assert "it is a safetensors file" in _message(load_torch_file, files["lying_header.safetensors"])
    assert not marker.exists()


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises((ValueError, OSError)) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_load_torch_file_reads_plain_checkpoints(tmp_path):
    state = {"cfg": {"a": 1, "b": [1.5, "x"]}, "model": {"w": torch.randn(3, 2), "i": torch.arange(4)}}
    for legacy in (False, True):
        path = tmp_path / f"ok_{legacy}.pt"
        torch.save(state, path, _use_new_zipfile_serialization=not legacy)
        out = load_torch_file(path, mmap=True)
        assert out["cfg"] == state["cfg"] and torch.equal(out["model"]["w"], state["model"]["w"])
        assert pickled_globals(path) is not None and not any(n.startswith("builtins.exec")
                                                             for n in pickled_globals(path))


def test_pickled_globals_names_the_payload_statically(corpus):
    files, _ = corpus
    for name in ("payload_zip.pt", "payload_legacy.pt", "payload_raw_p2.pt", "payload_raw_p5.bin"):
        assert "builtins.exec" in pickled_globals(files[name]), name
    assert pickled_globals(files["truncated.pt"]) is None


def test_safetensors_checks_name_the_file(corpus, tmp_path):
    from safetensors.torch import save_file

    files, _ = corpus
    for name in ("lying_header.safetensors", "header_len_lies.safetensors", "empty.pt", "random.pt"):
        with pytest.raises(CheckpointError) as info:
            check_safetensors_file(files[name])
        _assert_clear(info.value, files[name])
    good = tmp_path / "model.safetensors"
    save_file({"w": torch.ones(100)}, good)
    assert check_safetensors_file(good) == ["w"]
    (tmp_path / "cut.safetensors").write_bytes(good.read_bytes()[:-50])
    assert "truncated or corrupt" in _message(check_safetensors_file, tmp_path / "cut.safetensors")


# ------------------------------------------------------------------------------------------------ converters
@pytest.mark.parametrize("family", ["beats", "one_peace"])
def test_file_converters_refuse_every_hostile_file(corpus, tmp_path, family):
    """Before the fix `convert one_peace` retried a refused load with a full unpickle: the payload ran (marker)."""
    from hf_alm.convert import get_converter

    files, marker = corpus
    convert = get_converter(family).convert
    for name, path in files.items():
        with pytest.raises((ValueError, OSError)) as info:
            convert(path, tmp_path / f"out_{family}_{name}")
        _assert_clear(info.value, path)
        assert not marker.exists(), f"{family} ran the payload of {name}"
        assert not (tmp_path / f"out_{family}_{name}").exists()
    text = _message(convert, files["payload_zip.pt"], tmp_path / "out")
    assert re.search(r"is not a (BEATs|ONE-PEACE) checkpoint: it pickles the Python object builtins\.exec, which "
                     r"hf-alm never unpickles", text), text


def test_one_peace_explains_a_fairseq_cfg_object(tmp_path):
    """An original fairseq checkpoint pickles its cfg (argparse / omegaconf): refused with how to re-save it."""
    import argparse

    from hf_alm.convert.one_peace import convert

    src = tmp_path / "one-peace.pt"
    torch.save({"cfg": argparse.Namespace(encoder_layers=2), "model": {"w": torch.zeros(1)}}, src)
    text = _message(convert, src, tmp_path / "out")
    assert "pickles the Python object argparse.Namespace" in text and "OmegaConf.to_container" in text, text
    assert text.index("if you trust this file") < text.index("weights_only=False")


def _clap_folder(folder: Path, weights: bytes, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "clap", "architectures": ["ClapModel"]}))
    (folder / name).write_bytes(weights)
    return folder


def test_clap_converter_refuses_unsafe_and_broken_weights(corpus, tmp_path):
    """Before: an unsafe pytorch_model.bin reached transformers' torch.load, whose UnpicklingError (not caught by the
    CLI) was a long traceback repeating torch's weights_only=False advice."""
    from hf_alm.convert.clap import convert

    files, marker = corpus
    cases = {"payload_zip.pt": "pytorch_model.bin", "payload_raw_p5.bin": "pytorch_model.bin",
             "truncated.pt": "pytorch_model.bin", "wav_renamed.pt": "pytorch_model.bin",
             "lying_header.safetensors": "model.safetensors", "random.pt": "model.safetensors"}
    for source, name in cases.items():
        folder = _clap_folder(tmp_path / f"clap_{source}", files[source].read_bytes(), name)
        with pytest.raises((ValueError, OSError)) as info:
            convert(folder, tmp_path / f"out_{source}", no_verify=True)
        _assert_clear(info.value, folder / name)
        assert isinstance(info.value, CheckpointError)
    assert not marker.exists()


def test_check_weight_files_passes_a_saved_model(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(3)}, tmp_path / "model.safetensors")
    torch.save({"w": torch.ones(3)}, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text("{}")
    import argparse  # a Trainer folder's training_args.bin pickles objects but is never loaded: not refused

    torch.save(argparse.Namespace(lr=1.0), tmp_path / "training_args.bin")
    check_weight_files(tmp_path)  # no error
    torch.save(argparse.Namespace(lr=1.0), tmp_path / "pytorch_model-00002-of-00002.bin")
    with pytest.raises(UnsafeCheckpointError, match="pytorch_model-00002-of-00002.bin is not a weights file: it "
                                                    "pickles the Python object argparse.Namespace"):
        check_weight_files(tmp_path)


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_gives_one_line_for_every_hostile_file(corpus, tmp_path, capsys):
    from hf_alm.cli import main

    files, marker = corpus
    for family in ("beats", "one_peace"):
        for name, path in files.items():
            assert main(["convert", family, str(path), str(tmp_path / "out")]) == 1
            err = capsys.readouterr().err.strip()
            assert err.startswith("hf-alm convert: error: ") and str(path) in err, err
            assert "\n" not in err and not any(a in err for a in TORCH_ADVICE), err
    folder = _clap_folder(tmp_path / "clap", files["payload_zip.pt"].read_bytes(), "pytorch_model.bin")
    assert main(["convert", "clap", str(folder), str(tmp_path / "out"), "--no_verify"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("hf-alm convert: error: ") and "pytorch_model.bin" in err and "\n" not in err, err
    assert not marker.exists()


def test_cli_subprocess_never_runs_a_payload(corpus, tmp_path):
    """The real entry point as its own process (convert one_peace, the path that used to unpickle in full): exit 1,
    one error line, no traceback, no marker. The other families go through the same main() in-process above."""
    files, marker = corpus
    out = subprocess.run([sys.executable, "-m", "hf_alm.cli", "convert", "one_peace", str(files["payload_legacy.pt"]),
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("hf-alm convert: error: ") and "pickles the Python object builtins.exec" in \
        lines[-1], out.stderr
    assert "Traceback" not in out.stderr and not any(a in out.stderr for a in TORCH_ADVICE), out.stderr
    assert not marker.exists(), "hf-alm convert one_peace ran the payload"


def test_cli_eval_refuses_an_unsafe_model_folder(corpus, tmp_path, capsys):
    from hf_alm.cli import main

    files, marker = corpus
    folder = _clap_folder(tmp_path / "model", files["payload_zip.pt"].read_bytes(), "pytorch_model.bin")
    assert main(["eval", "zste", str(folder), "--dataset", "synthetic"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("hf-alm eval: error: ") and str(folder / "pytorch_model.bin") in err and "\n" not in err, err
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------ other loaders
def test_beats_feature_cache_is_read_safely(corpus, tmp_path):
    """hf_alm.training.beats.cached_clips reads its .pt cache with the same loader: a planted payload is refused."""
    import hashlib

    from hf_alm.training import beats as tb

    files, marker = corpus

    class FE:
        def to_dict(self):
            return {"x": 1}

    ds = [0, 1]
    payload = json.dumps({"dataset": "d", "n": 2, "max_seconds": None, "crop": "start", "fe": {"x": 1}},
                         sort_keys=True, default=str)
    cache = tmp_path / "cache" / f"fbank_{hashlib.sha1(payload.encode()).hexdigest()[:16]}.pt"
    cache.parent.mkdir()
    cache.write_bytes(files["payload_zip.pt"].read_bytes())
    with pytest.raises(UnsafeCheckpointError) as info:
        tb.cached_clips(tmp_path / "cache", ds, FE(), dataset_spec="d", max_seconds=None, crop="start",
                        is_main=False)
    _assert_clear(info.value, cache)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------ weights as garbage
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.bool])
def test_beats_refuses_integer_classifier_weights(beats_reference_path, tmp_path, dtype):
    """Before: an int32 predictor.weight was cast by load_state_dict into a silent all-zero (or 0/1) head."""
    from hf_alm.convert.beats import convert

    ckpt = torch.load(beats_reference_path / "beats_dev_finetuned.pt", weights_only=True)
    ckpt["model"]["predictor.weight"] = ckpt["model"]["predictor.weight"].to(dtype)
    torch.save(ckpt, tmp_path / "int.pt")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path / 'int.pt'))}: checkpoint weight "
                                         rf"predictor\.weight has dtype {re.escape(str(dtype))} "
                                         r"where the model expects floating-point weights \(torch\.float32\)"):
        convert(tmp_path / "int.pt", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    ckpt["model"]["predictor.weight"] = ckpt["model"]["predictor.weight"].float().fill_(float("nan"))
    torch.save(ckpt, tmp_path / "nan.pt")
    with pytest.raises(ValueError, match=r"checkpoint weight predictor\.weight has non-finite values \(first: nan\)"):
        convert(tmp_path / "nan.pt", tmp_path / "out")


def test_one_peace_refuses_integer_weights(tmp_path):
    from test_one_peace_convert import CFG, build_original

    from hf_alm.convert.one_peace import convert

    sd = build_original(decoder=False)
    key = next(k for k in sd if k.endswith("text_proj.weight"))
    sd[key] = sd[key].to(torch.int32)
    torch.save({"cfg": CFG, "model": sd}, tmp_path / "int.pt")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path / 'int.pt'))}: checkpoint weight "
                                         rf"{re.escape(key)} has dtype torch\.int32 where the model "
                                         r"expects floating-point weights"):
        convert(tmp_path / "int.pt", tmp_path / "out")


# ------------------------------------------------------------------------------------------------ training resume
def _fit(tmp_path, name, **kw):
    from test_training_loop import _collate, _data, _loss, _Net

    from hf_alm.training.loop import TrainConfig, fit

    config = TrainConfig(output_dir=str(tmp_path / name), num_epochs=3, batch_size=8, learning_rate=1e-2,
                         warmup_ratio=0.2, seed=3, **kw.pop("config", {}))
    return fit(_Net(), _data(), collate_fn=_collate, compute_loss=_loss, config=config, **kw)


class _Stop(Exception):
    pass


def _cut_after(tmp_path, name, last_epoch):
    def stop(epoch, metrics):
        if epoch == last_epoch:
            raise _Stop

    with pytest.raises(_Stop):
        _fit(tmp_path, name, on_epoch_end=stop)
    return tmp_path / name / "checkpoints" / "train"


def test_latest_falls_back_past_a_truncated_checkpoint(tmp_path, capsys):
    """Before: a truncated model.safetensors in the newest epoch was a raw SafetensorError, no path, no fallback."""
    from hf_alm.utils import CheckpointError

    full = _fit(tmp_path, "full")
    stage = _cut_after(tmp_path, "cut", 1)
    weights = stage / "epoch_1" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    capsys.readouterr()
    with pytest.raises(CheckpointError) as info:  # that epoch named explicitly: a clear error naming the file
        _fit(tmp_path, "cut", config={"resume_from_checkpoint": str(stage / "epoch_1")})
    assert str(weights) in str(info.value) and "truncated" in str(info.value), str(info.value)
    resumed = _fit(tmp_path, "cut", config={"resume_from_checkpoint": "latest"})
    err = capsys.readouterr().err
    assert f"warning: [train] checkpoint {stage / 'epoch_1'} cannot be resumed from ({weights}" in err, err
    assert resumed.resumed_from == str(stage / "epoch_0")
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in full.history], abs=1e-7)
    assert check_safetensors_file(weights)  # epoch 1 was trained again and re-saved whole


def test_latest_with_every_checkpoint_broken_is_an_error(tmp_path):
    from hf_alm.utils import CheckpointError

    stage = _cut_after(tmp_path, "cut", 0)
    (stage / "epoch_0" / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"no checkpoint under .* can be resumed from \(the newest: .*"
                                              r"model\.safetensors is empty \(0 bytes\)\)"):
        _fit(tmp_path, "cut", config={"resume_from_checkpoint": "latest"})


def test_resume_never_unpickles_a_planted_scheduler_state(tmp_path):
    """accelerate loads custom_checkpoint_*.pkl (our scheduler) with weights_only=False: before, a payload planted
    there ran on resume. Now it is refused before accelerate reads it."""
    marker = tmp_path / "MARKER"
    stage = _cut_after(tmp_path, "cut", 0)
    target = stage / "epoch_0" / "custom_checkpoint_0.pkl"
    assert target.is_file()
    state = torch.load(target, weights_only=True)  # a valid LambdaLR state: the old code resumed without a word
    torch.save({**state, "x": _Payload(marker)}, target)
    with pytest.raises(UnsafeCheckpointError) as info:
        _fit(tmp_path, "cut", config={"resume_from_checkpoint": "latest"})
    assert str(target) in str(info.value) and "builtins.exec" in str(info.value)
    assert not marker.exists()


def test_stale_temp_folders_of_a_killed_run_are_removed_and_never_resumed(tmp_path):
    import shutil

    stage = _cut_after(tmp_path, "cut", 0)
    stale = stage / ".epoch_7.tmp"  # a save killed after writing everything but before the rename
    shutil.copytree(stage / "epoch_0", stale)
    resumed = _fit(tmp_path, "cut", config={"resume_from_checkpoint": "latest"})
    assert resumed.resumed_from == str(stage / "epoch_0") and not stale.exists()
    assert sorted(p.name for p in stage.iterdir()) == ["epoch_0", "epoch_1", "epoch_2"]


def test_save_pretrained_into_removes_a_killed_final_save(tmp_path):
    """Before: a process killed during the final save left .final.tmp-* in the output folder for good."""
    import socket

    from hf_alm.utils import save_pretrained_into

    out = tmp_path / "run"
    out.mkdir()
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    left = [out / ".final.tmp-k3j9x_2a", out / f".final.tmp-{dead}@{host}~abcd1234"]  # old-style / killed process
    live = out / f".final.tmp-{os.getppid()}@{host}~abcd1234"  # another live process: not ours to remove
    for folder in (*left, live):
        folder.mkdir()
        (folder / "config.json").write_text("{}")

    class Obj:
        def save_pretrained(self, folder):
            (Path(folder) / "config.json").write_text('{"ok": 1}')

    save_pretrained_into(out, Obj())
    assert json.loads((out / "config.json").read_text()) == {"ok": 1}
    assert not any(p.exists() for p in left) and live.is_dir()
    assert sorted(p.name for p in out.iterdir()) == sorted(["config.json", live.name])


def test_atomic_directory_removes_temp_folders_of_a_killed_write(tmp_path):
    from hf_alm.utils import atomic_directory

    stale = tmp_path / ".out.tmp-ab12cd34"
    stale.mkdir()
    (tmp_path / ".out.tmp-2.tmp-ab12cd34").mkdir()  # another output's (out.tmp-2) temp folder: not touched
    with atomic_directory(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("a")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.tmp-2.tmp-ab12cd34", "out"]


def test_cli_turns_any_refused_pickle_into_one_line(monkeypatch, capsys):
    """A weights-only refusal raised deeper down (e.g. transformers reading a Hub download we did not pre-check) is
    an UnpicklingError, which the CLI used to print as a traceback with torch's weights_only=False advice."""
    from hf_alm import cli

    def refuse(args):
        raise pickle.UnpicklingError("Weights only load failed. In PyTorch 2.6, we changed ... Re-running `torch.load` "
                                     "with `weights_only` set to `False` will likely succeed, but it can result in "
                                     "arbitrary code execution.\n\nTrying to load unsupported GLOBAL posix.system "
                                     "whose module posix is blocked.")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser.set_defaults(func=refuse, command="convert")
    assert cli.main([]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("hf-alm convert: error: a weights file pickles the Python object posix.system, which hf-alm "
                          "never unpickles") and "\n" not in err and not any(a in err for a in TORCH_ADVICE), err
