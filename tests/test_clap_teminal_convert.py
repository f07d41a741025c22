"""Conversion from a transformers ClapModel folder (laion/clap-htsat-unfused layout): a tiny random ClapModel saved
by the test with a tokenizer and a ClapFeatureExtractor gives the same embeddings after conversion (1e-5)."""

import json

import numpy as np
import pytest
import torch

import hf_alm  # noqa: F401
from hf_alm.modeling.clap_teminal import ClapTeminalModel, ClapTeminalProcessor
from hf_alm.training.tokenizer import train_caption_tokenizer

SR = 48_000


@pytest.fixture(scope="module")
def clap_folder(tmp_path_factory):
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    folder = tmp_path_factory.mktemp("laion_like")
    tokenizer = train_caption_tokenizer(["a dog barks", "a cat meows", "rain falls while thunder rumbles"] * 3,
                                        vocab_size=300, model_max_length=30)
    config = ClapConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=37, max_position_embeddings=32),
        audio_config=dict(num_mel_bins=16, spec_size=64, window_size=4, patch_embeds_hidden_size=8, depths=[1, 1],
                          num_attention_heads=[2, 2], hidden_size=16),
        projection_dim=24,
        logit_scale_init_value=20.0,
    )
    torch.manual_seed(0)
    model = ClapModel(config).eval()
    with torch.no_grad():  # make the logit scales and BatchNorm statistics non-trivial
        model.logit_scale_a.fill_(3.1)
        model.logit_scale_t.fill_(2.2)
        bn = model.audio_model.audio_encoder.batch_norm
        bn.running_mean.uniform_(-50, -30)
        bn.running_var.uniform_(50, 150)
    model.save_pretrained(folder)
    fe = ClapFeatureExtractor(feature_size=16, max_length_s=1, frequency_min=50, truncation="rand_trunc")
    ClapProcessor(feature_extractor=fe, tokenizer=tokenizer).save_pretrained(folder)
    return folder, model, fe, tokenizer


def test_from_clap_gives_the_same_embeddings(clap_folder):
    folder, source, fe, tokenizer = clap_folder
    model = ClapTeminalModel.from_clap(str(folder))
    assert model.config.projection_dim == 24 and model.config.logit_scale_init_value == 20.0
    assert torch.allclose(model.logit_scale_a, torch.tensor(3.1)) and torch.allclose(model.logit_scale_t,
                                                                                     torch.tensor(2.2))
    rng = np.random.default_rng(0)
    audio = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (SR // 2, SR)]
    texts = ["a dog barks", "rain falls while thunder rumbles"]
    ref_audio_in = fe(audio, sampling_rate=SR, return_tensors="pt")
    text_in = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref_a = source.get_audio_features(**ref_audio_in).pooler_output
        ref_t = source.get_text_features(**text_in).pooler_output
        new_a = model.get_audio_features(**ref_audio_in).pooler_output
        new_t = model.get_text_features(**text_in).pooler_output
        ref_logits = source(**text_in, **ref_audio_in).logits_per_audio
        new_logits = model(**text_in, **ref_audio_in).logits_per_audio
    assert (ref_a - new_a).abs().max() <= 1e-5
    assert (ref_t - new_t).abs().max() <= 1e-5
    assert (ref_logits - new_logits).abs().max() <= 1e-4


def test_convert_cli_with_segment_pooling(clap_folder, tmp_path):
    from hf_alm.cli import main

    folder, *_ = clap_folder
    assert main(["convert", "clap", str(folder), str(tmp_path / "seg"), "--audio_time_segments", "2"]) in (0, None)
    assert json.loads((tmp_path / "seg" / "config.json").read_text())["audio_time_segments"] == 2


def test_from_clap_with_segment_pooling_keeps_the_checkpoint_function(clap_folder):
    """audio_time_segments=2 on a converted checkpoint: the projection is tiled over the two segment means, so the
    embeddings are still the checkpoint's (and they become order-aware once post-training changes the halves)."""
    folder, source, fe, _ = clap_folder
    model = ClapTeminalModel.from_clap(str(folder), audio_time_segments=2)
    assert model.config.audio_time_segments == 2
    assert model.audio_projection.linear1.weight.shape[1] == 2 * source.audio_projection.linear1.weight.shape[1]
    rng = np.random.default_rng(1)
    audio_in = fe([(0.1 * rng.standard_normal(SR)).astype(np.float32) for _ in range(2)], sampling_rate=SR,
                  return_tensors="pt")
    with torch.no_grad():
        ref = source.get_audio_features(**audio_in).pooler_output
        new = model.get_audio_features(**audio_in).pooler_output
    torch.testing.assert_close(new, ref, atol=1e-5, rtol=0)


def test_convert_cli_writes_a_loadable_folder(clap_folder, tmp_path):
    from transformers import AutoModel, AutoProcessor

    folder, source, fe, tokenizer = clap_folder
    from hf_alm.cli import main

    dst = tmp_path / "converted"
    assert main(["convert", "clap", str(folder), str(dst)]) == 0
    assert json.loads((dst / "config.json").read_text())["model_type"] == "hf_alm_clap_teminal"
    model = AutoModel.from_pretrained(dst).eval()
    processor = AutoProcessor.from_pretrained(dst)
    assert isinstance(model, ClapTeminalModel) and isinstance(processor, ClapTeminalProcessor)
    assert processor.feature_extractor.feature_size == 16 and processor.feature_extractor.max_length_s == 1
    # end to end through both processors: the embeddings agree
    rng = np.random.default_rng(1)
    audio = [(0.2 * rng.standard_normal(n)).astype(np.float32) for n in (SR // 3, SR)]
    texts = ["a cat meows", "a dog barks"]
    with torch.no_grad():
        ref = source(**fe(audio, sampling_rate=SR, return_tensors="pt"),
                     **tokenizer(texts, padding=True, return_tensors="pt"))
        new = model(**processor(text=texts, audio=audio, sampling_rate=SR, return_tensors="pt"))
    assert (ref.audio_embeds - new.audio_embeds).abs().max() <= 1e-5
    assert (ref.text_embeds - new.text_embeds).abs().max() <= 1e-5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # atomic: no temporary left over


def test_convert_help_and_errors(clap_folder, tmp_path, capsys):
    from hf_alm.cli import main
    from hf_alm.convert import clap

    for argv in (["convert", "--help"], ["convert", "clap", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
    help_text = capsys.readouterr().out
    assert "Convert a transformers ClapModel folder" in help_text and "--no_verify" in help_text
    assert "--audio_time_segments" in help_text
    with pytest.raises(FileNotFoundError, match="source ClapModel folder not found"):
        clap.convert(tmp_path / "nope", tmp_path / "dst")
    # a checkpoint whose weights do not match its config: clear error naming the keys, nothing written
    folder, *_ = clap_folder
    broken = tmp_path / "broken"
    broken.mkdir()
    from safetensors.torch import load_file, save_file

    state = load_file(folder / "model.safetensors")
    state.pop("audio_projection.linear1.weight")
    state["text_projection.extra.weight"] = torch.zeros(1)
    save_file(state, broken / "model.safetensors", metadata={"format": "pt"})
    (broken / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(ValueError, match="audio_projection.linear1.weight"):
        clap.convert(broken, tmp_path / "dst")
    assert not (tmp_path / "dst").exists()


def test_convert_keeps_a_non_empty_dst_unless_overwrite(clap_folder, tmp_path):
    """--no_overwrite used to be needed to keep DST; now refusing a non-empty DST is the default (no_overwrite still
    accepted), --overwrite replaces it, an empty DST is written."""
    import re

    from hf_alm.convert import clap

    folder, *_ = clap_folder
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "notes.txt").write_text("mine")
    for kwargs in ({}, {"no_overwrite": True}):
        with pytest.raises(FileExistsError, match=rf"output folder {re.escape(str(dst))} exists and is not empty; "
                                                  r"pass --overwrite to replace it"):
            clap.convert(folder, dst, no_verify=True, **kwargs)
    assert [p.name for p in dst.iterdir()] == ["notes.txt"]
    assert clap.convert(folder, dst, no_verify=True, overwrite=True) == dst
    assert (dst / "config.json").is_file() and not (dst / "notes.txt").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    clap.convert(folder, empty, no_verify=True)
    assert (empty / "config.json").is_file()
    with pytest.raises(ValueError, match="overwrite and no_overwrite contradict each other"):
        clap.convert(folder, tmp_path / "x", overwrite=True, no_overwrite=True)
