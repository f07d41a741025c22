"""hf_alm.data.splits: honest train / validation / test splits (issue: the main job on real data)."""

import datasets
import numpy as np
import pytest

from hf_alm.data.splits import SplitError, limit_per_class, split_train_val_test


def _dataset(labels, folds=None):
    rows = {"label": list(labels), "label_name": [f"class {v}" for v in labels]}
    if folds is not None:
        rows["fold"] = list(folds)
    return datasets.Dataset.from_dict(rows)


def _uneven_folds(seed=0):
    """An ESC-50-layout folder like the one the issue reports: 193 clips of 40 classes (4-5 per class), one big fold
    and four tiny ones."""
    rng = np.random.default_rng(seed)
    labels = [c for c in range(40) for _ in range(5 if c < 33 else 4)][:193]
    folds = np.ones(len(labels), dtype=int)
    tiny = rng.choice(len(labels), size=11 + 12 + 10 + 9, replace=False)
    folds[tiny[:11]], folds[tiny[11:23]], folds[tiny[23:33]], folds[tiny[33:]] = 2, 3, 4, 5
    return _dataset(labels, folds.tolist())


def test_auto_split_honours_eval_fraction_with_uneven_folds():
    """Holding out whole folds in a seeded order (the old rule) put 182 of 193 clips in eval and trained on 11: the
    split must now come close to --eval_fraction, and train on most of the data."""
    ds = _uneven_folds()
    split = split_train_val_test(ds, test_fraction=0.2, val_fraction=0.1, seed=0)
    n = len(ds)
    assert abs(len(split.test) / n - 0.2) <= 0.05, split.describe()
    assert len(split.train) >= 0.5 * n
    # no clip on two sides, all clips used
    ids = [set(s["source_id"]) for s in (split.train, split.val, split.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(map(len, ids)) == n
    # every class keeps at least 2 training clips
    assert min(np.bincount(split.train["label"], minlength=40)) >= 2
    text = split.describe()
    assert "train" in text and "test" in text


def test_whole_folds_nearest_to_the_fraction_are_chosen():
    labels = list(range(10)) * 40  # 400 clips, 10 classes
    folds = [1 + (i // 10) % 5 for i in range(400)]  # five even folds of 80
    split = split_train_val_test(_dataset(labels, folds), test_fraction=0.2, val_fraction=0.1, seed=3)
    assert split.method == "groups" and len(split.test_groups) == 1
    assert set(split.test["fold"]) == set(split.test_groups) and len(split.test) == 80
    assert not set(split.train["fold"]) & set(split.test_groups)
    assert len(split.val) == 40 and sorted(np.bincount(split.val["label"])) == [4] * 10
    # two folds of five are nearest to 0.4
    split = split_train_val_test(_dataset(labels, folds), test_fraction=0.4, val_fraction=0.1, seed=3)
    assert len(split.test_groups) == 2 and len(split.test) == 160


def test_folds_too_uneven_fall_back_to_stratified_and_say_so():
    labels = list(range(4)) * 25  # 100 clips
    folds = [1] * 90 + [2] * 10  # the only proper subsets: 10 % or 90 %
    split = split_train_val_test(_dataset(labels, folds), test_fraction=0.3, val_fraction=0.1, seed=0)
    assert split.method == "stratified"
    assert any("too uneven" in note for note in split.notes), split.notes
    assert "too uneven" in split.describe()
    assert sorted(np.bincount(split.test["label"])) == [8] * 4  # round(0.3 * 25) = 8 per class
    # an explicit column is never silently replaced
    with pytest.raises(SplitError, match=r"cannot split by 'fold' .*1: 90, 2: 10"):
        split_train_val_test(_dataset(labels, folds), test_fraction=0.3, by="fold")


def test_too_small_dataset_is_refused_naming_the_counts():
    ds = _dataset([0, 0, 1, 1, 2, 2])  # 2 clips per class: a test clip would leave 1 to train on
    with pytest.raises(SplitError) as err:
        split_train_val_test(ds, test_fraction=0.2, val_fraction=0.1, by=None)
    msg = str(err.value)
    assert "(6 train / 0 validation / 0 test of 6 clips)" in msg
    assert "the largest class has 2 clips and 2 of each class must stay in training" in msg
    assert "--allow_small_split" in msg
    split = split_train_val_test(ds, test_fraction=0.2, val_fraction=0.0, by=None, allow_small=True)
    assert len(split.test) == 3 and any("--allow_small_split" in note for note in split.notes)
    # a class with a single clip cannot be trained on twice
    ds = _dataset([0] * 10 + [1] * 10 + [2])
    with pytest.raises(SplitError, match=r"1 class\(es\) would keep fewer than 2 training clips: 'class 2' \(1\)"):
        split_train_val_test(ds, test_fraction=0.2, val_fraction=0.1, by=None)


def test_training_on_less_than_half_is_refused():
    ds = _dataset([c for c in range(3) for _ in range(10)])
    with pytest.raises(SplitError, match=r"would be trained on \(less than half\)"):
        split_train_val_test(ds, test_fraction=0.5, val_fraction=0.3, by=None, min_train_per_class=1)


def test_split_is_deterministic_by_seed():
    ds = _uneven_folds()
    a = split_train_val_test(ds, seed=5)
    b = split_train_val_test(ds, seed=5)
    assert a.test["source_id"] == b.test["source_id"] and a.val["source_id"] == b.val["source_id"]


def test_limit_per_class():
    ds = _dataset([c for c in range(4) for _ in range(9)])
    small = limit_per_class(ds, 5, seed=1)
    assert sorted(np.bincount(small["label"])) == [5] * 4
    assert limit_per_class(ds, 5, seed=1)["label"] == small["label"]
    assert len(limit_per_class(ds, 100)) == len(ds)
    with pytest.raises(ValueError, match="max_per_class must be a positive integer; got 0"):
        limit_per_class(ds, 0)
