"""hf_alm.data.loaders: every loader on a tiny layout written here, the spec parser, fold_split, and the real
ESC-10 / FSDD counts (``../shared``, skipped when absent)."""

from __future__ import annotations

import collections
import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import datasets
from hf_alm.data import loaders
from hf_alm.data.audio import load_audio
from hf_alm.data.loaders import (
    DatasetLayoutError,
    fold_split,
    load_audiocaps,
    load_audiofolder,
    load_clotho,
    load_dataset_spec,
    load_esc10,
    load_esc50,
    load_fsdd,
    load_hub,
)

SR = 8000


def _write(path: Path, freq: float = 440.0, seconds: float = 0.05, sr: int = SR, **kw) -> Path:
    """A short tone; the format follows the extension (wav / flac / ogg)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, **kw)
    return path


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _assert_decodes(ds, n: int = 2):
    """What the loader yields goes straight into load_audio, and the audio column is lazily decoded."""
    assert isinstance(ds.features["audio"], datasets.Audio)
    for i in range(min(n, len(ds))):
        wav = load_audio(ds[i]["audio"], 16000)
        assert wav.dtype == torch.float32 and wav.ndim == 1 and wav.numel() > 0


# ----------------------------------------------------------------------------------------------------------- ESC-10


@pytest.fixture
def esc10_layout(tmp_path):
    root = tmp_path / "ESC-10"
    names = {"001 - Dog bark": 300.0, "002 - Rain": 500.0, "010 - Fire crackling": 700.0}
    for folder, freq in names.items():
        for fold in (1, 2, 3):
            _write(root / folder / f"{fold}-{1000 + fold}-A.ogg", freq, format="OGG", subtype="VORBIS")
        _write(root / folder / "5-77-B.ogg", freq, format="OGG", subtype="VORBIS")
    (root / "README.md").write_text("ESC-10\n")
    _write_csv(root / "esc10_manifest.csv", ["file"], [["x"]])
    (root / "not a class").mkdir()
    return root


def test_esc10_layout(esc10_layout):
    ds = load_esc10(esc10_layout)
    assert isinstance(ds, datasets.Dataset) and len(ds) == 12
    assert ds.features["label"].names == ["Dog bark", "Rain", "Fire crackling"]
    assert collections.Counter(ds["fold"]) == {1: 3, 2: 3, 3: 3, 5: 3}
    assert ds["label"] == [0] * 4 + [1] * 4 + [2] * 4
    row = ds[4]
    assert row["label_name"] == "Rain" and row["captions"] == ["the sound of rain"]
    assert set(ds.column_names) == {"audio", "label", "label_name", "captions", "fold"}
    _assert_decodes(ds)
    # the decoded clip is the tone of its class (500 Hz for Rain)
    wav = load_audio(ds[4]["audio"], SR).numpy()
    assert abs(np.argmax(np.abs(np.fft.rfft(wav, 8 * len(wav)))) * SR / (8 * len(wav)) - 500) < 30


def test_esc10_bad_layouts(tmp_path, esc10_layout):
    with pytest.raises(FileNotFoundError, match=r"ESC-10 folder not found: '.*missing'"):
        load_esc10(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"no ESC-10 class folders named 'NNN - Class name' in '.*empty'"):
        load_esc10(tmp_path / "empty")
    _write(esc10_layout / "002 - Rain" / "rain.wav")
    with pytest.raises(DatasetLayoutError, match=r"ESC-10 clip name '.*rain\.wav' is not '<fold>-<freesound id>"):
        load_esc10(esc10_layout)


# ----------------------------------------------------------------------------------------------------------- ESC-50


@pytest.fixture
def esc50_layout(tmp_path):
    root = tmp_path / "ESC-50-master"
    rows = []
    spec = [(0, "dog", True), (1, "rooster", True), (2, "pig", False), (49, "hand_saw", False)]
    for fold in (1, 2):
        for target, category, esc10 in spec:
            name = f"{fold}-{100 + target}-A-{target}.wav"
            _write(root / "audio" / name, 200.0 + 10 * target)
            rows.append([name, fold, target, category, esc10, f"{100 + target}", "A"])
    _write_csv(root / "meta" / "esc50.csv", ["filename", "fold", "target", "category", "esc10", "src_file", "take"],
               rows)
    return root


def test_esc50_layout(esc50_layout):
    ds = load_esc50(esc50_layout)
    assert len(ds) == 8
    assert ds.features["label"].names == ["dog", "rooster", "pig", "hand saw"]
    assert collections.Counter(ds["fold"]) == {1: 4, 2: 4}
    last = ds[3]
    assert last["label"] == 3 and last["label_name"] == "hand saw" and last["captions"] == ["the sound of hand saw"]
    _assert_decodes(ds)
    sub = load_esc50(esc50_layout, esc10_only=True)
    assert len(sub) == 4 and sub.features["label"].names == ["dog", "rooster"]
    assert sorted(set(sub["label"])) == [0, 1]


def test_esc50_errors(esc50_layout):
    (esc50_layout / "audio" / "2-100-A-0.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 8 audio files listed by '.*esc50\.csv' are missing: '.*2-100-A-0"):
        load_esc50(esc50_layout)
    _write_csv(esc50_layout / "meta" / "esc50.csv", ["filename", "fold", "category"], [["a.wav", 1, "dog"]])
    with pytest.raises(DatasetLayoutError, match=r"lacks the column\(s\) \['target'\]; it has \['filename', 'fold'"):
        load_esc50(esc50_layout)
    _write_csv(esc50_layout / "meta" / "esc50.csv", ["filename", "fold", "target", "category"],
               [["1-100-A-0.wav", 1, 0, "dog"], ["1-101-A-1.wav", 1, 0, "cat"]])
    with pytest.raises(DatasetLayoutError, match=r"target 0 is both 'dog' and 'cat'"):
        load_esc50(esc50_layout)
    (esc50_layout / "meta" / "esc50.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"meta/esc50\.csv not found: '.*esc50\.csv'"):
        load_esc50(esc50_layout)


def test_esc50_metadata_is_checked(esc50_layout, caplog):
    """A file listed twice, a fold outside 1..5 and audio files the CSV does not list (the real ESC-50 has 2000 rows
    in folds 1..5, each file once)."""
    meta = esc50_layout / "meta" / "esc50.csv"
    header = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    with open(meta, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    _write_csv(meta, header, rows + [rows[1], rows[5]])  # rows[i] is on line i + 2
    with pytest.raises(DatasetLayoutError, match=r"lists 2 file\(s\) more than once: '1-101-A-1\.wav' on rows 3, 10; "
                                                 r"'2-101-A-1\.wav' on rows 7, 11"):
        load_esc50(esc50_layout)
    _write_csv(meta, header, rows[:6] + [rows[6][:1] + ["9"] + rows[6][2:]] + rows[7:])
    with pytest.raises(DatasetLayoutError, match=r"esc50\.csv' row 8 \('2-102-A-2\.wav'\): fold 9 is not one of "
                                                 r"1\.\.5"):
        load_esc50(esc50_layout)
    # errors name the line of the CSV, also when esc10_only has filtered the table (ESC-10 rows: lines 2, 3, 6, 7)
    _write_csv(meta, header, rows[:5] + [rows[5][:1] + ["x"] + rows[5][2:]] + rows[6:])
    with pytest.raises(DatasetLayoutError, match=r"esc50\.csv' row 7: target '1' / fold 'x' are not integers"):
        load_esc50(esc50_layout, esc10_only=True)
    _write_csv(meta, header, rows)
    _write(esc50_layout / "audio" / "5-999-A-0.wav")
    _write(esc50_layout / "audio" / "5-998-A-0.wav")
    (esc50_layout / "audio" / "notes.txt").write_text("not audio")
    with caplog.at_level("WARNING", logger="hf_alm.data.loaders"):
        assert len(load_esc50(esc50_layout)) == 8
    assert "holds 2 audio file(s) that" in caplog.text and "'5-998-A-0.wav', '5-999-A-0.wav'" in caplog.text


# ------------------------------------------------------------------------------------------------------------- FSDD


@pytest.fixture
def fsdd_layout(tmp_path):
    root = tmp_path / "free-spoken-digit-dataset"
    for digit in (0, 3, 7):
        for speaker in ("george", "yweweler"):
            for index in (0, 4, 5, 49):
                _write(root / "recordings" / f"{digit}_{speaker}_{index}.wav", 300.0 + 50 * digit)
    (root / "recordings" / "notes.txt").write_text("not audio")
    return root


def test_fsdd_layout(fsdd_layout):
    ds = load_fsdd(fsdd_layout)
    assert len(ds) == 24
    assert ds.features["label"].names[:4] == ["zero", "one", "two", "three"]
    assert collections.Counter(ds["label"]) == {0: 8, 3: 8, 7: 8}
    assert collections.Counter(ds["speaker"]) == {"george": 12, "yweweler": 12}
    assert collections.Counter(ds["split"]) == {"test": 12, "train": 12}  # official split: index 0-4 is test
    assert set(ds["fold"]) == {0}
    row = next(r for r in ds if r["label"] == 7)
    assert row["label_name"] == "seven" and row["captions"] == ["a person saying the digit seven"]
    _assert_decodes(ds)
    assert len(load_fsdd(fsdd_layout / "recordings")) == 24  # the recordings folder itself works too
    train, test = fold_split(ds, "test")
    assert len(train) == 12 and len(test) == 12 and set(test["split"]) == {"test"}


def test_fsdd_bad_name(fsdd_layout):
    _write(fsdd_layout / "recordings" / "seven_george_1.wav")
    with pytest.raises(DatasetLayoutError, match=r"FSDD file name '.*seven_george_1\.wav' is not"):
        load_fsdd(fsdd_layout)


# ------------------------------------------------------------------------------------------------ AudioCaps, Clotho


@pytest.fixture
def audiocaps_layout(tmp_path):
    root = tmp_path / "audiocaps"
    header = ["audiocap_id", "youtube_id", "start_time", "caption"]
    rows = [[str(10 + i), "abc-DEF_123", "30", f"a dog barks {i}"] for i in range(5)]
    rows += [["20", "zzzYYYxxx12", "0", "rain falls on a roof"], ["21", "Qq0000000aa", "10", "a car passes by"]]
    _write_csv(root / "test.csv", header, rows)
    _write(root / "test" / "abc-DEF_123.wav")  # plain {youtube_id}
    _write(root / "test" / "sub" / "YzzzYYYxxx12_0.000_10.000.flac")  # AudioSet style, in a sub-folder
    _write(root / "test" / "21.wav")  # {audiocap_id}
    return root


def test_audiocaps_layout(audiocaps_layout):
    ds = load_audiocaps(audiocaps_layout / "test.csv")  # audio folder defaults to test/ next to test.csv
    assert len(ds) == 3
    assert ds[0]["captions"] == [f"a dog barks {i}" for i in range(5)]
    assert ds[1]["captions"] == ["rain falls on a roof"] and ds[2]["captions"] == ["a car passes by"]
    assert ds["youtube_id"] == ["abc-DEF_123", "zzzYYYxxx12", "Qq0000000aa"]
    assert set(ds["split"]) == {"test"} and set(ds["fold"]) == {0}
    assert "label" not in ds.column_names and "label_name" not in ds.column_names
    _assert_decodes(ds, 3)


def test_audiocaps_missing_audio(audiocaps_layout):
    (audiocaps_layout / "test" / "21.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 3 audio files listed by AudioCaps CSV .* are missing.*on_missing"):
        load_audiocaps(audiocaps_layout / "test.csv", audiocaps_layout / "test")
    ds = load_audiocaps(audiocaps_layout / "test.csv", audiocaps_layout / "test", on_missing="skip")
    assert len(ds) == 2
    with pytest.raises(FileNotFoundError, match=r"AudioCaps audio folder not found: '.*nowhere'"):
        load_audiocaps(audiocaps_layout / "test.csv", audiocaps_layout / "nowhere")
    _write_csv(audiocaps_layout / "bad.csv", ["youtube_id", "text"], [["a", "b"]])
    with pytest.raises(DatasetLayoutError, match=r"lacks the column\(s\) \['caption'\]"):
        load_audiocaps(audiocaps_layout / "bad.csv")


def _paths(ds) -> list[str]:
    """The audio file of every row, without decoding."""
    return [a["path"] for a in ds.cast_column("audio", datasets.Audio(decode=False))["audio"]]


def test_audiocaps_start_time_names_win_over_the_bare_youtube_id(tmp_path):
    """abc.wav and abc_100.wav both exist: the clip (abc, 30) is Yabc_30.000_40.000.wav, (abc, 100) abc_100.wav;
    the bare {youtube_id} name is the last resort (it used to be tried first, and gave both clips abc.wav)."""
    header = ["audiocap_id", "youtube_id", "start_time", "caption"]
    rows = [["10", "abc", "30", "a dog barks"], ["11", "abc", "30", "barking"], ["20", "abc", "100", "a man speaks"],
            ["21", "xyz", "0", "rain falls"]]
    _write_csv(tmp_path / "val.csv", header, rows)
    folder = tmp_path / "val"
    for name in ("abc.wav", "Yabc_30.000_40.000.wav", "abc_100.wav", "xyz.wav"):
        _write(folder / name)
    ds = load_audiocaps(tmp_path / "val.csv")
    assert [Path(p).name for p in _paths(ds)] == ["Yabc_30.000_40.000.wav", "abc_100.wav", "xyz.wav"]
    assert ds["captions"] == [["a dog barks", "barking"], ["a man speaks"], ["rain falls"]]
    # only the bare file: both clips of abc would get the same audio
    (folder / "Yabc_30.000_40.000.wav").unlink()
    (folder / "abc_100.wav").unlink()
    with pytest.raises(DatasetLayoutError, match=r"val\.csv': rows 2 \(youtube_id 'abc', start_time '30'\) and 4 "
                                                 r"\(youtube_id 'abc', start_time '100'\) are different clips but "
                                                 r"both resolve to the file '.*abc\.wav'"):
        load_audiocaps(tmp_path / "val.csv")


def test_audio_index_is_sorted_whatever_order_the_file_system_lists(tmp_path, monkeypatch, caplog):
    """The same stem in two sub-folders: the first in sorted order (a/ before b/) wins, with a warning, even on a
    file system that lists b/ first (simulated: os.scandir reversed)."""
    import os

    for name in ("b/x.wav", "a/x.wav", "a/y.wav", "a/y.flac", "a/z.wav"):
        _write(tmp_path / name)
    real = os.scandir

    class _Reversed:
        """os.scandir's iterator, entries in reverse name order."""

        def __init__(self, path):
            with real(path) as it:
                self.entries = iter(sorted(it, key=lambda e: e.name, reverse=True))

        def __iter__(self):
            return self

        def __next__(self):
            return next(self.entries)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(os, "scandir", _Reversed)
    with caplog.at_level("WARNING", logger="hf_alm.data.loaders"):
        index = loaders._index_audio(tmp_path)
    assert index == {"x": str(tmp_path / "a" / "x.wav"), "y": str(tmp_path / "a" / "y.flac"),
                     "z": str(tmp_path / "a" / "z.wav")}
    assert "2 file name(s) occur more than once" in caplog.text and "the first in sorted order is used" in caplog.text


@pytest.fixture
def clotho_layout(tmp_path):
    root = tmp_path / "clotho"
    names = ["Forest, birds at dawn.wav", "train station 2.wav"]
    rows = []
    for k, name in enumerate(names):
        _write(root / "development" / name, 300.0 + 200 * k)
        rows.append([name] + [f"caption {k}.{i}" for i in range(1, 6)])
    rows[1][3] = ""  # an empty caption cell is dropped
    _write_csv(root / "clotho_captions_development.csv", ["file_name"] + [f"caption_{i}" for i in range(1, 6)], rows)
    return root


def test_clotho_layout(clotho_layout):
    ds = load_clotho(clotho_layout / "clotho_captions_development.csv")
    assert len(ds) == 2
    assert ds[0]["captions"] == [f"caption 0.{i}" for i in range(1, 6)]
    assert ds[1]["captions"] == ["caption 1.1", "caption 1.2", "caption 1.4", "caption 1.5"]
    assert set(ds["split"]) == {"development"}
    assert "label" not in ds.column_names
    _assert_decodes(ds)
    with pytest.raises(FileNotFoundError, match=r"2 of 2 audio files listed by Clotho CSV"):
        load_clotho(clotho_layout / "clotho_captions_development.csv", clotho_layout)


# ------------------------------------------------------------------------------------------- audiofolder, Hub/local


@pytest.fixture
def audiofolder_layout(tmp_path):
    root = tmp_path / "folder"
    for split in ("train", "test"):
        for label, freq in (("cat", 400.0), ("dog", 600.0)):
            for i in range(2):
                _write(root / split / label / f"{label}{i}.wav", freq)
    return root


def test_audiofolder_with_splits_and_streaming(audiofolder_layout, tmp_path):
    dd = load_audiofolder(audiofolder_layout, cache_dir=str(tmp_path / "cache"))
    assert isinstance(dd, datasets.DatasetDict) and set(dd) == {"train", "test"}
    train = dd["train"]
    assert len(train) == 4 and train.features["label"].names == ["cat", "dog"]
    assert sorted(zip(train["label"], train["label_name"])) == [(0, "cat"), (0, "cat"), (1, "dog"), (1, "dog")]
    assert ["the sound of cat"] in train["captions"] and set(train["split"]) == {"train"}
    _assert_decodes(train)
    test = load_audiofolder(audiofolder_layout, split="test", cache_dir=str(tmp_path / "cache"))
    assert isinstance(test, datasets.Dataset) and set(test["split"]) == {"test"}
    stream = load_audiofolder(audiofolder_layout, split="train", streaming=True, cache_dir=str(tmp_path / "cache"))
    assert isinstance(stream, datasets.IterableDataset)
    rows = list(stream)
    assert len(rows) == 4
    assert {r["label_name"] for r in rows} == {"cat", "dog"}
    assert all(r["captions"] == [f"the sound of {r['label_name']}"] and r["fold"] == 0 for r in rows)
    wav = load_audio(rows[0]["audio"], 16000)
    assert wav.numel() == 800


def test_audiofolder_with_metadata_captions(tmp_path):
    root = tmp_path / "captioned"
    _write(root / "a.wav")
    _write(root / "b.wav")
    _write_csv(root / "metadata.csv", ["file_name", "description"], [["a.wav", "a soft hum"], ["b.wav", "a beep"]])
    dd = load_audiofolder(root, caption_column="description", cache_dir=str(tmp_path / "cache"))
    ds = dd["train"]
    assert sorted(ds["captions"]) == [["a beep"], ["a soft hum"]]
    assert "description" not in ds.column_names and "label" not in ds.column_names
    _assert_decodes(ds)


def test_audiofolder_class_folders_with_metadata_keep_the_folder_labels(tmp_path):
    """Class sub-folders plus a metadata.csv of captions: datasets drops the folder labels when metadata is present;
    they come back from the parent folder, with the class list of the folder-only layout (sorted folder names)."""
    root = tmp_path / "meta"
    rows = []
    for split in ("train", "test"):
        for label in ("dog", "cat", "bird"):
            if split == "test" and label == "bird":
                continue  # a class missing from one split keeps its id
            for i in range(2):
                _write(root / split / label / f"{label}{i}.wav", 300.0 + 100 * i)
                rows.append((split, f"{label}/{label}{i}.wav", f"a {label} sound {i}"))
    for split in ("train", "test"):
        _write_csv(root / split / "metadata.csv", ["file_name", "caption"],
                   [[f, c] for s, f, c in rows if s == split])
    dd = load_audiofolder(root, cache_dir=str(tmp_path / "cache"))
    for split, part in dd.items():
        assert part.features["label"].names == ["bird", "cat", "dog"]
        folders = [Path(p).parent.name for p in _paths(part)]
        assert part["label_name"] == folders and part["label"] == [["bird", "cat", "dog"].index(f) for f in folders]
        assert part["captions"] == [[f"a {f} sound {Path(p).stem[-1]}"] for f, p in zip(folders, _paths(part))]
    # the same ids as the folder-only layout (the reference: datasets' own labels without the metadata)
    plain = tmp_path / "plain"
    for split in ("train", "test"):
        for wav in (root / split).rglob("*.wav"):
            _write(plain / split / wav.parent.name / wav.name)
    ref = load_audiofolder(plain, cache_dir=str(tmp_path / "cache"))
    for split in ("train", "test"):
        assert ref[split].features["label"].names == dd[split].features["label"].names
        ours = dict(zip((Path(p).relative_to(root) for p in _paths(dd[split])), dd[split]["label"]))
        theirs = dict(zip((Path(p).relative_to(plain) for p in _paths(ref[split])), ref[split]["label"]))
        assert ours == theirs
    test = load_audiofolder(root, split="test", cache_dir=str(tmp_path / "cache"))
    assert test.features["label"].names == ["bird", "cat", "dog"] and sorted(set(test["label"])) == [1, 2]
    stream = list(load_audiofolder(root, split="train", streaming=True, cache_dir=str(tmp_path / "cache")))
    assert sorted((r["label"], r["label_name"]) for r in stream) == [(0, "bird")] * 2 + [(1, "cat")] * 2 + \
        [(2, "dog")] * 2
    assert load_audio(stream[0]["audio"], 16000).numel() == 800
    _assert_decodes(dd["train"])
    # drop_labels=True still drops them
    dropped = load_audiofolder(root, drop_labels=True, cache_dir=str(tmp_path / "cache"))
    assert "label" not in dropped["train"].column_names


@pytest.fixture
def saved_dataset(tmp_path):
    """A local dataset (as save_to_disk writes it) with other column names and string labels."""
    paths = [str(_write(tmp_path / "raw" / f"{i}.wav", 300.0 + 100 * i)) for i in range(4)]
    ds = datasets.Dataset.from_dict(
        {"sound": paths, "kind": ["b", "a", "b", "c"], "text": ["x", "y", "z", "w"]}
    ).cast_column("sound", datasets.Audio())
    dd = datasets.DatasetDict({"train": ds.select([0, 1, 2]), "validation": ds.select([3])})
    out = tmp_path / "saved"
    dd.save_to_disk(str(out))
    return out


def test_hub_loader_on_a_local_saved_dataset(saved_dataset):
    dd = load_hub(saved_dataset, audio_column="sound", label_column="kind", caption_column="text")
    assert isinstance(dd, datasets.DatasetDict) and set(dd) == {"train", "validation"}
    train = dd["train"]
    assert {"audio", "label", "label_name", "captions", "fold", "split"} <= set(train.column_names)
    assert "sound" not in train.column_names and "kind" not in train.column_names
    # string labels get one class list across splits (ids agree, splits concatenate)
    assert train.features["label"].names == dd["validation"].features["label"].names == ["a", "b", "c"]
    assert train["label_name"] == ["b", "a", "b"] and train["label"] == [1, 0, 1]
    assert train["captions"] == [["x"], ["y"], ["z"]]
    both = datasets.concatenate_datasets([dd["train"], dd["validation"]])
    assert both["label"] == [1, 0, 1, 2] and both["split"] == ["train"] * 3 + ["validation"]
    _assert_decodes(train)
    val = load_hub(saved_dataset, split="validation", audio_column="sound", label_column="kind")
    assert isinstance(val, datasets.Dataset) and val["split"] == ["validation"] and val["captions"] == [["the sound of c"]]
    assert val["label"] == [2] and val.features["label"].names == ["a", "b", "c"]
    stream = load_hub(saved_dataset, streaming=True, audio_column="sound", caption_column="text")
    assert isinstance(stream, datasets.IterableDatasetDict)
    rows = list(stream["train"])
    assert [r["captions"] for r in rows] == [["x"], ["y"], ["z"]] and rows[0]["split"] == "train"
    assert load_audio(rows[1]["audio"], 16000).numel() == 800
    with pytest.raises(DatasetLayoutError, match=r"has no audio column 'audio'; its columns are \['sound'"):
        load_hub(saved_dataset, split="train")
    with pytest.raises(DatasetLayoutError, match=r"has no split 'test'; it has \['train', 'validation'\]"):
        load_hub(saved_dataset, split="test", audio_column="sound")


def test_hub_loader_through_load_dataset_on_data_files(tmp_path):
    """A local folder of data files goes through datasets.load_dataset (the path a Hub id takes), streaming too."""
    root = tmp_path / "hubby"
    paths = [str(_write(tmp_path / "clips" / f"{i}.flac", 300.0 + 100 * i, format="FLAC")) for i in range(3)]
    _write_csv(root / "data" / "train.csv", ["audio", "label", "caption"],
               [[p, lab, f"clip {i}"] for i, (p, lab) in enumerate(zip(paths, [2, 0, 2]))])
    ds = load_hub(str(root), split="train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(ds, datasets.Dataset) and len(ds) == 3
    assert ds.features["label"].names == ["0", "2"] and ds["label"] == [1, 0, 1] and ds["label_name"] == ["2", "0", "2"]
    assert ds["captions"] == [["clip 0"], ["clip 1"], ["clip 2"]]
    _assert_decodes(ds, 3)
    stream = load_hub(str(root), split="train", streaming=True)
    rows = list(stream)
    assert [r["label_name"] for r in rows] == ["2", "0", "2"]  # a stream keeps the raw label, names it as text
    assert load_audio(rows[2]["audio"], 16000).numel() == 800


# ----------------------------------------------------------------------------------------------- spec, fold_split


def test_dataset_spec_routes_every_kind(esc10_layout, esc50_layout, fsdd_layout, audiocaps_layout, clotho_layout,
                                        audiofolder_layout, saved_dataset, tmp_path, monkeypatch):
    assert len(load_dataset_spec(f"esc10:{esc10_layout}")) == 12
    assert len(load_dataset_spec(f"esc50:{esc50_layout}")) == 8
    assert len(load_dataset_spec(f"fsdd:{fsdd_layout}", sampling_rate=16000)) == 24
    caps = load_dataset_spec(f"audiocaps:{audiocaps_layout / 'test.csv'}:{audiocaps_layout / 'test'}")
    assert len(caps) == 3
    assert len(load_dataset_spec(f"clotho:{clotho_layout / 'clotho_captions_development.csv'}")) == 2
    dd = load_dataset_spec(f"audiofolder:{audiofolder_layout}", cache_dir=str(tmp_path / "cache"))
    assert set(dd) == {"train", "test"}
    assert len(load_dataset_spec(f"hf:{saved_dataset}", split="train", audio_column="sound")) == 3
    assert len(load_dataset_spec(str(saved_dataset), split="validation", audio_column="sound")) == 1
    # options that do not apply are ignored when unset, rejected when set
    assert len(load_dataset_spec(f"esc10:{esc10_layout}", audio_column="audio", streaming=False, split=None)) == 12
    with pytest.raises(ValueError, match=r"option split='train' does not apply to the dataset spec 'esc10:"):
        load_dataset_spec(f"esc10:{esc10_layout}", split="train")
    # resampling on access
    fsdd16 = load_dataset_spec(f"fsdd:{fsdd_layout}", sampling_rate=16000)
    assert fsdd16.features["audio"].sampling_rate == 16000
    assert fsdd16[0]["audio"].get_all_samples().sample_rate == 16000


def test_dataset_spec_synthetic_calls_the_synthetic_module(monkeypatch):
    import hf_alm.data.synthetic as synthetic

    calls = []

    def fake(num_per_class=7, sampling_rate=16000, seed=0):
        calls.append((num_per_class, sampling_rate, seed))
        return "fake dataset"

    monkeypatch.setattr(synthetic, "make_synthetic_dataset", fake)
    assert load_dataset_spec("synthetic") == "fake dataset"
    assert load_dataset_spec("synthetic:3", seed=5) == "fake dataset"
    assert load_dataset_spec("synthetic:2", num_per_class=9, sampling_rate=None) == "fake dataset"
    assert calls == [(7, 16000, 0), (3, 16000, 5), (2, 16000, 0)]
    with pytest.raises(ValueError, match=r"option streaming=True does not apply to the dataset spec 'synthetic'"):
        load_dataset_spec("synthetic", streaming=True)
    for bad in ("synthetic:0", "synthetic:x", "synthetic:"):
        with pytest.raises(ValueError, match=r"synthetic"):
            load_dataset_spec(bad)


def test_dataset_spec_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset spec 'esc99:/x': the prefix 'esc99' is not one of"):
        load_dataset_spec("esc99:/x")
    with pytest.raises(ValueError, match=r"empty dataset spec"):
        load_dataset_spec("  ")
    with pytest.raises(FileNotFoundError, match=r"ESC-10 folder not found: '.*nothere'"):
        load_dataset_spec(f"esc10:{tmp_path / 'nothere'}")
    with pytest.raises(FileNotFoundError, match=r"FSDD folder not found"):
        load_dataset_spec(f"fsdd:{tmp_path / 'nothere'}")
    with pytest.raises(FileNotFoundError, match=r"Clotho CSV not found: '.*x\.csv'"):
        load_dataset_spec(f"clotho:{tmp_path / 'x.csv'}:{tmp_path}")
    with pytest.raises(FileNotFoundError, match=r"dataset path not found: '\./no/such/dir'"):
        load_dataset_spec("./no/such/dir")
    with pytest.raises(ValueError, match=r"esc10 needs a path: --dataset esc10:PATH"):
        load_dataset_spec("esc10:")
    with pytest.raises(ValueError, match=r"not a Hub dataset id"):
        load_dataset_spec("two words")


@pytest.mark.parametrize("spec, message", [
    ("esc10", "esc10 needs a path: --dataset esc10:PATH (the folder of the ESC-10 release)"),
    ("ESC50", "esc50 needs a path: --dataset esc50:PATH (the folder of the ESC-50 release"),
    ("fsdd", "fsdd needs a path: --dataset fsdd:PATH (the folder of the Free Spoken Digit Dataset"),
    ("audiofolder", "audiofolder needs a path: --dataset audiofolder:PATH"),
    ("clotho", "clotho needs a path: --dataset clotho:CSV[:AUDIO_DIR]"),
    ("audiocaps:", "audiocaps needs a path: --dataset audiocaps:CSV[:AUDIO_DIR]"),
    ("hf", "hf needs a dataset id: --dataset hf:NAME[:CONFIG]"),
])
def test_bare_known_prefix_asks_for_its_path_without_touching_the_hub(spec, message, monkeypatch):
    """``--dataset esc10`` was looked up as a Hub dataset id (ConnectionError / OfflineModeIsEnabled offline)."""
    import datasets

    def no_hub(*args, **kwargs):
        raise AssertionError(f"the Hub was asked for {args}")

    monkeypatch.setattr(datasets, "load_dataset", no_hub)
    for check in (loaders.check_dataset_spec, load_dataset_spec):
        with pytest.raises(ValueError) as info:
            check(spec)
        assert message in str(info.value)


def test_bare_prefix_next_to_a_local_folder_of_that_name_says_how_to_open_it(tmp_path, monkeypatch):
    (tmp_path / "esc10").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"esc10 needs a path: .*; for the local folder 'esc10' write --dataset "
                                         r"esc10:esc10"):
        load_dataset_spec("esc10")
    loaders.check_dataset_spec("synthetic")  # complete specs pass
    loaders.check_dataset_spec(f"esc10:{tmp_path}")


def test_csv_spec_splitting():
    assert loaders._split_csv_spec("/a/b.csv:/c/d") == ("/a/b.csv", "/c/d")
    assert loaders._split_csv_spec("/a/b.csv") == ("/a/b.csv", None)
    assert loaders._split_csv_spec("/a/b.CSV:/c") == ("/a/b.CSV", "/c")
    assert loaders._split_csv_spec("/a/b.tsv:/c") == ("/a/b.tsv", "/c")


def test_fold_split(esc10_layout):
    ds = load_esc10(esc10_layout)
    train, evaluation = fold_split(ds, 2)
    assert len(train) == 9 and len(evaluation) == 3
    assert set(evaluation["fold"]) == {2} and 2 not in set(train["fold"])
    with pytest.raises(ValueError, match=r"eval_fold=4 is not in the dataset's fold values \[1, 2, 3, 5\]"):
        fold_split(ds, 4)
    with pytest.raises(ValueError, match=r"needs a 'split' column"):
        fold_split(ds, "test")
    stream_train, stream_eval = fold_split(ds.to_iterable_dataset(), 5)
    assert len(list(stream_train)) == 9 and [r["fold"] for r in stream_eval] == [5, 5, 5]


# ------------------------------------------------------------------------------------------------- real data (shared)


@pytest.mark.shared
def test_real_esc10_counts(esc10_path):
    ds = load_esc10(esc10_path)
    assert len(ds) == 400
    assert len(ds.features["label"].names) == 10 and ds.features["label"].names[0] == "Dog bark"
    assert collections.Counter(ds["fold"]) == {f: 80 for f in range(1, 6)}
    assert set(collections.Counter(ds["label"]).values()) == {40}
    # one clip against libsndfile's decoding, at the native rate (44.1 kHz)
    row = ds[0]
    ref, sr = sf.read(row["audio"].metadata.path, dtype="float32")
    torch.testing.assert_close(load_audio(row["audio"], sr), torch.from_numpy(ref), atol=1e-5, rtol=0)
    assert load_audio(row["audio"], 16000).shape[0] == int(np.ceil(len(ref) * 16000 / sr))
    # it agrees with the manifest shipped next to it
    with open(esc10_path / "esc10_manifest.csv", newline="") as fh:
        manifest = {r["file"]: int(r["fold"]) for r in csv.DictReader(fh)}
    raw = ds.cast_column("audio", datasets.Audio(decode=False))
    got = {str(Path(a["path"]).relative_to(esc10_path)): f for a, f in zip(raw["audio"], raw["fold"])}
    assert got == manifest


@pytest.mark.shared
def test_real_fsdd_counts(fsdd_path):
    ds = load_fsdd(fsdd_path)  # counting needs no decoding
    assert len(ds) == 3000
    assert collections.Counter(ds["label"]) == {d: 300 for d in range(10)}
    assert collections.Counter(ds["speaker"]) == {
        s: 500 for s in ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
    }
    assert collections.Counter(ds["split"]) == {"train": 2700, "test": 300}
    wav = load_audio(ds[0]["audio"], 16000)
    ref, sr = sf.read(ds.cast_column("audio", datasets.Audio(decode=False))[0]["audio"]["path"], dtype="float32")
    assert sr == 8000 and wav.shape[0] == 2 * len(ref)


def test_package_exports_and_lazy_siblings():
    import hf_alm.data as data

    assert data.load_audio is load_audio and data.load_dataset_spec is load_dataset_spec
    assert data.synthetic.__name__ == "hf_alm.data.synthetic"  # imported on first access
    assert data.make_synthetic_dataset is data.synthetic.make_synthetic_dataset
    with pytest.raises(AttributeError, match=r"has no attribute 'no_such_name'"):
        data.no_such_name


def test_load_labelled_dataset_concatenates_splits_and_checks_columns(monkeypatch):
    """The loader of the classification recipes: a DatasetDict becomes one Dataset with a `split` column; a missing
    column or an empty dataset is a clear error naming the spec."""
    import datasets

    from hf_alm.data import loaders

    given = {
        "dd": datasets.DatasetDict({
            "train": datasets.Dataset.from_dict({"audio": [[0.0, 0.1], [0.2, 0.3]], "label": [0, 1]}),
            "test": datasets.Dataset.from_dict({"audio": [[0.4, 0.5]], "label": [1]}),
        }),
        "nolabel": datasets.Dataset.from_dict({"audio": [[0.0]]}),
        "empty": datasets.Dataset.from_dict({"audio": [], "label": []}),
    }
    monkeypatch.setattr(loaders, "load_dataset_spec", lambda spec: given[spec])
    ds = loaders.load_labelled_dataset("dd")
    assert isinstance(ds, datasets.Dataset) and len(ds) == 3
    assert sorted(zip(ds["split"], ds["label"])) == [("test", 1), ("train", 0), ("train", 1)]
    assert len(loaders.load_labelled_dataset("nolabel", need_labels=False)) == 1
    missing = r"--dataset 'nolabel' has no \['label'\] column\(s\).*needs labelled audio"
    with pytest.raises(ValueError, match=missing):
        loaders.load_labelled_dataset("nolabel")
    with pytest.raises(ValueError, match="--dataset 'empty' is empty"):
        loaders.load_labelled_dataset("empty")
