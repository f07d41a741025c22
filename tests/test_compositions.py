"""Temporal compositions (hf_alm.data.compositions): signal operations, captions, leakage-free splits."""

import csv

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")

from hf_alm.data.audio import load_audio  # noqa: E402
from hf_alm.data.compositions import (  # noqa: E402
    canonical_caption,
    concat_events,
    make_compositions,
    make_temporal_splits,
    noun_phrase,
    overlay_events,
    relation_captions,
    split_sources,
)
from hf_alm.data.synthetic import make_synthetic_dataset  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def source():
    return make_synthetic_dataset(5, sampling_rate=SR, seed=0)


def _raw(ds):
    return [row["audio"]["bytes"] for row in ds.cast_column("audio", datasets.Audio(decode=False))]


def _power_db(x):
    return 10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2))


def _ids(ds):
    return {i for ids in ds["source_ids"] for i in ids}


def _esc_like(n_per_class=10, n_classes=4, sr=22050):
    """An ESC-like single-event dataset: label names, a fold column, {"array"} audio at another rate, no source_id."""
    rng = np.random.default_rng(1)
    names = ["dog", "rooster", "crackling_fire", "Clock tick"][:n_classes]
    rows = {"audio": [], "label": [], "fold": []}
    for label in range(n_classes):
        for i in range(n_per_class):
            n = int(sr * rng.uniform(0.3, 0.6))
            tone = np.sin(2 * np.pi * (300 + 200 * label) * np.arange(n) / sr) * 0.2
            rows["audio"].append({"array": (tone + 0.01 * rng.standard_normal(n)).astype(np.float32),
                                  "sampling_rate": sr})
            rows["label"].append(label)
            rows["fold"].append(i % 5 + 1)
    features = datasets.Features({"audio": datasets.Audio(sampling_rate=sr),
                                  "label": datasets.ClassLabel(names=names), "fold": datasets.Value("int64")})
    return datasets.Dataset.from_dict(rows, features=features)


# ---------------------------------------------------------------------------------------------------------- signals


def test_concat_order_and_exact_gap():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(1000).astype(np.float32), rng.standard_normal(700).astype(np.float32)
    out = concat_events(a, b, sampling_rate=SR, gap=0.0125)
    gap = 200  # 0.0125 s at 16 kHz
    assert out.dtype == np.float32 and len(out) == 1000 + gap + 700
    assert np.array_equal(out[:1000], a)  # A's samples first
    assert not out[1000 : 1000 + gap].any()
    assert np.array_equal(out[1000 + gap :], b)
    assert np.array_equal(concat_events(a, b, sampling_rate=SR), np.concatenate([a, b]))


def test_crossfade_length_and_equal_power_weights():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(1000), rng.standard_normal(800)
    c = 160  # 10 ms
    out = concat_events(a, b, sampling_rate=SR, crossfade=0.01)
    assert len(out) == 1000 + 800 - c
    assert np.array_equal(out[: 1000 - c], a[: 1000 - c])
    assert np.array_equal(out[1000:], b[c:])
    theta = (np.arange(c) + 0.5) / c * np.pi / 2
    np.testing.assert_allclose(out[1000 - c : 1000], a[-c:] * np.cos(theta) + b[:c] * np.sin(theta), atol=1e-12)
    np.testing.assert_allclose(np.cos(theta) ** 2 + np.sin(theta) ** 2, 1.0)  # equal power
    with pytest.raises(ValueError, match="gap"):
        concat_events(a, b, sampling_rate=SR, gap=0.01, crossfade=0.01)
    with pytest.raises(ValueError, match="crossfade"):
        concat_events(a, b, sampling_rate=SR, crossfade=1.0)
    with pytest.raises(ValueError, match="-0.5"):
        concat_events(a, b, sampling_rate=SR, gap=-0.5)


@pytest.mark.parametrize("snr_db", [-6.0, 0.0, 3.5, 20.0])
def test_overlay_snr_is_exact_and_pads_the_shorter(snr_db):
    rng = np.random.default_rng(2)
    a = (0.1 * rng.standard_normal(1600)).astype(np.float32)
    b = (0.7 * np.sin(np.arange(1200) * 0.3)).astype(np.float32)
    out = overlay_events(a, b, snr_db=snr_db)
    assert len(out) == 1600
    scaled_b = out.astype(np.float64) - a
    assert np.abs(scaled_b[1200:]).max() < 1e-6  # b is zero-padded at its end
    measured = _power_db(a) - _power_db(scaled_b[:1200])
    assert abs(measured - snr_db) < 0.1
    # b longer than a: a is padded instead
    out = overlay_events(b, a, snr_db=snr_db)
    assert len(out) == 1600
    with pytest.raises(ValueError, match="silent"):
        overlay_events(a, np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        overlay_events(a, np.array([0.1, np.nan], np.float32))


# ---------------------------------------------------------------------------------------------------------- captions


def test_captions_in_both_directions():
    before = relation_captions("rising chirp", "click train", "before")
    assert before[0] == "a rising chirp before a click train" == canonical_caption("rising chirp", "click train",
                                                                                      "before")
    assert "a click train after a rising chirp" in before
    assert "a rising chirp followed by a click train" in before
    assert "a rising chirp, then a click train" in before
    assert not any(c.startswith("a click train before") for c in before)
    after = relation_captions("click train", "rising chirp", "after")  # the chirp is still heard first
    assert after[0] == "a click train after a rising chirp" and set(after) == set(before)
    during = relation_captions("bell", "hiss", "while")
    assert during[0] == "a bell ringing while a hiss" and "a hiss while a bell ringing" in during
    assert noun_phrase("Dog bark") == "dog bark" and noun_phrase("crackling_fire") == "crackling fire"
    with pytest.raises(ValueError, match="during"):
        relation_captions("bell", "hiss", "during")


# ------------------------------------------------------------------------------------------------------ compositions


def test_pairs_share_sources_and_differ_only_in_order(source):
    comp = make_compositions(source, num_pairs=12, sampling_rate=SR, seed=3, gap=(0.05, 0.1), snr_db=0.0)
    assert len(comp) == 36
    names = source.features["label"].names
    by_id = {sid: i for i, sid in enumerate(source["source_id"])}
    for p in range(12):
        fwd, rev, mix = (comp[3 * p + k] for k in range(3))
        assert (fwd["kind"], rev["kind"], mix["kind"]) == ("sequence", "sequence", "overlap")
        assert fwd["pair_id"] == rev["pair_id"] == mix["pair_id"] == p
        assert fwd["first_label"] != fwd["second_label"]
        assert rev["source_ids"] == fwd["source_ids"][::-1] and mix["source_ids"] == fwd["source_ids"]
        assert (rev["first"], rev["second"]) == (fwd["second"], fwd["first"])
        ra, rb = (by_id[s] for s in fwd["source_ids"])
        assert source[ra]["label"] == fwd["first_label"] and names[fwd["first_label"]] == fwd["first"]
        assert source[rb]["label"] == fwd["second_label"]
        assert fwd["caption"] == f"{noun_phrase(fwd['first'])} before {noun_phrase(fwd['second'])}"
        assert f"{noun_phrase(fwd['second'])} after {noun_phrase(fwd['first'])}" in fwd["captions"]
        assert mix["caption"] == f"{noun_phrase(fwd['first'])} while {noun_phrase(fwd['second'])}"
        a = load_audio(source[ra]["audio"], SR).numpy()
        b = load_audio(source[rb]["audio"], SR).numpy()
        x, y = load_audio(fwd["audio"], SR).numpy(), load_audio(rev["audio"], SR).numpy()
        gap = len(x) - len(a) - len(b)
        assert len(y) == len(x) and 0.05 * SR <= gap <= 0.1 * SR
        assert np.array_equal(x[: len(a)], a) and np.array_equal(x[len(a) + gap :], b)  # A heard first
        assert np.array_equal(y[: len(b)], b) and np.array_equal(y[len(b) + gap :], a)  # same waveforms reversed
        m = load_audio(mix["audio"], SR).numpy().astype(np.float64)
        assert len(m) == max(len(a), len(b))
        # m = g_a * a + g_b * b (g_a < 1 only when the mix was scaled down to avoid clipping): fit both gains
        basis = np.zeros((len(m), 2))
        basis[: len(a), 0], basis[: len(b), 1] = a, b
        (g_a, g_b), *_ = np.linalg.lstsq(basis, m, rcond=None)
        np.testing.assert_allclose(basis @ [g_a, g_b], m, atol=1e-6)
        assert 0 < g_a <= 1.0 + 1e-6
        assert abs(_power_db(g_a * a) - _power_db(g_b * b)) < 0.1  # snr_db=0.0


def test_compositions_are_byte_identical_by_seed_and_prefix_stable(source):
    kw = dict(sampling_rate=SR, gap=(0.0, 0.2), snr_db=(-3, 3))
    one = make_compositions(source, num_pairs=6, seed=7, **kw)
    two = make_compositions(source, num_pairs=6, seed=7, **kw)
    other = make_compositions(source, num_pairs=6, seed=8, **kw)
    longer = make_compositions(source, num_pairs=9, seed=7, **kw)
    assert _raw(one) == _raw(two)
    assert one["caption"] == two["caption"] and one["source_ids"] == two["source_ids"]
    assert _raw(one) != _raw(other)
    assert _raw(longer.select(range(18))) == _raw(one)  # pair i does not depend on num_pairs


def test_options_crossfade_max_seconds_and_kinds(source):
    comp = make_compositions(source, num_pairs=5, sampling_rate=SR, crossfade=0.02, include_overlap=False,
                             max_seconds=1.2)
    assert set(comp["kind"]) == {"sequence"} and len(comp) == 10
    for row in comp:
        assert len(load_audio(row["audio"], SR)) <= int(1.2 * SR)
    only_forward = make_compositions(source, num_pairs=4, sampling_rate=SR, include_reversed=False)
    assert only_forward["kind"] == ["sequence", "overlap"] * 4
    # another output rate: the sources are resampled
    at8k = make_compositions(source, num_pairs=2, sampling_rate=8000, gap=0.0)
    assert at8k.features["audio"].sampling_rate == 8000
    row = at8k[0]
    ids = {sid: i for i, sid in enumerate(source["source_id"])}
    expected = sum(len(load_audio(source[ids[s]]["audio"], 8000)) for s in row["source_ids"])
    assert len(load_audio(row["audio"], 8000)) == expected
    with pytest.raises(ValueError, match="num_pairs"):
        make_compositions(source, num_pairs=0, sampling_rate=SR)
    with pytest.raises(ValueError, match="either a gap or a crossfade"):
        make_compositions(source, num_pairs=1, sampling_rate=SR, gap=0.1, crossfade=0.1)
    with pytest.raises(ValueError, match="2 different labels"):
        make_compositions(source.filter(lambda r: r == 0, input_columns="label"), num_pairs=1, sampling_rate=SR)


# ---------------------------------------------------------------------------------------------------------- leakage


def test_split_sources_is_stratified_and_disjoint(source):
    train, evaluation = split_sources(source, eval_fraction=0.4, seed=1)
    assert not set(train["source_id"]) & set(evaluation["source_id"])
    assert len(train) + len(evaluation) == len(source)
    counts = np.bincount(evaluation["label"], minlength=20)
    assert (counts == 2).all()  # round(0.4 * 5) of every class
    again = split_sources(source, eval_fraction=0.4, seed=1)[1]
    assert again["source_id"] == evaluation["source_id"]
    assert split_sources(source, eval_fraction=0.4, seed=2)[1]["source_id"] != evaluation["source_id"]
    with pytest.raises(ValueError, match="1.5"):
        split_sources(source, eval_fraction=1.5)
    with pytest.raises(ValueError, match="nope"):
        split_sources(source, by="nope")


def test_temporal_splits_are_leakage_free(source):
    splits = make_temporal_splits(source, num_train_pairs=40, num_eval_pairs=15, eval_fraction=0.2, seed=0,
                                  sampling_rate=SR)
    train_src, eval_src = split_sources(source, eval_fraction=0.2, seed=0)
    eval_ids, train_ids = _ids(splits["eval"]), _ids(splits["train"])
    assert eval_ids and train_ids
    assert not eval_ids & train_ids
    assert not eval_ids & set(train_src["source_id"])  # no eval clip was heard in training
    assert eval_ids <= set(eval_src["source_id"]) and train_ids <= set(train_src["source_id"])
    assert not set(splits["train"]["pair_id"]) & set(splits["eval"]["pair_id"])
    # the check has teeth: composing both sets from the same (unsplit) sources does share clips
    naive_eval = make_compositions(source, num_pairs=15, sampling_rate=SR, seed=1, include_overlap=False)
    assert _ids(naive_eval) & train_ids


def test_esc_like_fold_split_keeps_folds_whole_and_sources_disjoint():
    esc = _esc_like()
    train, evaluation = split_sources(esc, eval_fraction=0.2, seed=0, by="fold")
    assert len(set(evaluation["fold"])) == 1 and not set(evaluation["fold"]) & set(train["fold"])
    assert not set(train["source_id"]) & set(evaluation["source_id"])
    splits = make_temporal_splits(esc, num_train_pairs=10, num_eval_pairs=6, by="fold", sampling_rate=SR,
                                  max_seconds=1.0)
    eval_ids, train_ids = _ids(splits["eval"]), _ids(splits["train"])
    assert not eval_ids & train_ids and not eval_ids & set(train["source_id"])
    assert eval_ids <= set(evaluation["source_id"])
    row = splits["train"][0]
    assert row["caption"] == f"{noun_phrase(row['first'])} before {noun_phrase(row['second'])}"
    assert {row["first"], row["second"]} <= {"dog", "rooster", "crackling_fire", "Clock tick"}


def test_real_esc10_fold_split(esc10_path):
    with open(esc10_path / "esc10_manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    keep = []
    for name in ("Dog bark", "Rooster", "Clock tick"):
        for fold in ("1", "2"):
            keep += [r for r in rows if r["class_name"] == name and r["fold"] == fold][:3]
    names = sorted({r["class_name"] for r in keep})
    ds = datasets.Dataset.from_dict(
        {"audio": [str(esc10_path / r["file"]) for r in keep], "label": [names.index(r["class_name"]) for r in keep],
         "fold": [int(r["fold"]) for r in keep]},
        features=datasets.Features({"audio": datasets.Audio(), "label": datasets.ClassLabel(names=names),
                                    "fold": datasets.Value("int64")}),
    )
    splits = make_temporal_splits(ds, num_train_pairs=2, num_eval_pairs=2, by="fold", sampling_rate=SR,
                                  max_seconds=2.0, include_overlap=False)
    assert not _ids(splits["eval"]) & _ids(splits["train"])
    folds = np.asarray(ds["fold"])
    assert len({int(folds[i]) for i in _ids(splits["eval"])}) == 1
    row = splits["eval"][0]
    assert "before" in row["caption"] and row["first"] != row["second"]
    assert len(load_audio(row["audio"], SR)) <= 2 * SR


def test_many_pairs_keep_their_order_across_chunks(source):
    comp = make_compositions(source, num_pairs=90, sampling_rate=SR, max_seconds=0.4, include_overlap=False,
                             pair_id_start=1000)
    assert len(comp) == 180 and comp["pair_id"] == [1000 + i // 2 for i in range(180)]
    more = make_compositions(source, num_pairs=140, sampling_rate=SR, max_seconds=0.4, include_overlap=False,
                             pair_id_start=1000)  # 280 rows: more than one Arrow chunk
    assert len(more) == 280 and _raw(more.select(range(180))) == _raw(comp)
    assert more["pair_id"][-1] == 1139
