"""recipes/tiny_edge.py end to end on a small synthetic set: CV fold, final model, eval_results.json, ONNX, resume."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("audiomentations")

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["--dataset", "synthetic:2", "--eval_fold", "1", "--num_epochs", "2", "--augment_views", "1",
          "--batch_size", "8", "--learning_rate", "3e-3", "--seed", "3"]


def _recipe():
    spec = importlib.util.spec_from_file_location("tiny_edge_recipe", ROOT / "recipes" / "tiny_edge.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_recipe") / "run"
    assert _recipe().main([*COMMON, "--output_dir", str(out), "--export_onnx", "--keep_checkpoints"]) == 0
    return out


def test_every_flag_has_help_text():
    parser = _recipe().build_parser()
    missing = [a.dest for a in parser._actions if a.dest != "help" and not (a.help or "").strip()]
    assert not missing
    for flag in ("--dataset", "--preset", "--eval_fold", "--augment", "--export_onnx", "--push_to_hub",
                 "--resume_from_checkpoint", "--output_dir"):
        assert flag in parser.format_help()


def test_outputs_and_eval_results(run):
    results = json.loads((run / "eval_results.json").read_text())
    assert results["dataset"] == "synthetic:2" and results["preset"] == "tiny"
    assert results["protocol"] == "held_out" and results["eval_units"] == [1]
    fold = results["per_fold"][0]
    assert fold["num_eval_clips"] == results["num_labels"]  # 2 clips per class, fold 1 holds one per class
    assert fold["num_train_clips"] == results["num_labels"]
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "onnx_fp32_accuracy", "onnx_int8_accuracy"):
        assert 0.0 <= results[key] <= 1.0
    # the fp32 ONNX model predicts exactly what PyTorch predicts on the held-out fold
    assert fold["onnx_fp32_accuracy"] == fold["accuracy"]
    assert fold["onnx_fp32_max_abs_diff_vs_pytorch"] < 1e-4
    assert np.array(fold["confusion_matrix"]).sum() == fold["num_eval_clips"]
    for folder in (run / "folds" / "fold_1", run / "model"):
        assert {"config.json", "model.safetensors", "preprocessor_config.json",
                "calibration_features.npz"} <= {p.name for p in folder.iterdir()}
    assert {"model.onnx", "model_int8.onnx", "frontend.json"} <= {p.name for p in (run / "onnx").iterdir()}
    assert (run / "model" / "eval_results.json").is_file()
    assert len(list((run / "feature_cache").glob("features_*.npz"))) == 1


def test_final_model_loads_in_the_pipeline_with_training_statistics(run):
    from transformers import pipeline

    import hf_alm  # noqa: F401

    fe = json.loads((run / "model" / "preprocessor_config.json").read_text())
    assert fe["mean"] != 0.0 and fe["std"] != 1.0  # normalisation measured on the training clips
    clf = pipeline("audio-classification", model=str(run / "model"), device="cpu")
    labels = json.loads((run / "model" / "config.json").read_text())["id2label"]
    out = clf({"array": np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1,
               "sampling_rate": 16000}, top_k=3)
    assert len(out) == 3 and {o["label"] for o in out} <= set(labels.values())


def test_resume_reproduces_the_uninterrupted_final_model(run, tmp_path):
    """Drop the final stage's last epoch and resume: training continues to the same weights."""
    from safetensors.torch import load_file

    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    shutil.rmtree(resumed / "checkpoints" / "final" / "epoch_1")
    shutil.rmtree(resumed / "model")
    shutil.rmtree(resumed / "onnx")
    (resumed / "eval_results.json").unlink()
    assert _recipe().main([*COMMON, "--output_dir", str(resumed), "--resume_from_checkpoint", "latest"]) == 0
    a = load_file(run / "model" / "model.safetensors")
    b = load_file(resumed / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)
    # the finished fold was not retrained
    assert json.loads((resumed / "eval_results.json").read_text())["per_fold"][0]["accuracy"] == \
        json.loads((run / "eval_results.json").read_text())["per_fold"][0]["accuracy"]
    assert not (resumed / "checkpoints" / "final" / "epoch_0").exists()  # pruned without --keep_checkpoints


def test_bad_flags_fail_with_the_value(tmp_path):
    recipe = _recipe()
    with pytest.raises(ValueError, match=r"--eval_fold 9: not one of the dataset's folds \[1\]"):
        recipe.main(["--dataset", "synthetic:1", "--eval_fold", "9", "--output_dir", str(tmp_path / "x"),
                     "--augment", "none"])
    with pytest.raises(SystemExit, match="--augment_views must be >= 0, got -1"):
        recipe.main(["--augment_views", "-1", "--output_dir", str(tmp_path / "y")])


def test_onnx_only_re_exports_without_training(run, tmp_path):
    again = tmp_path / "again"
    shutil.copytree(run, again)
    shutil.rmtree(again / "onnx")
    before = json.loads((again / "eval_results.json").read_text())
    weights = (again / "model" / "model.safetensors").read_bytes()
    assert _recipe().main([*COMMON, "--output_dir", str(again), "--onnx_only"]) == 0
    after = json.loads((again / "eval_results.json").read_text())
    assert after["accuracy"] == before["accuracy"]
    assert after["onnx_fp32_accuracy"] == before["accuracy"]
    assert (again / "onnx" / "model_int8.onnx").is_file()
    assert (again / "model" / "model.safetensors").read_bytes() == weights  # nothing was retrained


def test_every_fold_result_and_checkpoint_records_the_run(run):
    for path in [run / "folds" / "fold_1" / "fold_results.json",
                 run / "checkpoints" / "fold_1" / "epoch_1" / "trainer_state.json",
                 run / "checkpoints" / "final" / "epoch_1" / "trainer_state.json"]:
        identity = json.loads(path.read_text())["run"]
        assert identity["recipe"] == "tiny_edge" and identity["model_type"] == "tiny_edge_transformer"
        assert identity["preset"] == "tiny" and identity["dataset"] == "synthetic:2" and identity["seed"] == 3
        assert "export_onnx" not in identity and "output_dir" not in identity
    assert "run" not in json.loads((run / "eval_results.json").read_text())["per_fold"][0]


def test_another_run_into_the_same_output_dir_stops_before_training(run):
    """A fresh run silently overwrote the model and left the old epochs for a later resume to pick up."""
    before = (run / "model" / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit) as info:
        _recipe().main([*COMMON, "--preset", "small", "--output_dir", str(run)])
    assert str(info.value) == (f"{run} already holds checkpoints of an earlier run; pass --resume_from_checkpoint "
                               "latest to continue it or --overwrite_output_dir to start over")
    with pytest.raises(SystemExit) as info:
        _recipe().main([*COMMON, "--preset", "small", "--output_dir", str(run), "--resume_from_checkpoint", "latest"])
    assert "was written by another run; differing: --preset: 'tiny' (recorded) != 'small' (now)" in str(info.value)
    with pytest.raises(SystemExit, match=r"--augment_views: 1 \(recorded\) != 2 \(now\)"):
        _recipe().main([*COMMON, "--augment_views", "2", "--output_dir", str(run), "--onnx_only"])
    assert (run / "model" / "model.safetensors").read_bytes() == before


def test_overwrite_output_dir_starts_over(tmp_path):
    out = tmp_path / "run"
    argv = ["--dataset", "synthetic:1", "--eval_fold", "none", "--num_epochs", "1", "--augment", "none",
            "--batch_size", "16", "--output_dir", str(out)]
    assert _recipe().main(argv) == 0
    stale = out / "checkpoints" / "fold_9" / "epoch_0"  # an epoch of another protocol, for resume to trip over
    shutil.copytree(out / "checkpoints" / "final" / "epoch_0", stale)
    assert _recipe().main([*argv, "--overwrite_output_dir"]) == 0
    assert not stale.exists() and (out / "checkpoints" / "final" / "epoch_0").is_dir()
    assert (out / "model" / "model.safetensors").is_file()
