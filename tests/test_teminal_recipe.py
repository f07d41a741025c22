"""recipes/teminal.py end to end on a tiny config (subprocesses), exact resume, outputs, and the stage builders."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "teminal.py"
TINY = ["--preset", "tiny", "--num_per_class", "4", "--num_eval_pairs", "4", "--num_val_pairs", "4", "--gap_seconds", "0", "0.05",
        "--base_views_per_clip", "1", "--stage_b_units_per_clip", "0.5", "--base_batch_size", "16",
        "--teminal_b_batch_size", "6", "--eval_batch_size", "32", "--vocab_size", "400", "--seed", "3"]


def _run(args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="2", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1")
    proc = subprocess.run([sys.executable, str(RECIPE), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def _state(out, stage):
    epochs = sorted((out / "checkpoints" / stage).glob("epoch_*"))
    return json.loads((epochs[-1] / "trainer_state.json").read_text())


def _weights(out):
    from safetensors.torch import load_file

    return load_file(str(out / "model.safetensors"))


@pytest.mark.slow
def test_recipe_runs_and_resumes_exactly(tmp_path):
    import shutil

    # step budgets (the default mode): 2 rounds of stage B, each drawing fresh pairs, one validation per round
    common = TINY + ["--stages", "base,teminal_b", "--base_steps", "2", "--teminal_b_steps", "4", "--val_rounds", "2"]
    full, part = tmp_path / "full", tmp_path / "part"
    proc = _run(common + ["--output_dir", str(full)])
    assert re.search(r"\[teminal_b\] kept round [12]/2 \(step [24] of 4\)", proc.stdout + proc.stderr)
    # an interrupted run: its checkpoints stop after the first round of stage B (same config, so the same schedule)
    shutil.copytree(full / "checkpoints", part / "checkpoints")
    shutil.rmtree(part / "checkpoints" / "teminal_b" / "epoch_1")
    proc = _run(common + ["--output_dir", str(part), "--resume_from_checkpoint", "latest"])
    log = proc.stdout + proc.stderr
    assert "[base] already finished; skipping" in log  # the base stage was restored, not retrained
    assert "[teminal_b] resumed from" in log and "epoch_0" in log

    # same per-step losses in the resumed epoch as in the uninterrupted run, and the same final weights
    h_full = [r["loss"] for r in _state(full, "teminal_b")["history"] if r["epoch"] == 1]
    h_part = [r["loss"] for r in _state(part, "teminal_b")["history"] if r["epoch"] == 1]
    assert len(h_full) == 2 and h_full == pytest.approx(h_part, rel=1e-6, abs=1e-7)
    # the second round drew other pairs than the first (fresh pairs every round), the same in both runs
    h0 = [r["loss"] for r in _state(full, "teminal_b")["history"] if r["epoch"] == 0]
    assert h0 != pytest.approx(h_full, rel=1e-3)
    w_full, w_part = _weights(full), _weights(part)
    assert w_full.keys() == w_part.keys()
    for k in w_full:
        torch.testing.assert_close(w_part[k], w_full[k], rtol=1e-6, atol=1e-7, msg=k)

    # outputs: eval_results.json with per-stage ZSTE metrics, a model and processor that the Auto classes load
    res = json.loads((full / "eval_results.json").read_text())
    stage_keys = [k for k in res if k in ("base", "teminal_b")]
    assert stage_keys == ["base", "teminal_b"] and list(res)[-1] == "teminal_b"
    for stage in stage_keys:
        for key in ("order_accuracy", "relation_accuracy", "zero_shot_accuracy", "audio_to_text_R@1",
                    "audio_to_text_R@10", "text_to_audio_R@5"):
            assert 0.0 <= res[stage][key] <= 1.0, (stage, key)
    assert res["summary"]["compared"] == ["base", "teminal_b"]
    for stage in stage_keys:  # the verdict: chance, interval and control of every multiple-choice metric
        for m in ("order_accuracy", "zero_shot_accuracy"):
            lo, hi = res[stage][f"{m}_ci95"]
            assert lo <= res[stage][m] <= hi and f"{m}_chance" in res[stage] and f"{m}_control" in res[stage]
    assert res["split"]["val"] > 0 and res["selection"]["teminal_b"]["rounds"] == 2
    assert isinstance(res["warnings"], list)
    assert res["summary"]["order_accuracy_gain_points"] == pytest.approx(
        100 * (res["teminal_b"]["order_accuracy"] - res["base"]["order_accuracy"]), abs=0.01)

    import hf_alm  # noqa: F401
    from transformers import AutoModel, AutoProcessor

    from hf_alm.evaluation.zste import evaluate_zste

    model = AutoModel.from_pretrained(full).eval()
    processor = AutoProcessor.from_pretrained(full)
    for k, v in model.state_dict().items():
        if k in w_full:
            torch.testing.assert_close(v, w_full[k])
    # re-evaluating the saved model reproduces the recorded numbers (same held-out set, deterministic ZSTE)
    from hf_alm.data.synthetic import make_synthetic_dataset
    from hf_alm.training.teminal import TeminalConfig, prepare_teminal_data

    cfg = TeminalConfig(**{k: v for k, v in res["teminal_config"].items()})
    data = prepare_teminal_data(make_synthetic_dataset(4, sampling_rate=48000), sampling_rate=48000, config=cfg)
    again = evaluate_zste(model, processor, data.zste_input(), batch_size=32, sampling_rate=48000,
                          class_names=data.class_names, seed=3)
    for key in ("order_accuracy", "zero_shot_accuracy", "text_to_audio_R@5"):
        assert again[key] == pytest.approx(res["teminal_b"][key], abs=1e-9), key


def test_help_documents_every_flag():
    sys.path.insert(0, str(ROOT / "recipes"))
    try:
        import teminal as recipe
    finally:
        sys.path.pop(0)
    parser = recipe.build_parser()
    undocumented = [a.dest for a in parser._actions if a.dest != "help" and not (a.help and a.help.strip())]
    assert undocumented == []
    text = parser.format_help()
    for flag in ("--dataset", "--model_name_or_path", "--stages", "--base_epochs", "--teminal_a_learning_rate",
                 "--teminal_b_batch_size", "--alpha_same", "--alpha_cross", "--resume_from_checkpoint",
                 "--report_to", "--push_to_hub", "--hub_model_id", "--stage_a_single_fraction"):
        assert flag in text, flag
    assert "TeminAL-style" in text and "not public" in text
    with pytest.raises(SystemExit, match="unknown stage"):
        recipe.main(["--stages", "base,teminal_c"])


# --- stage builders (no subprocess) -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_data():
    from hf_alm.data.synthetic import make_synthetic_dataset
    from hf_alm.training.teminal import TeminalConfig, prepare_teminal_data

    cfg = TeminalConfig(window_seconds=0.5, gap_seconds=(0.0, 0.05), num_eval_pairs=4, seed=1)
    ds = make_synthetic_dataset(5, sampling_rate=16000, classes=["rising chirp", "bell", "hiss", "knocking"])
    return cfg, prepare_teminal_data(ds, sampling_rate=16000, config=cfg)


def test_held_out_sources_never_train(tiny_data):
    cfg, data = tiny_data
    assert data.train_source_ids and data.eval_source_ids
    assert not data.train_source_ids & data.eval_source_ids
    comp_sources = {s for ids in data.eval_compositions["source_ids"] for s in ids}
    assert comp_sources <= data.eval_source_ids
    n = int(round(cfg.event_length_seconds * 16000))
    assert all(len(w) <= n for w in data.train.waves)


def test_stage_b_batch_layout_and_reversal(tiny_data):
    from hf_alm.data.compositions import relation_captions
    from hf_alm.training.teminal import TeminalCollator, render_item, reverse_item, stage_b_units

    cfg, data = tiny_data
    units = stage_b_units(data.train, cfg)
    assert units == stage_b_units(data.train, cfg)  # seeded, deterministic

    class Recorder:
        def __call__(self, text=None, audio=None, sampling_rate=None, return_tensors=None):
            self.text, self.audio = text, audio
            return {"input_ids": torch.zeros(len(text), 2, dtype=torch.long)}

    rec = Recorder()
    batch = TeminalCollator(data.train, rec, cfg)(units[:4])
    n = int(batch["n_orig"])
    assert n == 4 and len(rec.text) == 8 + sum(len(u[2]) for u in units[:4])
    for k, unit in enumerate(units[:4]):
        _, i, j, gap, t = unit[1]
        orig_wave, rev_wave = rec.audio[k], rec.audio[n + k]
        # the reversal holds the same two events and gap, in the other order
        a, b = data.train.waves[i], data.train.waves[j]
        g = int(round(gap * 16000))
        np.testing.assert_allclose(orig_wave[: len(a)], a, atol=1e-6)
        np.testing.assert_allclose(rev_wave[: len(b)], b, atol=1e-6)
        np.testing.assert_allclose(rev_wave[len(b) + g :], a, atol=1e-6)
        # captions: the same template, events swapped
        caps_ab = relation_captions(data.train.name(i), data.train.name(j), "before")
        caps_ba = relation_captions(data.train.name(j), data.train.name(i), "before")
        assert rec.text[k] == caps_ab[t % len(caps_ab)] and rec.text[n + k] == caps_ba[t % len(caps_ba)]
        assert rec.text[k] != rec.text[n + k]
        assert render_item(data.train, reverse_item(unit[1]), collate_templates(), cfg)[1] == rec.text[n + k]


def collate_templates():
    from hf_alm.evaluation.zste import ZsteTemplates

    return ZsteTemplates()


def test_stage_a_mix_follows_fractions(tiny_data):
    from dataclasses import replace

    from hf_alm.training.teminal import stage_a_items

    cfg, data = tiny_data
    cfg = replace(cfg, stage_a_items_per_clip=200.0, stage_a_single_fraction=0.5, stage_a_overlap_fraction=0.25)
    kinds = [it[0] for it in stage_a_items(data.train, cfg)]
    frac = {k: kinds.count(k) / len(kinds) for k in ("single", "overlap", "sequence")}
    assert frac["single"] == pytest.approx(0.5, abs=0.03)
    assert frac["overlap"] == pytest.approx(0.25, abs=0.03)
    # compositions always pair two different classes
    for it in stage_a_items(data.train, cfg)[:200]:
        if it[0] != "single":
            assert data.train.labels[it[1]] != data.train.labels[it[2]]


def test_bad_config_is_named():
    from hf_alm.training.teminal import TeminalConfig

    with pytest.raises(ValueError, match="alpha_same.*-2"):
        TeminalConfig(alpha_same=-2.0)
    with pytest.raises(ValueError, match="stage_a_single_fraction \\+ stage_a_overlap_fraction.*0.8 \\+ 0.5"):
        TeminalConfig(stage_a_single_fraction=0.8, stage_a_overlap_fraction=0.5)
    with pytest.raises(ValueError, match="window_seconds=0.2"):
        TeminalConfig(window_seconds=0.2)


def _recipe():
    sys.path.insert(0, str(ROOT / "recipes"))
    try:
        import teminal as recipe
    finally:
        sys.path.pop(0)
    return recipe


def test_help_states_each_default_once_with_the_stage_defaults():
    """--help printed '(default: all) (default: None)' and '--num_epochs ... (default: None)' although the stages
    default to 6 / 2 / 8 epochs; the usage examples were missing and the default job was said to take ~2 min."""
    parser = _recipe().build_parser()
    text = " ".join(parser.format_help().split())
    assert "(default: None)" not in text
    assert not re.search(r"\(default:[^()]*\) \(default:", text)  # never two defaults in a row
    assert "epochs per training stage (default: none: each stage runs its step budget (--<stage>_steps); given, " \
           "every stage trains this many epochs over the training clips)" in text
    assert "optimizer steps of stage teminal_b, whatever the dataset size (default: 300;" in text
    assert "peak AdamW learning rate (default: each stage's own: base 0.001, teminal_a 0.0003, teminal_b 0.001" in text
    assert "stage teminal_b (default: --batch_size if given, else 24)" in text
    assert "split of a Hub / local dataset with several splits (default: all)" in text
    assert "accelerate launch recipes/teminal.py # CPU, embedded synthetic data, ~7 min" in text
    assert "--resume_from_checkpoint latest" in text


def test_bad_resume_path_fails_before_data_and_tokenizer(tmp_path):
    """Was detected only inside fit(), after data loading and tokenizer training, with OUT/checkpoints/processor
    already written."""
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        _recipe().main([*TINY, "--output_dir", str(out), "--resume_from_checkpoint", str(tmp_path / "nope")])
    assert str(info.value) == f"--resume_from_checkpoint: no such folder: {tmp_path / 'nope'}"
    assert not out.exists()


def test_fresh_run_over_an_earlier_run_with_another_preset_stops(tmp_path):
    """Reusing an output folder mixed runs: a later `--resume_from_checkpoint latest` picked a stale epoch and
    crashed with a huge state_dict error (or silently resumed the wrong run)."""
    from hf_alm.training.loop import run_identity

    recipe = _recipe()
    out = tmp_path / "out"
    epoch = out / "checkpoints" / "base" / "epoch_5"
    epoch.mkdir(parents=True)
    old = run_identity(recipe.build_parser().parse_args([*TINY, "--preset", "small"]), recipe=recipe.RECIPE,
                       model_type=recipe.MODEL_TYPE, ignore=recipe.NOT_RUN_IDENTITY)
    (epoch / "trainer_state.json").write_text(json.dumps({"epoch": 5, "global_step": 30, "run": old}))
    with pytest.raises(SystemExit, match="already holds checkpoints of an earlier run; pass --resume_from_checkpoint "
                                         "latest to continue it or --overwrite_output_dir to start over"):
        recipe.main([*TINY, "--output_dir", str(out)])
    with pytest.raises(SystemExit, match=r"differing: --preset: 'small' \(recorded\) != 'tiny' \(now\)"):
        recipe.main([*TINY, "--output_dir", str(out), "--resume_from_checkpoint", "latest"])
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["base"]  # no processor written


# --- step budgets, model selection, seeds --------------------------------------------------------------------------

def test_stage_items_draw_fresh_pairs_per_round_deterministically(tiny_data):
    from hf_alm.training.teminal import StageItems, step_budget

    cfg, data = tiny_data
    items = StageItems("teminal_b", data.train, cfg, 12)
    round0 = [items[k] for k in range(12)]
    assert [items[k] for k in reversed(range(12))] == round0[::-1]  # an item does not depend on the visiting order
    items.set_epoch(1)
    round1 = [items[k] for k in range(12)]
    assert round1 != round0 and all(u[0] == "unit" for u in round1)
    again = StageItems("teminal_b", data.train, cfg, 12)
    again.set_epoch(1)
    assert [again[k] for k in range(12)] == round1  # a resumed run draws the same items
    for kind, i, j, *_ in (u[1] for u in round0 + round1):
        assert data.train.labels[i] != data.train.labels[j]
    with pytest.raises(IndexError):
        items[12]
    # the budget: 10 steps in 4 rounds -> 3 steps per round (12 steps), items for every process and accumulation
    b = step_budget(10, 4, batch_size=8, world_size=2, accumulation=3)
    assert b == {"num_epochs": 4, "items_per_round": 3 * 8 * 2 * 3, "steps_per_round": 3, "total_steps": 12}
    assert step_budget(2, 4, batch_size=8)["num_epochs"] == 2


def test_stage_length_does_not_shrink_with_the_dataset():
    """Epochs over source clips gave a 193-clip dataset 48 base steps: a step budget gives any dataset the same."""
    recipe = _recipe()
    for n in (20, 20000):
        args = recipe.build_parser().parse_args([])
        s = recipe._stage_settings(args, "teminal_b")
        assert s["steps"] == recipe.STAGE_DEFAULTS["teminal_b"]["steps"] and "num_epochs" not in s, n
    args = recipe.build_parser().parse_args(["--teminal_b_epochs", "3"])
    assert recipe._stage_settings(args, "teminal_b")["num_epochs"] == 3  # epochs stay available


def test_keep_best_round_loads_the_best_validation_round(tmp_path):
    from safetensors.torch import save_model

    from hf_alm.training.loop import FitResult
    from hf_alm.training.teminal import keep_best_round

    model = torch.nn.Linear(3, 2)
    best = {k: v.clone() for k, v in model.state_dict().items()}
    (tmp_path / "epoch_1").mkdir()
    save_model(model, str(tmp_path / "epoch_1" / "model.safetensors"))
    with torch.no_grad():
        model.weight.add_(1.0)
    result = FitResult(model=model, epoch_metrics=[{"epoch": 0, "val_score": 0.4}, {"epoch": 1, "val_score": 0.7},
                                                   {"epoch": 2, "val_score": 0.7, "val_order_accuracy": 0.9}],
                       history=[{"epoch": e, "step": 5 * (e + 1)} for e in range(3)])
    kept = keep_best_round(model, result, tmp_path)
    assert kept["round"] == 2 and kept["step"] == 10 and kept["total_steps"] == 15  # earliest of the tied best
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, best[k])
    result.epoch_metrics[2]["val_score"] = 0.9  # the last round is best: nothing to load
    with torch.no_grad():
        model.weight.add_(1.0)
    w = model.weight.clone()
    assert keep_best_round(model, result, tmp_path)["round"] == 3
    torch.testing.assert_close(model.weight, w)
    assert keep_best_round(model, FitResult(model=model, epoch_metrics=[{"epoch": 0}]), tmp_path) is None


def test_seed_summary_is_mean_and_sd(tmp_path):
    import statistics

    from hf_alm.training.teminal import summarize_seeds

    paths = {}
    for seed, (before, after) in {0: (0.5, 0.8), 1: (0.48, 0.7), 2: (0.52, 0.9)}.items():
        payload = {"summary": {"compared": ["base", "teminal_b"]}, "base": {"order_accuracy": before},
                   "teminal_b": {"order_accuracy": after}}
        paths[seed] = tmp_path / f"{seed}.json"
        paths[seed].write_text(json.dumps(payload))
    text = summarize_seeds(paths, tmp_path / "summary.json")
    stats = json.loads((tmp_path / "summary.json").read_text())["metrics"]["order_accuracy change"]
    changes = [30.0, 22.0, 38.0]
    assert stats["mean"] == pytest.approx(statistics.mean(changes))
    assert stats["sd"] == pytest.approx(statistics.stdev(changes))
    assert "order_accuracy change" in text and "30.0 +-  8.0" in text


def test_a_dataset_too_small_to_split_is_refused_before_training(tmp_path):
    with pytest.raises(SystemExit, match=r"--dataset synthetic: refusing this split \(\d+ train / 0 validation / 0 "
                                         r"test of \d+ clips\): no clip can be held out for testing"):
        _recipe().main([*TINY, "--num_per_class", "2", "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "model.safetensors").exists()
