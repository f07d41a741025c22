"""ONE-PEACE end to end: procedural image data, ZSTE on the model unchanged, the recipe (tiny) with resume."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def test_synthetic_images_are_deterministic_and_match_captions():
    from hf_alm.data.synthetic_images import COLOURS, POSITIONS, draw_sample, make_synthetic_image_dataset

    a = make_synthetic_image_dataset(12, image_size=32, seed=3)
    b = make_synthetic_image_dataset(12, image_size=32, seed=3)
    c = make_synthetic_image_dataset(12, image_size=32, seed=4)
    assert [np.asarray(x).tobytes() for x in a["image"]] == [np.asarray(x).tobytes() for x in b["image"]]
    assert a["canonical_caption"] != c["canonical_caption"]
    for i in range(40):
        img, attrs = draw_sample(i, seed=0, image_size=64)
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
        # the named colour is really drawn, near the named position
        target = np.array(COLOURS[attrs["colour"]], dtype=float)
        close = np.linalg.norm(img.astype(float) - target, axis=-1) < 60
        assert close.sum() >= 12, attrs
        ys, xs = np.nonzero(close)
        cy, cx = POSITIONS[attrs["position"]]
        assert abs(ys.mean() / 64 - cy) < 0.15 and abs(xs.mean() / 64 - cx) < 0.15, attrs
    row = a[0]
    assert row["caption"] in row["captions"] and all(row[k] in row["canonical_caption"]
                                                     for k in ("shape", "colour", "position", "size"))
    with pytest.raises(ValueError, match="num_samples"):
        make_synthetic_image_dataset(0)


def test_zste_runs_on_the_model_unchanged():
    """hf_alm.evaluation.zste.evaluate_zste (written for CLAP-TeminAL) on OnePeaceModelWithProjection + processor."""
    import datasets

    from hf_alm.data.compositions import make_compositions
    from hf_alm.data.synthetic import make_synthetic_dataset
    from hf_alm.evaluation.zste import evaluate_zste
    from hf_alm.modeling.one_peace import (OnePeaceConfig, OnePeaceFeatureExtractor, OnePeaceImageProcessor,
                                           OnePeaceModelWithProjection, OnePeaceProcessor)
    from hf_alm.training.tokenizer import train_caption_tokenizer

    singles = make_synthetic_dataset(1, duration_range=(0.3, 0.5)).select(range(0, 20, 5))
    comps = make_compositions(singles, num_pairs=2, sampling_rate=16000, seed=0, max_seconds=1.0)
    tok = train_caption_tokenizer(["a sound", "before after while", *[n.replace("_", " ") for n in
                                                                     singles["label_name"]]], vocab_size=300)
    proc = OnePeaceProcessor(OnePeaceFeatureExtractor(), OnePeaceImageProcessor(size={"height": 32, "width": 32}),
                             tok)
    torch.manual_seed(0)
    model = OnePeaceModelWithProjection(OnePeaceConfig.from_preset(
        "tiny", text_config={"vocab_size": len(tok), "max_position_embeddings": 66, "max_relative_positions": 128},
        audio_config={"max_relative_positions": 512}))
    res = evaluate_zste(model, proc, {"compositions": comps, "singles": singles}, batch_size=4)
    assert 0.0 <= res["order_accuracy"] <= 1.0 and 0.0 <= res["zero_shot_accuracy"] <= 1.0
    assert res["zero_shot_num_items"] == 4 and "audio_to_text_R@1" in res
    assert isinstance(singles, datasets.Dataset)


def _run(args, cwd):
    cmd = [sys.executable, str(REPO / "recipes" / "one_peace.py"), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


@pytest.mark.slow
def test_recipe_tiny_end_to_end_and_resume(tmp_path):
    out_dir = tmp_path / "run"
    # no --max_audio_seconds: the default must fit the tiny preset's audio positions (1.5 s failed in evaluation)
    common = ["--preset", "tiny", "--num_train_images", "16", "--num_eval_images", "8", "--num_per_class", "1",
              "--num_eval_per_class", "1", "--vl_epochs", "1", "--al_epochs", "2",
              "--batch_size", "8", "--vocab_size", "300", "--output_dir", str(out_dir), "--no_zste"]
    first = _run(common, tmp_path)
    log = first.stdout + first.stderr
    assert log.count("[eval vl]") == 1 and log.count("[eval al]") == 1  # each stage's results printed once
    assert not re.search(r"^(vl|al): ", log, re.M)
    results = json.loads((out_dir / "eval_results.json").read_text())
    assert results["final"] == "al" and results["stages"] == ["vl", "al"]
    for key in ("image_to_text_R@1", "text_to_image_R@1", "audio_to_text_R@1", "text_to_audio_R@1"):
        assert 0.0 <= results["al"][key] <= 1.0
    assert (out_dir / "checkpoints" / "vl" / "epoch_0").is_dir()
    assert (out_dir / "checkpoints" / "al" / "epoch_1").is_dir()
    import hf_alm  # noqa: F401
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(out_dir)
    proc = AutoProcessor.from_pretrained(out_dir)
    assert type(model).__name__ == "OnePeaceModelWithProjection"
    with torch.no_grad():
        emb = model.get_audio_features(**proc(audio=[np.zeros(16000, np.float32) + 0.1], sampling_rate=16000))
    assert emb.pooler_output.shape == (1, model.config.projection_dim)
    # the Hub staging (model card, remote code, eval results) accepts the output folder
    from hf_alm.hub import load_eval_results, stage

    flat = load_eval_results(out_dir / "eval_results.json")
    assert flat["stage"] == "al" and flat["audio_to_text_R@1"] == results["al"]["audio_to_text_R@1"]
    staged = stage(out_dir, tmp_path / "staged", repo_id="someone/one-peace-lite-test")
    card = (staged / "README.md").read_text()
    assert "ONE-PEACE" in card and (staged / "modeling_one_peace.py").is_file()
    # resume: both stages are already finished -> restored and skipped, same evaluation
    out = _run(common + ["--resume_from_checkpoint", "latest"], tmp_path)
    assert "already finished; skipping" in out.stdout + out.stderr
    again = json.loads((out_dir / "eval_results.json").read_text())
    assert again["al"]["audio_to_text_R@1"] == results["al"]["audio_to_text_R@1"]
    assert again["al"]["image_to_text_R@5"] == results["al"]["image_to_text_R@5"]
    state = json.loads((out_dir / "checkpoints" / "al" / "epoch_1" / "trainer_state.json").read_text())
    assert state["run"]["preset"] == "tiny" and state["run"]["max_audio_seconds"] == 1.28


def test_recipe_help_explains_every_flag():
    out = subprocess.run([sys.executable, str(REPO / "recipes" / "one_peace.py"), "--help"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    import re

    flags = set(re.findall(r"\n\s+(--[a-z_]+)", out.stdout))
    assert {"--dataset", "--preset", "--vl_epochs", "--al_epochs", "--push_to_hub", "--resume_from_checkpoint",
            "--output_dir"} <= flags
    # every option line is followed by some help text
    blocks = re.split(r"\n(?=\s+--)", out.stdout)
    for b in blocks:
        if b.strip().startswith("--"):
            assert len(b.split()) > 2, b


def _recipe():
    import importlib.util

    spec = importlib.util.spec_from_file_location("one_peace_recipe", REPO / "recipes" / "one_peace.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_max_audio_seconds_fits_the_preset_or_fails_before_training(tmp_path):
    """--preset tiny with the default 1.5 s trained a stage, then failed in evaluation: "audio of 278 frames exceeds
    max_relative_positions - 1 (255)"."""
    recipe = _recipe()
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        recipe.main(["--preset", "tiny", "--max_audio_seconds", "1.5", "--output_dir", str(out)])
    assert str(info.value) == ("--max_audio_seconds 1.5 is too long for --preset tiny: its audio position table holds "
                               "255 frames (audio_config.max_relative_positions - 1); the largest value that fits is "
                               "1.28")
    assert not out.exists()
    for preset, expected in (("tiny", 1.28), ("lite", 1.5)):
        args = recipe.build_parser().parse_args(["--preset", preset])
        recipe._check_max_audio_seconds(args)
        assert args.max_audio_seconds == expected
    # the limit is real: 1.28 s gives 255 frames, 1.29 s more
    from hf_alm.modeling.one_peace import OnePeaceConfig
    from hf_alm.modeling.one_peace.modeling_one_peace import conv_output_lengths

    layers = OnePeaceConfig.from_preset("tiny").audio_config.conv_feature_layers
    assert int(conv_output_lengths(torch.tensor([20480]), layers)) == 255
    assert int(conv_output_lengths(torch.tensor([20640]), layers)) > 255


def test_help_has_usage_examples_and_states_each_default_once():
    out = subprocess.run([sys.executable, str(REPO / "recipes" / "one_peace.py"), "--help"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "accelerate launch recipes/one_peace.py" in text and "--resume_from_checkpoint latest # continue" in text
    assert "(default: None)" not in text and not re.search(r"\(default:[^()]*\) \(default:", text)
    assert "epochs per training stage (default: each stage's own: vl 6, al 8; --<stage>_epochs wins)" in text
    assert "--preset tiny 1.28 s" in text
