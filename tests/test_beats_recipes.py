"""BEATs recipes: SpecAugment, batching/labels, pre-training (MAM -> tokenizer distillation -> MAM) and fine-tuning
(cross-validation, linear probe, resume), run as subprocesses with tiny flags."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_alm.training.beats import (SpecAugment, beats_preset_config, evaluation_units, loudest_window, mam_collate,
                                   pooled_embeddings)

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN = ROOT / "recipes" / "beats_pretrain.py"
FINETUNE = ROOT / "recipes" / "beats_finetune.py"
TINY = ["--dataset", "synthetic:2", "--batch_size", "8", "--seed", "1", "--num_threads", "1"]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem + "_recipe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(script: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env,
                          cwd=str(ROOT), timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script.name} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


# ------------------------------------------------------------------------------------------------ SpecAugment
def test_spec_augment_fixed_widths_mask_exactly_the_configured_bands():
    aug = SpecAugment(time_mask_width=7, freq_mask_width=5, num_time_masks=1, num_freq_masks=1, fixed_width=True,
                      mask_value=-3.0)
    x = torch.randn(4, 60, 128)
    mask = torch.ones(4, 60, dtype=torch.long)
    mask[1, 40:] = 0  # row 1 has 40 valid frames
    y = aug(x, mask, generator=torch.Generator().manual_seed(0))
    for b in range(4):
        changed = y[b] != x[b]
        assert torch.all(y[b][changed] == -3.0)
        time_rows = changed.all(dim=1).nonzero().flatten().tolist()  # whole frames masked
        freq_cols = changed.all(dim=0).nonzero().flatten().tolist()  # whole mel bins masked
        assert len(time_rows) == 7 and time_rows == list(range(time_rows[0], time_rows[0] + 7))
        assert len(freq_cols) == 5 and freq_cols == list(range(freq_cols[0], freq_cols[0] + 5))
        assert int(changed.sum()) == 7 * 128 + 5 * 60 - 7 * 5  # nothing else changed
        if b == 1:
            assert time_rows[-1] < 40  # time masks stay inside the valid frames


def test_spec_augment_random_widths_stay_within_the_maximum_and_reach_it():
    aug = SpecAugment(time_mask_width=6, freq_mask_width=3, num_time_masks=1, num_freq_masks=1)
    g = torch.Generator().manual_seed(1)
    widths_t, widths_f = set(), set()
    for _ in range(200):
        t, f = aug.masks(50, 16, batch=1, generator=g)
        widths_t.add(int(t.sum()))
        widths_f.add(int(f.sum()))
    assert widths_t == set(range(0, 7)) and widths_f == set(range(0, 4))  # uniform on 0..W: every width occurs
    x = torch.randn(2, 50, 16)
    assert torch.equal(SpecAugment(0, 0)(x), x)  # widths 0 = disabled
    with pytest.raises(ValueError, match="time_mask_width.*-1"):
        SpecAugment(time_mask_width=-1)


def test_loudest_window_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    wave = torch.randn(1000, generator=g) * torch.linspace(0.1, 1.0, 1000).roll(300)
    got = loudest_window(wave, 123)
    energies = [float((wave[s: s + 123].double() ** 2).sum()) for s in range(1000 - 123 + 1)]
    start = int(np.argmax(energies))
    assert torch.equal(got, wave[start: start + 123])
    assert torch.equal(loudest_window(wave[:50], 123), wave[:50])


# ------------------------------------------------------------------------------------------------ batching
def test_mam_batch_labels_match_the_tokenizer_on_the_padded_batch():
    """Per-clip labels padded by the collator = labels the tokenizer gives the padded batch on the valid patches
    (time-major patch order, time-aligned padding)."""
    from hf_alm.modeling.beats import BeatsForPreTraining, BeatsRandomProjectionTokenizer

    config = beats_preset_config("tiny")
    tok = BeatsRandomProjectionTokenizer(config)
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(n, 128, generator=g) for n in (40, 70, 33)]
    labels = [tok.extract_labels(f[None])[0] for f in feats]
    batch = mam_collate(feats, labels, config)([0, 1, 2])
    out = tok(batch["input_values"], attention_mask=batch["attention_mask"])
    valid = ~out.padding_mask
    assert batch["labels"].shape == out.labels.shape == (3, (70 // 16) * 8)
    assert torch.equal(batch["labels"][valid], out.labels[valid])
    assert valid.sum(1).tolist() == [(n // 16) * 8 for n in (40, 70, 33)]
    model = BeatsForPreTraining(config)
    with torch.no_grad():
        loss = model(**batch).loss
    assert torch.isfinite(loss) and abs(float(loss) - np.log(config.quant_n)) < 1.0  # ~ln(K) at initialisation


def test_pooled_embeddings_equal_each_clip_alone():
    from hf_alm.modeling.beats import BeatsModel

    model = BeatsModel(beats_preset_config("tiny")).eval()
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(n, 128, generator=g) for n in (48, 32, 48, 64)]
    emb = pooled_embeddings(model, feats, batch_size=2)
    with torch.no_grad():
        for i, f in enumerate(feats):
            torch.testing.assert_close(emb[i], model(f[None]).last_hidden_state.mean(1)[0], atol=1e-5, rtol=1e-5)


def test_evaluation_units_errors_name_the_value():
    import datasets

    ds = datasets.Dataset.from_dict({"fold": [1, 2, 3, 1], "label": [0, 1, 0, 1]})
    assert evaluation_units(ds, "auto") == [1, 2, 3]
    assert evaluation_units(ds, "2") == [2]
    with pytest.raises(ValueError, match="7"):
        evaluation_units(ds, "7")


# ------------------------------------------------------------------------------------------------ --help
@pytest.mark.parametrize("script", [PRETRAIN, FINETUNE], ids=["pretrain", "finetune"])
def test_help_explains_every_flag(script, capsys):
    recipe = _load(script)
    parser = recipe.build_parser()
    missing = [a.dest for a in parser._actions if a.dest != "help" and not (a.help or "").strip()]
    assert not missing
    with pytest.raises(SystemExit) as exit_info:
        recipe.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for action in parser._actions:
        for flag in action.option_strings:
            assert flag in text


@pytest.mark.parametrize("script,argv,needle", [
    (PRETRAIN, ["--mask_ratio", "1.5"], "--mask_ratio must be in (0, 1), got 1.5"),
    (PRETRAIN, ["--iterations", "0"], "--iterations must be >= 1, got 0"),
    (FINETUNE, ["--time_mask_width", "-2"], "--time_mask_width must be >= 0, got -2"),
])
def test_bad_flags_give_clear_errors(script, argv, needle):
    with pytest.raises(SystemExit, match=needle.replace("(", r"\(").replace(")", r"\)")):
        _load(script).main(argv)


# ------------------------------------------------------------------------------------------------ pre-training
@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("beats_pretrain") / "run"
    _run(PRETRAIN, *TINY, "--num_epochs", "3", "--tokenizer_epochs", "2", "--iterations", "2",
         "--output_dir", str(out))
    return out


def test_pretrain_writes_an_automodel_folder_and_learns(pretrained):
    import hf_alm  # noqa: F401
    from transformers import AutoFeatureExtractor, AutoModel

    from hf_alm.modeling.beats import BeatsAcousticTokenizer, BeatsModel

    results = json.loads((pretrained / "pretrain_results.json").read_text())
    stages = {s["stage"]: s for s in results["stages"]}
    assert list(stages) == ["iter1_mam", "iter2_tokenizer", "iter2_mam"]
    for name in ("iter1_mam", "iter2_mam"):  # masked-prediction loss goes down
        losses = stages[name]["step_losses"]
        assert len(losses) == 15
        assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.05, (name, losses)
    assert stages["iter1_mam"]["step_losses"][0] == pytest.approx(np.log(results["codebook_size"]), abs=0.5)
    tok_losses = stages["iter2_tokenizer"]["epoch_losses"]
    assert tok_losses[-1] < tok_losses[0]  # the estimator gets closer to the teacher

    model = AutoModel.from_pretrained(pretrained / "model")
    fe = AutoFeatureExtractor.from_pretrained(pretrained / "model")
    assert type(model) is BeatsModel and model.config.model_type == "hf_alm_beats"
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    inputs = fe(wave, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**inputs).last_hidden_state
    assert hidden.shape == (1, (inputs["input_values"].shape[1] // 16) * 8, model.config.hidden_size)
    assert torch.isfinite(hidden).all()
    # the final encoder is the last iteration's, not a fresh initialisation
    last = BeatsModel.from_pretrained(pretrained / "iterations" / "iter2")
    fresh = BeatsModel(model.config)
    for (name, a), b in zip(model.state_dict().items(), last.state_dict().values()):
        assert torch.equal(a, b), name
    assert not torch.equal(model.patch_embedding.weight, fresh.patch_embedding.weight)
    # the trained tokenizer: k-means-initialised unit-norm codebook, several codes in use
    tok = BeatsAcousticTokenizer.from_pretrained(pretrained / "tokenizers" / "iter2")
    assert float(tok.quantizer.initted) == 1.0
    torch.testing.assert_close(tok.quantizer.weight.norm(dim=-1), torch.ones(tok.config.quant_n))
    assert stages["iter2_tokenizer"]["label_codes_used"] > 1


# ------------------------------------------------------------------------------------------------ fine-tuning
FT = [*TINY, "--num_epochs", "2", "--eval_fold", "all", "--keep_checkpoints", "--time_mask_width", "8",
      "--freq_mask_width", "8"]


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    out = tmp_path_factory.mktemp("beats_finetune") / "run"
    _run(FINETUNE, *FT, "--output_dir", str(out))
    return out


@pytest.fixture(scope="module")
def synthetic2():
    from hf_alm.data.loaders import load_dataset_spec

    return load_dataset_spec("synthetic:2")


def _reference_accuracy(dataset, model_dir: Path, eval_fold: int) -> float:
    """Accuracy recomputed independently: dataset -> load_audio -> loudest 2 s -> Auto feature extractor -> Auto
    model, one clip at a time."""
    import hf_alm  # noqa: F401
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from hf_alm.data.audio import load_audio
    from hf_alm.data.loaders import fold_split

    model = AutoModelForAudioClassification.from_pretrained(model_dir).eval()
    fe = AutoFeatureExtractor.from_pretrained(model_dir)
    _, held_out = fold_split(dataset, eval_fold)
    correct = 0
    for row in held_out:
        wave = loudest_window(load_audio(row["audio"], 16000), 32000)
        with torch.no_grad():
            logits = model(**fe(wave.numpy(), sampling_rate=16000, return_tensors="pt")).logits
        correct += int(logits.argmax(-1).item() == row["label"])
    return correct / len(held_out)


def test_finetune_cross_validation_results(finetuned, synthetic2):
    results = json.loads((finetuned / "eval_results.json").read_text())
    assert results["protocol"] == "cross_validation" and results["eval_units"] == [1, 2]
    assert results["spec_augment"]["time_mask_width"] == 8
    accs = results["per_fold_accuracy"]
    assert results["accuracy"] == pytest.approx(np.mean(accs))
    for unit, acc in zip(results["eval_units"], accs):
        assert acc == pytest.approx(_reference_accuracy(synthetic2, finetuned / "folds" / f"fold_{unit}", unit))
    fold = results["per_fold"][0]
    assert fold["num_train_clips"] + fold["num_eval_clips"] == results["num_clips"] == 40
    assert len(fold["epoch_metrics"]) == 2 and "eval_accuracy" in fold["epoch_metrics"][0]


def test_finetune_resume_after_interruption_continues_exactly(finetuned, tmp_path, capsys):
    """Simulate a run killed during fold 2's second epoch: fold 1 finished, fold 2 has only epoch 0 saved."""
    run = tmp_path / "run"
    shutil.copytree(finetuned, run)
    shutil.rmtree(run / "checkpoints" / "fold_2" / "epoch_1")
    shutil.rmtree(run / "folds" / "fold_2")
    (run / "eval_results.json").unlink()
    capsys.readouterr()
    assert _load(FINETUNE).main([*FT, "--output_dir", str(run), "--resume_from_checkpoint", "latest"]) == 0
    stdout = capsys.readouterr().out
    assert "[fold_1] already finished" in stdout and "[fold_2] resumed from" in stdout
    state = json.loads((run / "checkpoints" / "fold_2" / "epoch_1" / "trainer_state.json").read_text())
    original = json.loads((finetuned / "checkpoints" / "fold_2" / "epoch_1" / "trainer_state.json").read_text())
    assert [h["loss"] for h in state["history"]] == pytest.approx([h["loss"] for h in original["history"]],
                                                                  abs=1e-6)
    a = json.loads((run / "eval_results.json").read_text())
    b = json.loads((finetuned / "eval_results.json").read_text())
    assert a["per_fold_accuracy"] == b["per_fold_accuracy"]


def test_linear_probe_freezes_the_pretrained_encoder(pretrained, synthetic2, tmp_path):
    from hf_alm.modeling.beats import BeatsForAudioClassification, BeatsModel

    out = tmp_path / "probe"
    assert _load(FINETUNE).main([*TINY, "--num_epochs", "3", "--eval_fold", "1", "--linear_probe",
                                 "--learning_rate", "1e-2", "--model_name_or_path", str(pretrained / "model"),
                                 "--output_dir", str(out)]) == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert results["linear_probe"] and results["spec_augment"] is None
    probe = BeatsForAudioClassification.from_pretrained(out / "folds" / "fold_1")
    encoder = BeatsModel.from_pretrained(pretrained / "model")
    for (name, a), b in zip(probe.beats.state_dict().items(), encoder.state_dict().values()):
        assert torch.equal(a, b), name  # frozen
    assert results["accuracy"] == pytest.approx(_reference_accuracy(synthetic2, out / "folds" / "fold_1", 1))


# ------------------------------------------------------------------------------------------------ output folder
def _identity(script: Path, argv):
    from hf_alm.training.loop import run_identity

    recipe = _load(script)
    return run_identity(recipe.build_parser().parse_args(argv), recipe=recipe.RECIPE, model_type=recipe.MODEL_TYPE,
                        ignore=recipe.NOT_RUN_IDENTITY)


def test_finetune_resume_refuses_a_fold_result_of_another_run_before_loading_data(tmp_path):
    """A fold counted as finished when folds/<fold>/fold_results.json existed, whatever run had written it."""
    out = tmp_path / "run"
    fold = out / "folds" / "fold_1"
    fold.mkdir(parents=True)
    other = _identity(FINETUNE, [*FT, "--preset", "base", "--output_dir", str(out)])
    (fold / "fold_results.json").write_text(json.dumps({"accuracy": 0.9, "num_eval_clips": 20, "run": other}))
    with pytest.raises(SystemExit) as info:
        _load(FINETUNE).main([*FT, "--output_dir", str(out), "--resume_from_checkpoint", "latest"])
    assert f"{fold / 'fold_results.json'} was written by another run; differing: --preset: 'base' (recorded) != " \
           "'tiny' (now)" in str(info.value)
    assert not (out / "feature_cache").exists()  # stopped before any clip was read


def test_pretrain_fresh_run_into_a_used_output_dir_stops_and_resume_path_is_checked(tmp_path):
    out = tmp_path / "run"
    stage = out / "checkpoints" / "iter1_mam" / "epoch_0"
    stage.mkdir(parents=True)
    (stage / "trainer_state.json").write_text(json.dumps({"epoch": 0, "global_step": 1,
                                                          "run": _identity(PRETRAIN, [*TINY])}))
    with pytest.raises(SystemExit) as info:
        _load(PRETRAIN).main([*TINY, "--output_dir", str(out)])
    assert str(info.value) == (f"{out} already holds checkpoints of an earlier run; pass --resume_from_checkpoint "
                               "latest to continue it or --overwrite_output_dir to start over")
    with pytest.raises(SystemExit, match="--resume_from_checkpoint: no such folder: .*nope"):
        _load(PRETRAIN).main([*TINY, "--output_dir", str(tmp_path / "new"), "--resume_from_checkpoint",
                              str(tmp_path / "nope")])
    assert not (tmp_path / "new").exists()


def test_finetune_records_the_run_in_every_fold_result_and_checkpoint(finetuned):
    for path in [finetuned / "folds" / "fold_1" / "fold_results.json",
                 finetuned / "checkpoints" / "fold_2" / "epoch_1" / "trainer_state.json"]:
        run = json.loads(path.read_text())["run"]
        assert run["recipe"] == "beats_finetune" and run["model_type"] == "hf_alm_beats"
        assert run["preset"] == "tiny" and run["dataset"] == "synthetic:2" and run["time_mask_width"] == 8
    results = json.loads((finetuned / "eval_results.json").read_text())
    assert "run" not in results["per_fold"][0]  # the summary stays as it was
