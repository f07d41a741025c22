"""ONE-PEACE model: presets and the 4B parameter table, adapters, fusion layers, heads, processor, Auto classes."""

import math
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

torch.set_num_threads(2)


def _tiny(**kw):
    from hf_alm.modeling.one_peace import OnePeaceConfig

    return OnePeaceConfig.from_preset("tiny", **kw)


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    wav = torch.randn(2, 1600, generator=g)
    audio_mask = torch.ones(2, 1600, dtype=torch.long)
    audio_mask[1, 1000:] = 0
    wav[1, 1000:] = 0
    ids = torch.randint(4, 64, (2, 7), generator=g)
    text_mask = torch.ones(2, 7, dtype=torch.long)
    text_mask[1, 5:] = 0
    ids[1, 5:] = 1
    img = torch.randn(2, 3, 32, 32, generator=g)
    return dict(input_ids=ids, attention_mask=text_mask, input_values=wav, audio_attention_mask=audio_mask,
                pixel_values=img)


# --------------------------------------------------------------------------------------------- presets / sizes
PAPER_M = {"V-Adapter": 3.4, "A-Adapter": 19, "L-Adapter": 78, "V-FFN": 1150, "A-FFN": 1150, "L-FFN": 1150,
           "shared attention": 378}


def component_counts(model):
    counts = dict.fromkeys(PAPER_M, 0)
    other = 0
    for name, p in model.named_parameters():
        key = ("L-Adapter" if ".text_adapter." in name else "V-Adapter" if ".image_adapter." in name
               else "A-Adapter" if ".audio_adapter." in name else "shared attention" if ".self_attn." in name
               else "L-FFN" if ".text_ffn." in name else "V-FFN" if ".image_ffn." in name
               else "A-FFN" if ".audio_ffn." in name else None)
        if key is None:
            other += p.numel()
        else:
            counts[key] += p.numel()
    return counts, other


def test_original_preset_matches_paper_model_size_table():
    from hf_alm.modeling.one_peace import OnePeaceConfig, OnePeaceModelWithProjection

    config = OnePeaceConfig.from_preset("original")
    assert (config.num_hidden_layers, config.hidden_size, config.intermediate_size, config.num_attention_heads) == (
        40, 1536, 6144, 24)
    with torch.device("meta"):
        model = OnePeaceModelWithProjection(config)
    counts, other = component_counts(model)
    for key, paper in PAPER_M.items():
        assert abs(counts[key] / 1e6 - paper) / paper < 0.02, (key, counts[key], paper)
    total = sum(counts.values()) + other
    # the paper's components sum to 3.93B ("4B" in the table is that sum rounded)
    assert abs(total / 1e9 - sum(PAPER_M.values()) / 1e3) / (sum(PAPER_M.values()) / 1e3) < 0.02
    # derived formulas of models.md: attention 4*D^2 per layer (+ biases / sub-LN), L-adapter (vocab + 514) * D
    assert counts["shared attention"] == 40 * (4 * 1536 ** 2 + 3 * 1536 + 2 * 1536)
    assert counts["L-Adapter"] == (50264 + 514 + 1) * 1536 + (2 * 256 - 1 + 3) * 24


@pytest.mark.parametrize("preset", ["tiny", "lite"])
def test_small_presets_build_and_run(preset):
    from hf_alm.modeling.one_peace import OnePeaceConfig, OnePeaceModelWithProjection

    config = OnePeaceConfig.from_preset(preset)
    model = OnePeaceModelWithProjection(config).eval()
    size = config.vision_config.image_size
    with torch.no_grad():
        out = model(input_ids=torch.randint(4, 50, (2, 6)), input_values=torch.randn(2, 16000),
                    pixel_values=torch.randn(2, 3, size, size))
    assert out.logits_per_audio.shape == (2, 2) and out.logits_per_image.shape == (2, 2)


def test_bad_config_and_inputs_give_clear_errors():
    from hf_alm.modeling.one_peace import OnePeaceConfig, OnePeaceModel

    with pytest.raises(ValueError, match="unknown ONE-PEACE preset 'huge'"):
        OnePeaceConfig.from_preset("huge")
    with pytest.raises(ValueError, match="divisible"):
        OnePeaceConfig.from_preset("tiny", hidden_size=30)
    model = OnePeaceModel(_tiny()).eval()
    with pytest.raises(ValueError, match=r"input_values must be \(batch, samples\)"):
        model(input_values=torch.randn(1600))
    with pytest.raises(ValueError, match="token id out of range"):
        model(input_ids=torch.tensor([[5, 999]]))
    with pytest.raises(ValueError, match="48 px"):
        model(pixel_values=torch.randn(1, 3, 48, 48))


# --------------------------------------------------------------------------------------------- fusion layer
def test_shared_attention_matches_torch_multihead_attention():
    """Our attention (sub-LN off) equals torch's nn.MultiheadAttention with the same weights, k bias 0, float mask."""
    from hf_alm.modeling.one_peace.modeling_one_peace import OnePeaceAttention

    config = _tiny(magneto_scale_attn=False)
    attn = OnePeaceAttention(config, 32, 4).eval()
    for lin in (attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj):
        torch.nn.init.normal_(lin.weight, std=0.2)
        if lin.bias is not None:
            torch.nn.init.normal_(lin.bias, std=0.2)
    ref = torch.nn.MultiheadAttention(32, 4, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, torch.zeros(32), attn.v_proj.bias]))
        ref.out_proj.weight.copy_(attn.out_proj.weight)
        ref.out_proj.bias.copy_(attn.out_proj.bias)
    x = torch.randn(2, 5, 32)
    bias = torch.randn(2, 4, 5, 5)
    bias[1, :, :, 3:] = torch.finfo(torch.float32).min
    with torch.no_grad():
        expected, _ = ref(x, x, x, attn_mask=bias.reshape(8, 5, 5), need_weights=False)
        for impl in ("eager", "sdpa"):
            config._attn_implementation = impl
            ours, _ = attn(x, bias)
            torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_geglu_ffn_formula():
    from hf_alm.modeling.one_peace.modeling_one_peace import OnePeaceGeGLUFFN

    ffn = OnePeaceGeGLUFFN(_tiny(), 32, 64).eval()
    torch.nn.init.normal_(ffn.ln.weight)
    x = torch.randn(3, 32)
    h = F.gelu(x @ ffn.wi_0.weight.T) * (x @ ffn.wi_1.weight.T)
    h = F.layer_norm(h, (64,), ffn.ln.weight, ffn.ln.bias, eps=1e-5)
    torch.testing.assert_close(ffn(x), h @ ffn.fc_out.weight.T + ffn.fc_out.bias)
    assert ffn.wi_0.bias is None and ffn.wi_1.bias is None


def test_layer_matches_reference_computation():
    """One fusion layer against the written-out ONE-PEACE block (pre-LN, sub-LN, LayerScale, modality FFN)."""
    from hf_alm.modeling.one_peace.modeling_one_peace import OnePeaceFusionLayer

    config = _tiny(layer_scale_init_value=0.5)
    layer = OnePeaceFusionLayer(config, 32, 4, 64, ("text", "audio"), 0.0).eval()
    for p in layer.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(1, 6, 32)
    a = layer.self_attn
    h = F.layer_norm(x, (32,), layer.self_attn_layer_norm.weight, layer.self_attn_layer_norm.bias)
    q = (h @ a.q_proj.weight.T + a.q_proj.bias).view(1, 6, 4, 8).transpose(1, 2) * 8 ** -0.5
    k = (h @ a.k_proj.weight.T).view(1, 6, 4, 8).transpose(1, 2)
    v = (h @ a.v_proj.weight.T + a.v_proj.bias).view(1, 6, 4, 8).transpose(1, 2)
    o = (q @ k.transpose(-1, -2)).softmax(-1) @ v
    o = F.layer_norm(o.transpose(1, 2).reshape(1, 6, 32), (32,), a.ln.weight, a.ln.bias)
    x1 = x + layer.gamma_1 * (o @ a.out_proj.weight.T + a.out_proj.bias)
    h = F.layer_norm(x1, (32,), layer.final_layer_norm.weight, layer.final_layer_norm.bias)
    # first 2 positions text, last 4 audio
    f = torch.cat([layer.text_ffn(h[:, :2]), layer.audio_ffn(h[:, 2:])], dim=1)
    expected = x1 + layer.gamma_2 * f
    with torch.no_grad():
        ours, _ = layer(x, None, [("text", 0, 2), ("audio", 2, 6)])
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pair", [("text", "audio"), ("text", "image")])
def test_mixed_sequences_route_each_slice_to_its_ffn(pair):
    from hf_alm.modeling.one_peace import OnePeaceModel

    model = OnePeaceModel(_tiny()).eval()
    inputs = _inputs()
    seen = {}
    hooks = [getattr(model.encoder.fusion_model.layers[0], f"{m}_ffn").register_forward_hook(
        lambda mod, args, out, m=m: seen.__setitem__(m, args[0].shape[1])) for m in ("text", "audio", "image")]
    kw = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
    if pair[1] == "audio":
        kw.update(input_values=inputs["input_values"], audio_attention_mask=inputs["audio_attention_mask"])
    else:
        kw.update(pixel_values=inputs["pixel_values"])
    with torch.no_grad():
        out = model(**kw)
    for h in hooks:
        h.remove()
    other = pair[1]
    assert set(seen) == {"text", other}
    assert seen["text"] == out.text_last_hidden_state.shape[1] == 8  # 7 tokens + CLS
    assert seen[other] == out[f"{other}_last_hidden_state"].shape[1]
    # joint encoding differs from separate encoding (the modalities attend to each other)
    with torch.no_grad():
        alone = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    assert not torch.allclose(alone.text_last_hidden_state, out.text_last_hidden_state, atol=1e-4)


def test_relative_bias_is_block_diagonal_and_used():
    from hf_alm.modeling.one_peace import OnePeaceModel

    model = OnePeaceModel(_tiny()).eval()
    seen = []
    h = model.encoder.fusion_model.layers[0].self_attn.register_forward_hook(
        lambda mod, args, out: seen.append(args[1]))
    inputs = _inputs()
    with torch.no_grad():
        model.encoder.text_adapter.rel_bias.rel_pos_tables[0].weight.normal_()
        model.encoder.audio_adapter.rel_bias.rel_pos_tables[0].weight.normal_()
        out1 = model(input_ids=inputs["input_ids"][:1], input_values=inputs["input_values"][:1])
    h.remove()
    bias = seen[0]
    n_text = 8
    assert bias.shape[-1] == out1.last_hidden_state.shape[1]
    assert bias[..., :n_text, n_text:].abs().sum() == 0 and bias[..., n_text:, :n_text].abs().sum() == 0
    table = model.encoder.text_adapter.rel_bias.rel_pos_tables[0].weight
    bucket = model.encoder.text_adapter.rp_bucket
    torch.testing.assert_close(bias[0, :, 2, 5], table[bucket[2, 5]])
    with torch.no_grad():
        model.encoder.text_adapter.rel_bias.rel_pos_tables[0].weight.zero_()
        out2 = model(input_ids=inputs["input_ids"][:1], input_values=inputs["input_values"][:1])
    assert not torch.allclose(out1.text_last_hidden_state, out2.text_last_hidden_state, atol=1e-4)


def test_drop_path_and_layer_scale():
    from hf_alm.modeling.one_peace import OnePeaceModel

    model = OnePeaceModel(_tiny(drop_path_rate=0.4, num_hidden_layers=3))
    rates = [layer.drop_path_rate for layer in model.encoder.fusion_model.layers]
    assert rates == pytest.approx([0.0, 0.2, 0.4])
    assert torch.all(model.encoder.fusion_model.layers[0].gamma_1 == 0.1)
    ids = torch.randint(4, 60, (8, 5))
    model.train()
    torch.manual_seed(0)
    a = model(input_ids=ids).text_last_hidden_state
    torch.manual_seed(1)
    b = model(input_ids=ids).text_last_hidden_state
    assert not torch.allclose(a, b)  # stochastic depth is active in training
    model.eval()
    torch.testing.assert_close(model(input_ids=ids).text_last_hidden_state,
                               model(input_ids=ids).text_last_hidden_state)


# --------------------------------------------------------------------------------------------- audio adapter
def test_audio_frame_lengths_follow_the_conv_formula():
    from hf_alm.modeling.one_peace.modeling_one_peace import conv_output_lengths
    from hf_alm.modeling.one_peace.configuration_one_peace import ORIGINAL_CONV_FEATURE_LAYERS

    # wav2vec2 / WavLM stack: 1 s at 16 kHz -> 49 frames, 15 s -> 749 (torch conv arithmetic)
    conv = torch.nn.Sequential(*[torch.nn.Conv1d(1, 1, k, s) for _, k, s in ORIGINAL_CONV_FEATURE_LAYERS])
    for n in (400, 16000, 16001, 240000):
        with torch.no_grad():
            frames = conv(torch.zeros(1, 1, n)).shape[-1]
        assert conv_output_lengths(torch.tensor([n]), ORIGINAL_CONV_FEATURE_LAYERS).item() == frames


def test_audio_adapter_and_model_are_padding_invariant():
    """A clip padded inside a batch gives the same embeddings / hidden states as the same clip alone."""
    from hf_alm.modeling.one_peace import OnePeaceModelWithProjection

    model = OnePeaceModelWithProjection(_tiny()).eval()
    for p in model.one_peace.encoder.audio_adapter.rel_bias.parameters():
        torch.nn.init.normal_(p)
    g = torch.Generator().manual_seed(3)
    long, short = torch.randn(2000, generator=g), torch.randn(1100, generator=g)
    batch = torch.zeros(2, 2000)
    batch[0], batch[1, :1100] = long, short
    mask = torch.zeros(2, 2000, dtype=torch.long)
    mask[0], mask[1, :1100] = 1, 1
    with torch.no_grad():
        adapter = model.one_peace.encoder.audio_adapter
        emb_b, pad_b, _ = adapter(batch, mask)
        emb_s, pad_s, _ = adapter(short[None])
        n = emb_s.shape[1]
        assert int((~pad_b[1]).sum()) == n
        torch.testing.assert_close(emb_b[1, :n], emb_s[0], atol=1e-5, rtol=1e-5)
        out_b = model.get_audio_features(batch, attention_mask=mask)
        out_s = model.get_audio_features(short[None])
        torch.testing.assert_close(out_b.pooler_output[1], out_s.pooler_output[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out_b.last_hidden_state[1, :n], out_s.last_hidden_state[0], atol=1e-4,
                                   rtol=1e-4)
        # garbage in the padded region changes nothing
        batch[1, 1100:] = 100.0
        torch.testing.assert_close(model.get_audio_features(batch, attention_mask=mask).pooler_output[1],
                                   out_s.pooler_output[0], atol=1e-5, rtol=1e-5)


def test_text_padding_invariance():
    from hf_alm.modeling.one_peace import OnePeaceModelWithProjection

    model = OnePeaceModelWithProjection(_tiny()).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 1, 1]])
    mask = torch.tensor([[1] * 5, [1, 1, 1, 0, 0]])
    with torch.no_grad():
        batched = model.get_text_features(ids, mask).pooler_output
        alone = model.get_text_features(ids[1:, :3]).pooler_output
    torch.testing.assert_close(batched[1], alone[0], atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------- heads
def test_projection_outputs_and_clamped_logit_scale():
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    from hf_alm.modeling.one_peace import OnePeaceModelWithProjection

    model = OnePeaceModelWithProjection(_tiny()).eval()
    inputs = _inputs()
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07), rel=1e-6)
    with torch.no_grad():
        a = model.get_audio_features(inputs["input_values"], attention_mask=inputs["audio_attention_mask"])
        t = model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
        i = model.get_image_features(inputs["pixel_values"])
        for out in (a, t, i):
            assert isinstance(out, BaseModelOutputWithPooling)
            torch.testing.assert_close(out.pooler_output.norm(dim=-1), torch.ones(2))
        ref = F.normalize(model.audio_proj(a.last_hidden_state[:, 0]), dim=-1)
        torch.testing.assert_close(a.pooler_output, ref)
        out = model(**inputs, return_loss=True)
        torch.testing.assert_close(out.logits_per_audio, (1 / 0.07) * a.pooler_output @ t.pooler_output.T,
                                   atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(out.logits_per_text, out.logits_per_audio.T)
        target = torch.arange(2)
        la = out.logits_per_audio
        li = out.logits_per_image
        expected = ((F.cross_entropy(la, target) + F.cross_entropy(la.T, target)) / 2
                    + (F.cross_entropy(li, target) + F.cross_entropy(li.T, target)) / 2) / 2
        torch.testing.assert_close(out.loss, expected)
        model.logit_scale.fill_(math.log(1000.0))
        assert model.logit_scale_exp().item() == pytest.approx(100.0)
        model.logit_scale.fill_(-3.0)
        assert model.logit_scale_exp().item() == pytest.approx(1.0)


def test_audio_classification_head():
    from hf_alm.modeling.one_peace import OnePeaceForAudioClassification

    model = OnePeaceForAudioClassification(_tiny(num_labels=3)).eval()
    inputs = _inputs()
    out = model(inputs["input_values"], attention_mask=inputs["audio_attention_mask"], labels=torch.tensor([0, 2]))
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, torch.tensor([0, 2])))
    out.loss.backward()
    assert model.classify_head.attn_pooling.q.grad is not None
    # the head pools only real frames (CLS excluded)
    with torch.no_grad():
        hidden = model.one_peace(input_values=inputs["input_values"],
                                 audio_attention_mask=inputs["audio_attention_mask"]).audio_last_hidden_state
        pad = model.one_peace(input_values=inputs["input_values"],
                              audio_attention_mask=inputs["audio_attention_mask"]).audio_padding_mask
        base = model.classify_head(hidden, pad)
        hidden2 = hidden.clone()
        hidden2[1][pad[1]] = 50.0
        hidden2[:, 0] = -50.0  # CLS is not pooled either
        torch.testing.assert_close(model.classify_head(hidden2, pad), base)
        multi = OnePeaceForAudioClassification(_tiny(num_labels=3, problem_type="multi_label_classification"))
        labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
        o = multi(inputs["input_values"], labels=labels)
        torch.testing.assert_close(o.loss, F.binary_cross_entropy_with_logits(o.logits, labels))


# --------------------------------------------------------------------------------------------- processing
def test_feature_extractor_matches_torch_layer_norm_and_checks_rate():
    from hf_alm.modeling.one_peace import OnePeaceFeatureExtractor

    fe = OnePeaceFeatureExtractor()
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(20000) * 3 + 1).astype(np.float32)
    b = rng.standard_normal(5000).astype(np.float32)
    out = fe([a, b], sampling_rate=16000, return_tensors="pt")
    torch.testing.assert_close(out["input_values"][0], F.layer_norm(torch.from_numpy(a), (20000,)), atol=1e-5,
                               rtol=1e-5)
    # < 1 s: normalised, then repeated and cut to exactly 1 s
    nb = F.layer_norm(torch.from_numpy(b), (5000,))
    torch.testing.assert_close(out["input_values"][1, :16000], nb.repeat(4)[:16000], atol=1e-5, rtol=1e-5)
    assert out["attention_mask"].sum(-1).tolist() == [20000, 16000]
    assert fe(np.zeros(16000 * 20, np.float32) + rng.standard_normal(16000 * 20).astype(np.float32),
              sampling_rate=16000)["input_values"].shape == (1, 16000 * 15)
    assert "attention_mask" not in fe(a, sampling_rate=16000)  # single clip: no mask (pipeline-friendly)
    with pytest.raises(ValueError, match="44100 Hz"):
        fe(a, sampling_rate=44100)
    with pytest.raises(ValueError, match="pass sampling_rate"):
        fe(a)
    with pytest.raises(ValueError, match=r"shape \(2, 100, 3\)"):
        fe(np.zeros((2, 100, 3), np.float32), sampling_rate=16000)


def _tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["a dog barks", "a cat meows", "this is a sound of rain", "a red circle at the top"],
                            trainers.BpeTrainer(vocab_size=60, special_tokens=["<s>", "<pad>", "</s>", "<unk>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>")


def test_processor_round_trip_and_zero_shot_pipeline(tmp_path):
    import hf_alm  # noqa: F401
    from transformers import AutoModel, AutoProcessor, pipeline

    from hf_alm.modeling.one_peace import (
        OnePeaceFeatureExtractor,
        OnePeaceImageProcessor,
        OnePeaceModelWithProjection,
        OnePeaceProcessor,
    )

    tok = _tokenizer()
    proc = OnePeaceProcessor(feature_extractor=OnePeaceFeatureExtractor(min_duration=0.0),
                             image_processor=OnePeaceImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok)
    model = OnePeaceModelWithProjection(_tiny()).eval()
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(1600).astype(np.float32), rng.standard_normal(1200).astype(np.float32)]
    image = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    batch = proc(text=["A Dog barks", "a cat"], audio=clips, images=[image, image], sampling_rate=16000)
    assert set(batch) == {"input_ids", "attention_mask", "input_values", "audio_attention_mask", "pixel_values"}
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["input_ids"][0].tolist() == tok(["a dog barks"])["input_ids"][0]  # lower-cased
    with torch.no_grad():
        out = model(**batch)
    assert out.logits_per_audio.shape == (2, 2)
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded).__name__ == "OnePeaceProcessor"
    assert loaded.feature_extractor.min_duration == 0.0 and loaded.image_processor.size["height"] == 32
    again = loaded(text=["a dog barks"], audio=clips[:1], sampling_rate=16000)
    torch.testing.assert_close(again["input_values"], batch["input_values"][:1, :1600])
    model2 = AutoModel.from_pretrained(tmp_path)
    clf = pipeline("zero-shot-audio-classification", model=model2, feature_extractor=loaded.feature_extractor,
                   tokenizer=loaded.tokenizer)
    result = clf(clips[0], candidate_labels=["dog", "cat", "rain"])
    assert sorted(r["label"] for r in result) == ["cat", "dog", "rain"]
    assert sum(r["score"] for r in result) == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad():
        a = model2.get_audio_features(torch.from_numpy(proc.feature_extractor(clips[0], sampling_rate=16000)
                                                       ["input_values"])).pooler_output
        t = model2.get_text_features(**tok([f"This is a sound of {x}." for x in ("dog", "cat", "rain")],
                                           padding=True, return_tensors="pt")).pooler_output
    probs = (model2.logit_scale_exp() * a @ t.T).softmax(-1)[0]
    assert result[0]["score"] == pytest.approx(probs.max().item(), abs=1e-5)


def test_remote_code_loads_without_hf_alm(tmp_path):
    from hf_alm.modeling.one_peace import OnePeaceModelWithProjection

    from hf_alm.modeling.one_peace import OnePeaceFeatureExtractor, OnePeaceImageProcessor, OnePeaceProcessor

    model = OnePeaceModelWithProjection(_tiny()).eval()
    model.save_pretrained(tmp_path)
    OnePeaceProcessor(OnePeaceFeatureExtractor(min_duration=0.5), OnePeaceImageProcessor(), _tokenizer()
                      ).save_pretrained(tmp_path)
    wav = torch.randn(1, 1600)
    with torch.no_grad():
        ref = model.get_audio_features(wav).pooler_output
    torch.save(wav, tmp_path / "wav.pt")
    code = (
        "import sys, torch; from transformers import AutoModel\n"
        f"m = AutoModel.from_pretrained({str(tmp_path)!r}, trust_remote_code=True).eval()\n"
        "from transformers import AutoProcessor\n"
        f"p = AutoProcessor.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)\n"
        "assert type(p).__name__ == 'OnePeaceProcessor' and p.feature_extractor.min_duration == 0.5\n"
        "assert 'hf_alm' not in sys.modules, 'remote code imported hf_alm'\n"
        f"w = torch.load({str(tmp_path / 'wav.pt')!r})\n"
        "with torch.no_grad(): print(type(m).__name__, m.get_audio_features(w).pooler_output.tolist())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    name, values = out.stdout.strip().split(" ", 1)
    assert name == "OnePeaceModelWithProjection"
    torch.testing.assert_close(torch.tensor(eval(values)), ref, atol=1e-5, rtol=1e-5)


def test_save_load_round_trip_every_class(tmp_path):
    import hf_alm  # noqa: F401
    from transformers import AutoModel, AutoModelForAudioClassification, AutoModelForPreTraining

    from hf_alm.modeling.one_peace import (
        OnePeaceForAudioClassification,
        OnePeaceForPreTraining,
        OnePeaceModelWithProjection,
    )

    for cls, auto in ((OnePeaceModelWithProjection, AutoModel),
                      (OnePeaceForAudioClassification, AutoModelForAudioClassification),
                      (OnePeaceForPreTraining, AutoModelForPreTraining)):
        model = cls(_tiny(num_labels=2))
        path = tmp_path / cls.__name__
        model.save_pretrained(path)
        loaded = auto.from_pretrained(path)
        assert type(loaded) is cls
        for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert k == k2 and torch.equal(a, b), k
    # a pretraining checkpoint loads into the retrieval model (decoder weights ignored)
    proj = OnePeaceModelWithProjection.from_pretrained(tmp_path / "OnePeaceForPreTraining")
    pre = OnePeaceForPreTraining.from_pretrained(tmp_path / "OnePeaceForPreTraining")
    torch.testing.assert_close(proj.audio_proj.weight, pre.audio_proj.weight)


# --------------------------------------------------------------------------------------------- audit fixes
def _eager_copy(model):
    """The same class and weights with eager attention (the reference for attention weights)."""
    twin = type(model)._from_config(model.config, attn_implementation="eager").eval()
    twin.load_state_dict(model.state_dict())
    return twin


def test_output_attentions_reach_the_classifier_and_projection_model():
    """Before: OnePeaceForAudioClassification, OnePeaceModelWithProjection and get_*_features swallowed
    output_attentions in **kwargs and returned attentions=None (only the bare OnePeaceModel worked)."""
    from hf_alm.modeling.one_peace import OnePeaceForAudioClassification, OnePeaceModelWithProjection

    torch.manual_seed(0)
    inputs = _inputs()
    config = _tiny(num_labels=3)
    layers, heads = config.num_hidden_layers, config.num_attention_heads
    clf = OnePeaceForAudioClassification(config).eval()
    assert clf.config._attn_implementation == "sdpa"  # the default: attentions need the eager fallback
    with torch.no_grad():
        out = clf(inputs["input_values"], attention_mask=inputs["audio_attention_mask"], output_attentions=True)
        pad = clf.one_peace(input_values=inputs["input_values"],
                            audio_attention_mask=inputs["audio_attention_mask"]).audio_padding_mask
        frames = pad.shape[1]
        ref = _eager_copy(clf)(inputs["input_values"], attention_mask=inputs["audio_attention_mask"],
                               output_attentions=True)
    assert out.attentions is not None and len(out.attentions) == layers
    assert all(a.shape == (2, heads, frames, frames) for a in out.attentions)
    for a, b in zip(out.attentions, ref.attentions):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(2, heads, frames))
    assert pad[1].any() and float(out.attentions[0][1][..., pad[1]].abs().max()) == 0.0  # padding gets none

    proj = OnePeaceModelWithProjection(config).eval()
    eager = _eager_copy(proj)
    with torch.no_grad():
        text = proj.get_text_features(inputs["input_ids"], inputs["attention_mask"], output_attentions=True)
        audio = proj.get_audio_features(inputs["input_values"], inputs["audio_attention_mask"], output_attentions=True)
        image = proj.get_image_features(inputs["pixel_values"], output_attentions=True)
        both = proj(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                    input_values=inputs["input_values"], audio_attention_mask=inputs["audio_attention_mask"],
                    output_attentions=True)
        ref_audio = eager.get_audio_features(inputs["input_values"], inputs["audio_attention_mask"],
                                             output_attentions=True)
    for feats, length in ((text, 8), (audio, frames), (image, 5)):
        assert feats.attentions is not None and len(feats.attentions) == layers
        assert all(a.shape == (2, heads, length, length) for a in feats.attentions)
    for a, b in zip(audio.attentions, ref_audio.attentions):
        torch.testing.assert_close(a, b)
    for a, b in zip(both.audio_model_output.attentions, audio.attentions):
        torch.testing.assert_close(a, b)
    assert len(both.text_model_output.attentions) == layers


def test_return_dict_false_gives_tuples_from_every_head():
    """Before: with config.return_dict=False the heads crashed on the inner model's tuple ("'tuple' object has no
    attribute 'audio_last_hidden_state'", "tuple indices must be integers")."""
    from hf_alm.modeling.one_peace import OnePeaceForAudioClassification, OnePeaceModelWithProjection

    inputs = _inputs()
    for cls in (OnePeaceForAudioClassification, OnePeaceModelWithProjection):
        torch.manual_seed(0)
        model = cls(_tiny(num_labels=3)).eval()
        tuple_model = cls(_tiny(num_labels=3, return_dict=False)).eval()
        tuple_model.load_state_dict(model.state_dict())
        with torch.no_grad():
            if cls is OnePeaceForAudioClassification:
                labels = torch.tensor([0, 2])
                ref = model(inputs["input_values"], attention_mask=inputs["audio_attention_mask"], labels=labels)
                out = tuple_model(inputs["input_values"], attention_mask=inputs["audio_attention_mask"], labels=labels)
                assert isinstance(out, tuple)
                torch.testing.assert_close(out[0], ref.loss)
                torch.testing.assert_close(out[1], ref.logits)
            else:
                kw = {k: inputs[k] for k in ("input_ids", "attention_mask", "input_values", "audio_attention_mask")}
                ref = model(**kw)
                out = tuple_model(**kw)
                assert isinstance(out, tuple)
                torch.testing.assert_close(out[0], ref.logits_per_audio)
                torch.testing.assert_close(out[1], ref.logits_per_text)
                # get_*_features keep returning outputs with pooler_output
                feats = tuple_model.get_audio_features(inputs["input_values"], inputs["audio_attention_mask"])
                torch.testing.assert_close(feats.pooler_output, ref.audio_embeds)


@pytest.mark.parametrize("cls_name", ["OnePeaceModel", "OnePeaceModelWithProjection", "OnePeaceForAudioClassification",
                                      "OnePeaceForPreTraining"])
def test_input_embeddings_are_the_text_tokens_and_resize_round_trips(cls_name, tmp_path):
    """Before: get_input_embeddings / resize_token_embeddings raised NotImplementedError on every class."""
    import hf_alm.modeling.one_peace as one_peace

    torch.manual_seed(0)
    cls = getattr(one_peace, cls_name)
    model = cls(_tiny(num_labels=2)).eval()
    base = model if cls_name == "OnePeaceModel" else model.one_peace
    embed = model.get_input_embeddings()
    assert embed is base.encoder.text_adapter.embed_tokens
    n = model.config.text_config.vocab_size
    old = embed.weight.detach().clone()
    resized = model.resize_token_embeddings(n + 8)
    assert resized.num_embeddings == n + 8 and model.config.text_config.vocab_size == n + 8
    assert base.encoder.text_adapter.embed_tokens is resized
    torch.testing.assert_close(resized.weight[:n], old)
    ids = torch.tensor([[5, n + 7, 9]])  # a new token id is accepted now
    with torch.no_grad():
        hidden = base(input_ids=ids).text_last_hidden_state
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path).eval()
    assert loaded.config.text_config.vocab_size == n + 8
    torch.testing.assert_close(loaded.get_input_embeddings().weight, resized.weight)
    loaded_base = loaded if cls_name == "OnePeaceModel" else loaded.one_peace
    with torch.no_grad():
        torch.testing.assert_close(loaded_base(input_ids=ids).text_last_hidden_state, hidden)


def test_model_without_text_branch_says_it_has_no_token_embeddings():
    from hf_alm.modeling.one_peace import OnePeaceModel

    model = OnePeaceModel(_tiny(use_text_moe=False, use_image_moe=False))
    with pytest.raises(NotImplementedError, match=r"no text branch \(use_text_moe=False\)"):
        model.get_input_embeddings()


def test_bf16_model_takes_the_feature_extractors_float32_inputs():
    """Before: "Input type (torch.FloatTensor) and weight type (CPUBFloat16Type) should be the same"."""
    from hf_alm.modeling.one_peace import (
        OnePeaceFeatureExtractor,
        OnePeaceForAudioClassification,
        OnePeaceModelWithProjection,
    )

    torch.manual_seed(0)
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    feats = OnePeaceFeatureExtractor()(audio, sampling_rate=16000, return_tensors="pt")
    assert feats["input_values"].dtype == torch.float32
    clf = OnePeaceForAudioClassification(_tiny(num_labels=3)).eval()
    with torch.no_grad():
        ref = clf(**feats).logits
        out = clf.to(torch.bfloat16)(**feats).logits
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.1)
    proj = OnePeaceModelWithProjection(_tiny()).eval()
    pixels = _inputs()["pixel_values"]
    with torch.no_grad():
        ref_img = proj.get_image_features(pixels).pooler_output
        img = proj.to(torch.bfloat16).get_image_features(pixels).pooler_output
    assert img.dtype == torch.bfloat16
    torch.testing.assert_close(img.float(), ref_img, atol=0.05, rtol=0.05)


def test_set_attn_implementation_switches_at_run_time(monkeypatch):
    """Before: set_attn_implementation("eager") warned that the model does not support it and stayed on sdpa."""
    from hf_alm.modeling.one_peace import OnePeaceForAudioClassification
    from hf_alm.modeling.one_peace import modeling_one_peace as mod

    torch.manual_seed(0)
    model = OnePeaceForAudioClassification(_tiny(num_labels=3)).eval()
    inputs = _inputs()
    calls = []
    eager = mod.eager_attention_forward

    def counting(*args, **kwargs):
        calls.append(1)
        return eager(*args, **kwargs)

    monkeypatch.setattr(mod, "eager_attention_forward", counting)
    with torch.no_grad():
        sdpa_logits = model(inputs["input_values"], attention_mask=inputs["audio_attention_mask"]).logits
        assert calls == []  # sdpa
        assert type(model)._can_set_attn_implementation()
        model.set_attn_implementation("eager")
        assert model.config._attn_implementation == "eager"
        eager_logits = model(inputs["input_values"], attention_mask=inputs["audio_attention_mask"]).logits
        assert len(calls) == model.config.num_hidden_layers  # the switch took effect on the built model
        torch.testing.assert_close(eager_logits, sdpa_logits, atol=1e-5, rtol=1e-5)
        model.set_attn_implementation("sdpa")
        calls.clear()
        model(inputs["input_values"])
        assert calls == []


def test_feature_extractor_rejects_ambiguous_and_bad_inputs_naming_them():
    from hf_alm.modeling.one_peace import OnePeaceFeatureExtractor

    fe = OnePeaceFeatureExtractor()
    clip = np.random.default_rng(0).uniform(-0.5, 0.5, 3000).astype(np.float32)
    # channel-last audio (soundfile.read) was read as 3000 clips of 2 samples, each repeated to 1 s
    for shape in ((3000, 2), (3000, 1)):
        with pytest.raises(ValueError, match=re.escape(
                f"raw_speech of shape {shape} looks like (samples, channels) audio; down-mix it to mono first "
                f"(e.g. audio.mean(axis=1)); a batch is (clips, samples) or a list of 1-D clips")):
            fe(np.zeros(shape, np.float32), sampling_rate=16000)
        audio = np.zeros(shape, np.float32)
        for nested in (audio.tolist(), list(audio)):  # the same audio as a list of (channels,) rows
            with pytest.raises(ValueError, match=re.escape(f"raw_speech of shape {shape} looks like (samples, ")):
                fe(nested, sampling_rate=16000)
    assert fe(np.stack([clip, clip]), sampling_rate=16000)["input_values"].shape == (2, 16000)  # (clips, samples)
    with pytest.raises(ValueError, match=r"got dtype int16; convert integer PCM first \(e\.g\. int16 / 32768\)"):
        fe((clip * 32767).astype(np.int16), sampling_rate=16000)
    bad = clip.copy()
    bad[100] = np.nan
    with pytest.raises(ValueError, match=re.escape("clip 1 has a non-finite sample (nan) at index 100")):
        fe([clip, bad], sampling_rate=16000)
    bad[100], bad[7] = 0.0, -np.inf
    with pytest.raises(ValueError, match=re.escape("clip 0 has a non-finite sample (-inf) at index 7")):
        fe(bad, sampling_rate=16000)
    with pytest.raises(ValueError, match=re.escape("clip 2 is empty (0 samples)")):
        fe([clip, clip, np.zeros(0, np.float32)], sampling_rate=16000)
    with pytest.raises(TypeError, match=re.escape(
            "raw_speech is a str ('foo.wav'); load the audio first (e.g. hf_alm.data.load_audio) and pass the array")):
        fe("foo.wav", sampling_rate=16000)
    with pytest.raises(TypeError, match="raw_speech is None"):
        fe(None, sampling_rate=16000)
    with pytest.raises(TypeError, match=re.escape("clip 1 is a str ('b.wav'); load the audio first")):
        fe([clip, "b.wav"], sampling_rate=16000)
    for rate in ("16k", 16000.5):
        with pytest.raises(ValueError, match=re.escape(f"sampling_rate must be a whole number of Hz, got {rate!r}")):
            fe(clip, sampling_rate=rate)
    for rate in (16000, np.int64(16000), 16000.0):
        assert fe(clip, sampling_rate=rate)["input_values"].shape == (1, 16000)


def FE():
    from hf_alm.modeling.one_peace import OnePeaceFeatureExtractor

    return OnePeaceFeatureExtractor()


FRAME, FRAME_MS = 400, 25  # ONE-PEACE's conv front end: a 400-sample (25 ms) receptive field


# ----------------------------------------------------------------- hostile input (issue 16), same rules as BEATs / CLAP
@pytest.mark.parametrize("make", [lambda a: a, torch.from_numpy, lambda a: a.tolist()], ids=["numpy", "torch", "list"])
@pytest.mark.parametrize("channels", [9, 16, 64])
def test_hostile_multichannel_audio_with_more_than_8_channels_is_not_a_batch(make, channels):
    """(24000, 16) from soundfile.read passed the old "at most 8 channels" guard and became 24000 clips."""
    fe = FE()
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (24000, channels)).astype(np.float32)
    with pytest.raises(ValueError, match=re.escape(
            f"raw_speech of shape (24000, {channels}) looks like (samples, channels) audio; down-mix it to mono first "
            f"(e.g. audio.mean(axis=1)); a batch is (clips, samples) or a list of 1-D clips, and rows of {channels} "
            f"samples are shorter than one analysis frame ({FRAME} samples)")):
        fe(make(audio), sampling_rate=16000)
    assert fe(np.ascontiguousarray(audio.T), sampling_rate=16000)["input_values"].shape[0] == channels


@pytest.mark.parametrize("batch, shown", [
    (np.zeros((0, 16000), np.float32), r"\(shape \(0, 16000\)\)"),
    (torch.zeros(0, 16000), r"\(shape \(0, 16000\)\)"),
    ([], r"\(an empty list\)"),
])
def test_hostile_empty_batch_is_a_value_error_naming_it(batch, shown):
    with pytest.raises(ValueError, match=r"^raw_speech is an empty batch " + shown + r"; pass at least one clip of "
                                         r"audio$"):
        FE()(batch, sampling_rate=16000)


@pytest.mark.parametrize("length", [1, 2, FRAME - 1])
def test_hostile_clip_shorter_than_one_frame_names_clip_length_and_minimum(length):
    clip = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    with pytest.raises(ValueError, match=rf"^clip 1 has {length} samples, shorter than one {FRAME_MS} ms frame "
                                         rf"\({FRAME} samples at 16000 Hz\)$"):
        FE()([clip, clip[:length]], sampling_rate=16000)
    out = FE()(clip[:FRAME], sampling_rate=16000)["input_values"]
    assert np.isfinite(out).all() and np.ptp(out) > 0  # one frame is enough, and not constant


def test_hostile_int16_range_or_huge_float_audio_is_refused_unless_its_float_scale_is_given():
    fe = FE()
    clip = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    for peak in (30000.0, 1e13, 1e300):
        loud = clip.astype(np.float64) / 0.5 * peak
        first = int(np.argmax(np.abs(loud) > 64))
        with pytest.raises(ValueError, match=re.escape(
                f"clip 1 has a peak amplitude of {np.abs(loud).max():g} (index {first} is the first sample above 64): "
                f"float audio must be in [-1, 1] and a peak above 64 means samples on another scale (e.g. int16 PCM "
                f"stored as floats); divide it by its full scale (e.g. audio / 32768) or pass float_scale= (e.g. "
                f"float_scale=32768)")):
            fe([clip, loud], sampling_rate=16000)
        got = fe(loud, sampling_rate=16000, float_scale=peak / 0.5)["input_values"]
        np.testing.assert_allclose(got, fe(clip, sampling_rate=16000)["input_values"], atol=1e-4)
    with pytest.raises(ValueError, match=r"more than 64 x float_scale=2; check float_scale"):
        fe(clip * 1000, sampling_rate=16000, float_scale=2)
    for bad in (0, float("nan"), "x", True):
        with pytest.raises(ValueError, match=rf"^float_scale must be a positive finite number .*got {re.escape(repr(bad))}$"):
            fe(clip, sampling_rate=16000, float_scale=bad)


def test_hostile_float16_audio_with_a_scale_beyond_float16_is_not_silenced():
    """float16 samples divided by a scale past float16's range (65504) became x / Inf = 0: silent features."""
    clip = np.random.default_rng(0).uniform(-0.5, 0.5, 16000)
    loud = (clip * 60000).astype(np.float16)
    got = FE()(loud, sampling_rate=16000, float_scale=120000.0)["input_values"]
    expected = FE()((loud.astype(np.float64) / 120000.0).astype(np.float32), sampling_rate=16000)["input_values"]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.ptp(got) > 1
