"""CLAP-TeminAL model: shapes, normalised embeddings, logits = scale * cosine, symmetric InfoNCE, and equality with
transformers' own ClapModel carrying the same weights (the independent reference)."""

import math

import pytest
import torch
import torch.nn.functional as F

from hf_alm.modeling.clap_teminal import ClapTeminalConfig, ClapTeminalModel, ClapTeminalOutput


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = ClapTeminalConfig.from_preset("tiny")
    return ClapTeminalModel(config).eval()


def _inputs(config, batch=3, seq=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = 51
    feats = torch.randn(batch, 1, frames, config.audio_config.num_mel_bins, generator=g) * 10 - 40
    ids = torch.randint(5, config.text_config.vocab_size, (batch, seq), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2
    mask = torch.ones_like(ids)
    ids[0, -2:] = 1  # padding in the first caption
    mask[0, -2:] = 0
    return ids, mask, feats


def test_config_defaults_and_presets():
    config = ClapTeminalConfig()
    assert config.model_type == "hf_alm_clap_teminal"
    assert config.audio_tower == "htsat"
    assert math.isclose(config.logit_scale_init, math.log(1 / 0.07))
    laion = ClapTeminalConfig.from_preset("laion-htsat-unfused")
    assert laion.audio_config.hidden_size == 768 and laion.text_config.hidden_size == 768
    assert laion.projection_dim == 512 and laion.audio_config.spec_size == 256
    small = ClapTeminalConfig.from_preset("small", text_config={"vocab_size": 777})
    assert small.text_config.vocab_size == 777 and small.text_config.num_hidden_layers == 2
    with pytest.raises(ValueError, match="unknown CLAP-TeminAL preset 'huge'"):
        ClapTeminalConfig.from_preset("huge")
    with pytest.raises(ValueError, match="audio_tower must be one of"):
        ClapTeminalConfig(audio_tower="whisper")
    with pytest.raises(ValueError, match="hidden_size must equal"):
        ClapTeminalConfig(audio_config={"patch_embeds_hidden_size": 16, "depths": [1, 1], "hidden_size": 64,
                                        "num_attention_heads": [2, 2]})


def test_logit_scale_starts_at_log_inverse_temperature(tiny):
    assert torch.allclose(tiny.logit_scale_a, torch.tensor(math.log(1 / 0.07)))
    assert torch.allclose(tiny.logit_scale_t, torch.tensor(math.log(1 / 0.07)))


def test_forward_shapes_norms_logits_and_loss(tiny):
    ids, mask, feats = _inputs(tiny.config)
    with torch.no_grad():
        out = tiny(input_ids=ids, attention_mask=mask, input_features=feats, return_loss=True)
    assert isinstance(out, ClapTeminalOutput)
    dim = tiny.config.projection_dim
    assert out.audio_embeds.shape == (3, dim) and out.text_embeds.shape == (3, dim)
    assert torch.allclose(out.audio_embeds.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(out.text_embeds.norm(dim=-1), torch.ones(3), atol=1e-5)
    # logits = exp(logit_scale) * cosine similarity
    cos = F.cosine_similarity(out.audio_embeds[:, None], out.text_embeds[None], dim=-1)
    assert torch.allclose(out.logits_per_audio, tiny.logit_scale_a.exp() * cos, atol=1e-5)
    assert torch.allclose(out.logits_per_text, tiny.logit_scale_t.exp() * cos.t(), atol=1e-5)
    # symmetric cross-entropy with diagonal targets, written out by hand
    la = out.logits_per_audio
    lt = out.logits_per_text
    ce_a = -torch.stack([la[i].log_softmax(-1)[i] for i in range(3)]).mean()
    ce_t = -torch.stack([lt[i].log_softmax(-1)[i] for i in range(3)]).mean()
    assert torch.allclose(out.loss, (ce_a + ce_t) / 2, atol=1e-6)
    # no loss unless asked; tuple output like ClapModel
    assert tiny(input_ids=ids, attention_mask=mask, input_features=feats).loss is None
    as_tuple = tiny(input_ids=ids, attention_mask=mask, input_features=feats, return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.allclose(as_tuple[0], out.logits_per_audio)


def test_get_features_match_forward_and_are_normalised(tiny):
    ids, mask, feats = _inputs(tiny.config)
    with torch.no_grad():
        out = tiny(input_ids=ids, attention_mask=mask, input_features=feats)
        audio = tiny.get_audio_features(input_features=feats)
        text = tiny.get_text_features(input_ids=ids, attention_mask=mask)
    assert type(audio).__name__ == "BaseModelOutputWithPooling" and type(text).__name__ == "BaseModelOutputWithPooling"
    assert torch.allclose(audio.pooler_output, out.audio_embeds, atol=1e-6)
    assert torch.allclose(text.pooler_output, out.text_embeds, atol=1e-6)
    assert torch.allclose(text.pooler_output.norm(dim=-1), torch.ones(3), atol=1e-5)
    # a 3-D (batch, frames, mels) input is accepted as one channel
    with torch.no_grad():
        audio3 = tiny.get_audio_features(input_features=feats[:, 0])
    assert torch.allclose(audio3.pooler_output, audio.pooler_output, atol=1e-6)


def test_matches_transformers_clap_model_with_same_weights(tiny):
    """Independent reference: transformers' ClapModel built from the same sub-configs and loaded with our weights."""
    from transformers import ClapConfig, ClapModel

    cfg = tiny.config
    ref_config = ClapConfig(
        text_config=cfg.text_config.to_dict(), audio_config=cfg.audio_config.to_dict(),
        projection_dim=cfg.projection_dim, projection_hidden_act=cfg.projection_hidden_act,
        logit_scale_init_value=cfg.logit_scale_init_value,
    )
    ref = ClapModel(ref_config).eval()
    missing, unexpected = ref.load_state_dict(tiny.state_dict(), strict=True)
    assert not missing and not unexpected
    ids, mask, feats = _inputs(cfg, seed=1)
    with torch.no_grad():
        ours = tiny(input_ids=ids, attention_mask=mask, input_features=feats)
        theirs = ref(input_ids=ids, attention_mask=mask, input_features=feats)
        ours_audio = tiny.get_audio_features(input_features=feats).pooler_output
        theirs_audio = ref.get_audio_features(input_features=feats).pooler_output
        ours_text = tiny.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
        theirs_text = ref.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
    assert torch.allclose(ours.logits_per_audio, theirs.logits_per_audio, atol=1e-5)
    assert torch.allclose(ours.logits_per_text, theirs.logits_per_text, atol=1e-5)
    assert torch.allclose(ours_audio, theirs_audio, atol=1e-6)
    assert torch.allclose(ours_text, theirs_text, atol=1e-6)


def test_backward_reaches_both_towers_and_scales(tiny):
    model = ClapTeminalModel(tiny.config).train()
    ids, mask, feats = _inputs(model.config)
    out = model(input_ids=ids, attention_mask=mask, input_features=feats, return_loss=True)
    out.loss.backward()
    assert model.logit_scale_a.grad is not None and model.logit_scale_t.grad is not None
    assert model.audio_model.audio_encoder.patch_embed.proj.weight.grad.abs().sum() > 0
    assert model.text_model.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_clear_errors(tiny):
    ids, mask, feats = _inputs(tiny.config)
    with pytest.raises(ValueError, match="one caption per clip"):
        tiny(input_ids=ids[:2], attention_mask=mask[:2], input_features=feats, return_loss=True)
    with pytest.raises(ValueError, match="mel bins but the audio tower expects 16"):
        tiny.get_audio_features(input_features=torch.zeros(1, 1, 51, 64))
    with pytest.raises(ValueError, match="input_features is required"):
        tiny.get_audio_features(input_features=None)


def test_hidden_states_pass_through_to_both_towers(tiny):
    ids, mask, feats = _inputs(tiny.config)
    with torch.no_grad():
        out = tiny(input_ids=ids, attention_mask=mask, input_features=feats, output_hidden_states=True)
    assert len(out.text_model_output.hidden_states) == tiny.config.text_config.num_hidden_layers + 1
    assert out.audio_model_output.hidden_states is not None and len(out.audio_model_output.hidden_states) > 0


def test_any_automodel_text_tower():
    """A BERT text tower from its config dict: pooled output projected, saved and reloaded through AutoModel."""
    config = ClapTeminalConfig.from_preset("tiny", text_config={
        "model_type": "bert", "vocab_size": 99, "hidden_size": 24, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32, "max_position_embeddings": 32})
    assert type(config.text_config).__name__ == "BertConfig"
    torch.manual_seed(0)
    model = ClapTeminalModel(config).eval()
    assert type(model.text_model).__name__ == "BertModel"
    ids = torch.randint(0, 99, (2, 6))
    with torch.no_grad():
        emb = model.get_text_features(input_ids=ids).pooler_output
        manual = F.normalize(model.text_projection(model.text_model(input_ids=ids).pooler_output), dim=-1)
    assert emb.shape == (2, 16) and torch.allclose(emb, manual, atol=1e-6)


def test_beats_tower_pools_valid_frames_only():
    """BEATs tower: the clip embedding is the mean of the encoder frames that are not padding, so a clip padded in
    a batch embeds like the clip alone (time-aligned padding mode)."""
    pytest.importorskip("hf_alm.modeling.beats")
    from hf_alm.modeling.beats import BeatsFeatureExtractor

    torch.manual_seed(0)
    config = ClapTeminalConfig.from_preset("tiny-beats")
    model = ClapTeminalModel(config).eval()
    fe = BeatsFeatureExtractor(padding_mode="time_aligned")
    g = torch.Generator().manual_seed(0)
    long_clip, short_clip = torch.randn(16000, generator=g) * 0.1, torch.randn(6400, generator=g) * 0.1
    batch = fe([long_clip, short_clip], sampling_rate=16000, return_tensors="pt")
    alone = fe([short_clip], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        out = model.get_audio_features(input_features=batch["input_values"], attention_mask=batch["attention_mask"])
        ref = model.get_audio_features(input_features=alone["input_values"], attention_mask=alone["attention_mask"])
        hidden = out.last_hidden_state[1]
        valid = ~model.audio_model(batch["input_values"], attention_mask=batch["attention_mask"]).padding_mask[1]
        manual = F.normalize(model.audio_projection(hidden[valid].mean(0)), dim=-1)
    assert torch.allclose(out.pooler_output[1], ref.pooler_output[0], atol=1e-5)
    assert torch.allclose(out.pooler_output[1], manual, atol=1e-6)
    # the input_values name of the BEATs feature extractor is accepted too (pipeline compatibility)
    with torch.no_grad():
        alias = model.get_audio_features(input_values=alone["input_values"], attention_mask=alone["attention_mask"])
    assert torch.allclose(alias.pooler_output, ref.pooler_output)


def _segment_means_by_hand(frames: torch.Tensor, length: int, num_segments: int) -> torch.Tensor:
    """Reference for lengths divisible by num_segments: plain means of consecutive equal chunks, concatenated."""
    chunk = length // num_segments
    return torch.cat([frames[s * chunk:(s + 1) * chunk].mean(0) for s in range(num_segments)])


def test_time_segment_pool_formula_and_order():
    from hf_alm.modeling.clap_teminal.modeling_clap_teminal import time_segment_pool

    g = torch.Generator().manual_seed(0)
    steps, columns, dim = 12, 4, 5
    hidden = torch.randn(2, steps * columns, dim, generator=g, dtype=torch.float64)
    padding = torch.zeros(2, steps * columns, dtype=torch.bool)
    padding[1, 8 * columns:] = True  # clip 1: 8 valid time steps
    frames = hidden.reshape(2, steps, columns, dim).mean(2)
    for k in (1, 2, 4):
        pooled = time_segment_pool(hidden, padding, k, columns)
        assert pooled.shape == (2, k * dim)
        torch.testing.assert_close(pooled[0], _segment_means_by_hand(frames[0], 12, k))
        torch.testing.assert_close(pooled[1], _segment_means_by_hand(frames[1], 8, k))
    # a length that does not divide: 3 segments of 8 steps = spans of 8/3; step 2 is 2/3 in segment 0, 1/3 in 1
    pooled = time_segment_pool(hidden, padding, 3, columns)[1].reshape(3, dim)
    f = frames[1]
    torch.testing.assert_close(pooled[0], (f[0] + f[1] + f[2] * 2 / 3) / (8 / 3))
    torch.testing.assert_close(pooled[1], (f[2] / 3 + f[3] + f[4] + f[5] / 3) / (8 / 3))
    # order: swapping the two halves of a clip swaps the two segment means (mean pooling could not tell them apart)
    swapped = torch.cat([hidden[:, 6 * columns:], hidden[:, : 6 * columns]], dim=1)
    a, b = time_segment_pool(hidden[:1], None, 2, columns), time_segment_pool(swapped[:1], None, 2, columns)
    torch.testing.assert_close(a.reshape(2, dim).flip(0), b.reshape(2, dim))
    assert not torch.allclose(a, b)
    # a clip shorter than the number of segments still fills every segment (with its only frames)
    short = torch.ones(1, 2 * columns, dtype=torch.bool)
    short[0, :columns] = False
    out = time_segment_pool(hidden[:1, : 2 * columns], short, 4, columns)
    torch.testing.assert_close(out.reshape(4, dim), frames[:1, 0].expand(4, dim))


def test_segment_pooled_beats_tower_is_order_aware_and_padding_invariant(tmp_path):
    pytest.importorskip("hf_alm.modeling.beats")
    from hf_alm.modeling.beats import BeatsFeatureExtractor

    torch.manual_seed(0)
    config = ClapTeminalConfig.from_preset("tiny-beats", audio_time_segments=2)
    model = ClapTeminalModel(config).eval()
    assert model.audio_projection.linear1.in_features == 2 * config.audio_hidden_size
    fe = BeatsFeatureExtractor(padding_mode="time_aligned")
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(8000, generator=g) * 0.1, torch.sin(torch.arange(8000) * 0.3) * 0.5
    ab, ba = torch.cat([a, b]), torch.cat([b, a])
    batch = fe([ab, ba, a], sampling_rate=16000, return_tensors="pt")
    alone = fe([a], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        emb = model.get_audio_features(input_features=batch["input_values"],
                                       attention_mask=batch["attention_mask"]).pooler_output
        ref = model.get_audio_features(input_features=alone["input_values"],
                                       attention_mask=alone["attention_mask"]).pooler_output
    torch.testing.assert_close(emb[2], ref[0], atol=1e-5, rtol=0)
    assert (emb[0] - emb[1]).abs().max() > 1e-3  # the two orders embed differently
    model.save_pretrained(tmp_path)
    again = ClapTeminalModel.from_pretrained(tmp_path).eval()
    assert again.config.audio_time_segments == 2
    with torch.no_grad():
        emb2 = again.get_audio_features(input_features=batch["input_values"],
                                        attention_mask=batch["attention_mask"]).pooler_output
    torch.testing.assert_close(emb2, emb)


def test_time_segments_config_errors():
    with pytest.raises(ValueError, match="audio_time_segments must be an integer >= 1, got 0"):
        ClapTeminalConfig.from_preset("tiny-beats", audio_time_segments=0)


def test_htsat_segment_pooling_reads_time_in_order_and_averages_to_clap_pooling():
    """HTSAT: the last stage's columns are in temporal order, the segment means are taken over them, and their
    average is HTSAT's own pooler output (what from_clap relies on to keep a checkpoint's function)."""
    torch.manual_seed(0)
    model = ClapTeminalModel(ClapTeminalConfig.from_preset("tiny", audio_time_segments=2)).eval()
    assert model.audio_projection.linear1.in_features == 2 * model.config.audio_hidden_size
    _, _, feats = _inputs(model.config, batch=2)
    with torch.no_grad():
        out = model._audio_tower(feats)
        plain = model.audio_model(input_features=feats)
    steps = plain.last_hidden_state.shape[-1]
    by_hand = torch.cat([plain.last_hidden_state[..., : steps // 2].mean((2, 3)),
                         plain.last_hidden_state[..., steps // 2:].mean((2, 3))], dim=1)
    torch.testing.assert_close(out.pooler_output, by_hand)
    halves = out.pooler_output.reshape(2, 2, -1).mean(1)
    torch.testing.assert_close(halves, plain.pooler_output, atol=1e-6, rtol=1e-5)


def test_logit_scale_is_clamped_at_logit_scale_max(tiny):
    model = ClapTeminalModel(tiny.config).eval()
    ids, mask, feats = _inputs(model.config)
    with torch.no_grad():
        model.logit_scale_a.fill_(10.0)  # exp(10) >> 100
        out = model(input_ids=ids, attention_mask=mask, input_features=feats)
    cos = out.audio_embeds @ out.text_embeds.t()
    assert torch.allclose(out.logits_per_audio, 100.0 * cos, atol=1e-4)


def test_forward_signature_order_is_the_documented_one():
    import inspect

    names = list(inspect.signature(ClapTeminalModel.forward).parameters)[1:7]
    assert names == ["input_ids", "attention_mask", "input_features", "is_longer", "audio_attention_mask",
                     "return_loss"]
    audio = list(inspect.signature(ClapTeminalModel.get_audio_features).parameters)[1:4]
    assert audio == ["input_features", "attention_mask", "is_longer"]
    text = list(inspect.signature(ClapTeminalModel.get_text_features).parameters)[1:3]
    assert text == ["input_ids", "attention_mask"]


# ---------------------------------------------------------------------------------------------------------------
# transformers integration: attention implementation, embeddings, output flags, dtypes, kwargs, checkpointing

PRESETS = ["tiny", "tiny-beats"]


def _preset_inputs(config, batch=2, seed=0):
    """Captions (the first one padded) and audio inputs for `model(**...)`: HTSAT log-mels, or BEATs fbank features
    with an audio mask (the second clip padded)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, config.text_config.vocab_size, (batch, 7), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2
    mask = torch.ones_like(ids)
    ids[0, -2:] = 1
    mask[0, -2:] = 0
    if config.audio_tower == "htsat":
        feats = torch.randn(batch, 1, 51, config.audio_config.num_mel_bins, generator=g) * 10 - 40
        return {"input_ids": ids, "attention_mask": mask, "input_features": feats}
    feats = torch.randn(batch, 96, 128, generator=g)
    audio_mask = torch.ones(batch, 96, dtype=torch.long)
    audio_mask[1, 64:] = 0
    return {"input_ids": ids, "attention_mask": mask, "input_features": feats, "audio_attention_mask": audio_mask}


@pytest.mark.parametrize("preset", PRESETS)
def test_sdpa_is_the_default_and_matches_eager(preset, tmp_path):
    from transformers import AutoModel

    import hf_alm  # noqa: F401  (registers the Auto classes)

    torch.manual_seed(0)
    model = ClapTeminalModel(ClapTeminalConfig.from_preset(preset)).eval()
    # sdpa where transformers makes it the default: the model and every tower that supports it; HTSAT's window
    # attention has one (eager) implementation, which its config names
    audio_default = "eager" if preset == "tiny" else "sdpa"
    assert model.config._attn_implementation == "sdpa"
    assert model.text_model.config._attn_implementation == "sdpa"
    assert model.audio_model.config._attn_implementation == audio_default
    model.save_pretrained(tmp_path)
    loaded = {impl: AutoModel.from_pretrained(tmp_path, attn_implementation=impl).eval() for impl in ("eager", "sdpa")}
    assert loaded["eager"].text_model.config._attn_implementation == "eager"
    assert loaded["eager"].audio_model.config._attn_implementation == "eager"
    assert loaded["sdpa"].text_model.config._attn_implementation == "sdpa"
    assert loaded["sdpa"].audio_model.config._attn_implementation == audio_default
    eager_config = ClapTeminalConfig.from_preset(preset, attn_implementation="eager")
    assert ClapTeminalModel(eager_config).text_model.config._attn_implementation == "eager"
    built = AutoModel.from_config(ClapTeminalConfig.from_preset(preset), attn_implementation="sdpa")
    assert built.text_model.config._attn_implementation == "sdpa"
    padded = _preset_inputs(model.config)
    # no padding at all: SDPA then gets no mask, and must still attend both ways (not causally)
    unpadded = {k: v for k, v in _preset_inputs(model.config, seed=1).items() if k != "audio_attention_mask"}
    unpadded["input_ids"][:, -2:] = 7
    unpadded["attention_mask"] = torch.ones_like(unpadded["input_ids"])
    for inputs in (padded, unpadded):
        with torch.no_grad():
            out = {impl: m(**inputs) for impl, m in loaded.items()}
        torch.testing.assert_close(out["sdpa"].text_embeds, out["eager"].text_embeds, atol=1e-5, rtol=0)
        torch.testing.assert_close(out["sdpa"].audio_embeds, out["eager"].audio_embeds, atol=1e-5, rtol=0)
    # switching a built model with transformers' public API reaches the towers too
    model.set_attn_implementation("eager")
    assert model.text_model.config._attn_implementation == "eager"
    model.set_attn_implementation("sdpa")
    assert model.text_model.config._attn_implementation == "sdpa"
    assert model.audio_model.config._attn_implementation == audio_default


def test_resize_token_embeddings_updates_the_text_tower_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = ClapTeminalModel(ClapTeminalConfig.from_preset("tiny")).eval()
    n = model.config.text_config.vocab_size
    assert model.get_input_embeddings() is model.text_model.embeddings.word_embeddings
    old = model.get_input_embeddings().weight.detach().clone()
    resized = model.resize_token_embeddings(n + 8)
    assert resized.weight.shape == (n + 8, model.config.text_config.hidden_size)
    assert model.get_input_embeddings() is resized is model.text_model.embeddings.word_embeddings
    assert model.config.text_config.vocab_size == n + 8
    torch.testing.assert_close(resized.weight[:n], old)
    ids = torch.tensor([[0, n, n + 7, 2]])  # two of the new tokens
    with torch.no_grad():
        before = model.get_text_features(input_ids=ids).pooler_output
    model.save_pretrained(tmp_path)
    again = ClapTeminalModel.from_pretrained(tmp_path).eval()
    assert again.config.text_config.vocab_size == n + 8
    assert again.get_input_embeddings().weight.shape[0] == n + 8
    with torch.no_grad():
        after = again.get_text_features(input_ids=ids).pooler_output
    torch.testing.assert_close(after, before)
    # set_input_embeddings replaces the text tower's table
    table = torch.nn.Embedding(n + 8, model.config.text_config.hidden_size, padding_idx=1)
    model.set_input_embeddings(table)
    assert model.text_model.embeddings.word_embeddings is table


@pytest.mark.parametrize("preset", PRESETS)
def test_config_return_dict_false_gives_tuples_at_the_top_only(preset):
    torch.manual_seed(0)
    model = ClapTeminalModel(ClapTeminalConfig.from_preset(preset, return_dict=False)).eval()
    # even towers whose own configs say return_dict=False are asked for dict outputs inside
    model.text_model.config.return_dict = False
    model.audio_model.config.return_dict = False
    inputs = _preset_inputs(model.config)
    with torch.no_grad():
        as_tuple = model(**inputs, return_loss=True)
        as_dict = model(**inputs, return_loss=True, return_dict=True)
        audio = model.get_audio_features(input_features=inputs["input_features"],
                                         attention_mask=inputs.get("audio_attention_mask"))
        text = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    assert isinstance(as_tuple, tuple) and isinstance(as_dict, ClapTeminalOutput)
    loss, logits_per_audio, logits_per_text, text_embeds, audio_embeds, text_out, audio_out = as_tuple
    torch.testing.assert_close(loss, as_dict.loss)
    torch.testing.assert_close(logits_per_audio, as_dict.logits_per_audio)
    torch.testing.assert_close(audio_embeds, as_dict.audio_embeds)
    assert isinstance(text_out, tuple) and isinstance(audio_out, tuple)  # nested outputs as tuples, like ClapModel
    assert isinstance(audio, tuple) and isinstance(text, tuple)
    torch.testing.assert_close(audio[1], as_dict.audio_embeds)  # (last_hidden_state, pooler_output)
    torch.testing.assert_close(text[1], as_dict.text_embeds)


@pytest.mark.parametrize("preset", PRESETS)
def test_config_output_hidden_states_is_the_default(preset):
    torch.manual_seed(0)
    model = ClapTeminalModel(ClapTeminalConfig.from_preset(preset, output_hidden_states=True)).eval()
    inputs = _preset_inputs(model.config)
    with torch.no_grad():
        out = model(**inputs)
        off = model(**inputs, output_hidden_states=False)
        audio = model.get_audio_features(input_features=inputs["input_features"])
        text = model.get_text_features(input_ids=inputs["input_ids"])
    layers = model.config.text_config.num_hidden_layers
    assert len(out.text_model_output.hidden_states) == layers + 1 and len(text.hidden_states) == layers + 1
    assert out.audio_model_output.hidden_states and audio.hidden_states
    assert off.text_model_output.hidden_states is None and not off.audio_model_output.hidden_states


@pytest.mark.parametrize("preset", PRESETS)
def test_bf16_model_takes_fp32_features(preset):
    torch.manual_seed(0)
    model = ClapTeminalModel(ClapTeminalConfig.from_preset(preset)).eval()
    inputs = _preset_inputs(model.config)
    assert inputs["input_features"].dtype == torch.float32  # what the processors return
    with torch.no_grad():
        ref = model(**inputs)
        model.to(torch.bfloat16)
        out = model(**inputs)
        audio = model.get_audio_features(input_features=inputs["input_features"])
    assert out.audio_embeds.dtype == torch.bfloat16 and audio.pooler_output.dtype == torch.bfloat16
    cos = F.cosine_similarity(out.audio_embeds.float(), ref.audio_embeds, dim=-1)
    assert bool((cos > 0.99).all()), cos
    assert bool(torch.isfinite(out.logits_per_audio.float()).all())


@pytest.mark.parametrize("preset", PRESETS)
def test_unknown_keyword_arguments_are_rejected_by_name(preset):
    torch.manual_seed(0)
    model = ClapTeminalModel(ClapTeminalConfig.from_preset(preset)).eval()
    inputs = _preset_inputs(model.config)
    with pytest.raises(TypeError, match=r"ClapTeminalModel\.forward\(\) got unexpected keyword argument\(s\) "
                                        r"'labels'; the contrastive loss needs return_loss=True"):
        model(**inputs, labels=torch.zeros(2))
    with pytest.raises(TypeError, match=r"forward\(\) got unexpected keyword argument\(s\) 'retun_loss', 'x'$"):
        model(**inputs, retun_loss=True, x=1)
    with pytest.raises(TypeError, match=r"get_audio_features\(\) got unexpected keyword argument\(s\) 'input_ids'"):
        model.get_audio_features(input_features=inputs["input_features"], input_ids=inputs["input_ids"])
    with pytest.raises(TypeError, match=r"get_text_features\(\) got unexpected keyword argument\(s\) 'sampling_rate'"):
        model.get_text_features(input_ids=inputs["input_ids"], sampling_rate=48000)
    # what tokenizers, the feature extractors and transformers itself pass keeps working
    with torch.no_grad():
        ref = model(**inputs)
        out = model(**inputs, token_type_ids=torch.zeros_like(inputs["input_ids"]),
                    num_items_in_batch=torch.tensor(2), output_attentions=False, return_dict=True)
    torch.testing.assert_close(out.logits_per_audio, ref.logits_per_audio)


@pytest.mark.parametrize("preset", PRESETS)
def test_gradient_checkpointing_gives_the_same_gradients(preset):
    import copy

    torch.manual_seed(0)
    plain = ClapTeminalModel(ClapTeminalConfig.from_preset(preset)).train()  # the tiny presets have no dropout
    checkpointed = copy.deepcopy(plain)
    checkpointed.gradient_checkpointing_enable()
    assert checkpointed.is_gradient_checkpointing
    calls = {"text": 0, "audio": 0}
    for tower in ("text", "audio"):
        layers = [m for m in getattr(checkpointed, f"{tower}_model").modules()
                  if getattr(m, "gradient_checkpointing", False) and hasattr(m, "_gradient_checkpointing_func")]
        assert layers, tower
        for layer in layers:
            def counting(*args, _inner=layer._gradient_checkpointing_func, _tower=tower, **kwargs):
                calls[_tower] += 1
                return _inner(*args, **kwargs)

            layer._gradient_checkpointing_func = counting
    inputs = _preset_inputs(plain.config)
    for model in (plain, checkpointed):
        model(**inputs, return_loss=True).loss.backward()
    assert calls["text"] > 0 and calls["audio"] > 0, calls  # the layers of both towers were checkpointed
    grads = dict(checkpointed.named_parameters())
    compared = 0
    for name, param in plain.named_parameters():
        if param.grad is None:
            assert grads[name].grad is None, name
            continue
        torch.testing.assert_close(grads[name].grad, param.grad, atol=1e-5, rtol=0, msg=name)
        compared += 1
    assert compared > 20
