"""BEATs padding_mode: the default is time-aligned for new models; folders saved before that (no field) keep the
reference rule they were saved with; every config saved now carries the field; the model card says which is used."""

import json

import pytest
import torch

import hf_alm  # noqa: F401  (registers the Auto classes)
from hf_alm.modeling.beats import BeatsConfig, BeatsForAudioClassification, BeatsModel, tiny_beats_config


def test_new_configs_default_to_time_aligned():
    assert BeatsConfig().padding_mode == "time_aligned"
    assert tiny_beats_config().padding_mode == "time_aligned"
    original = tiny_beats_config().to_original()  # an original cfg has no padding_mode: new conversions align
    assert BeatsConfig.from_original(original).padding_mode == "time_aligned"
    assert BeatsConfig.from_original(original, padding_mode="reference").padding_mode == "reference"


@pytest.mark.parametrize("mode", ["time_aligned", "reference"])
def test_saved_configs_always_carry_the_field(tmp_path, mode):
    config = tiny_beats_config(padding_mode=mode)
    assert config.to_diff_dict()["padding_mode"] == mode  # even when it equals the class default
    config.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["padding_mode"] == mode
    assert BeatsConfig.from_pretrained(tmp_path).padding_mode == mode


def test_old_folder_without_the_field_loads_as_reference(tmp_path):
    """A folder whose config.json lacks padding_mode was saved when "reference" was the default: it keeps it (with
    its reference-mode feature extractor), through AutoConfig and AutoModel; an explicit override still wins."""
    from transformers import AutoConfig, AutoModelForAudioClassification

    torch.manual_seed(0)
    model = BeatsForAudioClassification(tiny_beats_config(num_labels=3, padding_mode="reference")).eval()
    model.save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    raw = json.loads(path.read_text())
    del raw["padding_mode"]
    path.write_text(json.dumps(raw))
    assert AutoConfig.from_pretrained(tmp_path).padding_mode == "reference"
    loaded = AutoModelForAudioClassification.from_pretrained(tmp_path)
    assert type(loaded) is BeatsForAudioClassification and loaded.config.padding_mode == "reference"
    assert BeatsModel.from_pretrained(tmp_path).config.padding_mode == "reference"
    assert AutoConfig.from_pretrained(tmp_path, padding_mode="time_aligned").padding_mode == "time_aligned"
    # and it computes the reference patch mask (the chunk rule), not the time-aligned one
    mask = torch.ones(1, 200, dtype=torch.long)
    mask[0, 130:] = 0
    ref = loaded.patch_padding_mask(mask, 96)
    aligned = BeatsModel(tiny_beats_config()).patch_padding_mask(mask, 96)
    assert int(ref.sum()) != int(aligned.sum())


def test_model_card_names_the_padding_mode():
    from hf_alm.hub import render_model_card

    for mode, phrase in (("reference", "original code's rule for padded batches"),
                         ("time_aligned", "same outputs alone and in a padded batch")):
        card = render_model_card(tiny_beats_config(padding_mode=mode, num_labels=2), repo_id="me/beats")
        text = " ".join(str(card).split())
        assert f'padding_mode="{mode}"' in text and phrase in text, mode
