"""ONE-PEACE pretraining: masking ratios, denoising contrast against the paper formula, stage-2 freezing, steps."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

torch.set_num_threads(2)


def _tiny(**kw):
    from hf_alm.modeling.one_peace import OnePeaceConfig

    return OnePeaceConfig.from_preset("tiny", **kw)


def _tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["a small red circle in the top left", "a large blue square in the centre",
                             "the sound of a rising chirp", "a dog barks twice", "birds singing in the morning"],
                            trainers.BpeTrainer(vocab_size=60, special_tokens=["<s>", "<pad>", "</s>", "<unk>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>")


# ------------------------------------------------------------------------------------------------ masking
def test_audio_span_mask_ratio_and_spans():
    from hf_alm.training.one_peace import block_mask_1d

    g = torch.Generator().manual_seed(0)
    runs = []
    for length in (50, 249, 749):
        for _ in range(20):
            m = block_mask_1d(length, 0.55, 5, 0.1, generator=g)
            assert int(m.sum()) == int(length * 0.55)
            # run lengths of masked frames: spans, not isolated frames
            x = np.flatnonzero(np.diff(np.r_[0, m.numpy().astype(int), 0]))
            runs.extend((x[1::2] - x[::2]).tolist())
    assert np.mean(runs) >= 4.0
    m = block_mask_1d(100, 0.45, generator=g)
    assert int(m.sum()) == 45


def test_whole_word_and_image_masks():
    from hf_alm.training.one_peace import random_mask, whole_word_mask

    tok = _tokenizer()
    enc = tok(["a small red circle in the top left"])
    word_ids = enc.word_ids(0)
    n_words = len({w for w in word_ids if w is not None})
    g = torch.Generator().manual_seed(1)
    for ratio in (0.15, 0.4):
        for _ in range(10):
            m = whole_word_mask(word_ids, ratio, generator=g)
            masked_words = {word_ids[i] for i in range(len(word_ids)) if m[i]}
            assert len(masked_words) == math.ceil(n_words * ratio)
            # whole words: every token of a chosen word is masked, none of the others
            for i, w in enumerate(word_ids):
                assert bool(m[i]) == (w in masked_words)
    special = whole_word_mask([None, 0, 0, 1, None], 0.99, generator=g)
    assert not special[0] and not special[-1]
    for n, ratio, expected in ((256, 0.75, 192), (256, 0.6875, 176), (16, 0.75, 12)):
        assert int(random_mask(n, ratio, generator=g).sum()) == expected


def test_collators_produce_consistent_masks():
    from hf_alm.modeling.one_peace import OnePeaceFeatureExtractor, OnePeaceImageProcessor
    from hf_alm.training.one_peace import ALCollator, VLCollator

    config = _tiny()
    tok = _tokenizer()
    rng = np.random.default_rng(0)
    al = ALCollator(OnePeaceFeatureExtractor(min_duration=0.0), tok, config.audio_config.conv_feature_layers)
    rows = [{"audio": rng.standard_normal(n).astype(np.float32), "caption": c}
            for n, c in ((3200, "a dog barks twice"), (2000, "the sound of a rising chirp in the morning"))]
    batch = al(rows)
    frames = batch["audio_mask"].shape[1] - 1
    lengths = [15 + 0, 0]
    from hf_alm.modeling.one_peace.modeling_one_peace import conv_output_lengths

    lengths = conv_output_lengths(torch.tensor([3200, 2000]), config.audio_config.conv_feature_layers).tolist()
    assert frames == lengths[0]
    for b, n in enumerate(lengths):
        assert int(batch["audio_mask"][b].sum()) == int(n * 0.55)
        assert int(batch["al_audio_mask"][b].sum()) == int(n * 0.45)
        assert not batch["audio_mask"][b, n + 1:].any() and not batch["audio_mask"][b, 0]
        kept = batch["audio_preserve_ids"][b]
        kept = kept[kept >= 0]
        assert kept[0] == 0 and len(kept) == 1 + n - int(n * 0.55)
        assert not batch["audio_mask"][b, kept].any()
    ip = OnePeaceImageProcessor(size={"height": 32, "width": 32})
    vl = VLCollator(ip, tok)
    rows = [{"image": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "caption": "a small red circle"}
            for _ in range(3)]
    batch = vl(rows)
    assert batch["image_mask"].shape == (3, 5) and (batch["image_mask"].sum(1) == 3).all()  # int(4 * 0.75)
    assert (batch["vl_image_mask"].sum(1) == 2).all()  # int(4 * 0.6875)


# ------------------------------------------------------------------------------------------------ losses
def _dcl_reference(student, teacher, mask, padding, scale, eps):
    """Paper formula, written per unit: -log softmax over all non-padded non-CLS units of the batch."""
    units = [(b, j) for b in range(student.shape[0]) for j in range(1, student.shape[1]) if not padding[b, j]]
    t = torch.stack([F.normalize(teacher[b, j], dim=0) for b, j in units])
    losses = []
    for k, (b, j) in enumerate(units):
        if not mask[b, j]:
            continue
        s = F.normalize(student[b, j], dim=0)
        logp = torch.log_softmax(scale * t @ s, dim=0)
        n = len(units)
        eps_i = eps / (n - 1)
        losses.append((1 - eps - eps_i) * -logp[k] + eps_i * -logp.sum())
    return torch.stack(losses).mean()


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_denoising_contrast_matches_formula(eps):
    from hf_alm.training.one_peace import denoising_contrast_loss

    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(3, 6, 8, generator=g), torch.randn(3, 6, 8, generator=g)
    mask = torch.rand(3, 6, generator=g) < 0.5
    mask[:, 0] = True  # CLS must be ignored even if flagged
    padding = torch.zeros(3, 6, dtype=torch.bool)
    padding[1, 4:] = True
    ours = denoising_contrast_loss(student, teacher, mask, padding, logit_scale=2.5, label_smoothing=eps)
    torch.testing.assert_close(ours, _dcl_reference(student, teacher, mask, padding, 2.5, eps))
    # targets carry no gradient
    s = student.clone().requires_grad_(True)
    t = teacher.clone().requires_grad_(True)
    denoising_contrast_loss(s, t, mask, padding).backward()
    assert t.grad is None and s.grad is not None


def _al_batch(config, tok, n=3):
    from hf_alm.modeling.one_peace import OnePeaceFeatureExtractor
    from hf_alm.training.one_peace import ALCollator

    rng = np.random.default_rng(0)
    caps = ["a dog barks twice", "the sound of a rising chirp", "birds singing in the morning"]
    rows = [{"audio": rng.standard_normal(2400 + 400 * i).astype(np.float32), "caption": caps[i % 3]}
            for i in range(n)]
    return ALCollator(OnePeaceFeatureExtractor(min_duration=0.0), tok, config.audio_config.conv_feature_layers)(rows)


def test_stage2_freezing_gradients():
    """After the stage switch only the audio adapter, audio FFNs, audio final LN, audio_proj, the decoder parts and
    the logit scale receive gradients; shared attention, text/image parts and text_proj get none."""
    from hf_alm.modeling.one_peace import OnePeaceForPreTraining
    from hf_alm.training.one_peace import al_pretrain_loss, freeze_for_audio_stage

    config = _tiny()
    model = OnePeaceForPreTraining(config)
    with torch.no_grad():
        model.logit_scale.fill_(3.0)
    trainable = set(freeze_for_audio_stage(model))
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    loss, logs = al_pretrain_loss(model, _al_batch(config, _tokenizer()))
    loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad <= trainable
    assert not any(".self_attn." in n and n.startswith("one_peace.") for n in with_grad)
    assert not any(n.startswith("one_peace.") and ("text_" in n or "image_" in n) for n in with_grad)
    assert "text_proj.weight" not in with_grad and "image_proj.weight" not in trainable
    for expect in ("one_peace.encoder.audio_adapter.conv_layers.0.conv.weight",
                   "one_peace.encoder.audio_adapter.feature_projection.weight",
                   "one_peace.encoder.fusion_model.layers.0.audio_ffn.wi_0.weight",
                   "one_peace.encoder.fusion_model.audio_layer_norm.weight", "audio_proj.weight", "logit_scale",
                   "audio_mask_token", "decoder_audio_embed.weight", "audio_mask_head.weight",
                   "decoder.fusion_model.layers.0.self_attn.q_proj.weight"):
        assert expect in with_grad, expect
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert "one_peace.encoder.fusion_model.layers.0.self_attn.q_proj.weight" in frozen
    assert "one_peace.encoder.fusion_model.layers.1.text_ffn.fc_out.weight" in frozen
    assert {"dcl_audio", "dcl_al_text", "dcl_al_audio", "cl"} <= set(logs)


def test_vl_step_trains_the_vision_language_parts():
    from hf_alm.modeling.one_peace import OnePeaceForPreTraining, OnePeaceImageProcessor
    from hf_alm.training.one_peace import VLCollator, vl_pretrain_loss

    torch.manual_seed(0)
    model = OnePeaceForPreTraining(_tiny())
    rng = np.random.default_rng(0)
    rows = [{"image": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "caption": c}
            for c in ("a small red circle in the top left", "a large blue square in the centre", "a red square")]
    batch = VLCollator(OnePeaceImageProcessor(size={"height": 32, "width": 32}), _tokenizer())(rows)
    loss, logs = vl_pretrain_loss(model, batch)
    assert {"cl", "dcl_text", "dcl_image", "dcl_vl_text", "dcl_vl_image"} <= set(logs)
    # with zero-init relative tables and a random decoder each DCL term is near log(#candidates)
    assert 0.5 < float(logs["dcl_image"]) < 2 * math.log(3 * 4)
    loss.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    for expect in ("one_peace.encoder.image_adapter.stem_conv1.weight", "one_peace.encoder.text_adapter.embed_tokens"
                   ".weight", "one_peace.encoder.fusion_model.layers.0.self_attn.k_proj.weight",
                   "one_peace.encoder.fusion_model.layers.1.image_ffn.wi_1.weight", "image_mask_token",
                   "text_mask_token", "decoder.fusion_model.layers.0.text_ffn.wi_0.weight"):
        assert expect in grads, expect
    assert not any("audio" in n for n in grads)
    # a few optimizer steps on the same batch reduce the loss
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    first = float(loss.detach())
    for _ in range(5):
        opt.zero_grad()
        torch.manual_seed(0)
        loss, _ = vl_pretrain_loss(model, batch)
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first


def test_masked_encoding_only_sees_visible_units():
    """Student pass: output length = kept units, and changing a masked frame's audio does not change it."""
    from hf_alm.modeling.one_peace import OnePeaceModel

    config = _tiny()
    model = OnePeaceModel(config).eval()
    batch = _al_batch(config, _tokenizer(), n=2)
    with torch.no_grad():
        out = model(input_values=batch["input_values"], audio_attention_mask=batch["audio_attention_mask"],
                    audio_preserve_ids=batch["audio_preserve_ids"])
    assert out.audio_last_hidden_state.shape[1] == batch["audio_preserve_ids"].shape[1]
    kept = batch["audio_preserve_ids"][0]
    assert bool(out.audio_padding_mask[0].eq(kept.eq(-1)).all())


DDP_WORKER = r"""
import json, os, sys
import numpy as np
import torch
torch.set_num_threads(1)
torch.distributed.init_process_group("gloo")
rank = torch.distributed.get_rank()
sys.path.insert(0, sys.argv[2])
from test_one_peace_pretrain import _tiny, _tokenizer
from hf_alm.modeling.one_peace import OnePeaceForPreTraining, OnePeaceImageProcessor
from hf_alm.training.one_peace import VLCollator, vl_pretrain_loss
torch.manual_seed(0)
model = OnePeaceForPreTraining(_tiny())
ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
rng = np.random.default_rng(rank)  # each process its own shard
rows = [{"image": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "caption": c}
        for c in ("a small red circle in the top left", "a large blue square in the centre")]
torch.manual_seed(rank)
batch = VLCollator(OnePeaceImageProcessor(size={"height": 32, "width": 32}), _tokenizer())(rows)
loss, _ = vl_pretrain_loss(ddp, batch)
loss.backward()
g = model.one_peace.encoder.fusion_model.layers[0].self_attn.q_proj.weight.grad
json.dump({"grad": g.flatten()[:16].tolist(), "loss": float(loss)}, open(sys.argv[1] + f".{rank}", "w"))
"""


@pytest.mark.slow
def test_ddp_pretraining_step_synchronises_gradients(tmp_path):
    """Wrapped in DistributedDataParallel (2 CPU processes, different shards), the pretraining step runs inside the
    wrapper's forward, so both processes end the step with the same (averaged) gradients."""
    import json
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = tmp_path / "worker.py"
    worker.write_text(DDP_WORKER)
    out = tmp_path / "out"
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(worker), str(out), str(Path(__file__).parent)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    r0 = json.loads(Path(f"{out}.0").read_text())
    r1 = json.loads(Path(f"{out}.1").read_text())
    assert r0["loss"] != r1["loss"]  # different shards
    assert r0["grad"] == pytest.approx(r1["grad"], rel=1e-5, abs=1e-8)


def test_cross_modal_contrast_has_no_label_smoothing():
    """The paper's L_CL, as the original's criteria compute it (``itc_without_ls`` / ``atc_without_ls`` default True):
    plain symmetric InfoNCE, even when the denoising contrast is smoothed (the recipe's --label_smoothing 0.1)."""
    import torch.nn.functional as F

    from hf_alm.modeling.one_peace import OnePeaceForPreTraining, OnePeaceImageProcessor
    from hf_alm.training.one_peace import VLCollator, vl_pretrain_loss

    torch.manual_seed(0)
    model = OnePeaceForPreTraining(_tiny()).eval()
    rng = np.random.default_rng(0)
    rows = [{"image": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "caption": c}
            for c in ("a small red circle in the top left", "a large blue square in the centre", "a red square")]
    batch = VLCollator(OnePeaceImageProcessor(size={"height": 32, "width": 32}), _tokenizer())(rows)
    _, logs = vl_pretrain_loss(model, batch, label_smoothing=0.1)
    with torch.no_grad():
        image = model.embed("image", model.encode(pixel_values=batch["pixel_values"]).image_last_hidden_state)
        text = model.embed("text", model.encode(input_ids=batch["input_ids"],
                                                attention_mask=batch["attention_mask"]).text_last_hidden_state)
        logits = model.logit_scale_exp() * image @ text.t()
        target = torch.arange(3)
        by_hand = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
        smoothed = 0.5 * (F.cross_entropy(logits, target, label_smoothing=0.1)
                          + F.cross_entropy(logits.t(), target, label_smoothing=0.1))
    assert abs(float(smoothed) - float(by_hand)) > 1e-4  # the check can tell the two apart
    assert abs(float(logs["cl"]) - float(by_hand)) < 1e-5
