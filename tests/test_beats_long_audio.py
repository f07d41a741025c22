"""Long audio with BEATs: sliding-window inference (BeatsForAudioClassification.predict_long) against an independent
reference (the plain forward on hand-cut fbank slices), its timestamps, memory that does not grow with the duration
beyond the audio itself, and the ``hf-alm tag`` command."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import wave

import numpy as np
import pytest
import torch

import hf_alm  # noqa: F401  (registers the Auto classes)
from hf_alm.modeling.beats import BeatsFeatureExtractor, BeatsForAudioClassification, tiny_beats_config

torch.set_num_threads(2)
SR = 16000
LABELS = {0: "dog", 1: "rain", 2: "siren"}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = tiny_beats_config(id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
                               problem_type="multi_label_classification")
    return BeatsForAudioClassification(config).eval()


def _audio(seconds, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    return (0.1 * torch.randn(t.shape, generator=g) + 0.3 * torch.sin(2 * torch.pi * 440 * t) * (t % 3 < 1)).float()


def test_a_clip_of_one_window_equals_the_plain_forward(model):
    fe = BeatsFeatureExtractor()
    for seconds in (2.0, 4.015):  # shorter than the window, and exactly one 4 s window (400 frames)
        clip = _audio(seconds)
        out = model.predict_long(clip, window_seconds=4.0, hop_seconds=2.0)
        with torch.no_grad():
            ref = model(**fe(clip, sampling_rate=SR, return_tensors="pt"))
        assert out.window_logits.shape == (1, 3)
        torch.testing.assert_close(out.logits, ref.logits[0], atol=1e-6, rtol=0)
        columns = ref.frame_logits[0].reshape(-1, 8, 3).mean(1)
        torch.testing.assert_close(out.frame_logits, columns, atol=1e-6, rtol=0)
        used = (1 + (clip.numel() - 400) // 160) // 16 * 16  # frames covered by patches
        torch.testing.assert_close(out.window_times, torch.tensor([[0.0, ((used - 1) * 160 + 400) / SR]]),
                                   atol=1e-6, rtol=0)


def test_windows_and_stitching_match_hand_cut_fbank_slices(model):
    clip = _audio(25.0, seed=1)
    out = model.predict_long(clip, window_seconds=4.0, hop_seconds=2.0, batch_size=3, pooling="max")
    fe = BeatsFeatureExtractor()
    fbank = fe(clip, sampling_rate=SR, return_tensors="pt")["input_values"][0]  # the whole clip's frames
    num_frames = fbank.shape[0]
    window, hop = 400, 192  # 4 s; 2 s rounded down to whole 16-frame columns
    last = (num_frames - window) // 16 * 16
    starts = list(range(0, last, hop)) + [last]
    assert last + window == num_frames // 16 * 16  # the last window ends at the last full column
    expected_times = [[s * 0.01, ((s + window - 1) * 160 + 400) / SR] for s in starts]
    torch.testing.assert_close(out.window_times, torch.tensor(expected_times), atol=1e-5, rtol=0)
    column_sum = torch.zeros(num_frames // 16, 3)
    column_count = torch.zeros(num_frames // 16, 1)
    with torch.no_grad():
        for i, s in enumerate(starts):
            ref = model(input_values=fbank[None, s: s + window])
            torch.testing.assert_close(out.window_logits[i], ref.logits[0], atol=1e-5, rtol=0)
            column_sum[s // 16: s // 16 + window // 16] += ref.frame_logits[0].reshape(-1, 8, 3).mean(1)
            column_count[s // 16: s // 16 + window // 16] += 1
    assert bool((column_count > 0).all())
    torch.testing.assert_close(out.frame_logits, column_sum / column_count, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.logits, out.window_logits.max(0).values)
    assert out.frame_times.shape == (num_frames // 16, 2)
    torch.testing.assert_close(out.frame_times[10], torch.tensor([1.6, (175 * 160 + 400) / SR]), atol=1e-5, rtol=0)
    mean = model.predict_long(clip, window_seconds=4.0, hop_seconds=2.0, output_frame_logits=False)
    torch.testing.assert_close(mean.logits, out.window_logits.mean(0), atol=1e-6, rtol=0)
    assert mean.frame_logits is None


def test_bad_arguments_name_the_value(model):
    clip = _audio(1.0)
    with pytest.raises(ValueError, match="pooling must be 'mean' or 'max', got 'median'"):
        model.predict_long(clip, pooling="median")
    with pytest.raises(ValueError, match=r"hop_seconds .* got 0.05"):
        model.predict_long(clip, hop_seconds=0.05)
    with pytest.raises(ValueError, match="sampling_rate=44100"):
        model.predict_long(clip, sampling_rate=44100)
    with pytest.raises(ValueError, match=r"1-D float audio .* shape \(2, 16000\)"):
        model.predict_long(torch.zeros(2, 16000))
    with pytest.raises(ValueError, match="NaN or Inf"):
        model.predict_long(torch.cat([torch.zeros(3 << 20), torch.tensor([float("nan")])]))
    with pytest.raises(ValueError, match="fewer than one patch"):
        model.predict_long(torch.zeros(1000))


MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, sys, torch
    import hf_alm
    from hf_alm.modeling.beats import BeatsForAudioClassification, tiny_beats_config
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = BeatsForAudioClassification(tiny_beats_config(num_labels=5)).eval()
    model.predict_long(torch.zeros(16000 * 90), window_seconds=10, hop_seconds=10, batch_size=8)  # warm-up
    minutes = float(sys.argv[1])
    wave = torch.zeros(int(minutes * 60 * 16000))
    wave[::7] = 0.1  # not silence
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = model.predict_long(wave, window_seconds=10, hop_seconds=10, batch_size=8)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_kb": after - before, "windows": out.window_logits.shape[0],
                      "columns": out.frame_logits.shape[0]}))
""")


def test_memory_does_not_grow_with_the_duration():
    """Peak RSS added by the inference itself (the waveform already allocated) for 10 and 60 minutes of audio, with a
    tiny model in fresh processes: roughly flat (a whole-clip forward would grow with the square of the length)."""
    growth = {}
    for minutes in (10, 60):
        run = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(minutes)], capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        result = json.loads(run.stdout.strip().splitlines()[-1])
        assert result["windows"] >= minutes * 6 and result["columns"] == (minutes * 60 * 100 - 2) // 16
        growth[minutes] = result["growth_kb"] / 1024
    # 60 min of 16 kHz float32 audio is 220 MiB; the inference must add far less than that on top, and about the
    # same as for 10 minutes
    assert growth[60] < growth[10] + 64, growth


def _write_wav(path, audio):
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(SR)
        fh.writeframes((np.clip(audio.numpy(), -1, 1) * 32767).astype("<i2").tobytes())
    return path


def test_cli_tag_writes_per_window_labels_atomically(model, tmp_path, capsys):
    import csv

    from hf_alm.cli import main

    folder = tmp_path / "beats"
    model.save_pretrained(folder)
    BeatsFeatureExtractor().save_pretrained(folder)
    audio = _write_wav(tmp_path / "long.wav", _audio(13.0, seed=2))
    assert main(["tag", str(folder), str(audio), str(tmp_path / "tags.json"), "--window_seconds", "4",
                 "--hop_seconds", "2", "--top_k", "2", "--no_progress"]) == 0
    result = json.loads((tmp_path / "tags.json").read_text())
    wave16 = hf_alm.data.audio.load_audio(str(audio), SR)
    ref = model.predict_long(wave16, window_seconds=4, hop_seconds=2)
    assert [w["start_s"] for w in result["windows"]] == pytest.approx(ref.window_times[:, 0].tolist(), abs=1e-3)
    assert len(result["windows"]) == 6 and result["duration_s"] == 13.0
    for w, logits in zip(result["windows"], ref.window_logits):
        top = logits.sigmoid().topk(2)  # multi-label head: sigmoid scores
        assert [x["label"] for x in w["labels"]] == [LABELS[int(i)] for i in top.indices]
        assert [x["score"] for x in w["labels"]] == pytest.approx(top.values.tolist(), abs=1e-5)
    assert result["clip_labels"][0]["label"] == LABELS[int(ref.logits.argmax())]
    assert main(["tag", str(folder), str(audio), str(tmp_path / "tags.csv"), "--window_seconds", "4",
                 "--hop_seconds", "2", "--top_k", "2", "--no_progress"]) == 0
    rows = list(csv.DictReader((tmp_path / "tags.csv").open()))
    assert len(rows) == 12 and rows[0].keys() == {"start_s", "end_s", "rank", "label", "score"}
    assert rows[2]["start_s"] == f"{result['windows'][1]['start_s']:.3f}" and rows[2]["rank"] == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beats", "long.wav", "tags.csv", "tags.json"]  # no temp
    capsys.readouterr()
    assert main(["tag", str(folder), str(audio), str(tmp_path / "tags.txt")]) == 1
    assert "OUT must end in .csv or .json, got" in capsys.readouterr().err
    from hf_alm.modeling.beats import BeatsModel

    BeatsModel(tiny_beats_config()).save_pretrained(tmp_path / "encoder")
    assert main(["tag", str(tmp_path / "encoder"), str(audio), str(tmp_path / "x.csv")]) == 1
    assert "needs a BEATs audio classifier" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
