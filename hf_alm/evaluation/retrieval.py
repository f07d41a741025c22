"""Embedding helpers and ranking metrics shared by ZSTE, zero-shot classification and retrieval evaluation.

Works for any dual encoder with ``get_audio_features`` / ``get_text_features`` -- hf-alm's ``ClapTeminalModel`` and
transformers' ``ClapModel`` alike. Both return types are handled: a tensor (transformers < 5) or a ``ModelOutput``
whose ``pooler_output`` holds the projected embedding (transformers v5). Embeddings are L2-normalised here, so every
score is a cosine similarity whatever the model returns.

Ties, in every metric of hf-alm's evaluation layer (multiple-choice accuracy, R@k, zero-shot / classifier accuracy,
the local ``zste`` and classification metrics): candidates tie when their scores are *exactly* equal (no tolerance;
identical texts share one embedding, so their scores tie exactly), and a tie counts as the expected value over a
uniformly random order of the tied candidates (:func:`tie_aware_hit_probability`). Non-finite scores are refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "audio_rows",
    "embed_audio",
    "embed_texts",
    "features_to_tensor",
    "load_clip",
    "multiple_choice_accuracy",
    "recall_at_k",
    "retrieval_metrics",
    "tie_aware_hit_probability",
]


def load_clip(value, sampling_rate: int) -> torch.Tensor:
    """One clip as a float32 mono tensor at ``sampling_rate``: ``hf_alm.data.audio.load_audio`` with its limits.

    Kept as the evaluation layer's name for it. Uncompressed WAV bytes (the synthetic corpus, temporal compositions)
    take load_audio's numpy WAV branch, ~100x faster than a general decoder, which matters when a whole evaluation
    set is embedded several times in one run.
    """
    from hf_alm.data.audio import load_audio

    return load_audio(value, sampling_rate)


def audio_rows(data) -> list:
    """The ``audio`` values of a table, undecoded when it is a ``datasets.Dataset`` with an ``Audio`` column (so
    :func:`load_clip` can take the fast path); otherwise the values as stored."""
    try:
        import datasets

        if isinstance(data, datasets.Dataset) and isinstance(data.features.get("audio"), datasets.Audio):
            return data.cast_column("audio", datasets.Audio(decode=False))["audio"]
    except ImportError:  # pragma: no cover
        pass
    return [row["audio"] for row in data]


def features_to_tensor(out) -> torch.Tensor:
    """The embedding in the output of ``get_audio_features`` / ``get_text_features`` (tensor, ModelOutput, tuple)."""
    if torch.is_tensor(out):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is None and isinstance(out, dict):
        pooled = out.get("pooler_output")
    if pooled is None and isinstance(out, (tuple, list)) and len(out) > 1 and torch.is_tensor(out[1]):
        pooled = out[1]  # BaseModelOutputWithPooling as a tuple: (last_hidden_state, pooler_output, ...)
    if pooled is None:
        raise TypeError(
            "get_audio_features/get_text_features must return a tensor or an output with `pooler_output`; got "
            f"{type(out).__name__}"
        )
    return pooled


def _feature_extractor(processor):
    return getattr(processor, "feature_extractor", processor)


def _max_samples(processor) -> int | None:
    fe = _feature_extractor(processor)
    for attr in ("nb_max_samples", "max_length_samples"):
        value = getattr(fe, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    max_s = getattr(fe, "max_length_s", None)
    sr = getattr(fe, "sampling_rate", None)
    if max_s and sr:
        return int(round(float(max_s) * int(sr)))
    return None


def _device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


def _to_device(inputs, device):
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in dict(inputs).items()}


@torch.no_grad()
def embed_audio(model, processor, clips: Sequence, *, sampling_rate: int, batch_size: int = 32,
                progress: bool = False) -> torch.Tensor:
    """``(N, D)`` L2-normalised audio embeddings of ``clips`` (1-D float arrays/tensors at ``sampling_rate``).

    Clips longer than the feature extractor's maximum length are cut to their first ``max_length`` samples *here*,
    deterministically (transformers' ``ClapFeatureExtractor`` would otherwise pick a random crop). There is no CLAP
    "fusion" of several crops of a long clip: a fused LAION-CLAP checkpoint (``truncation="fusion"``, e.g.
    ``laion/clap-htsat-fused``) sees only the first ``max_length`` samples, so on clips longer than that (AudioCaps /
    Clotho clips are 10-30 s, CLAP's window is 10 s) its scores will not reproduce LAION-CLAP's published numbers.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    max_samples = _max_samples(processor)
    was_training = getattr(model, "training", False)
    model.eval()
    device = _device(model)
    chunks = []
    try:
        starts = range(0, len(clips), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="embedding audio", leave=False)
        for start in starts:
            batch = []
            for clip in clips[start : start + batch_size]:
                arr = clip.detach().cpu().numpy() if torch.is_tensor(clip) else np.asarray(clip)
                arr = arr.astype(np.float32, copy=False)
                if max_samples is not None and arr.shape[-1] > max_samples:
                    arr = arr[..., :max_samples]
                batch.append(arr)
            inputs = processor(audio=batch, sampling_rate=sampling_rate, return_tensors="pt")
            out = model.get_audio_features(**_to_device(inputs, device))
            chunks.append(F.normalize(features_to_tensor(out).float(), dim=-1).cpu())
    finally:
        model.train(was_training)
    if not chunks:
        raise ValueError("embed_audio: no clips given")
    return torch.cat(chunks)


@torch.no_grad()
def embed_texts(model, processor, texts: Sequence[str], *, batch_size: int = 64) -> torch.Tensor:
    """``(M, D)`` L2-normalised text embeddings of ``texts``."""
    if not texts:
        raise ValueError("embed_texts: no texts given")
    was_training = getattr(model, "training", False)
    model.eval()
    device = _device(model)
    chunks = []
    try:
        for start in range(0, len(texts), batch_size):
            inputs = processor(text=list(texts[start : start + batch_size]), padding=True, truncation=True,
                               return_tensors="pt")
            out = model.get_text_features(**_to_device(inputs, device))
            chunks.append(F.normalize(features_to_tensor(out).float(), dim=-1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks)


def tie_aware_hit_probability(ahead: int, tied: int, tied_correct: int, k: int) -> float:
    """Probability that a correct candidate is among the top ``k`` when the candidates tied with the best-scoring
    correct one are put in a uniformly random order.

    ``ahead`` candidates score strictly higher than the best correct one; ``tied`` candidates (the best correct one
    included) have exactly its score, ``tied_correct`` of them correct. The ``m = k - ahead`` remaining slots are
    filled from the tied group: the hit probability is ``1 - C(tied - tied_correct, m) / C(tied, m)`` (``m / tied``
    for a single correct candidate). Ties are exact equality of the scores, everywhere in hf-alm's metrics.
    """
    if not 1 <= tied_correct <= tied or ahead < 0 or k < 1:
        raise ValueError(f"need 0 <= ahead, 1 <= tied_correct <= tied and k >= 1; got ahead={ahead}, tied={tied}, "
                         f"tied_correct={tied_correct}, k={k}")
    slots = min(k - ahead, tied)
    if slots <= 0:
        return 0.0
    return 1.0 - math.comb(tied - tied_correct, slots) / math.comb(tied, slots)


def _check_finite(scores: np.ndarray, row_name: str, first_row: int = 0) -> None:
    """``ValueError`` naming the first row (``row_name`` and its index) of the 2-D ``scores`` with a NaN / Inf."""
    bad = ~np.isfinite(scores)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"{row_name} {first_row + row}: non-finite score {scores[row, col]} (candidate {col}); scores "
                         "must be finite (a NaN/Inf embedding or logit?)")


def _check_ks(ks) -> list[int]:
    out = []
    for k in ks:
        if isinstance(k, bool) or int(k) != k or k < 1:
            raise ValueError(f"k of R@k must be a positive integer; got {k!r}")
        out.append(int(k))
    return out


def multiple_choice_hits(scores: Sequence[Sequence[float]], correct: Sequence[int]) -> np.ndarray:
    """Per-item hit probabilities of multiple-choice items (:func:`multiple_choice_accuracy` is their mean; the
    per-item values feed confidence intervals)."""
    if len(scores) != len(correct):
        raise ValueError(f"{len(scores)} score rows but {len(correct)} answers")
    hits = []
    for i, (s, c) in enumerate(zip(scores, correct)):
        s = np.asarray(s, dtype=np.float64)
        if s.ndim != 1 or s.size == 0:
            raise ValueError(f"item {i}: scores must be a non-empty 1-D list; got shape {s.shape}")
        if isinstance(c, bool) or int(c) != c or not 0 <= c < len(s):
            raise ValueError(f"item {i}: answer index {c!r} is out of range for {len(s)} choices")
        _check_finite(s[None], "item", first_row=i)
        target = s[int(c)]
        hits.append(tie_aware_hit_probability(int(np.sum(s > target)), int(np.sum(s == target)), 1, 1))
    return np.asarray(hits, dtype=np.float64)


def multiple_choice_accuracy(scores: Sequence[Sequence[float]], correct: Sequence[int]) -> float:
    """Mean accuracy of multiple-choice items: 1 when the correct choice has the highest score.

    Ties are scored as an unbiased random tie-break would be on average: when the correct choice is among ``t``
    choices with exactly the maximum score, the item counts ``1 / t`` (:func:`tie_aware_hit_probability` with
    ``k = 1``). Plain ``argmax`` would credit a model that scores every choice the same whenever the correct answer
    comes first. Non-finite scores are refused (``ValueError`` naming the item).
    """
    hits = multiple_choice_hits(scores, correct)
    return float(np.mean(hits)) if len(hits) else float("nan")


def recall_at_k(similarity: torch.Tensor, positives: Sequence[Sequence[int]], ks=(1, 5, 10)) -> dict[int, float]:
    """Mean of :func:`recall_at_k_hits` per ``k``."""
    return {k: float(np.mean(v)) for k, v in recall_at_k_hits(similarity, positives, ks).items()}


def recall_at_k_hits(similarity: torch.Tensor, positives: Sequence[Sequence[int]],
                     ks=(1, 5, 10)) -> dict[int, np.ndarray]:
    """Recall@k of queries (rows of ``similarity``) against candidates (columns).

    ``positives[i]`` lists the candidate columns that are correct for query ``i``; a query counts as a hit at ``k``
    when any of them ranks among its top ``k``. Ties count as their expected value under a random order of the tied
    candidates (:func:`tie_aware_hit_probability`), not by column order. Only ``k`` smaller than the number of
    candidates are reported (with ``k >= candidates`` every query is a hit; the ZSTE ``evaluate`` module omits those
    ``k`` too). Non-finite similarities and out-of-range / empty positives are refused with a ``ValueError``.
    """
    sim = torch.as_tensor(similarity, dtype=torch.float64)
    if sim.ndim != 2 or sim.shape[0] != len(positives):
        raise ValueError(f"similarity must be (queries, candidates) with one row per positives entry; got "
                         f"{tuple(sim.shape)} and {len(positives)} entries")
    sim = sim.cpu().numpy()
    _check_finite(sim, "similarity row (query)")
    num_candidates = sim.shape[1]
    ks = [k for k in _check_ks(ks) if k < num_candidates]
    hits: dict[int, list[float]] = {k: [] for k in ks}
    for i, pos in enumerate(positives):
        pos = [int(j) for j in pos]
        if not pos:
            raise ValueError(f"query {i} has no correct candidate")
        bad = [j for j in pos if not 0 <= j < num_candidates]
        if bad:
            raise ValueError(f"query {i}: correct candidate index {bad[0]} is out of range for {num_candidates} "
                             "candidates")
        row, pos = sim[i], np.unique(pos)
        best = row[pos].max()
        ahead, tied, tied_correct = int(np.sum(row > best)), int(np.sum(row == best)), int(np.sum(row[pos] == best))
        for k in ks:
            hits[k].append(tie_aware_hit_probability(ahead, tied, tied_correct, k))
    return {k: np.asarray(v, dtype=np.float64) for k, v in hits.items()}


def retrieval_metrics(audio_emb: torch.Tensor, text_emb: torch.Tensor, audio_texts: Sequence[Sequence[int]],
                      ks=(1, 5, 10)) -> dict[str, float]:
    """R@k audio->text and text->audio. ``audio_texts[i]`` = indices (into ``text_emb``) of clip ``i``'s captions.

    Every text must belong to at least one clip; a text's correct clips are all clips that list it. For the
    AudioCaps / Clotho protocol (LAION-CLAP, open_clip) give every (clip, caption) pair its own text row, even when
    two clips share a caption string: each text->audio query then has exactly one correct clip, and an audio->text
    query is a hit when any of the clip's captions is in its top ``k``. Ties count as their expected value
    (:func:`recall_at_k`); ``audio_to_text_R@k`` is reported for ``k`` < the number of texts and ``text_to_audio_R@k``
    for ``k`` < the number of clips.
    """
    num_audio, num_texts = audio_emb.shape[0], text_emb.shape[0]
    if len(audio_texts) != num_audio:
        raise ValueError(f"audio_texts has {len(audio_texts)} entries for {num_audio} audio embeddings")
    text_audios: list[list[int]] = [[] for _ in range(num_texts)]
    for i, idxs in enumerate(audio_texts):
        for j in idxs:
            if isinstance(j, bool) or int(j) != j or not 0 <= j < num_texts:
                raise ValueError(f"clip {i}: caption index {j!r} is out of range for {num_texts} texts")
            text_audios[int(j)].append(i)
    orphans = [j for j, a in enumerate(text_audios) if not a]
    if orphans:
        raise ValueError(f"text {orphans[0]} is no clip's caption ({len(orphans)} such texts); every text must be "
                         "listed in audio_texts")
    sim = audio_emb.double() @ text_emb.double().t()
    a2t = recall_at_k(sim, audio_texts, ks)
    t2a = recall_at_k(sim.t(), text_audios, ks)
    out = {f"audio_to_text_R@{k}": v for k, v in a2t.items()}
    out.update({f"text_to_audio_R@{k}": v for k, v in t2a.items()})
    return out
