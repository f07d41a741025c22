"""``hf-alm eval retrieval``: the AudioCaps / Clotho protocol (LAION-CLAP, open_clip) -- one text query per (clip,
caption), even when clips share a caption string -- checked against a by-hand numpy computation."""

import math
import types

import numpy as np
import pytest
import torch

import hf_alm.evaluation.retrieval as retrieval
from hf_alm.cli.eval import _retrieval


def _first_hit_within(ahead, tied, tied_correct, k):
    """P(a correct item within the top k) when ``ahead`` items score higher and ``tied`` (``tied_correct`` of them
    correct) tie, in random order: sum over j of P(the first correct of the tied group is at position j), the
    negative hypergeometric law P(first at j) = C(tied - j, tied_correct - 1) / C(tied, tied_correct)."""
    return sum(math.comb(tied - j, tied_correct - 1) / math.comb(tied, tied_correct)
               for j in range(1, min(k - ahead, tied) + 1))


def test_eval_retrieval_scores_every_clip_caption_pair_as_its_own_query(monkeypatch):
    """Identical captions were merged into one text query (217 instead of 250 here), which inflated text->audio R@k:
    the merged query counted a hit for any of its clips."""
    torch.manual_seed(0)
    n, c, d = 50, 5, 6
    captions = [[f"clip{i} cap{j}" for j in range(c)] for i in range(n)]
    for i in range(0, n, 2):  # generic captions shared by several clips, as in AudioCaps / Clotho
        captions[i][0] = "a man speaks"
    for i in range(1, n, 5):
        captions[i][1] = "birds chirp"
    audio = torch.nn.functional.normalize(torch.randn(n, d), dim=-1)
    vocab = sorted({t for row in captions for t in row})
    text_of = dict(zip(vocab, torch.nn.functional.normalize(torch.randn(len(vocab), d), dim=-1)))
    monkeypatch.setattr(retrieval, "embed_audio", lambda model, proc, clips, **kw: audio)
    monkeypatch.setattr(retrieval, "embed_texts", lambda model, proc, texts, **kw: torch.stack([text_of[t]
                                                                                                for t in texts]))
    monkeypatch.setattr(retrieval, "load_clip", lambda value, sr: torch.zeros(10))
    import datasets

    ds = datasets.Dataset.from_dict({"audio": [[0.0] * 10] * n, "captions": captions})
    out = _retrieval(types.SimpleNamespace(batch_size=8), ds, None, None, 16000)

    # by hand: 250 columns, column i*c + j is caption j of clip i
    sim = audio.double().numpy() @ np.stack([text_of[t].double().numpy() for row in captions for t in row]).T
    for k in (1, 5, 10):
        # text->audio: each column a query whose one correct clip is its own (no ties: random clip embeddings)
        t2a = np.mean([np.sum(sim[:, i * c + j] > sim[i, i * c + j]) < k for i in range(n) for j in range(c)])
        # audio->text: a hit when one of the clip's 5 columns is in the top k; a shared caption's columns tie exactly
        a2t = []
        for i in range(n):
            row, own = sim[i], sim[i, i * c:(i + 1) * c]
            best = own.max()
            a2t.append(_first_hit_within(int(np.sum(row > best)), int(np.sum(row == best)), int(np.sum(own == best)),
                                         k))
        assert out[f"text_to_audio_R@{k}"] == pytest.approx(t2a, abs=1e-12), k
        assert out[f"audio_to_text_R@{k}"] == pytest.approx(np.mean(a2t), abs=1e-12), k
    assert (out["num_audio"], out["num_texts"], out["num_distinct_texts"]) == (50, 250, 217)
