"""Honest train / validation / test splits of a labelled single-event dataset, by source clip.

:func:`split_train_val_test` is the split every evaluation-minded recipe uses (TeminAL first):

* **test** (the reported numbers): whole groups (ESC folds) whose share of the clips is *nearest* to
  ``test_fraction``, or, when the groups are too uneven for that (no subset within ``fold_tolerance`` of the target,
  or a class would be left with too few training clips), a split stratified per class;
* **validation** (model selection, early stopping): a stratified share ``val_fraction`` of what is left, never the
  test clips;
* **train**: the rest.

No source clip (``source_id``, one per row unless the dataset says otherwise) is on two sides. A split that leaves a
class fewer than ``min_train_per_class`` training clips, or trains on less than half of the clips, is refused with a
:class:`SplitError` naming the counts, unless ``allow_small=True``. The returned :class:`SourceSplit` says in words
what was done (``describe()``), so recipes print it.

:func:`limit_per_class` subsamples a dataset to at most ``n`` clips per class (seeded), to try a recipe on a small
version of a dataset (``--max_clips_per_class``).
"""

from __future__ import annotations

import itertools
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .compositions import _check_seed, _label_table, _source_ids

__all__ = ["SplitError", "SourceSplit", "split_train_val_test", "limit_per_class"]

_STREAM = 0x5A17
_MAX_EXACT_GROUPS = 16  # subsets of up to 16 groups are enumerated exactly; more are chosen greedily


class SplitError(ValueError):
    """A split that would make the evaluation meaningless (too few training clips, or too little data)."""


@dataclass
class SourceSplit:
    """The three sides of a split (each a ``dataset.select`` in the original row order) and how they were made."""

    train: Any
    val: Any
    test: Any
    method: str  # "groups" or "stratified"
    by: str | None = None
    test_groups: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def counts(self) -> dict:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def describe(self) -> str:
        n = sum(self.counts().values())
        c = self.counts()
        if self.method == "groups":
            how = f"test = {self.by} {', '.join(str(g) for g in self.test_groups)}"
        else:
            how = "test stratified per class"
        text = (f"split ({how}; validation stratified per class): {c['train']} train / {c['val']} validation / "
                f"{c['test']} test source clips ({100 * c['test'] / max(1, n):.0f} % test)")
        return "; ".join([text, *self.notes])


def _check_fraction(value: Any, name: str, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in (0, 1); got {value!r}")
    value = float(value)
    if not ((0.0 <= value if allow_zero else 0.0 < value) and value < 1.0):
        raise ValueError(f"{name} must be in {'[0' if allow_zero else '(0'}, 1); got {value}")
    return value


def _nearest_groups(sizes: dict, target: float, rng: np.random.Generator) -> list:
    """The proper, non-empty subset of groups whose total size is nearest to ``target`` (ties: fewer groups, then a
    seeded choice). Exact for up to ``_MAX_EXACT_GROUPS`` groups, greedy (largest first that still helps) beyond."""
    groups = list(sizes)
    order = [groups[i] for i in rng.permutation(len(groups))]
    if len(groups) <= _MAX_EXACT_GROUPS:
        best, best_key = None, None
        for r in range(1, len(groups)):
            for combo in itertools.combinations(order, r):
                key = (abs(sum(sizes[g] for g in combo) - target), r)
                if best_key is None or key < best_key:
                    best, best_key = list(combo), key
        return best
    chosen, total = [], 0
    for g in sorted(order, key=lambda g: -sizes[g]):
        if len(chosen) < len(groups) - 1 and abs(total + sizes[g] - target) < abs(total - target):
            chosen.append(g)
            total += sizes[g]
    return chosen or [min(order, key=lambda g: abs(sizes[g] - target))]


def _stratified(rows_by_class: dict, fraction: float, keep: int, rng: np.random.Generator) -> np.ndarray:
    """Rows to take: ``round(fraction * n)`` per class (at least 1), only from classes that keep ``keep`` rows."""
    taken = []
    for label in sorted(rows_by_class):
        rows = rows_by_class[label]
        take = max(1, int(round(fraction * len(rows))))
        if len(rows) - take < keep:
            take = max(0, len(rows) - keep)
        if take:
            taken.extend(rng.permutation(rows)[:take].tolist())
    return np.asarray(sorted(taken), dtype=np.int64)


def _by_class(labels: np.ndarray, rows: np.ndarray) -> dict:
    out: dict = {}
    for r in rows.tolist():
        out.setdefault(int(labels[r]), []).append(r)
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


def _short_classes(labels: np.ndarray, train_rows: np.ndarray, names: list, minimum: int) -> dict:
    counts = np.bincount(labels[train_rows], minlength=len(names)) if len(train_rows) else np.zeros(len(names), int)
    present = set(labels.tolist())
    return {names[c]: int(counts[c]) for c in sorted(present) if counts[c] < minimum}


def split_train_val_test(dataset, *, test_fraction: float = 0.2, val_fraction: float = 0.1, by: str | None = "auto",
                         seed: int = 0, min_train_per_class: int = 2, allow_small: bool = False,
                         fold_tolerance: float | None = None) -> SourceSplit:
    """Split ``dataset``'s source clips into train / validation / test (module docstring).

    Args:
        dataset: a ``datasets.Dataset`` with a ``label`` column (a ``source_id`` column is added when absent).
        test_fraction: target share of the clips in the test side.
        val_fraction: share of the clips (of the whole dataset, per class) in the validation side; 0 for none.
        by: ``"auto"`` (the ``fold`` column when it has two or more values, else stratified), ``None`` (stratified)
            or a column whose groups stay whole on one side (an explicit column is never replaced by a stratified
            split: if its groups cannot give a valid split, that is an error).
        seed: seeds the choice among equally good group subsets and the stratified draws.
        min_train_per_class: fewest training clips a class may keep.
        allow_small: accept a split that breaks the two rules above (with a note in ``notes``).
        fold_tolerance: largest accepted ``|share - test_fraction|`` for a group split (default
            ``max(0.05, test_fraction / 4)``).
    """
    test_fraction = _check_fraction(test_fraction, "test_fraction (--eval_fraction)", allow_zero=False)
    val_fraction = _check_fraction(val_fraction, "val_fraction (--val_fraction)", allow_zero=True)
    if test_fraction + val_fraction >= 0.9:
        raise ValueError(f"test_fraction + val_fraction = {test_fraction + val_fraction:.2f} leaves almost nothing to "
                         "train on; keep their sum below 0.9")
    seed = _check_seed(seed)
    n = len(dataset)
    if n < 3:
        raise SplitError(f"need at least 3 source clips for a train / validation / test split, got {n}")
    if "source_id" not in dataset.column_names:
        dataset = dataset.add_column("source_id", list(range(n)))
    ids = _source_ids(dataset)
    if len(np.unique(ids)) != len(ids):
        raise ValueError("the dataset's 'source_id' column has duplicate ids: one row per source clip is expected")
    labels, names = _label_table(dataset)
    tol = max(0.05, test_fraction / 4) if fold_tolerance is None else float(fold_tolerance)
    rng = np.random.default_rng([seed, _STREAM])
    notes: list[str] = []
    all_rows = np.arange(n, dtype=np.int64)

    column = by
    if by == "auto":
        column = None
        if "fold" in dataset.column_names and len(set(dataset["fold"])) > 1:
            column = "fold"
    method, test_groups, test_rows = "stratified", [], None
    if column is not None:
        if column not in dataset.column_names:
            raise ValueError(f"cannot split by {column!r}: no such column (columns: {dataset.column_names})")
        values = list(dataset[column])
        sizes: dict = {}
        for v in values:
            sizes[v] = sizes.get(v, 0) + 1
        if len(sizes) < 2:
            raise SplitError(f"cannot split by {column!r}: it has a single value {list(sizes)!r}")
        groups = sorted(sizes, key=lambda v: (str(type(v)), v))
        chosen = _nearest_groups({g: sizes[g] for g in groups}, test_fraction * n, rng)
        share = sum(sizes[g] for g in chosen) / n
        rows = np.asarray([i for i, v in enumerate(values) if v in set(chosen)], dtype=np.int64)
        rest = np.setdiff1d(all_rows, rows)
        short = _short_classes(labels, rest, names, min_train_per_class + (1 if val_fraction > 0 else 0))
        sizes_text = ", ".join(f"{g}: {sizes[g]}" for g in groups)
        if abs(share - test_fraction) <= tol and not short:
            method, test_groups, test_rows = "groups", sorted(chosen, key=lambda v: (str(type(v)), v)), rows
            if abs(share - test_fraction) > 1e-9:
                notes.append(f"whole {column}s give {100 * share:.1f} % test (nearest to --eval_fraction "
                             f"{test_fraction})")
        else:
            why = (f"the nearest {column} subset holds {100 * share:.1f} % of the clips (target "
                   f"{100 * test_fraction:.0f} % +- {100 * tol:.0f})" if abs(share - test_fraction) > tol else
                   f"holding out {column} {', '.join(map(str, chosen))} would leave classes "
                   f"{', '.join(f'{k!r} ({v})' for k, v in list(short.items())[:5])} too few training clips")
            if by != "auto":
                raise SplitError(f"cannot split by {column!r} ({len(groups)} groups of sizes {sizes_text}): {why}. "
                                 "Use --split_by none for a stratified split, or another --eval_fraction")
            notes.append(f"{column}s too uneven for a whole-{column} split ({sizes_text}): {why}; used a "
                         "stratified split per class instead")
    keep = 1 if allow_small else min_train_per_class  # training clips a stratified draw leaves each class
    if test_rows is None:
        test_rows = _stratified(_by_class(labels, all_rows), test_fraction, keep, rng)
    rest = np.setdiff1d(all_rows, test_rows)
    val_rows = np.asarray([], dtype=np.int64)
    if val_fraction > 0:
        # share of the whole dataset, so the test side keeps the share the user asked for
        per_class_fraction = val_fraction * n / max(1, len(rest))
        val_rows = _stratified(_by_class(labels, rest), per_class_fraction, keep + (1 if allow_small else 0), rng)
        if len(val_rows) == 0:
            notes.append("no class has enough clips for a validation clip: no model selection (last step kept)")
    train_rows = np.setdiff1d(rest, val_rows)

    problems = []
    short = _short_classes(labels, train_rows, names, min_train_per_class)
    if short:
        problems.append(f"{len(short)} class(es) would keep fewer than {min_train_per_class} training clips: "
                        + ", ".join(f"{k!r} ({v})" for k, v in list(short.items())[:8])
                        + (" ..." if len(short) > 8 else ""))
    if len(train_rows) < 0.5 * n:
        problems.append(f"only {len(train_rows)} of {n} clips ({100 * len(train_rows) / n:.0f} %) would be trained "
                        "on (less than half)")
    if len(test_rows) == 0:
        sizes = np.bincount(labels)
        problems.append(f"no clip can be held out for testing: the largest class has {int(sizes.max())} clips and "
                        f"{min_train_per_class} of each class must stay in training (--min_train_per_class)")
    if problems:
        counts = f"{len(train_rows)} train / {len(val_rows)} validation / {len(test_rows)} test of {n} clips"
        if not allow_small or len(test_rows) == 0:
            raise SplitError("refusing this split (" + counts + "): " + "; ".join(problems)
                             + ". Bring more clips per class, lower --eval_fraction / --val_fraction, or pass "
                               "--allow_small_split to train on it anyway")
        notes.append("accepted with --allow_small_split: " + "; ".join(problems))
    sel = lambda rows: dataset.select(np.sort(rows).tolist())
    split = SourceSplit(sel(train_rows), sel(val_rows), sel(test_rows), method,
                        by=column if method == "groups" else None, test_groups=list(test_groups), notes=notes)
    sides = [set(ids[r].tolist()) for r in (train_rows, val_rows, test_rows)]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    return split


def limit_per_class(dataset, max_per_class: int, *, seed: int = 0):
    """At most ``max_per_class`` rows of each class (a seeded choice, original row order kept)."""
    if isinstance(max_per_class, bool) or not isinstance(max_per_class, numbers.Integral) or max_per_class < 1:
        raise ValueError(f"max_per_class must be a positive integer; got {max_per_class!r}")
    labels, _ = _label_table(dataset)
    rng = np.random.default_rng([_check_seed(seed), _STREAM, 1])
    keep = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        keep.extend(rng.permutation(rows)[:max_per_class].tolist())
    return dataset.select(sorted(keep))
