"""``hf-alm eval`` and ``hf-alm demo``: errors that name the problem and the value, help that states the defaults, and
the demo's handling of a recipe's output folder."""

from __future__ import annotations

import argparse
import json

import pytest

from hf_alm.cli import build_parser, main


def _subparser(name: str) -> argparse.ArgumentParser:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise AssertionError("no subcommands")


# ------------------------------------------------------------------------------------------------------ eval
def test_eval_missing_model_folder_is_one_line_naming_it(capsys):
    """Was a 9-frame traceback ending in "OSError: Repo id must be in the form ..."."""
    assert main(["eval", "zste", "/nope/model", "--dataset", "synthetic"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "hf-alm eval: error: model folder not found: /nope/model"


def test_eval_folder_without_a_model_names_the_model_folders_inside(tmp_path, capsys):
    (tmp_path / "folds" / "fold_1").mkdir(parents=True)
    (tmp_path / "folds" / "fold_1" / "config.json").write_text("{}")
    assert main(["eval", "classification", str(tmp_path), "--dataset", "synthetic"]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path} is not a model folder (no config.json); model folders inside it: " \
           f"{tmp_path / 'folds' / 'fold_1'}" in err


def test_eval_bare_dataset_prefix_asks_for_its_path_before_loading_anything(capsys):
    """``--dataset esc10`` was looked up as a Hub id (ConnectionError / OfflineModeIsEnabled)."""
    assert main(["eval", "zste", "/nope/model", "--dataset", "esc10"]) == 1
    assert "esc10 needs a path: --dataset esc10:PATH (the folder of the ESC-10 release)" in capsys.readouterr().err


def test_eval_help_states_the_defaults():
    parser = _subparser("eval")
    formatter = parser._get_formatter()
    helps = {a.dest: formatter._expand_help(a) for a in parser._actions if a.option_strings}
    assert "(default: 150)" in helps["num_pairs"]
    assert "(default: 4)" in helps["num_distractors"]
    assert "(default: 'This is a sound of {label}.')" in helps["template"]
    assert "(default: 32)" in helps["batch_size"]
    assert "(default: 0)" in helps["seed"]
    assert "default: every fold" in helps["folds"]


# ------------------------------------------------------------------------------------------------------ demo
class _FakeApp:
    def __init__(self):
        self.calls = []

    def build_demo(self, **kwargs):
        self.calls.append(kwargs)
        return self

    def launch(self, **kwargs):
        pass


def _beats_finetune_output(root, final: bool):
    for fold in ("fold_1", "fold_2"):
        (root / "folds" / fold).mkdir(parents=True)
        (root / "folds" / fold / "config.json").write_text(json.dumps({"model_type": "hf_alm_beats"}))
    (root / "eval_results.json").write_text("{}")
    if final:
        (root / "model").mkdir()
        (root / "model" / "config.json").write_text(json.dumps({"model_type": "hf_alm_beats"}))
    return root


def test_demo_uses_the_final_model_of_a_recipe_output_folder_and_says_so(tmp_path, monkeypatch, capsys):
    import hf_alm.cli.demo as demo

    app = _FakeApp()
    monkeypatch.setattr(demo, "load_app", lambda: app)
    out = _beats_finetune_output(tmp_path / "bf", final=True)
    assert main(["demo", "--beats", str(out)]) == 0
    assert app.calls[0]["beats"] == str(out / "model")
    assert f"--beats {out} is a recipe output folder; using its final model {out / 'model'}" in capsys.readouterr().err
    assert main(["demo", "--beats", str(out / "folds" / "fold_2")]) == 0  # a model folder is used as it is
    assert app.calls[1]["beats"] == str(out / "folds" / "fold_2")


def test_demo_refuses_an_output_folder_without_a_final_model_naming_the_folds(tmp_path, monkeypatch, capsys):
    """Was "Unrecognized model in OUT. Should have a `model_type` key in its config.json" from inside the app."""
    import hf_alm.cli.demo as demo

    monkeypatch.setattr(demo, "load_app", lambda: pytest.fail("the app must not load"))
    out = _beats_finetune_output(tmp_path / "bf", final=False)
    assert main(["demo", "--beats", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"--beats {out} is an output folder of recipes/beats_finetune.py without a final model" in err
    assert f"e.g. --beats {out / 'folds' / 'fold_1'} (folds: fold_1, fold_2" in err and "--final_model" in err
    (tmp_path / "empty").mkdir()
    assert main(["demo", "--clap", str(tmp_path / "empty")]) == 1
    assert f"--clap {tmp_path / 'empty'} is not a model folder: no config.json in it" in capsys.readouterr().err


def test_demo_help_points_at_the_model_folder_of_the_recipe():
    parser = _subparser("demo")
    beats = next(a for a in parser._actions if a.dest == "beats").help
    assert "OUT/model" in beats and "OUT/folds/fold_1" in beats


# ------------------------------------------------------------------------------------------- eval classification
def _tiny_classifier(folder, names):
    """A tiny AST audio classifier whose id2label is ``names`` (in that order), saved with its feature extractor."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    config = ASTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                       max_length=100, num_mel_bins=16, num_labels=len(names),
                       id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    ASTForAudioClassification(config).save_pretrained(folder)
    ASTFeatureExtractor(num_mel_bins=16, max_length=100, sampling_rate=16000).save_pretrained(folder)
    return folder


def test_eval_classification_matches_classifier_labels_to_the_dataset_classes_by_name(tmp_path, monkeypatch):
    """The classifier's output index was compared with the dataset's label id: a model whose id2label lists the same
    classes in another order scored 0.0 when perfect, and per-class recalls were filed under the model's names."""
    import numpy as np
    import torch

    import hf_alm.evaluation.classification as classification
    from hf_alm.data.synthetic import make_synthetic_dataset

    ds = make_synthetic_dataset(1, sampling_rate=16000)
    names = ds.features["label"].names
    truth = [names[i] for i in ds["label"]]
    model_names = list(reversed(names))
    folder = _tiny_classifier(tmp_path / "clf", model_names)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(len(truth), len(names)))
    for i in range(0, len(truth), 2):  # half the rows right in the model's own label order
        logits[i, model_names.index(truth[i])] = 10.0
    monkeypatch.setattr(classification, "predict_logits", lambda *a, **k: torch.tensor(logits))
    out = tmp_path / "cls.json"
    assert main(["eval", "classification", str(folder), "--dataset", "synthetic:1", "--output", str(out)]) == 0
    got = json.loads(out.read_text())["classification"]
    predicted = [model_names[j] for j in logits.argmax(1)]  # by hand: the model's name for each row's top output
    assert got["accuracy"] == pytest.approx(np.mean([p == t for p, t in zip(predicted, truth)]))
    assert got["label_names"] == names
    assert got["per_class_recall"] == pytest.approx(
        {n: np.mean([p == n for p, t in zip(predicted, truth) if t == n]) for n in names})


def test_eval_classification_refuses_a_classifier_with_other_labels_listing_them(tmp_path, monkeypatch, capsys):
    import torch

    import hf_alm.evaluation.classification as classification
    from hf_alm.data.synthetic import make_synthetic_dataset

    names = make_synthetic_dataset(1, sampling_rate=16000).features["label"].names
    folder = _tiny_classifier(tmp_path / "clf", names[1:] + ["helicopter"])
    monkeypatch.setattr(classification, "predict_logits", lambda clf, fe, clips, **k: torch.zeros(len(clips), 20))
    assert main(["eval", "classification", str(folder), "--dataset", "synthetic:1"]) == 1
    err = capsys.readouterr().err
    assert f"dataset classes the model lacks: ['{names[0]}']; model labels not in the dataset: ['helicopter']" in err


# ------------------------------------------------------------------------------------------- long clips (no fusion)
def test_long_clips_are_cut_to_their_first_max_length_samples_and_the_docs_say_so():
    import numpy as np
    import torch

    from hf_alm.evaluation.retrieval import embed_audio

    seen = []

    class FE:
        sampling_rate, nb_max_samples = 8000, 100

    class Proc:
        feature_extractor = FE()

        def __call__(self, audio=None, sampling_rate=None, return_tensors=None):
            seen.extend(audio)
            return {"x": torch.tensor(np.stack([np.pad(a, (0, 100 - len(a))) for a in audio]))}

    class Model(torch.nn.Module):
        def get_audio_features(self, x):
            return x[:, :4] + 1.0

    clip = np.arange(250, dtype=np.float32)
    embed_audio(Model(), Proc(), [clip, clip[:30]], sampling_rate=8000)
    np.testing.assert_array_equal(seen[0], clip[:100])  # the first 100 samples, no crops of the rest
    np.testing.assert_array_equal(seen[1], clip[:30])
    assert "fusion" in embed_audio.__doc__ and "first ``max_length`` samples" in embed_audio.__doc__
    description = " ".join(_subparser("eval").description.split())
    assert "cut to their first max_length samples: there is no CLAP 'fusion'" in description
    assert "laion/clap-htsat-fused" in description
