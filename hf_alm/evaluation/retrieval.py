"""Embedding helpers and ranking metrics shared by ZSTE, zero-shot classification and retrieval evaluation.

Works for any dual encoder with ``get_audio_features`` / ``get_text_features`` -- hf-alm's ``ClapTeminalModel`` and
transformers' ``ClapModel`` alike. Both return types are handled: a tensor (transformers < 5) or a ``ModelOutput``
whose ``pooler_output`` holds the projected embedding (transformers v5). Embeddings are L2-normalised here, so every
score is a cosine similarity whatever the model returns.
"""

from __future__ import annotations

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
]


_WAV_FLOAT, _WAV_PCM, _WAV_EXTENSIBLE = 3, 1, 0xFFFE


def _parse_wav(data: bytes) -> tuple[np.ndarray, int] | None:
    """Decode an uncompressed RIFF/WAVE file (PCM 8/16/24/32-bit, float 32/64) with numpy; ``None`` for anything else.

    Decoding the WAV bytes of in-memory datasets (the synthetic corpus, temporal compositions) this way is ~100x faster
    than a general decoder, which matters when a whole evaluation set is embedded several times in one run.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, fmt, payload = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            fmt = body
        elif cid == b"data":
            payload = body
            break
        pos += 8 + size + (size & 1)
    if fmt is None or payload is None or len(fmt) < 16:
        return None
    tag = int.from_bytes(fmt[0:2], "little")
    channels = int.from_bytes(fmt[2:4], "little")
    rate = int.from_bytes(fmt[4:8], "little")
    bits = int.from_bytes(fmt[14:16], "little")
    if tag == _WAV_EXTENSIBLE and len(fmt) >= 26:
        tag = int.from_bytes(fmt[24:26], "little")
    if channels < 1 or rate < 1:
        return None
    if tag == _WAV_FLOAT and bits in (32, 64):
        x = np.frombuffer(payload[: len(payload) // (bits // 8) * (bits // 8)], dtype=f"<f{bits // 8}")
    elif tag == _WAV_PCM and bits in (16, 32):
        x = np.frombuffer(payload[: len(payload) // (bits // 8) * (bits // 8)], dtype=f"<i{bits // 8}")
        x = x.astype(np.float64) / float(2 ** (bits - 1))
    elif tag == _WAV_PCM and bits == 8:
        x = (np.frombuffer(payload, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif tag == _WAV_PCM and bits == 24:
        raw = np.frombuffer(payload[: len(payload) // 3 * 3], dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        x = np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float64) / float(1 << 23)
    else:
        return None
    x = x[: len(x) // channels * channels].reshape(-1, channels).mean(axis=1)
    return x.astype(np.float32), rate


def load_clip(value, sampling_rate: int) -> torch.Tensor:
    """One clip as a float32 mono tensor at ``sampling_rate``: uncompressed WAV bytes are parsed directly, anything
    else (paths, other codecs, decoders, arrays) goes through ``hf_alm.data.audio.load_audio``."""
    from hf_alm.data.audio import load_audio

    if isinstance(value, dict) and value.get("bytes") is not None and value.get("array") is None:
        parsed = _parse_wav(value["bytes"])
        if parsed is not None:
            wave, rate = parsed
            return load_audio(wave, sampling_rate, source_sampling_rate=rate)
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
    deterministically (transformers' ``ClapFeatureExtractor`` would otherwise pick a random crop).
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


def multiple_choice_accuracy(scores: Sequence[Sequence[float]], correct: Sequence[int], *,
                             tie_atol: float = 1e-6) -> float:
    """Mean accuracy of multiple-choice items: 1 when the correct choice has the highest score.

    Ties are scored as an unbiased random tie-break would be on average: when the correct choice is among ``k`` choices
    within ``tie_atol`` of the maximum, the item counts ``1 / k``. (Plain ``argmax`` would credit a model that scores
    every choice the same whenever the correct answer comes first.)
    """
    if len(scores) != len(correct):
        raise ValueError(f"{len(scores)} score rows but {len(correct)} answers")
    if not len(scores):
        return float("nan")
    hits = []
    for s, c in zip(scores, correct):
        s = np.asarray(s, dtype=np.float64)
        if not 0 <= c < len(s):
            raise ValueError(f"answer index {c} is out of range for {len(s)} choices")
        top = np.flatnonzero(s >= s.max() - tie_atol)
        hits.append(1.0 / len(top) if c in top else 0.0)
    return float(np.mean(hits))


def recall_at_k(similarity: torch.Tensor, positives: Sequence[Sequence[int]], ks=(1, 5, 10)) -> dict[int, float]:
    """Recall@k of queries (rows of ``similarity``) against candidates (columns).

    ``positives[i]`` lists the candidate columns that are correct for query ``i``; a query counts as a hit at ``k``
    when any of them ranks among its top ``k`` (ties broken by column order, as a stable sort does).
    """
    sim = torch.as_tensor(similarity, dtype=torch.float64)
    if sim.ndim != 2 or sim.shape[0] != len(positives):
        raise ValueError(f"similarity must be (queries, candidates) with one row per positives entry; got "
                         f"{tuple(sim.shape)} and {len(positives)} entries")
    order = torch.argsort(-sim, dim=1, stable=True)
    rank_of = torch.empty_like(order)
    rank_of.scatter_(1, order, torch.arange(sim.shape[1]).expand_as(order))
    best = []
    for i, pos in enumerate(positives):
        if not pos:
            raise ValueError(f"query {i} has no correct candidate")
        best.append(int(rank_of[i, list(pos)].min()))
    best = np.asarray(best)
    return {k: float(np.mean(best < k)) for k in ks}


def retrieval_metrics(audio_emb: torch.Tensor, text_emb: torch.Tensor, audio_texts: Sequence[Sequence[int]],
                      ks=(1, 5, 10)) -> dict[str, float]:
    """R@k audio->text and text->audio. ``audio_texts[i]`` = indices (into ``text_emb``) of clip ``i``'s captions.

    Every text must belong to at least one clip; a text's correct clips are all clips that list it.
    """
    sim = audio_emb.double() @ text_emb.double().t()
    text_audios: list[list[int]] = [[] for _ in range(text_emb.shape[0])]
    for i, idxs in enumerate(audio_texts):
        for j in idxs:
            text_audios[j].append(i)
    a2t = recall_at_k(sim, audio_texts, ks)
    t2a = recall_at_k(sim.t(), text_audios, ks)
    out = {f"audio_to_text_R@{k}": v for k, v in a2t.items()}
    out.update({f"text_to_audio_R@{k}": v for k, v in t2a.items()})
    return out
