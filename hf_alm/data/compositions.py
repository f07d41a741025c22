"""Temporal compositions of single-event clips (TeminAL post-training, ZSTE evaluation).

From any single-event labelled dataset (the synthetic corpus, ESC-10/50, FSDD, ...) build clips of

* event A then event B (``kind="sequence"``; optional silent gap or crossfade), and the same two waveforms in the
  reversed order, so that only the order differs;
* A overlapping B (``kind="overlap"``; B mixed at a given SNR below A),

each with captions from templates using "before", "after", "while", "followed by" and "then" in both directions
("a rising chirp before a bell ringing" = "a bell ringing after a rising chirp").

Leakage: :func:`split_sources` splits the *source clips* (stratified per label, or by whole groups such as ESC folds)
and :func:`make_temporal_splits` composes each split only from its own sources, so no evaluation clip was ever heard
in training. Everything is deterministic by seed: the same call gives byte-identical audio.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .synthetic import _BY_NAME, SyntheticClass, _ChunkedBuilder, _float_wav_bytes

__all__ = [
    "RELATIONS",
    "noun_phrase",
    "relation_captions",
    "canonical_caption",
    "concat_events",
    "overlay_events",
    "split_sources",
    "make_compositions",
    "make_temporal_splits",
]

#: Relations understood by :func:`relation_captions`.
RELATIONS = ("before", "after", "while")

#: Peak ceiling of composed clips (a pair is scaled down as a whole when it would exceed it).
_PEAK_LIMIT = 0.99
#: Mixed into every per-pair seed so composition streams differ from the synthetic corpus' clip streams.
_STREAM = 0x7E3A1


# --------------------------------------------------------------------------------------------------------------------
# captions


def noun_phrase(event: SyntheticClass | str) -> str:
    """The phrase naming ``event`` inside a caption.

    A :class:`~hf_alm.data.synthetic.SyntheticClass` (or the name of one) gives its ``noun`` ("a rising chirp"); any
    other label name is lower-cased with ``_`` turned into spaces ("Dog bark" -> "dog bark", "crackling_fire" ->
    "crackling fire").
    """
    if isinstance(event, SyntheticClass):
        return event.noun
    if not isinstance(event, str) or not event.strip():
        raise ValueError(f"an event must be a SyntheticClass or a non-empty label name, got {event!r}")
    if event in _BY_NAME:
        return _BY_NAME[event].noun
    return " ".join(event.replace("_", " ").split()).lower()


def _check_relation(relation: str) -> str:
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    return relation


def _phrase_captions(a: str, b: str, relation: str) -> list[str]:
    if relation == "while":
        return [f"{a} while {b}", f"{b} while {a}", f"{a} and {b} at the same time", f"{a} together with {b}"]
    x, y = (a, b) if relation == "before" else (b, a)  # x is heard first
    captions = [f"{x} before {y}", f"{y} after {x}", f"{x} followed by {y}", f"{x}, then {y}", f"first {x}, then {y}"]
    if relation == "after":
        captions.insert(0, captions.pop(1))  # "a after b" is the canonical caption
    return captions


def canonical_caption(first: SyntheticClass | str, second: SyntheticClass | str, relation: str) -> str:
    """``"{first} {relation} {second}"`` with noun phrases, e.g. ``"a rising chirp before a bell ringing"``.

    ``relation`` says how ``first`` (the event named first) relates to ``second``: with "before" ``first`` is heard
    first, with "after" ``second`` is heard first, with "while" they overlap.
    """
    _check_relation(relation)
    return f"{noun_phrase(first)} {relation} {noun_phrase(second)}"


def relation_captions(first: SyntheticClass | str, second: SyntheticClass | str, relation: str) -> list[str]:
    """All captions of the relation, in both directions; the first one is :func:`canonical_caption`.

    For "before" (``first`` heard first) and "after" (``second`` heard first) the templates are "X before Y",
    "Y after X", "X followed by Y", "X, then Y" and "first X, then Y" with X the event heard first; for "while":
    "A while B", "B while A", "A and B at the same time", "A together with B".
    """
    _check_relation(relation)
    return _phrase_captions(noun_phrase(first), noun_phrase(second), relation)


# --------------------------------------------------------------------------------------------------------------------
# signal operations


def _as_clip(x: Any, name: str) -> np.ndarray:
    arr = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D waveform, got shape {tuple(arr.shape)}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (0 samples)")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must hold float samples, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf at sample {int(np.argmin(np.isfinite(arr)))}")
    return arr


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")
    return float(value)


def _check_rate(sampling_rate: Any) -> int:
    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, numbers.Integral) or sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be a positive integer number of Hz, got {sampling_rate!r}")
    return int(sampling_rate)


def concat_events(
    a: np.ndarray, b: np.ndarray, *, sampling_rate: int, gap: float = 0.0, crossfade: float = 0.0
) -> np.ndarray:
    """``a`` then ``b``: ``a``'s samples first, then ``round(gap * sr)`` zeros, then ``b``.

    With ``crossfade`` > 0 the last ``c = round(crossfade * sr)`` samples of ``a`` overlap the first ``c`` of ``b``
    under equal-power (sine/cosine) fades; the result has ``len(a) + len(b) - c`` samples. ``gap`` and ``crossfade``
    cannot both be positive. The dtype of ``a`` (float32 for float32 inputs) is kept.
    """
    a, b = _as_clip(a, "a"), _as_clip(b, "b")
    sampling_rate = _check_rate(sampling_rate)
    gap, crossfade = _seconds(gap, "gap"), _seconds(crossfade, "crossfade")
    if gap > 0 and crossfade > 0:
        raise ValueError(f"use either a gap or a crossfade, not both (gap={gap!r}, crossfade={crossfade!r})")
    dtype = np.result_type(a.dtype, b.dtype)
    if crossfade == 0:
        silence = np.zeros(int(round(gap * sampling_rate)), dtype=dtype)
        return np.concatenate([a.astype(dtype, copy=False), silence, b.astype(dtype, copy=False)])
    c = int(round(crossfade * sampling_rate))
    if c > min(len(a), len(b)):
        raise ValueError(
            f"crossfade of {crossfade!r} s ({c} samples) is longer than an event ({len(a)} and {len(b)} samples)"
        )
    out = np.concatenate([a, np.zeros(len(b) - c, dtype=a.dtype)]).astype(np.float64)
    theta = (np.arange(c) + 0.5) / c * (np.pi / 2)
    out[len(a) - c : len(a)] *= np.cos(theta)
    head = b.astype(np.float64)
    head[:c] *= np.sin(theta)
    out[len(a) - c :] += head
    return out.astype(dtype)


def overlay_events(a: np.ndarray, b: np.ndarray, *, snr_db: float = 0.0) -> np.ndarray:
    """``a`` and ``b`` played together from the same start; the shorter one is zero-padded at its end.

    ``b`` is scaled so that ``10 * log10(P_a / P_b) = snr_db`` with ``P`` the mean power of each event over its own
    samples (before padding). Returns ``a + g * b`` with ``max(len(a), len(b))`` samples.
    """
    a, b = _as_clip(a, "a"), _as_clip(b, "b")
    if isinstance(snr_db, bool) or not isinstance(snr_db, numbers.Real) or not math.isfinite(snr_db):
        raise ValueError(f"snr_db must be a finite number of dB, got {snr_db!r}")
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    pa, pb = float(np.mean(a64 * a64)), float(np.mean(b64 * b64))
    if pa == 0 or pb == 0:
        raise ValueError(f"cannot mix at an SNR: event {'a' if pa == 0 else 'b'} is silent (all zeros)")
    gain = math.sqrt(pa / pb * 10.0 ** (-float(snr_db) / 10.0))
    out = np.zeros(max(len(a), len(b)))
    out[: len(a)] += a64
    out[: len(b)] += gain * b64
    return out.astype(np.result_type(a.dtype, b.dtype))


def _loudest_window(x: np.ndarray, length: int) -> np.ndarray:
    """The ``length``-sample window of ``x`` with the most energy (the first one on ties)."""
    if len(x) <= length:
        return x
    energy = np.concatenate(([0.0], np.cumsum(x.astype(np.float64) ** 2)))
    window = energy[length:] - energy[:-length]
    start = int(np.argmax(window))
    return x[start : start + length]


# --------------------------------------------------------------------------------------------------------------------
# datasets


def _label_table(dataset) -> tuple[np.ndarray, list[str]]:
    """``(label ids per row, id -> name)`` from a ``label`` column (ClassLabel, ints + ``label_name``, or strings)."""
    import datasets

    if "label" not in dataset.column_names:
        raise ValueError(f"the dataset needs a 'label' column; it has {dataset.column_names}")
    feature = dataset.features["label"]
    labels = dataset["label"]
    if isinstance(feature, datasets.ClassLabel):
        return np.asarray(labels, dtype=np.int64), list(feature.names)
    if len(labels) and isinstance(labels[0], str):
        names = sorted(set(labels))
        index = {n: i for i, n in enumerate(names)}
        return np.asarray([index[n] for n in labels], dtype=np.int64), names
    ids = np.asarray(labels, dtype=np.int64)
    if "label_name" in dataset.column_names:
        names_by_id: dict[int, str] = {}
        for i, n in zip(ids.tolist(), dataset["label_name"]):
            if names_by_id.setdefault(i, n) != n:
                raise ValueError(f"label {i} has two names in 'label_name': {names_by_id[i]!r} and {n!r}")
    else:
        names_by_id = {i: str(i) for i in set(ids.tolist())}
    size = int(ids.max()) + 1 if len(ids) else 0
    return ids, [names_by_id.get(i, str(i)) for i in range(size)]


def _source_ids(dataset) -> np.ndarray:
    if "source_id" in dataset.column_names:
        return np.asarray(dataset["source_id"], dtype=np.int64)
    return np.arange(len(dataset), dtype=np.int64)


def _check_fraction(eval_fraction: Any) -> float:
    if isinstance(eval_fraction, bool) or not isinstance(eval_fraction, numbers.Real) or not 0 < eval_fraction < 1:
        raise ValueError(f"eval_fraction must be a number strictly between 0 and 1, got {eval_fraction!r}")
    return float(eval_fraction)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def split_sources(dataset, *, eval_fraction: float = 0.2, seed: int = 0, by: str | None = None):
    """Split the source clips of a single-event dataset into disjoint ``(train, eval)`` datasets.

    A ``source_id`` column (the row index) is added first when the dataset has none, so ids stay comparable across
    the two halves.

    Args:
        dataset: a ``datasets.Dataset`` with a ``label`` column.
        eval_fraction: share of the clips that go to ``eval``.
        seed: shuffling seed.
        by: ``None`` for a split stratified per label (``round(eval_fraction * n)`` clips of each label with at least
            two clips go to eval, at least one stays in train). Or a column name whose values are kept whole on one
            side: ``"fold"`` keeps ESC folds intact (with 5 folds and 0.2, one whole fold is held out), a recording
            id keeps takes of one recording together. Groups are drawn in a seeded order until ``eval`` holds at
            least ``eval_fraction`` of the rows; at least one group is left for training.

    Returns:
        ``(train, eval)``, each a ``dataset.select(...)`` in the original row order. No ``source_id`` is in both.
    """
    eval_fraction = _check_fraction(eval_fraction)
    seed = _check_seed(seed)
    if len(dataset) < 2:
        raise ValueError(f"need at least 2 source clips to split, got {len(dataset)}")
    if "source_id" not in dataset.column_names:
        dataset = dataset.add_column("source_id", list(range(len(dataset))))
    ids = _source_ids(dataset)
    if len(np.unique(ids)) != len(ids):
        raise ValueError("the dataset's 'source_id' column has duplicate ids; split by a group column instead "
                         "(by='source_id' keeps all rows of one id together)")
    rng = np.random.default_rng([seed, _STREAM, 1])
    is_eval = np.zeros(len(dataset), dtype=bool)
    if by is None:
        labels, _ = _label_table(dataset)
        for label in np.unique(labels):
            rows = np.flatnonzero(labels == label)
            if len(rows) < 2:
                continue
            take = min(max(1, int(round(eval_fraction * len(rows)))), len(rows) - 1)
            is_eval[rng.permutation(rows)[:take]] = True
    else:
        if by not in dataset.column_names:
            raise ValueError(f"cannot split by {by!r}: no such column (columns: {dataset.column_names})")
        values = dataset[by]
        groups = sorted(set(values), key=lambda v: (str(type(v)), v))
        if len(groups) < 2:
            raise ValueError(f"cannot split by {by!r}: it has a single value {groups!r}")
        members = {g: [] for g in groups}
        for row, v in enumerate(values):
            members[v].append(row)
        target = eval_fraction * len(dataset)
        chosen = 0
        for gi in rng.permutation(len(groups))[: len(groups) - 1]:
            rows = members[groups[gi]]
            is_eval[rows] = True
            chosen += len(rows)
            if chosen >= target:
                break
    train_rows, eval_rows = np.flatnonzero(~is_eval), np.flatnonzero(is_eval)
    assert not set(ids[train_rows].tolist()) & set(ids[eval_rows].tolist())
    return dataset.select(train_rows.tolist()), dataset.select(eval_rows.tolist())


def _range(value: Any, name: str, *, non_negative: bool) -> tuple[float, float]:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        lo = hi = float(value)
    else:
        try:
            lo, hi = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number or a (low, high) pair, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi or (non_negative and lo < 0):
        raise ValueError(f"{name} must be finite with low <= high{' and >= 0' if non_negative else ''}, got {value!r}")
    return lo, hi


def _draw(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return lo if lo == hi else float(rng.uniform(lo, hi))


def _dataset_rate(dataset) -> int | None:
    feature = dataset.features.get("audio") if hasattr(dataset, "features") else None
    return getattr(feature, "sampling_rate", None)


def make_compositions(
    dataset,
    *,
    num_pairs: int,
    sampling_rate: int | None = None,
    seed: int = 0,
    gap: float | tuple[float, float] | None = None,
    crossfade: float | tuple[float, float] = 0.0,
    snr_db: float | tuple[float, float] = (-3.0, 3.0),
    include_reversed: bool = True,
    include_overlap: bool = True,
    max_seconds: float | None = None,
    noun_phrases: Mapping[str, str] | Callable[[str], str] | None = None,
    pair_id_start: int = 0,
):
    """Compose ``num_pairs`` pairs of single-event clips of two different labels into temporal clips.

    Pair ``i`` draws, from its own generator ``default_rng([seed, ..., i])`` (so the first pairs do not depend on
    ``num_pairs``): two different labels A, B uniformly, one source clip of each uniformly, a gap (or crossfade) and
    an SNR. It gives up to three rows sharing ``pair_id``: ``A -> B`` (``kind="sequence"``), ``B -> A`` (the same two
    waveforms and gap in the other order) and ``A + B`` (``kind="overlap"``, B mixed ``snr_db`` below A). A pair whose
    clip would peak above 0.99 is scaled down as a whole (both orders by the same gain).

    Args:
        dataset: single-event dataset with ``audio`` and ``label`` columns (``source_id`` is used when present,
            else the row index).
        num_pairs: number of source pairs.
        sampling_rate: rate of the composed audio; defaults to the rate of the dataset's ``Audio`` feature.
        seed: composition seed (same seed -> byte-identical audio).
        gap: silence between the two events in seconds, a number or a ``(low, high)`` range; ``None`` means
            ``(0.0, 0.2)``, or 0 when a crossfade is requested.
        crossfade: overlap of the two events in seconds (equal-power fades), a number or a range; excludes a gap.
        snr_db: level of A over B in the overlap rows, a number or a range in dB.
        include_reversed: add the ``B -> A`` row.
        include_overlap: add the ``A + B`` row.
        max_seconds: when given, each source event is cut to its loudest window so that a sequence clip (two events
            and the gap) lasts at most this long.
        noun_phrases: label name -> caption phrase (a mapping or a function); :func:`noun_phrase` by default.
        pair_id_start: first ``pair_id`` (to keep ids unique across splits).

    Returns:
        ``datasets.Dataset`` with ``audio`` (``Audio(sampling_rate)``, float32 WAV bytes), ``kind``
        (``"sequence"`` / ``"overlap"``), ``first`` / ``second`` (label names; for a sequence ``first`` is heard
        first; for an overlap ``first`` is A, the louder one at positive SNR), ``first_label`` / ``second_label``
        (label ids of the source dataset), ``relation`` (``"before"`` / ``"while"``), ``caption`` (the canonical
        caption, e.g. "a rising chirp before a bell ringing"), ``captions`` (every template, both directions),
        ``pair_id`` and ``source_ids`` (``[id of first, id of second]``).
    """
    import datasets

    from .audio import load_audio

    if isinstance(num_pairs, bool) or not isinstance(num_pairs, numbers.Integral) or num_pairs < 1:
        raise ValueError(f"num_pairs must be a positive integer, got {num_pairs!r}")
    seed = _check_seed(seed)
    if sampling_rate is None:
        sampling_rate = _dataset_rate(dataset)
        if sampling_rate is None:
            raise ValueError("sampling_rate is required: the dataset's audio column does not fix a sampling rate")
    sampling_rate = _check_rate(sampling_rate)
    crossfade_range = _range(crossfade, "crossfade", non_negative=True)
    if gap is None:
        gap = 0.0 if crossfade_range[1] > 0 else (0.0, 0.2)
    gap_range = _range(gap, "gap", non_negative=True)
    if gap_range[1] > 0 and crossfade_range[1] > 0:
        raise ValueError(f"use either a gap or a crossfade, not both (gap={gap!r}, crossfade={crossfade!r})")
    snr_range = _range(snr_db, "snr_db", non_negative=False)
    if max_seconds is not None:
        max_seconds = _seconds(max_seconds, "max_seconds")
        if max_seconds - gap_range[1] < 0.1:
            raise ValueError(f"max_seconds={max_seconds!r} leaves no room for two events and a gap of up to "
                             f"{gap_range[1]} s")
    if isinstance(pair_id_start, bool) or not isinstance(pair_id_start, numbers.Integral):
        raise ValueError(f"pair_id_start must be an integer, got {pair_id_start!r}")
    if "audio" not in dataset.column_names:
        raise ValueError(f"the dataset needs an 'audio' column; it has {dataset.column_names}")

    if noun_phrases is None:
        phrase = noun_phrase
    elif isinstance(noun_phrases, Mapping):
        phrase = lambda name: noun_phrases.get(name) or noun_phrase(name)  # noqa: E731
    elif callable(noun_phrases):
        phrase = lambda name: str(noun_phrases(name))  # noqa: E731
    else:
        raise ValueError(f"noun_phrases must be a mapping or a callable, got {type(noun_phrases).__name__}")

    labels, names = _label_table(dataset)
    ids = _source_ids(dataset)
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError(f"need clips of at least 2 different labels to compose, got labels {present.tolist()}")
    pools = {int(lab): np.flatnonzero(labels == lab) for lab in present}
    audio_column = dataset.select_columns(["audio"])

    cache: dict[int, np.ndarray] = {}

    def source(row: int) -> np.ndarray:
        if row not in cache:
            value = audio_column[int(row)]["audio"]
            cache[row] = load_audio(value, sampling_rate).numpy().astype(np.float32, copy=False)
        return cache[row]

    features = datasets.Features(
        {
            "audio": datasets.Audio(sampling_rate=sampling_rate),
            "kind": datasets.Value("string"),
            "first": datasets.Value("string"),
            "second": datasets.Value("string"),
            "first_label": datasets.Value("int64"),
            "second_label": datasets.Value("int64"),
            "relation": datasets.Value("string"),
            "caption": datasets.Value("string"),
            "captions": datasets.List(datasets.Value("string")),
            "pair_id": datasets.Value("int64"),
            "source_ids": datasets.List(datasets.Value("int64")),
        }
    )
    chunks = _ChunkedBuilder(features)
    columns = chunks.columns

    def add(wave, kind, la, lb, ra, rb, relation, pair_id):
        na, nb = names[la], names[lb]
        pa, pb = phrase(na), phrase(nb)
        columns["audio"].append({"bytes": _float_wav_bytes(wave, sampling_rate), "path": None})
        columns["kind"].append(kind)
        columns["first"].append(na)
        columns["second"].append(nb)
        columns["first_label"].append(int(la))
        columns["second_label"].append(int(lb))
        columns["relation"].append(relation)
        captions = _phrase_captions(pa, pb, relation)
        columns["caption"].append(captions[0])
        columns["captions"].append(captions)
        columns["pair_id"].append(int(pair_id))
        columns["source_ids"].append([int(ids[ra]), int(ids[rb])])

    for i in range(int(num_pairs)):
        rng = np.random.default_rng([seed, _STREAM, 2, i])
        la, lb = (int(v) for v in rng.choice(present, size=2, replace=False))
        ra, rb = int(rng.choice(pools[la])), int(rng.choice(pools[lb]))
        g, c, snr = _draw(rng, gap_range), _draw(rng, crossfade_range), _draw(rng, snr_range)
        a, b = source(ra), source(rb)
        if max_seconds is not None:
            limit = max(1, int((max_seconds - g) * sampling_rate) // 2)
            a, b = _loudest_window(a, limit), _loudest_window(b, limit)
        c = min(c, (min(len(a), len(b)) - 1) / sampling_rate) if c > 0 else 0.0
        pair_id = int(pair_id_start) + i
        waves = [concat_events(a, b, sampling_rate=sampling_rate, gap=g, crossfade=c)]
        if include_reversed:
            waves.append(concat_events(b, a, sampling_rate=sampling_rate, gap=g, crossfade=c))
        peak = max(float(np.max(np.abs(w))) for w in waves)
        scale = _PEAK_LIMIT / peak if peak > _PEAK_LIMIT else 1.0
        add(waves[0] * np.float32(scale) if scale != 1.0 else waves[0], "sequence", la, lb, ra, rb, "before", pair_id)
        if include_reversed:
            add(waves[1] * np.float32(scale) if scale != 1.0 else waves[1], "sequence", lb, la, rb, ra, "before",
                pair_id)
        if include_overlap:
            mix = overlay_events(a, b, snr_db=snr)
            peak = float(np.max(np.abs(mix)))
            if peak > _PEAK_LIMIT:
                mix = mix * np.float32(_PEAK_LIMIT / peak)
            add(mix, "overlap", la, lb, ra, rb, "while", pair_id)
        chunks.maybe_flush()
    return chunks.finish()


def make_temporal_splits(
    dataset,
    *,
    num_train_pairs: int,
    num_eval_pairs: int,
    eval_fraction: float = 0.2,
    seed: int = 0,
    by: str | None = None,
    **kw,
):
    """Source-disjoint train/eval compositions: ``datasets.DatasetDict(train=..., eval=...)``.

    The source clips are split first with :func:`split_sources` (``eval_fraction``, ``seed``, ``by``); the train
    compositions use only train sources and the eval compositions only eval sources, so no eval clip was heard in
    training. The train compositions use ``seed``, the eval ones ``seed + 1``; eval pair ids continue after the
    train ones. ``**kw`` goes to :func:`make_compositions`
    (``sampling_rate``, ``gap``, ``crossfade``, ``snr_db``, ``include_reversed``, ``include_overlap``,
    ``max_seconds``, ``noun_phrases``).
    """
    import datasets

    for bad in ("num_pairs", "pair_id_start"):
        if bad in kw:
            raise ValueError(f"make_temporal_splits sets {bad!r} itself; got {bad}={kw[bad]!r}")
    seed = _check_seed(seed)
    train_src, eval_src = split_sources(dataset, eval_fraction=eval_fraction, seed=seed, by=by)
    train = make_compositions(train_src, num_pairs=num_train_pairs, seed=seed, **kw)
    evaluation = make_compositions(
        eval_src, num_pairs=num_eval_pairs, seed=seed + 1, pair_id_start=int(num_train_pairs), **kw
    )
    return datasets.DatasetDict(train=train, eval=evaluation)
