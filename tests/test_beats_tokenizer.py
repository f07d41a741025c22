"""Acoustic tokenizer (NormEMA VQ), random-projection tokenizer and masked-audio-modelling pre-training."""

import pytest
import torch
import torch.nn.functional as F

from hf_alm.modeling.beats import (BeatsAcousticTokenizer, BeatsForPreTraining, BeatsRandomProjectionTokenizer,
                                   BeatsVectorQuantizer, tiny_beats_config)


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_quantizer_uses_squared_l2_against_raw_codebook_rows():
    vq = BeatsVectorQuantizer(8, 4, kmeans_init=False).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # rows of very different norms: squared L2 and cosine disagree
        vq.weight.copy_(F.normalize(torch.randn(8, 4, generator=g), dim=-1) * torch.linspace(0.5, 1.5, 8)[:, None])
    z = torch.randn(200, 4, generator=g)
    _, _, codes = vq(z)
    zn = F.normalize(z, dim=-1)
    expected = torch.cdist(zn, vq.weight).argmin(-1)
    assert torch.equal(codes, expected)
    assert not torch.equal(codes, (zn @ vq.weight.t()).argmax(-1))  # the test can tell cosine from squared L2


def test_eval_has_no_side_effects_and_no_kmeans():
    tok = BeatsAcousticTokenizer(tiny_beats_config()).eval()
    assert float(tok.quantizer.initted) == 0.0  # fresh tokenizer: codebook not initialised
    before = _state(tok)
    labels = tok.extract_labels(torch.randn(2, 48, 128))
    assert labels.shape == (2, 24) and labels.dtype == torch.long
    after = _state(tok)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_kmeans_init_then_ema_updates_only_when_training():
    torch.manual_seed(0)
    vq = BeatsVectorQuantizer(4, 3, decay=0.5, kmeans_init=True, kmeans_iters=10)
    centres = F.normalize(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [-1.0, -1.0, 0]]), dim=-1)
    data = (centres.repeat(50, 1) + 0.05 * torch.randn(200, 3))
    vq.train()
    _, loss, codes = vq(data)
    assert float(vq.initted) == 1.0
    # k-means found the four well-separated directions (in some order)
    sim = F.normalize(vq.weight, dim=-1) @ centres.t()
    assert sorted(sim.argmax(0).tolist()) == [0, 1, 2, 3] and float(sim.max(0).values.min()) > 0.99
    assert loss.item() < 0.01
    torch.testing.assert_close(vq.weight.norm(dim=-1), torch.ones(4))
    # EMA: a batch near one rotated centre pulls its code towards it, only in training
    shifted = F.normalize(centres[0] + torch.tensor([0.0, 0.3, 0.0]), dim=0).repeat(20, 1)
    code = int(vq(shifted)[2][0])
    w0 = vq.weight[code].clone()
    vq.eval()
    vq(shifted)
    assert torch.equal(vq.weight[code], w0)
    vq.train()
    vq(shifted)
    expected = F.normalize(0.5 * w0 + 0.5 * shifted[0], dim=0)
    torch.testing.assert_close(vq.weight[code], expected, atol=1e-5, rtol=0)


def test_eval_with_uninitialised_codebook_does_not_run_kmeans():
    vq = BeatsVectorQuantizer(4, 3, kmeans_init=True).eval()
    w = vq.weight.clone()
    vq(torch.randn(10, 3))
    assert float(vq.initted) == 0.0 and torch.equal(vq.weight, w)


def test_tokenizer_straight_through_and_commitment_loss():
    tok = BeatsAcousticTokenizer(tiny_beats_config(quant_kmeans_init=False)).train()
    codebook = tok.quantizer.weight.detach().clone()  # training updates it (EMA) after the lookup
    out = tok(torch.randn(2, 48, 128))
    assert not torch.equal(codebook, tok.quantizer.weight)
    zn = F.normalize(out.quantize_input, dim=-1)
    expected_loss = F.mse_loss(codebook[out.labels], zn)
    torch.testing.assert_close(out.loss, expected_loss, atol=1e-6, rtol=1e-4)
    (out.loss + out.quantized.sum()).backward()
    assert tok.quantize_layer[0].weight.grad is not None and tok.quantize_layer[0].weight.grad.abs().sum() > 0
    assert tok.quantizer.weight.grad is None  # the codebook is not trained by gradients


def test_random_projection_tokenizer_is_deterministic_and_reloads(tmp_path):
    config = tiny_beats_config(random_projection_seed=7)
    a, b = BeatsRandomProjectionTokenizer(config), BeatsRandomProjectionTokenizer(config)
    other = BeatsRandomProjectionTokenizer(tiny_beats_config(random_projection_seed=8))
    x = torch.randn(2, 64, 128)
    la = a.extract_labels(x)
    assert la.shape == (2, 32) and torch.equal(la, b.extract_labels(x))
    assert not torch.equal(la, other.extract_labels(x))
    assert la.unique().numel() > 8  # codes are used, not collapsed onto one
    # labels follow the time-major patch layout: changing time column 1 changes only patches 8..15
    y = x.clone()
    y[:, 16:32] = torch.randn(2, 16, 128)
    changed = (a.extract_labels(y) != la).any(0).nonzero().flatten()
    assert changed.numel() > 0 and changed.min() >= 8 and changed.max() <= 15
    a.save_pretrained(tmp_path)
    again = BeatsRandomProjectionTokenizer.from_pretrained(tmp_path)
    assert torch.equal(again.extract_labels(x), la)
    assert not any(p.requires_grad for p in a.parameters())


def _toy_batch():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(64)[:, None].float()
    f = torch.arange(128)[None, :].float()
    base = torch.stack([torch.sin(t / 3 + f / 10), torch.cos(t / 5 - f / 7)])
    return base + 0.1 * torch.randn(2, 64, 128, generator=g)


def test_pretraining_masks_hides_and_learns():
    torch.manual_seed(0)
    config = tiny_beats_config()
    model = BeatsForPreTraining(config)
    tokenizer = BeatsRandomProjectionTokenizer(config)
    x = _toy_batch()
    labels = tokenizer.extract_labels(x)
    n = labels.shape[1]
    mask = model.random_mask(2, n)
    assert mask.sum(1).tolist() == [round(0.75 * n)] * 2
    model.eval()
    with torch.no_grad():
        out = model(x, labels=labels, mask=mask)
        # the loss only looks at masked positions
        other = labels.clone()
        other[~mask] = (other[~mask] + 1) % config.quant_n
        assert torch.equal(model(x, labels=other, mask=mask).loss, out.loss)
        # the encoder never sees masked patches: changing their frames leaves every prediction unchanged
        col_mask = torch.zeros(2, n, dtype=torch.bool)
        col_mask[:, 8:16] = True  # all of time column 1 (frames 16..31) ...
        col_mask[:, 16::2] = True  # ... plus other patches, the same number per row
        y = x.clone()
        y[:, 16:32] += torch.randn(2, 16, 128)
        torch.testing.assert_close(model(y, labels=labels, mask=col_mask).logits,
                                   model(x, labels=labels, mask=col_mask).logits)
    assert out.logits.shape == (2, n, config.quant_n) and torch.isfinite(out.loss)
    # a few steps on one toy batch: the loss goes down
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for step in range(25):
        loss = model(x, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses


def test_pretraining_rejects_bad_masks_and_labels():
    model = BeatsForPreTraining(tiny_beats_config()).eval()
    x = torch.randn(2, 32, 128)
    bad = torch.zeros(2, 16, dtype=torch.bool)
    bad[0, :4] = True
    with pytest.raises(ValueError, match="same, non-zero number of visible patches"):
        model(x, mask=bad)
    with pytest.raises(ValueError, match="labels must have shape"):
        model(x, labels=torch.zeros(2, 15, dtype=torch.long))
