"""BeatsModel / BeatsForAudioClassification behaviour on tiny random models: relative buckets (vs transformers' T5),
eager == sdpa, time-aligned padding invariance, heads and losses, gradient checkpointing, errors."""

import pytest
import torch

from hf_alm.modeling.beats import (BeatsConfig, BeatsFeatureExtractor, BeatsForAudioClassification, BeatsModel,
                                   masked_mean, relative_position_buckets, tiny_beats_config)


def _clip(n, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 16000
    return (0.3 * torch.sin(2 * torch.pi * (300 + 500 * seed) * t) + 0.05 * torch.randn(n, generator=g)).numpy()


def _randomise(model, seed=0):
    """Random non-trivial weights everywhere (incl. gates and the relative bias), so mistakes show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=g) * (0.3 if ("grep" in name or "relative" in name) else 0.05))
    return model.eval()


@pytest.mark.parametrize("num_buckets, max_distance, length", [(320, 800, 700), (32, 64, 150), (32, 128, 90)])
def test_relative_buckets_match_transformers_t5(num_buckets, max_distance, length):
    from transformers.models.t5.modeling_t5 import T5Attention

    pos = torch.arange(length)
    relative = pos[None, :] - pos[:, None]
    expected = T5Attention._relative_position_bucket(relative, bidirectional=True, num_buckets=num_buckets,
                                                     max_distance=max_distance)
    assert torch.equal(relative_position_buckets(length, length, num_buckets, max_distance), expected)


def test_relative_bias_is_shared_and_gated_per_layer():
    model = BeatsModel(tiny_beats_config(encoder_layers=3))
    names = [n for n, _ in model.named_parameters()]
    assert sum("relative_attention_bias" in n for n in names) == 1
    assert sum(n.endswith("grep_a") for n in names) == 3 and sum("grep_linear.weight" in n for n in names) == 3


def test_dense_position_bias_is_the_bucket_table():
    model = _randomise(BeatsModel(tiny_beats_config()))
    encoder = model.encoder
    n = 37
    buckets = relative_position_buckets(n, n, 32, 64)
    expected = encoder.relative_attention_bias.weight[buckets].permute(2, 0, 1)  # [h, query, key]
    assert torch.equal(encoder.dense_position_bias(n), expected)


VARIANTS = {
    "released": {},
    "no_gate": dict(gru_rel_pos=False),
    "no_relative_bias": dict(relative_position_embedding=False),
    "pre_ln": dict(layer_norm_first=True, deep_norm=False),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("padded", [False, True])
def test_eager_and_sdpa_agree(padded, variant):
    config = tiny_beats_config(**VARIANTS[variant])
    model = _randomise(BeatsForAudioClassification(config))
    fe = BeatsFeatureExtractor()
    inputs = fe([_clip(16000, 1), _clip(9000 if padded else 16000, 2)], sampling_rate=16000, return_tensors="pt")
    outs = {}
    for impl in ("eager", "sdpa"):
        model.set_attn_implementation(impl)
        with torch.no_grad():
            outs[impl] = model(**inputs, output_hidden_states=True)
    torch.testing.assert_close(outs["eager"].logits, outs["sdpa"].logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outs["eager"].hidden_states[-1], outs["sdpa"].hidden_states[-1], atol=1e-5, rtol=1e-5)


def test_attentions_are_probabilities_that_ignore_padding():
    model = _randomise(BeatsModel(tiny_beats_config()))
    inputs = BeatsFeatureExtractor()([_clip(16000, 1), _clip(8000, 2)], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs, output_attentions=True, output_hidden_states=True)
    assert len(out.attentions) == 2 and len(out.hidden_states) == 3
    attn = out.attentions[0]
    n = out.last_hidden_state.shape[1]
    assert attn.shape == (2, 4, n, n)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 4, n))
    pad = out.padding_mask[1]
    assert pad.any() and float(attn[1][..., pad].abs().max()) == 0.0


def _padding_invariance(mode):
    config = tiny_beats_config(padding_mode=mode, id2label={0: "a", 1: "b", 2: "c"})
    model = _randomise(BeatsForAudioClassification(config), seed=3)
    fe = BeatsFeatureExtractor(padding_mode=mode)
    clips = [_clip(32000, 1), _clip(20800, 2), _clip(11000, 3)]
    batch = fe(clips, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        together = model(**batch)
    diffs = []
    for i, clip in enumerate(clips):
        alone_in = fe(clip, sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            alone = model(**alone_in, output_hidden_states=True)
            batch_hidden = model.beats(**batch).last_hidden_state[i]
        n = alone.frame_logits.shape[1]
        valid = ~together.padding_mask[i]
        diffs.append(dict(n=n, valid=int(valid.sum()),
                          logits=float((together.logits[i] - alone.logits[0]).abs().max()),
                          hidden=float((batch_hidden[:n] - alone.hidden_states[-1][0]).abs().max())))
    return diffs


def test_time_aligned_padding_gives_each_clip_its_own_outputs():
    for d in _padding_invariance("time_aligned"):
        assert d["valid"] == d["n"], d  # exactly the clip's own patches are valid
        assert d["logits"] < 1e-5 and d["hidden"] < 1e-4, d


def test_reference_padding_rule_is_not_invariant():
    """The original's chunk rule masks a suffix of the flattened patches by count (see the fixtures README), so a
    padded clip does not get its stand-alone outputs; this is what "time_aligned" fixes."""
    diffs = _padding_invariance("reference")
    assert diffs[0]["logits"] < 1e-5  # the longest clip has no padding
    assert max(d["logits"] for d in diffs[1:]) > 1e-3
    assert diffs[1]["valid"] != diffs[1]["n"]


def test_patches_are_time_major():
    """Patch p = t * 8 + f: perturbing frames of time column 2 changes exactly the patch embeddings 16..23."""
    model = _randomise(BeatsModel(tiny_beats_config()))
    x = torch.randn(1, 64, 128)
    y = x.clone()
    y[:, 32:48, :] += 1.0
    with torch.no_grad():
        a = model.patch_embedding(x.unsqueeze(1)).flatten(2).transpose(1, 2)
        b = model.patch_embedding(y.unsqueeze(1)).flatten(2).transpose(1, 2)
    changed = ((a - b).abs().amax(-1) > 1e-6)[0].nonzero().flatten().tolist()
    assert changed == list(range(16, 24))


def test_masked_mean_matches_the_reference_rule():
    values = torch.randn(2, 5, 3)
    pad = torch.tensor([[False] * 5, [False, False, True, True, True]])
    pooled = masked_mean(values, pad)
    torch.testing.assert_close(pooled[0], values[0].mean(0))
    torch.testing.assert_close(pooled[1], values[1, :2].mean(0))
    torch.testing.assert_close(masked_mean(values, torch.zeros(2, 5, dtype=torch.bool)), values.mean(1))
    assert torch.equal(masked_mean(values, torch.ones(2, 5, dtype=torch.bool)), torch.zeros(2, 3))  # no NaN


@pytest.mark.parametrize("problem_type", ["multi_label_classification", "single_label_classification", None])
def test_classifier_losses(problem_type):
    config = tiny_beats_config(id2label={0: "a", 1: "b", 2: "c"}, problem_type=problem_type)
    model = _randomise(BeatsForAudioClassification(config))
    x = torch.randn(2, 40, 128)
    if problem_type == "multi_label_classification":
        labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    else:
        labels = torch.tensor([2, 0])
    out = model(x, labels=labels)
    if problem_type == "multi_label_classification":
        expected = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, labels)
    else:
        expected = torch.nn.functional.cross_entropy(out.logits, labels)
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert model.classifier.weight.grad is not None and model.beats.patch_embedding.weight.grad.abs().sum() > 0
    torch.testing.assert_close(out.logits, out.frame_logits.mean(1))  # no mask: plain mean of per-patch logits


def test_gradient_checkpointing_gives_the_same_gradients():
    config = tiny_beats_config(id2label={0: "a", 1: "b"})
    x = torch.randn(2, 48, 128)
    labels = torch.tensor([0, 1])
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = _randomise(BeatsForAudioClassification(config)).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.beats.encoder.layers[0].gradient_checkpointing
        model(x, labels=labels).loss.backward()
        grads.append(model.beats.encoder.layers[0].fc1.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


def test_layer_wise_gradient_decay_scales_gradients():
    x = torch.randn(1, 32, 128)
    grads = {}
    for ratio in (1.0, 0.5):
        torch.manual_seed(0)
        model = _randomise(BeatsModel(tiny_beats_config(layer_wise_gradient_decay_ratio=ratio, encoder_layers=1)))
        model.train()
        model(x).last_hidden_state.sum().backward()
        grads[ratio] = model.patch_embedding.weight.grad.clone()
    torch.testing.assert_close(grads[0.5], grads[1.0] * 0.5, atol=1e-6, rtol=1e-4)


def test_bad_inputs_and_configs_are_clear_errors():
    model = BeatsModel(tiny_beats_config())
    with pytest.raises(ValueError, match=r"\(batch, frames, 128\)"):
        model(torch.randn(2, 100, 64))
    with pytest.raises(ValueError, match="fewer than one patch"):
        model(torch.randn(1, 10, 128))
    with pytest.raises(ValueError, match="attention_mask"):
        model(torch.randn(1, 40, 128), attention_mask=torch.ones(1, 39))
    with pytest.raises(ValueError, match="padding_mode"):
        BeatsConfig(padding_mode="left")
    with pytest.raises(ValueError, match="encoder_attention_heads"):
        BeatsConfig(encoder_embed_dim=100, encoder_attention_heads=12)
    with pytest.raises(ValueError, match="unknown keys.*'foo'"):
        BeatsConfig.from_original({"encoder_layers": 2, "foo": 1})


def test_released_defaults_and_parameter_count():
    config = BeatsConfig()
    assert (config.input_patch_size, config.embed_dim, config.encoder_embed_dim, config.encoder_layers,
            config.encoder_attention_heads, config.encoder_ffn_embed_dim, config.num_buckets,
            config.max_distance) == (16, 512, 768, 12, 12, 3072, 320, 800)
    assert abs(config.deep_norm_alpha - 24**0.25) < 1e-12
    with torch.device("meta"):
        model = BeatsModel(config)
    count = sum(p.numel() for p in model.parameters())
    assert 89e6 < count < 92e6  # the paper's "90M"


def test_save_and_reload_keeps_outputs(tmp_path):
    model = _randomise(BeatsModel(tiny_beats_config()))
    model.save_pretrained(tmp_path)
    again = BeatsModel.from_pretrained(tmp_path)
    x = torch.randn(1, 50, 128)
    with torch.no_grad():
        torch.testing.assert_close(again(x).last_hidden_state, model(x).last_hidden_state, atol=0, rtol=0)


class _WrappedLinear(torch.nn.Module):
    """Stands in for a PEFT/LoRA wrapper: same maths as the wrapped Linear plus an optional offset."""

    def __init__(self, linear, offset=0.0):
        super().__init__()
        self.base_layer, self.offset = linear, offset

    def forward(self, x):
        return self.base_layer(x) + self.offset


def test_wrapped_projections_are_honoured():
    """The fused q/k/v/gate GEMM must not bypass a wrapped projection (e.g. LoRA): the slow path calls the modules,
    gives the same numbers for an identity wrapper and reacts to a wrapper that changes the projection."""
    model = _randomise(BeatsModel(tiny_beats_config()))
    x = torch.randn(2, 48, 128)
    with torch.no_grad():
        fused = model(x).last_hidden_state
        attn = model.encoder.layers[1].self_attn
        attn.q_proj = _WrappedLinear(attn.q_proj)
        attn.grep_linear = _WrappedLinear(attn.grep_linear)
        torch.testing.assert_close(model(x).last_hidden_state, fused, atol=1e-5, rtol=1e-5)
        attn.q_proj.offset = 0.5
        assert (model(x).last_hidden_state - fused).abs().max() > 1e-3


def test_auto_classes_map_the_config():
    import hf_alm  # noqa: F401
    from transformers import (AutoConfig, AutoModel, AutoModelForAudioClassification, AutoModelForPreTraining)

    from hf_alm.modeling.beats import BeatsForPreTraining

    config = tiny_beats_config(id2label={0: "a", 1: "b"})
    assert isinstance(AutoConfig.for_model("hf_alm_beats"), BeatsConfig)
    assert type(AutoModel.from_config(config)) is BeatsModel
    assert type(AutoModelForAudioClassification.from_config(config)) is BeatsForAudioClassification
    assert type(AutoModelForPreTraining.from_config(config)) is BeatsForPreTraining


def test_fresh_weights_follow_the_original_init():
    torch.manual_seed(0)
    config = tiny_beats_config(encoder_embed_dim=256, encoder_ffn_embed_dim=512)
    model = BeatsModel(config)
    d, layers = 256, config.encoder_layers
    beta = (8 * layers) ** -0.25
    xavier = (2 / (d + d)) ** 0.5
    attn = model.encoder.layers[0].self_attn
    assert abs(attn.q_proj.weight.std().item() / xavier - 1) < 0.05  # DeepNorm: gain 1 for q, k
    assert abs(attn.v_proj.weight.std().item() / (beta * xavier) - 1) < 0.05  # gain beta for v, out, fc1, fc2
    assert abs(model.encoder.layers[1].fc2.weight.std().item() / (beta * (2 / (512 + d)) ** 0.5) - 1) < 0.05
    assert torch.equal(attn.grep_a, torch.ones_like(attn.grep_a)) and attn.q_proj.bias.abs().max() == 0
    conv = model.encoder.pos_conv.conv  # weight norm: g = ||v|| per tap, so the weight starts equal to v
    torch.testing.assert_close(conv.weight, conv.parametrizations.weight.original1)
    expected = (4 / (config.conv_pos * d)) ** 0.5
    assert abs(conv.weight.std().item() / expected - 1) < 0.05
