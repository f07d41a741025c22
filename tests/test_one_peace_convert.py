"""ONE-PEACE converter: a synthetic state dict in the original fairseq layout (key names of models.md §4.9 and the
OFA-Sys module tree) is built here from scratch, every tensor with distinct random values, and converted."""

import math
import subprocess
import sys

import pytest
import torch

D, LAYERS, HEADS, FFN, VOCAB = 32, 2, 4, 48, 40
DEC_D, DEC_LAYERS, DEC_HEADS, DEC_FFN = 16, 1, 2, 24
SPEC = [(16, 10, 5), (16, 3, 2), (16, 2, 2)]
SPEC_STR = "[(16, 10, 5)] + [(16, 3, 2)] + [(16,2,2)]"
A_BUCKET, T_BUCKET, GRID, MAXPOS, TEXT_POS = 8, 4, 2, 64, 20
POS_DEPTH, POS_K, POS_GROUPS = 2, 3, 4


def _orig_token_bucket(bucket, max_pos):
    """Independent per-element statement of ONE-PEACE's make_token_bucket_position (+ CLS ids)."""
    half = bucket // 2
    out = torch.empty(max_pos, max_pos, dtype=torch.long)
    for i in range(max_pos):
        for j in range(max_pos):
            d = i - j
            if abs(d) <= half:
                b = d
            else:
                b = int(math.copysign(half + math.ceil(math.log(abs(d) / half) / math.log((max_pos - 1) / half)
                                                       * (half - 1)), d))
            out[i, j] = b + bucket - 1
    n = 2 * bucket - 1
    out[0, :], out[:, 0], out[0, 0] = n, n + 1, n + 2
    return out


def build_original(per_layer_tables=False, decoder=True, classify=False, proj=True, rnd=None):
    g = rnd or torch.Generator().manual_seed(0)
    sd = {}

    def t(*shape):
        return torch.randn(*shape, generator=g)

    def adapters(prefix, dim, heads, n_layers, dec):
        n_tab = n_layers if per_layer_tables else 1
        # text
        tp = f"{prefix}.text_adapter."
        if not dec:
            sd[tp + "embed_tokens.weight"] = t(VOCAB, dim)
        sd[tp + "embed_positions.weight"] = t(TEXT_POS, dim)
        sd[tp + "cls_embedding"] = t(1, 1, dim)
        for k in range(n_tab):
            sd[tp + f"rel_pos_table_list.{k}.weight"] = t(2 * T_BUCKET - 1 + 3, heads)
        sd[tp + "rp_bucket"] = _orig_token_bucket(T_BUCKET, MAXPOS)
        # image
        ip = f"{prefix}.image_adapter."
        if not dec:
            q = dim // 4
            for idx, shape in ((0, (q, 3, 4, 4)), (3, (q, q, 2, 2)), (6, (dim, q, 2, 2))):
                sd[ip + f"embed_images.{idx}.weight"] = t(*shape)
                sd[ip + f"embed_images.{idx}.bias"] = t(shape[0])
            for idx in (1, 4):
                sd[ip + f"embed_images.{idx}.layer_norm.weight"] = t(q)
                sd[ip + f"embed_images.{idx}.layer_norm.bias"] = t(q)
        sd[ip + "pos_embed"] = t(GRID ** 2 + 1, dim)
        sd[ip + "cls_embedding"] = t(1, 1, dim)
        sd[ip + "position_idx"] = torch.arange(GRID ** 2 + 1)
        for k in range(n_tab):
            sd[ip + f"rel_pos_table_list.{k}.weight"] = t((2 * GRID - 1) ** 2 + 3, heads)
        sd[ip + "rp_bucket"] = _image_bucket_reference(GRID)
        # audio
        ap = f"{prefix}.audio_adapter."
        if not dec:
            cin = 1
            for j, (c, k, _) in enumerate(SPEC):
                sd[ap + f"embed_audios.0.conv_layers.{j}.0.weight"] = t(c, cin, k)
                sd[ap + f"embed_audios.0.conv_layers.{j}.2.1.weight"] = t(c)
                sd[ap + f"embed_audios.0.conv_layers.{j}.2.1.bias"] = t(c)
                cin = c
            sd[ap + "embed_audios.2.weight"], sd[ap + "embed_audios.2.bias"] = t(cin), t(cin)
            sd[ap + "embed_audios.3.weight"], sd[ap + "embed_audios.3.bias"] = t(dim, cin), t(dim)
            for j in range(1, POS_DEPTH + 1):
                sd[ap + f"embed_positions.{j}.0.weight"] = t(dim, dim // POS_GROUPS, POS_K)
                sd[ap + f"embed_positions.{j}.0.bias"] = t(dim)
            sd[ap + "cls_pos_embed"] = t(1, 1, dim)
        else:
            sd[ap + "embed_positions.weight"] = t(MAXPOS + 2, dim)
        sd[ap + "cls_embedding"] = t(1, 1, dim)
        sd[ap + "mask_embedding"] = t(1, dim)
        for k in range(n_tab):
            sd[ap + f"rel_pos_table_list.{k}.weight"] = t(2 * A_BUCKET - 1 + 3, heads)
        sd[ap + "rp_bucket"] = _orig_token_bucket(A_BUCKET, MAXPOS)

    def fusion(prefix, dim, n_layers, ffn):
        for i in range(n_layers):
            lp = f"{prefix}.fusion_model.layers.{i}."
            for p in ("q_proj", "v_proj", "out_proj"):
                sd[lp + f"self_attn.{p}.weight"], sd[lp + f"self_attn.{p}.bias"] = t(dim, dim), t(dim)
            sd[lp + "self_attn.k_proj.weight"] = t(dim, dim)
            sd[lp + "self_attn.ln.weight"], sd[lp + "self_attn.ln.bias"] = t(dim), t(dim)
            for n in ("self_attn_layer_norm", "final_layer_norm"):
                sd[lp + f"{n}.weight"], sd[lp + f"{n}.bias"] = t(dim), t(dim)
            sd[lp + "gamma_1"], sd[lp + "gamma_2"] = t(dim), t(dim)
            for m in ("text", "image", "audio"):
                sd[lp + f"{m}_ffn.0.wi_0.weight"] = t(ffn, dim)
                sd[lp + f"{m}_ffn.0.wi_1.weight"] = t(ffn, dim)
                sd[lp + f"{m}_ffn.2.weight"], sd[lp + f"{m}_ffn.2.bias"] = t(ffn), t(ffn)
                sd[lp + f"{m}_ffn.3.weight"], sd[lp + f"{m}_ffn.3.bias"] = t(dim, ffn), t(dim)
        for m in ("text", "image", "audio"):
            sd[f"{prefix}.fusion_model.{m}_layer_norm.weight"] = t(dim)
            sd[f"{prefix}.fusion_model.{m}_layer_norm.bias"] = t(dim)
        sd[f"{prefix}.fusion_model.version"] = torch.tensor([3.0])

    adapters("encoder_wrapper", D, HEADS, LAYERS, dec=False)
    fusion("encoder_wrapper", D, LAYERS, FFN)
    if proj:
        for m in ("text", "image", "audio"):
            sd[f"{m}_proj.weight"], sd[f"{m}_proj.bias"] = t(D, D), t(D)
        sd["logit_scale"] = torch.tensor(math.log(1 / 0.07))
    if decoder:
        adapters("decoder_wrapper", DEC_D, DEC_HEADS, DEC_LAYERS, dec=True)
        fusion("decoder_wrapper", DEC_D, DEC_LAYERS, DEC_FFN)
        for m in ("text", "image", "audio"):
            sd[f"decoder_{m}_embed.weight"], sd[f"decoder_{m}_embed.bias"] = t(DEC_D, D), t(DEC_D)
            sd[f"{m}_mask_token"] = t(1, DEC_D)
            sd[f"{m}_mask_head.weight"], sd[f"{m}_mask_head.bias"] = t(D, DEC_D), t(D)
    if classify:
        sd["classify_head.attn_pooling_func.q"] = t(1, 1, HEADS, D // HEADS)
        sd["classify_head.attn_pooling_func.k_proj.weight"] = t(D, D)
        for p in ("v_proj", "out_proj"):
            sd[f"classify_head.attn_pooling_func.{p}.weight"] = t(D, D)
            sd[f"classify_head.attn_pooling_func.{p}.bias"] = t(D)
        sd["classify_head.norm.weight"], sd["classify_head.norm.bias"] = t(D), t(D)
        sd["classify_head.classifier.0.weight"], sd["classify_head.classifier.0.bias"] = t(2 * D, D), t(2 * D)
        sd["classify_head.classifier.1.weight"], sd["classify_head.classifier.1.bias"] = t(2 * D), t(2 * D)
        sd["classify_head.classifier.3.weight"], sd["classify_head.classifier.3.bias"] = t(5, 2 * D), t(5)
    return sd


CFG = {"model": {"encoder": {"attention_heads": HEADS, "layer_scale_init_value": 1e-6,
                             "audio_adapter": {"feature_encoder_spec": SPEC_STR}},
                 "decoder": {"attention_heads": DEC_HEADS}}}

# independent statement of where each original module lands (sub-module renames of the hf-alm classes)
EXPECTED = [
    (r"^encoder_wrapper\.", "one_peace.encoder."), (r"^decoder_wrapper\.", "decoder."),
    (r"rel_pos_table_list\.", "rel_bias.rel_pos_tables."),
    (r"embed_images\.0\.", "stem_conv1."), (r"embed_images\.1\.layer_norm\.", "stem_norm1."),
    (r"embed_images\.3\.", "stem_conv2."), (r"embed_images\.4\.layer_norm\.", "stem_norm2."),
    (r"embed_images\.6\.", "stem_conv3."),
    (r"embed_audios\.0\.conv_layers\.(\d+)\.0\.", r"conv_layers.\1.conv."),
    (r"embed_audios\.0\.conv_layers\.(\d+)\.2\.1\.", r"conv_layers.\1.layer_norm."),
    (r"embed_audios\.2\.", "feature_layer_norm."), (r"embed_audios\.3\.", "feature_projection."),
    (r"_ffn\.0\.", "_ffn."), (r"_ffn\.2\.", "_ffn.ln."), (r"_ffn\.3\.", "_ffn.fc_out."),
    (r"attn_pooling_func\.", "attn_pooling."), (r"classifier\.0\.", "dense."), (r"classifier\.1\.", "dense_norm."),
    (r"classifier\.3\.", "classifier."),
]


def _expected_name(key):
    import re

    m = re.search(r"audio_adapter\.embed_positions\.(\d+)\.0\.", key)
    if m:
        key = key.replace(m.group(0), f"audio_adapter.pos_conv.{int(m.group(1)) - 1}.conv.")
    for pat, rep in EXPECTED:
        key = re.sub(pat, rep, key)
    return key


BUFFERS = ("rp_bucket", "position_idx", "fusion_model.version")


@pytest.mark.parametrize("per_layer", [False, True])
def test_every_key_mapped_to_the_expected_tensor(per_layer):
    from hf_alm.convert.one_peace import convert_state_dict
    from hf_alm.modeling.one_peace import OnePeaceForPreTraining

    sd = build_original(per_layer_tables=per_layer)
    model = convert_state_dict(sd, CFG)
    assert isinstance(model, OnePeaceForPreTraining)
    assert model.config.share_rel_pos_table is (not per_layer)
    ours = model.state_dict()
    n_checked = 0
    for key, value in sd.items():
        if key.endswith(BUFFERS):
            continue
        name = _expected_name(key)
        assert name in ours, f"{key} -> {name} missing"
        assert torch.equal(ours[name], value.to(ours[name].dtype)), key
        n_checked += 1
    params = {n for n, _ in model.named_parameters()}
    assert n_checked == len(params), "every model parameter has exactly one source"
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (D, LAYERS,
                                                                                                       HEADS, FFN)
    assert [tuple(x) for x in cfg.audio_config.conv_feature_layers] == SPEC
    assert cfg.audio_config.conv_pos_kernel == POS_K and cfg.audio_config.conv_pos_groups == POS_GROUPS
    assert cfg.audio_config.bucket_size == A_BUCKET and cfg.text_config.bucket_size == T_BUCKET
    assert cfg.vision_config.bucket_size == GRID and cfg.decoder_hidden_size == DEC_D


def _image_bucket_reference(grid):
    """BEiT relative_position_index written out per element (CLS ids last three)."""
    n = (2 * grid - 1) ** 2 + 3
    size = grid * grid + 1
    out = torch.empty(size, size, dtype=torch.long)
    for a in range(size):
        for b in range(size):
            if a == 0 and b == 0:
                out[a, b] = n - 1
            elif a == 0:
                out[a, b] = n - 3
            elif b == 0:
                out[a, b] = n - 2
            else:
                (ya, xa), (yb, xb) = divmod(a - 1, grid), divmod(b - 1, grid)
                out[a, b] = (ya - yb + grid - 1) * (2 * grid - 1) + (xa - xb + grid - 1)
    return out


def test_bucket_ids_match_reference_formulas():
    from hf_alm.modeling.one_peace.modeling_one_peace import make_image_bucket_position, make_token_bucket_position

    assert torch.equal(make_token_bucket_position(A_BUCKET, MAXPOS), _orig_token_bucket(A_BUCKET, MAXPOS))
    assert torch.equal(make_token_bucket_position(16, 100), _orig_token_bucket(16, 100))
    assert torch.equal(make_image_bucket_position(3), _image_bucket_reference(3))


def test_converted_model_runs_and_uses_the_weights():
    from hf_alm.convert.one_peace import convert_state_dict

    sd = build_original(decoder=False)
    model = convert_state_dict(sd, CFG, target="projection")
    with torch.no_grad():
        wav = torch.randn(1, 400)
        a = model.get_audio_features(wav).pooler_output
        assert a.shape == (1, D) and torch.allclose(a.norm(dim=-1), torch.ones(1))
        # the audio CLS projection is the converted audio_proj: recompute from the hidden state
        hidden = model.get_audio_features(wav).last_hidden_state[:, 0]
        ref = torch.nn.functional.normalize(hidden @ sd["audio_proj.weight"].T + sd["audio_proj.bias"], dim=-1)
        assert torch.allclose(a, ref, atol=1e-5)


def test_unknown_keys_are_listed():
    from hf_alm.convert.one_peace import convert_state_dict

    sd = build_original(decoder=False)
    sd["encoder_wrapper.fusion_model.layers.0.mystery.weight"] = torch.zeros(1)
    sd["something_else"] = torch.zeros(1)
    with pytest.raises(ValueError) as err:
        convert_state_dict(sd, CFG)
    msg = str(err.value)
    assert "2 key(s)" in msg and "mystery.weight" in msg and "something_else" in msg


def test_missing_weight_and_bad_bucket_are_errors():
    from hf_alm.convert.one_peace import convert_state_dict

    sd = build_original(decoder=False)
    del sd["encoder_wrapper.fusion_model.layers.1.audio_ffn.3.bias"]
    with pytest.raises(ValueError, match="layers.1.audio_ffn.fc_out.bias"):
        convert_state_dict(sd, CFG)
    sd = build_original(decoder=False)
    sd["encoder_wrapper.audio_adapter.rp_bucket"][5, 3] += 1
    with pytest.raises(ValueError, match="audio_adapter.rp_bucket"):
        convert_state_dict(sd, CFG)


def test_classification_and_drop_image():
    from hf_alm.convert.one_peace import convert_state_dict
    from hf_alm.modeling.one_peace import OnePeaceForAudioClassification

    sd = build_original(decoder=False, classify=True, proj=False)
    model = convert_state_dict(sd, CFG, drop_image=True)
    assert isinstance(model, OnePeaceForAudioClassification)
    assert model.config.num_labels == 5 and model.config.use_image_moe is False
    assert not any("image" in n for n in model.state_dict())
    assert torch.equal(model.classify_head.classifier.weight, sd["classify_head.classifier.3.weight"])
    with torch.no_grad():
        assert model(torch.randn(2, 400)).logits.shape == (2, 5)


def test_cli_convert(tmp_path):
    sd = build_original(decoder=False)
    src = tmp_path / "one-peace.pt"
    torch.save({"cfg": CFG, "model": sd}, src)
    dst = tmp_path / "hf"
    out = subprocess.run([sys.executable, "-m", "hf_alm.cli", "convert", "one_peace", str(src), str(dst)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    import hf_alm  # noqa: F401  (registers the Auto classes)
    from transformers import AutoFeatureExtractor, AutoModel

    model = AutoModel.from_pretrained(dst)
    assert type(model).__name__ == "OnePeaceModelWithProjection"
    assert torch.equal(model.text_proj.weight, sd["text_proj.weight"])
    assert AutoFeatureExtractor.from_pretrained(dst).sampling_rate == 16000
    assert "Apache" in (dst / "NOTICE").read_text()
    help_out = subprocess.run([sys.executable, "-m", "hf_alm.cli", "convert", "--help"], capture_output=True,
                              text=True)
    assert "one_peace" in help_out.stdout


def test_convert_keeps_a_non_empty_dst_unless_overwrite(tmp_path):
    """A non-empty DST used to be replaced silently (user files lost); an empty one is written."""
    import re

    from hf_alm.convert.one_peace import convert

    src = tmp_path / "one-peace.pt"
    torch.save({"cfg": CFG, "model": build_original(decoder=False)}, src)
    dst = tmp_path / "hf"
    dst.mkdir()
    (dst / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=rf"output folder {re.escape(str(dst))} exists and is not empty; pass "
                                              r"--overwrite to replace it"):
        convert(src, dst)
    assert [p.name for p in dst.iterdir()] == ["notes.txt"]
    convert(src, dst, overwrite=True)
    assert (dst / "NOTICE").is_file() and not (dst / "notes.txt").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    convert(src, empty)
    assert (empty / "config.json").is_file()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_load_explains_an_empty_file_and_a_folder(tmp_path):
    import re

    from hf_alm.convert.one_peace import convert

    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=rf"{re.escape(str(tmp_path / 'empty.pt'))}: file is empty \(0 bytes\)"):
        convert(tmp_path / "empty.pt", tmp_path / "out")
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError, match=rf"checkpoint {re.escape(str(tmp_path / 'folder'))} is a folder; "
                                                r"pass the \.pt file itself"):
        convert(tmp_path / "folder", tmp_path / "out")
    assert not (tmp_path / "out").exists()
