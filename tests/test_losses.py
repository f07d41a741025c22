"""Contrastive losses against independent references: a direct numpy computation, transformers' own CLIP loss."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hf_alm.training.losses import contrastive_loss, tact_logit_offsets, tact_weighted_loss


def _np_log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def _np_symmetric_ce(s, smoothing=0.0):
    n = s.shape[0]
    out = 0.0
    for logits in (s, s.T):
        logp = _np_log_softmax(logits, axis=1)
        target = np.full((n, n), smoothing / n) + np.eye(n) * (1.0 - smoothing)
        out += -(target * logp).sum(axis=1).mean()
    return 0.5 * out


def _np_tact(a, t, scale, n, alpha_same, alpha_cross):
    """Direct, loop-based transcription of models.md section 1.3 (rows beyond 2n are extras: no offset)."""
    s = scale * a @ t.T
    m = 2 * n
    for i in range(m):
        for j in range(m):
            i_orig, j_orig = i < n, j < n
            if i_orig == j_orig:
                continue  # same block: unchanged
            if i % n == j % n:  # an original and its own reversal
                s[i, j] += math.log(alpha_same)
            else:  # an original and another sample's reversal
                s[i, j] += math.log(alpha_cross)
    return _np_symmetric_ce(s)


def _emb(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    a = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1)
    t = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1)
    return a, t


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_contrastive_loss_matches_numpy(smoothing):
    a, t = _emb(7, 5, 0)
    got = contrastive_loss(a, t, 14.3, label_smoothing=smoothing).item()
    want = _np_symmetric_ce(14.3 * a.numpy() @ t.numpy().T, smoothing)
    assert got == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_contrastive_loss_matches_transformers_clip_loss():
    from transformers.models.clip.modeling_clip import image_text_contrastive_loss

    a, t = _emb(6, 4, 1)
    sim_text = (10.0 * t @ a.t()).float()  # transformers' logits_per_text
    want = image_text_contrastive_loss(sim_text).item()
    got = contrastive_loss(a.float(), t.float(), 10.0).item()
    assert got == pytest.approx(want, rel=1e-6)


def test_contrastive_loss_gradient_flows_to_embeddings_and_scale():
    a, t = _emb(5, 3, 2)
    a.requires_grad_(True)
    t.requires_grad_(True)
    scale = torch.tensor(5.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y, s: contrastive_loss(x, y, s), (a, t, scale))


def test_perfect_alignment_gives_small_loss_and_shuffle_gives_large():
    a, _ = _emb(8, 16, 3)
    good = contrastive_loss(a, a.clone(), 50.0).item()
    bad = contrastive_loss(a, a.flip(0), 50.0).item()
    assert good < 0.05 < 1.0 < bad


@pytest.mark.parametrize("alpha_same,alpha_cross", [(1.0, 1.0), (2.0, 1.0), (1.0, 3.0), (4.0, 0.5)])
def test_tact_weighted_loss_matches_direct_formula(alpha_same, alpha_cross):
    n = 4
    a, t = _emb(2 * n, 6, 4)
    got = tact_weighted_loss(a, t, 7.5, n_orig=n, alpha_same=alpha_same, alpha_cross=alpha_cross).item()
    want = _np_tact(a.numpy(), t.numpy(), 7.5, n, alpha_same, alpha_cross)
    assert got == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("n_extra", [1, 3])
def test_tact_with_extra_rows_matches_direct_formula(n_extra):
    n = 3
    a, t = _emb(2 * n + n_extra, 6, 8)
    got = tact_weighted_loss(a, t, 9.0, n_orig=n, alpha_same=2.0, alpha_cross=1.5).item()
    want = _np_tact(a.numpy(), t.numpy(), 9.0, n, 2.0, 1.5)
    assert got == pytest.approx(want, rel=1e-10)


def test_tact_with_unit_alphas_is_plain_infonce():
    a, t = _emb(10, 8, 5)
    assert tact_weighted_loss(a, t, 12.0, n_orig=5).item() == pytest.approx(contrastive_loss(a, t, 12.0).item(),
                                                                             rel=1e-12)


def test_alpha_same_above_one_increases_the_loss():
    # the own reversal is the hardest negative; weighting it more can only raise the loss
    a, t = _emb(6, 8, 6)
    base = tact_weighted_loss(a, t, 10.0, n_orig=3).item()
    assert tact_weighted_loss(a, t, 10.0, n_orig=3, alpha_same=3.0).item() > base
    assert tact_weighted_loss(a, t, 10.0, n_orig=3, alpha_same=0.3).item() < base


def test_tact_offsets_layout():
    off = tact_logit_offsets(2, alpha_same=math.e, alpha_cross=math.e ** 2)
    want = torch.tensor([[0, 0, 1, 2], [0, 0, 2, 1], [1, 2, 0, 0], [2, 1, 0, 0]], dtype=torch.float32)
    torch.testing.assert_close(off, want)


def test_bad_inputs_name_the_problem():
    a, t = _emb(4, 3, 7)
    with pytest.raises(ValueError, match="same shape"):
        contrastive_loss(a, t[:3], 1.0)
    with pytest.raises(ValueError, match="2-D"):
        contrastive_loss(a[0], t[0], 1.0)
    with pytest.raises(ValueError, match="at least 2 \\* n_orig.*got 4 rows for n_orig=3"):
        tact_weighted_loss(a, t, 1.0, n_orig=3)
    with pytest.raises(ValueError, match="alpha_same.*-1"):
        tact_weighted_loss(a, t, 1.0, n_orig=2, alpha_same=-1)
    with pytest.raises(ValueError, match="label_smoothing.*1.5"):
        contrastive_loss(a, t, 1.0, label_smoothing=1.5)
