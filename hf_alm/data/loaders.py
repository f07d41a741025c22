"""Dataset loaders with one schema, and the ``--dataset`` spec parser of every recipe.

Every loader returns a ``datasets.Dataset`` (or ``DatasetDict`` / ``IterableDataset[Dict]`` where the source has
splits or is streamed) whose audio is decoded lazily: rows hold a ``datasets.Audio()`` column, decoded by ``datasets``
through torchcodec only when a row is read, so building a dataset never decodes audio. Pass what a row gives to
:func:`hf_alm.data.audio.load_audio`: ``load_audio(row["audio"], 16000)``.

Common schema:

==============  ======================================================================================================
``audio``       ``Audio()``; ``sampling_rate=`` on a loader casts it to ``Audio(sampling_rate=...)`` (FFmpeg resamples)
``label``       ``ClassLabel`` with the class names (classification sources only)
``label_name``  ``str``, the class name of ``label`` (classification sources only)
``captions``    ``list[str]``: the CSV captions (AudioCaps, Clotho, Hub), a simple caption made from the class name
                ("the sound of dog bark") for ESC/FSDD/audiofolder, ``[]`` where there is nothing to say
``fold``        ``int``: 1..5 for ESC-10/ESC-50, ``0`` when the source has no folds
``split``       ``str`` where the source has splits (FSDD's official train/test, a Clotho/AudioCaps CSV's split, the
                split names of a ``DatasetDict``)
==============  ======================================================================================================

Caption-only sources (AudioCaps, Clotho, Hub datasets without a label column) have **no** ``label`` /
``label_name`` columns; use ``dataset.select_columns(["audio", "captions"])`` to mix them with classification sets.
FSDD adds ``speaker``; AudioCaps adds ``youtube_id``.
"""

from __future__ import annotations

import csv
import inspect
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DatasetLayoutError",
    "caption_for_label",
    "load_esc10",
    "load_esc50",
    "load_fsdd",
    "load_audiocaps",
    "load_clotho",
    "load_audiofolder",
    "load_hub",
    "load_dataset_spec",
    "check_dataset_spec",
    "load_labelled_dataset",
    "fold_split",
    "evaluation_units",
    "unit_indices",
    "DATASET_SPEC_HELP",
]

logger = logging.getLogger(__name__)

DATASET_SPEC_HELP = (
    "synthetic | synthetic:N (N clips per class, generated offline) | esc10:PATH (class folders 'NNN - Name') | "
    "esc50:PATH (meta/esc50.csv + audio/) | fsdd:PATH (recordings/{digit}_{speaker}_{index}.wav) | "
    "audiocaps:CSV[:AUDIO_DIR] | clotho:CSV[:AUDIO_DIR] | audiofolder:PATH | hf:NAME[:CONFIG] | a Hub dataset id | "
    "a local dataset path (save_to_disk folder or data files)"
)

_FSDD_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class DatasetLayoutError(ValueError):
    """A dataset folder or CSV that does not have the expected layout; the message names the path and the problem."""


# --------------------------------------------------------------------------------------------------------------------
# helpers


def _datasets():
    import datasets

    return datasets


def caption_for_label(label_name: str) -> str:
    """A plain natural caption for a class name: ``"Dog bark"`` / ``"crying_baby"`` -> ``"the sound of dog bark"``."""
    text = re.sub(r"[_\s]+", " ", str(label_name)).strip().lower()
    return f"the sound of {text}"


def _existing_dir(path: str | os.PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{what} folder not found: '{p}'")
    if not p.is_dir():
        raise DatasetLayoutError(f"{what} path is not a folder: '{p}'")
    return p


def _existing_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: '{p}'")
    if not p.is_file():
        raise DatasetLayoutError(f"{what} is not a file: '{p}'")
    return p


def _is_audio(path: Path) -> bool:
    from .audio import AUDIO_EXTENSIONS

    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in AUDIO_EXTENSIONS


def _audio_feature(sampling_rate: int | None):
    datasets = _datasets()
    if sampling_rate is None:
        return datasets.Audio()
    from .audio import _check_rate

    return datasets.Audio(sampling_rate=_check_rate(sampling_rate, "sampling_rate"))


def _classification_dataset(rows: dict[str, list], names: Sequence[str], sampling_rate, extra: dict | None = None):
    """Build the in-memory Dataset (paths only: nothing is decoded) with the common classification schema."""
    datasets = _datasets()
    features = {
        "audio": _audio_feature(sampling_rate),
        "label": datasets.ClassLabel(names=list(names)),
        "label_name": datasets.Value("string"),
        "captions": datasets.List(datasets.Value("string")),
        "fold": datasets.Value("int64"),
    }
    features.update(extra or {})
    return datasets.Dataset.from_dict(rows, features=datasets.Features(features))


def _check_files(paths: Iterable[str], what: str, on_missing: str = "error") -> list[bool]:
    if on_missing not in ("error", "skip"):
        raise ValueError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
    exists = [os.path.isfile(p) for p in paths]
    missing = [p for p, ok in zip(paths, exists) if not ok]
    if missing:
        shown = ", ".join(f"'{m}'" for m in missing[:3]) + (", ..." if len(missing) > 3 else "")
        if on_missing == "error":
            raise FileNotFoundError(
                f"{len(missing)} of {len(exists)} audio files listed by {what} are missing: {shown} "
                "(pass on_missing='skip' to drop them)"
            )
        logger.warning("skipping %d of %d rows of %s whose audio file is missing: %s", len(missing), len(exists),
                       what, shown)
    return exists


def _read_csv(path: Path, required: Sequence[str], what: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        rows = [{(k or "").strip(): (v if v is not None else "") for k, v in row.items()} for row in reader]
    missing = [c for c in required if c not in columns]
    if missing:
        raise DatasetLayoutError(f"{what} '{path}' lacks the column(s) {missing}; it has {columns}")
    if not rows:
        raise DatasetLayoutError(f"{what} '{path}' has no rows")
    return columns, rows


# --------------------------------------------------------------------------------------------------------------------
# ESC-10 / ESC-50 / FSDD

_ESC10_CLASS_DIR = re.compile(r"^(\d+)\s*-\s*(.+?)\s*$")
_ESC_CLIP = re.compile(r"^(\d+)-([^-]+)-([^.]+)\.[A-Za-z0-9]+$")  # {fold}-{freesound id}-{take}.ogg


def load_esc10(path: str | os.PathLike, *, sampling_rate: int | None = None):
    """ESC-10 in its original layout: ``PATH/<NNN - Class name>/<fold>-<freesound id>-<take>.ogg``.

    Classes are the ``NNN - Name`` folders in the order of ``NNN`` (label ``i`` = i-th folder); the fold is the first
    number of the file name. Other files and folders (README, manifest CSV) are ignored. Returns a ``Dataset``
    (400 clips, 10 classes, folds 1..5 of 80 clips for the real ESC-10).
    """
    root = _existing_dir(path, "ESC-10")
    classes = []
    for d in root.iterdir():
        m = _ESC10_CLASS_DIR.match(d.name)
        if d.is_dir() and m:
            classes.append((int(m.group(1)), m.group(2), d))
    if not classes:
        raise DatasetLayoutError(f"no ESC-10 class folders named 'NNN - Class name' in '{root}'")
    classes.sort()
    numbers = [n for n, _, _ in classes]
    if len(set(numbers)) != len(numbers):
        dup = sorted({n for n in numbers if numbers.count(n) > 1})
        raise DatasetLayoutError(f"ESC-10 folder '{root}' has several class folders numbered {dup}")
    names = [name for _, name, _ in classes]
    rows: dict[str, list] = {"audio": [], "label": [], "label_name": [], "captions": [], "fold": []}
    for label, (_, name, folder) in enumerate(classes):
        clips = sorted(p for p in folder.iterdir() if _is_audio(p))
        if not clips:
            raise DatasetLayoutError(f"ESC-10 class folder '{folder}' has no audio files")
        for clip in clips:
            m = _ESC_CLIP.match(clip.name)
            if not m:
                raise DatasetLayoutError(
                    f"ESC-10 clip name '{clip}' is not '<fold>-<freesound id>-<take>.<ext>' (e.g. 1-100032-A.ogg)"
                )
            rows["audio"].append(str(clip))
            rows["label"].append(label)
            rows["label_name"].append(name)
            rows["captions"].append([caption_for_label(name)])
            rows["fold"].append(int(m.group(1)))
    return _classification_dataset(rows, names, sampling_rate)


def load_esc50(path: str | os.PathLike, *, esc10_only: bool = False, sampling_rate: int | None = None):
    """ESC-50 layout: ``PATH/meta/esc50.csv`` (``filename,fold,target,category,esc10,src_file,take``) + ``PATH/audio/``.

    Labels are the ``target`` ids with ``category`` names (label == target for the full set). ``esc10_only=True``
    keeps the ESC-10 subset (``esc10 == True``), relabelled 0..9 in target order. Returns a ``Dataset``.

    The metadata is checked: a file listed twice or a fold outside 1..5 is a DatasetLayoutError naming the rows
    (line numbers of the CSV); audio files in ``audio/`` that the CSV does not list are ignored with a warning.
    """
    root = _existing_dir(path, "ESC-50")
    meta = _existing_file(root / "meta" / "esc50.csv", "ESC-50 metadata file meta/esc50.csv")
    audio_dir = _existing_dir(root / "audio", "ESC-50 audio")
    _, table = _read_csv(meta, ["filename", "fold", "target", "category"], "ESC-50 metadata")
    lines: dict[str, list[int]] = {}
    for i, r in enumerate(table):
        r["_line"] = i + 2  # the header is line 1
        lines.setdefault(r["filename"], []).append(r["_line"])
    repeated = {name: rows for name, rows in lines.items() if len(rows) > 1}
    if repeated:
        shown = "; ".join(f"{name!r} on rows {', '.join(map(str, rows))}" for name, rows in list(repeated.items())[:5])
        raise DatasetLayoutError(f"ESC-50 metadata '{meta}' lists {len(repeated)} file(s) more than once: {shown}"
                                 + ("; ..." if len(repeated) > 5 else ""))
    unlisted = sorted(p.name for p in audio_dir.iterdir() if _is_audio(p) and p.name not in lines)
    if unlisted:
        logger.warning("ESC-50 audio folder '%s' holds %d audio file(s) that '%s' does not list (ignored): %s",
                       audio_dir, len(unlisted), meta,
                       ", ".join(f"'{n}'" for n in unlisted[:3]) + (", ..." if len(unlisted) > 3 else ""))
    if esc10_only:
        if "esc10" not in table[0]:
            raise DatasetLayoutError(f"ESC-50 metadata '{meta}' has no 'esc10' column, needed for esc10_only=True")
        table = [r for r in table if r["esc10"].strip().lower() in ("true", "1")]
        if not table:
            raise DatasetLayoutError(f"ESC-50 metadata '{meta}' marks no clip as esc10")
    categories: dict[int, str] = {}
    for r in table:
        try:
            target, fold = int(r["target"]), int(r["fold"])
        except ValueError:
            raise DatasetLayoutError(
                f"ESC-50 metadata '{meta}' row {r['_line']}: target {r['target']!r} / fold {r['fold']!r} are not "
                "integers"
            ) from None
        if not 1 <= fold <= 5:
            raise DatasetLayoutError(f"ESC-50 metadata '{meta}' row {r['_line']} ({r['filename']!r}): fold {fold} is "
                                     "not one of 1..5")
        if categories.setdefault(target, r["category"]) != r["category"]:
            raise DatasetLayoutError(
                f"ESC-50 metadata '{meta}': target {target} is both {categories[target]!r} and {r['category']!r}"
            )
        r["_target"], r["_fold"] = target, fold
    targets = sorted(categories)
    index = {t: i for i, t in enumerate(targets)}
    names = [categories[t].replace("_", " ") for t in targets]
    paths = [str(audio_dir / r["filename"]) for r in table]
    _check_files(paths, f"'{meta}'")
    rows = {
        "audio": paths,
        "label": [index[r["_target"]] for r in table],
        "label_name": [names[index[r["_target"]]] for r in table],
        "captions": [[caption_for_label(names[index[r["_target"]]])] for r in table],
        "fold": [r["_fold"] for r in table],
    }
    return _classification_dataset(rows, names, sampling_rate)


_FSDD_CLIP = re.compile(r"^(\d)_([^_]+)_(\d+)\.wav$", re.IGNORECASE)


def load_fsdd(path: str | os.PathLike, *, sampling_rate: int | None = None):
    """Free Spoken Digit Dataset: ``PATH/recordings/{digit}_{speaker}_{index}.wav`` (or ``PATH`` being that folder).

    ``label`` is the digit (names ``"zero"``..``"nine"``), ``speaker`` the speaker name, ``split`` the official split
    (``index`` 0-4 -> ``"test"``, otherwise ``"train"``), ``fold`` 0. Returns a ``Dataset`` (3000 clips, 10 digits,
    6 speakers for FSDD 1.0.10).
    """
    root = _existing_dir(path, "FSDD")
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
    if not files:
        raise DatasetLayoutError(f"no FSDD recordings ('{{digit}}_{{speaker}}_{{index}}.wav') in '{folder}'")
    rows: dict[str, list] = {k: [] for k in ("audio", "label", "label_name", "captions", "fold", "speaker", "split")}
    for f in files:
        m = _FSDD_CLIP.match(f.name)
        if not m:
            raise DatasetLayoutError(f"FSDD file name '{f}' is not '{{digit}}_{{speaker}}_{{index}}.wav'")
        digit, speaker, index = int(m.group(1)), m.group(2), int(m.group(3))
        rows["audio"].append(str(f))
        rows["label"].append(digit)
        rows["label_name"].append(_FSDD_DIGITS[digit])
        rows["captions"].append([f"a person saying the digit {_FSDD_DIGITS[digit]}"])
        rows["fold"].append(0)
        rows["speaker"].append(speaker)
        rows["split"].append("test" if index < 5 else "train")
    datasets = _datasets()
    extra = {"speaker": datasets.Value("string"), "split": datasets.Value("string")}
    return _classification_dataset(rows, _FSDD_DIGITS, sampling_rate, extra)


# --------------------------------------------------------------------------------------------------------------------
# caption CSVs: AudioCaps, Clotho


def _default_audio_dir(csv_path: Path, candidates: Sequence[str]) -> Path:
    for name in candidates:
        d = csv_path.parent / name
        if name and d.is_dir():
            return d
    return csv_path.parent


def _index_audio(folder: Path) -> dict[str, str]:
    """stem -> path of every audio file under ``folder`` (recursive), the same on every file system: the folder is
    walked in sorted order, a folder's own files (by name) before its sub-folders (by name, depth first). When a stem
    occurs more than once (``a.flac`` and ``a.wav``, or ``x/a.wav`` and ``y/a.wav``) the first file in that order
    wins, with a warning."""
    index: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for dirpath, dirnames, files in os.walk(folder):
        dirnames.sort()  # os.walk visits the sub-folders in this list's order
        for name in sorted(files):
            p = Path(dirpath) / name
            if _is_audio(p):
                if p.stem in index:
                    repeated.setdefault(p.stem, [index[p.stem]]).append(str(p))
                else:
                    index[p.stem] = str(p)
    if repeated:
        stem, paths = next(iter(repeated.items()))
        logger.warning("%d file name(s) occur more than once under '%s' (the first in sorted order is used), e.g. "
                       "'%s': %s", len(repeated), folder, stem, ", ".join(f"'{p}'" for p in paths))
    return index


def _caption_dataset(rows: dict[str, list], sampling_rate, extra: dict | None = None):
    datasets = _datasets()
    features = {
        "audio": _audio_feature(sampling_rate),
        "captions": datasets.List(datasets.Value("string")),
        "fold": datasets.Value("int64"),
    }
    features.update(extra or {})
    return datasets.Dataset.from_dict(rows, features=datasets.Features(features))


def _split_from_stem(stem: str, known: Sequence[str]) -> str | None:
    stem = stem.lower()
    for name in known:
        if stem == name or stem.endswith("_" + name) or stem.endswith("-" + name):
            return name
    return None


def _start_time_variants(start: str) -> list[str]:
    out = [start]
    try:
        value = float(start)
    except ValueError:
        return out
    if value.is_integer():
        out += [str(int(value)), f"{int(value)}000"]
    out += [f"{value:.3f}", f"{value:.3f}_{value + 10:.3f}"]
    return out


def load_audiocaps(
    csv_path: str | os.PathLike,
    audio_dir: str | os.PathLike | None = None,
    *,
    split: str | None = None,
    file_column: str | None = None,
    caption_column: str = "caption",
    on_missing: str = "error",
    sampling_rate: int | None = None,
):
    """AudioCaps CSV layout (``audiocap_id,youtube_id,start_time,caption``) with a local folder of audio clips.

    Rows of the same clip (``youtube_id`` + ``start_time``; the val/test CSVs have 5 captions per clip) are merged into
    one row whose ``captions`` lists them in CSV order. A clip's file is found in ``audio_dir`` (searched recursively)
    by its stem, the names that include the start time first: ``{youtube_id}_{start_time}`` (also ``_{start}000``,
    ``_{start:.3f}``), ``Y{youtube_id}_{start:.3f}_{start+10:.3f}`` (AudioSet style) and their ``Y`` / non-``Y``
    forms, then ``{audiocap_id}``, and the bare ``{youtube_id}`` / ``Y{youtube_id}`` last (when one file per video
    was downloaded); or, with ``file_column``, by a CSV column holding the file name relative to ``audio_dir``. Two
    clips (CSV keys) that resolve to the same file are a DatasetLayoutError naming both rows (e.g. only ``abc.wav``
    for the clips ``abc`` at 30 s and at 100 s). A stem found twice under ``audio_dir``: see the warning of the
    sorted walk (the first file in sorted order is used). ``audio_dir`` defaults to the folder named like the
    CSV (``train.csv`` -> ``train/``), else ``audio/``, next to the CSV, else the CSV's own folder. ``split`` defaults
    to the CSV name when it is train / val / validation / test. Clips whose audio is missing raise, or are dropped
    with a warning under ``on_missing="skip"`` (AudioCaps downloads usually miss some YouTube videos).
    No ``label`` columns; ``fold`` is 0; ``youtube_id`` is kept.
    """
    csv_file = _existing_file(csv_path, "AudioCaps CSV")
    required = [caption_column] + ([file_column] if file_column else ["youtube_id"])
    columns, table = _read_csv(csv_file, required, "AudioCaps CSV")
    folder = _existing_dir(audio_dir, "AudioCaps audio") if audio_dir is not None else _default_audio_dir(
        csv_file, [csv_file.stem, "audio"])
    split = split if split is not None else _split_from_stem(csv_file.stem, ("train", "val", "validation", "test"))

    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for line, r in enumerate(table, start=2):  # the header is line 1
        key = (r[file_column],) if file_column else (r["youtube_id"], r.get("start_time", ""))
        g = groups.setdefault(key, {"row": r, "line": line, "captions": [], "ids": []})
        if r[caption_column].strip():
            g["captions"].append(r[caption_column].strip())
        if r.get("audiocap_id"):
            g["ids"].append(r["audiocap_id"])

    index = None if file_column else _index_audio(folder)
    paths = []
    for key, g in groups.items():
        if file_column:
            paths.append(str(folder / key[0]))
            continue
        ytid, start = key
        # exact (start-time) names first: a bare {youtube_id} file may be another clip of the same video
        stems = [f"{p}{ytid}_{s}" for s in _start_time_variants(start) for p in ("", "Y")] + g["ids"]
        stems += [ytid, f"Y{ytid}"]
        found = next((index[s] for s in stems if s in index), None)
        paths.append(found if found is not None else str(folder / f"{ytid}.wav"))
    keep = _check_files(paths, f"AudioCaps CSV '{csv_file}' (audio folder '{folder}')", on_missing)
    items = [(p, g) for p, g, ok in zip(paths, groups.values(), keep) if ok]
    if not items:
        raise DatasetLayoutError(f"no audio of AudioCaps CSV '{csv_file}' found in '{folder}'")
    owner: dict[str, dict[str, Any]] = {}
    for p, g in items:
        first = owner.setdefault(os.path.normpath(p), g)
        if first is not g:
            raise DatasetLayoutError(
                f"AudioCaps CSV '{csv_file}': rows {first['line']} ({_clip_key(first['row'], file_column)}) and "
                f"{g['line']} ({_clip_key(g['row'], file_column)}) are different clips but both resolve to the file "
                f"'{p}'" + ("" if file_column else "; name the files {youtube_id}_{start_time} (or pass file_column)"))
    datasets = _datasets()
    rows = {
        "audio": [p for p, _ in items],
        "captions": [g["captions"] for _, g in items],
        "fold": [0] * len(items),
    }
    extra = {}
    if "youtube_id" in columns:
        rows["youtube_id"] = [g["row"]["youtube_id"] for _, g in items]
        extra["youtube_id"] = datasets.Value("string")
    if split is not None:
        rows["split"] = [split] * len(items)
        extra["split"] = datasets.Value("string")
    return _caption_dataset(rows, sampling_rate, extra)


def _clip_key(row: dict[str, str], file_column: str | None) -> str:
    if file_column:
        return f"{file_column} {row[file_column]!r}"
    return f"youtube_id {row['youtube_id']!r}, start_time {row.get('start_time', '')!r}"


_CLOTHO_CAPTION = re.compile(r"^caption_?(\d+)$")


def load_clotho(
    csv_path: str | os.PathLike,
    audio_dir: str | os.PathLike | None = None,
    *,
    split: str | None = None,
    on_missing: str = "error",
    sampling_rate: int | None = None,
):
    """Clotho CSV layout: ``file_name,caption_1,...,caption_5`` and a folder holding the files by ``file_name``.

    Every ``caption_N`` column (any number of them) goes into ``captions``, in N order, empty cells dropped.
    ``audio_dir`` defaults to the folder named after the CSV's split (``clotho_captions_development.csv`` ->
    ``development/``), else ``audio/`` next to the CSV, else the CSV's own folder; ``split`` defaults to that split
    name (development / validation / evaluation / test). No ``label`` columns; ``fold`` is 0.
    """
    csv_file = _existing_file(csv_path, "Clotho CSV")
    columns, table = _read_csv(csv_file, ["file_name"], "Clotho CSV")
    caption_columns = sorted(
        (int(m.group(1)), c) for c in columns if (m := _CLOTHO_CAPTION.match(c))
    )
    if not caption_columns:
        raise DatasetLayoutError(f"Clotho CSV '{csv_file}' has no caption_N columns; it has {columns}")
    inferred = _split_from_stem(csv_file.stem, ("development", "validation", "evaluation", "test"))
    split = split if split is not None else inferred
    folder = _existing_dir(audio_dir, "Clotho audio") if audio_dir is not None else _default_audio_dir(
        csv_file, [inferred or "", "audio"])
    paths = [str(folder / r["file_name"]) for r in table]
    keep = _check_files(paths, f"Clotho CSV '{csv_file}' (audio folder '{folder}')", on_missing)
    items = [(p, r) for p, r, ok in zip(paths, table, keep) if ok]
    if not items:
        raise DatasetLayoutError(f"no audio of Clotho CSV '{csv_file}' found in '{folder}'")
    rows = {
        "audio": [p for p, _ in items],
        "captions": [[r[c].strip() for _, c in caption_columns if r[c].strip()] for _, r in items],
        "fold": [0] * len(items),
    }
    extra = {}
    if split is not None:
        rows["split"] = [split] * len(items)
        extra["split"] = _datasets().Value("string")
    return _caption_dataset(rows, sampling_rate, extra)


# --------------------------------------------------------------------------------------------------------------------
# audiofolder, Hub / local datasets


def _is_saved_dataset(path: Path) -> bool:
    """A folder written by ``save_to_disk`` (a DatasetDict's ``dataset_dict.json`` or a Dataset's ``state.json``)."""
    return path.is_dir() and any((path / f).is_file() for f in ("dataset_dict.json", "state.json"))


def _column_values(ds, column: str) -> list:
    return list(ds[column])


def _normalise(
    ds,
    *,
    audio_column: str = "audio",
    label_column: str | None = None,
    caption_column: str | None = None,
    sampling_rate: int | None = None,
    split_name: str | None = None,
    label_names: list[str] | None = None,
):
    """Bring one Dataset / IterableDataset to the common schema without decoding audio."""
    datasets = _datasets()
    iterable = isinstance(ds, datasets.IterableDataset)
    if iterable and ds.features is None:
        ds = ds._resolve_features()  # a stream without declared features: peek at its first rows
    columns = list(ds.features)
    where = f"dataset{f' split {split_name!r}' if split_name else ''}"

    # audio
    if audio_column not in columns:
        raise DatasetLayoutError(f"{where} has no audio column {audio_column!r}; its columns are {columns}")
    if audio_column != "audio":
        if "audio" in columns:
            ds = ds.remove_columns("audio")
        ds = ds.rename_column(audio_column, "audio")
    current = ds.features["audio"]
    wanted = _audio_feature(sampling_rate)
    if not isinstance(current, datasets.Audio) or (
        sampling_rate is not None and current.sampling_rate != wanted.sampling_rate
    ):
        if isinstance(current, datasets.Value) and current.dtype in ("string", "large_string") and iterable:
            # a stream casts lazily, straight from the source type: give it the {"path", "bytes"} struct instead
            ds = _imap(ds, lambda p: {"audio": {"path": p, "bytes": None}}, "audio", {"audio": wanted})
        else:
            if isinstance(current, datasets.Value) and current.dtype == "large_string":
                # a path column read from CSV/JSON is large_string, which Audio.cast_storage cannot cast (datasets 5.2)
                ds = ds.cast_column("audio", datasets.Value("string"))
            ds = ds.cast_column("audio", wanted)
    columns = list(ds.features)

    # label
    if label_column is None and "label" in columns:
        label_column = "label"
    if label_column is not None:
        if label_column not in columns:
            raise DatasetLayoutError(f"{where} has no label column {label_column!r}; its columns are {columns}")
        if label_column != "label":
            if "label" in columns:
                ds = ds.remove_columns("label")
            ds = ds.rename_column(label_column, "label")
        ds = _normalise_label(ds, iterable, where, label_names)

    # captions
    columns = list(ds.features)
    if caption_column is None:
        caption_column = next((c for c in ("captions", "caption") if c in columns), None)
    elif caption_column not in columns:
        raise DatasetLayoutError(f"{where} has no caption column {caption_column!r}; its columns are {columns}")
    caption_feature = datasets.List(datasets.Value("string"))

    def as_list(value) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            return [value] if value.strip() else []
        return [str(v) for v in value if v is not None and str(v).strip()]

    if iterable:
        if caption_column is not None:
            ds = _imap(ds, lambda v: {"captions": as_list(v)}, caption_column, {"captions": caption_feature},
                       remove=None if caption_column == "captions" else caption_column)
        elif "label_name" in ds.features:
            ds = _imap(ds, lambda n: {"captions": [caption_for_label(n)]}, "label_name", {"captions": caption_feature})
        else:
            ds = _imap(ds, lambda a: {"captions": []}, "audio", {"captions": caption_feature})
        if "fold" not in ds.features:
            ds = _imap(ds, lambda c: {"fold": 0}, "captions", {"fold": datasets.Value("int64")})
        if split_name is not None and "split" not in ds.features:
            ds = _imap(ds, lambda c, s=split_name: {"split": s}, "captions", {"split": datasets.Value("string")})
        return ds

    if caption_column is not None:
        caps = [as_list(v) for v in _column_values(ds, caption_column)]
        ds = ds.remove_columns(caption_column)
    elif "label_name" in ds.column_names:
        caps = [[caption_for_label(n)] for n in _column_values(ds, "label_name")]
    else:
        caps = [[] for _ in range(len(ds))]
    ds = ds.add_column("captions", caps, feature=caption_feature)
    if "fold" not in ds.column_names:
        ds = ds.add_column("fold", [0] * len(ds), feature=datasets.Value("int64"))
    if split_name is not None and "split" not in ds.column_names:
        ds = ds.add_column("split", [split_name] * len(ds), feature=datasets.Value("string"))
    return ds


def _imap(ds, fn: Callable, column: str, new_features: dict, remove: str | None = None):
    """Lazy per-row map of an IterableDataset reading only ``column`` (audio is never decoded), features kept known."""
    features = ds.features.copy()
    if remove is not None:
        del features[remove]
    features.update(new_features)
    return ds.map(fn, input_columns=[column], remove_columns=[remove] if remove else None,
                  features=_datasets().Features(features))


def _raw_labels(ds, where: str, column: str = "label") -> list:
    values = _column_values(ds, column)
    bad = next((v for v in values if v is None or isinstance(v, (list, tuple, dict, float))), "ok")
    if bad != "ok":
        raise DatasetLayoutError(f"{where}: label column holds a {type(bad).__name__} value ({bad!r}); expected one "
                                 "class per row (a ClassLabel, a string or an integer)")
    return values


def _label_names(values: Iterable) -> list[str]:
    """Class names for raw labels: sorted integers (as text) when all are integers, else sorted strings."""
    values = set(values)
    if all(isinstance(v, int) for v in values):
        return [str(v) for v in sorted(values)]
    return sorted(str(v) for v in values)


def _normalise_label(ds, iterable: bool, where: str, names: list[str] | None = None):
    """``label`` -> ClassLabel (``names``: the class list shared by all splits, else computed here) + ``label_name``."""
    datasets = _datasets()
    if "label_name" in ds.features:
        ds = ds.remove_columns("label_name")
    feature = ds.features["label"]
    string = {"label_name": datasets.Value("string")}
    if isinstance(feature, datasets.ClassLabel):
        class_names = feature.names
        if iterable:
            return _imap(ds, lambda i: {"label_name": class_names[i]}, "label", string)
        return ds.add_column("label_name", [class_names[i] for i in _column_values(ds, "label")],
                             feature=datasets.Value("string"))
    if iterable:
        # the class list of a stream is unknown until it ends: keep the raw label, name it as text
        return _imap(ds, lambda v: {"label_name": str(v)}, "label", string)
    values = _raw_labels(ds, where)
    names = names if names is not None else _label_names(values)
    index = {n: i for i, n in enumerate(names)}
    ids = [index[str(v)] for v in values]
    ds = ds.remove_columns("label")
    ds = ds.add_column("label", ids, feature=datasets.ClassLabel(names=names))
    return ds.add_column("label_name", [names[i] for i in ids], feature=datasets.Value("string"))


def _normalise_any(ds, **kw):
    datasets = _datasets()
    if isinstance(ds, datasets.DatasetDict):
        # raw (non-ClassLabel) labels get one class list for all splits, so ids agree and splits concatenate
        column = kw.get("label_column") or "label"
        parts = [p for p in ds.values() if column in p.column_names]
        if parts and len(parts) == len(ds) and not isinstance(parts[0].features[column], datasets.ClassLabel):
            values = []
            for name, part in ds.items():
                values += _raw_labels(part, f"dataset split {name!r}", column)
            kw = {**kw, "label_names": _label_names(values)}
    if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        return type(ds)({name: _normalise(part, split_name=name, **kw) for name, part in ds.items()})
    split_name = getattr(ds, "split", None)
    return _normalise(ds, split_name=_split_base(split_name) if split_name is not None else None, **kw)


def _split_base(split) -> str:
    """``"train[:10%]"`` / ``"train+validation"`` -> ``"train"`` / ``"train+validation"``: the name without slicing."""
    return re.sub(r"\[[^\]]*\]", "", str(split))


def load_audiofolder(
    path: str | os.PathLike,
    *,
    split: str | None = None,
    streaming: bool = False,
    label_column: str | None = None,
    caption_column: str | None = None,
    sampling_rate: int | None = None,
    **load_kwargs,
):
    """A ``datasets`` audiofolder: class sub-folders (-> ``label``) and/or a ``metadata.csv`` / ``.jsonl`` with
    ``file_name`` and extra columns (a caption column is picked up as ``caption``/``captions`` or by
    ``caption_column``); ``train/``, ``test/`` sub-folders become splits. Returns a ``DatasetDict`` (or a
    ``Dataset`` for ``split=...``; iterable versions with ``streaming=True``) in the common schema; captions default
    to ``"the sound of <label>"`` when there is a label but no caption column.
    ``load_kwargs`` go to ``datasets.load_dataset`` (e.g. ``cache_dir``, ``drop_labels``).

    Class sub-folders *and* a metadata file: ``datasets`` then drops the folder labels; when the metadata has no label
    column (and ``label_column`` / ``drop_labels=True`` are not given) the label is taken from each file's parent
    folder here, by the rule and with the class order of the folder-only layout (:func:`_folder_classes`).
    """
    folder = _existing_dir(path, "audiofolder")
    ds = _datasets().load_dataset("audiofolder", data_dir=str(folder), split=split, streaming=streaming,
                                  **load_kwargs)
    if label_column is None and not load_kwargs.get("drop_labels"):
        ds = _add_folder_labels(ds, folder, load_kwargs)
    return _normalise_any(ds, label_column=label_column, caption_column=caption_column, sampling_rate=sampling_rate)


def _folder_classes(folder: Path, load_kwargs: dict) -> list[str] | None:
    """The class names of an audiofolder's class sub-folders, as ``datasets`` labels a folder-only layout: the parent
    folder names of all audio files of every split, sorted, when there are at least two of them and every file lies
    at the same depth; None otherwise, and when a file lies in the folder itself or directly in its split folder
    (``train/a.wav``: a split, not a class)."""
    datasets = _datasets()
    kw = {k: load_kwargs[k] for k in ("cache_dir", "data_files") if k in load_kwargs}
    builder = datasets.load_dataset_builder("audiofolder", data_dir=str(folder), **kw)
    root = os.path.normpath(os.path.abspath(folder))
    names, depths = set(), set()
    for split_name, files in (builder.config.data_files or {}).items():
        for f in files:
            if os.path.splitext(str(f))[1].lower() not in builder.EXTENSIONS:
                continue  # metadata.csv / .jsonl
            parent = os.path.dirname(os.path.normpath(os.path.abspath(str(f))))
            if parent == root or os.path.basename(parent) == str(split_name):
                return None
            names.add(os.path.basename(parent))
            depths.add(len(Path(str(f)).parts))
    return sorted(names) if len(names) > 1 and len(depths) == 1 else None


def _add_folder_labels(ds, folder: Path, load_kwargs: dict):
    """Give the splits of a loaded audiofolder the ``label`` of their class sub-folders (``ClassLabel`` of
    :func:`_folder_classes`) where ``datasets`` left none out because of a metadata file; audio is not decoded."""
    datasets = _datasets()
    dict_types = (datasets.DatasetDict, datasets.IterableDatasetDict)
    parts = dict(ds) if isinstance(ds, dict_types) else {None: ds}
    if any(p.features is None or "label" in p.features for p in parts.values()):
        return ds  # labels already there (folder-only layout, or a label column in the metadata)
    names = _folder_classes(folder, load_kwargs)
    if names is None:
        return ds
    index = {n: i for i, n in enumerate(names)}
    label = datasets.ClassLabel(names=names)

    def label_of(path) -> int:
        name = os.path.basename(os.path.dirname(str(path)))
        if name not in index:
            raise DatasetLayoutError(f"audiofolder '{folder}': the file '{path}' is in the folder {name!r}, which is "
                                     f"not one of the class folders {names}")
        return index[name]

    out = {}
    for key, part in parts.items():
        audio = part.features["audio"]
        raw = part.cast_column("audio", datasets.Audio(decode=False))
        if isinstance(part, datasets.IterableDataset):
            raw = _imap(raw, lambda a: {"label": label_of(a["path"])}, "audio", {"label": label})
            out[key] = raw.cast_column("audio", audio)
        else:
            out[key] = part.add_column("label", [label_of(a["path"]) for a in raw["audio"]], feature=label)
    return type(ds)(out) if isinstance(ds, dict_types) else out[None]


def load_hub(
    name_or_path: str | os.PathLike,
    *,
    split: str | None = None,
    streaming: bool = False,
    audio_column: str = "audio",
    label_column: str | None = None,
    caption_column: str | None = None,
    name: str | None = None,
    sampling_rate: int | None = None,
    **load_kwargs,
):
    """Any Hub dataset id or local dataset path, brought to the common schema.

    A folder written by ``save_to_disk`` is opened with ``datasets.load_from_disk``; anything else goes through
    ``datasets.load_dataset(name_or_path, name, split=split, streaming=streaming, **load_kwargs)`` (a local folder
    of data files included). ``audio_column`` is renamed to ``audio`` (and cast to ``Audio``), ``label_column`` to
    ``label`` (default: a column named ``label`` if any; strings or integers become a ``ClassLabel`` whose class list
    is shared by all splits loaded together, except when streaming, where the raw value is kept and ``label_name``
    is its text), ``caption_column`` to ``captions``
    (default: ``captions`` or ``caption`` if present; a string becomes a one-item list). ``fold`` (0) and, for
    named splits, ``split`` are added. Returns what the source gives: a ``DatasetDict`` without ``split``, a
    ``Dataset`` with it, iterable versions when streaming.
    """
    datasets = _datasets()
    target = os.fspath(name_or_path)
    local = Path(target).expanduser()
    kw = dict(audio_column=audio_column, label_column=label_column, caption_column=caption_column,
              sampling_rate=sampling_rate)
    if _is_saved_dataset(local):
        ds = datasets.load_from_disk(str(local))
        if split is not None:
            if not isinstance(ds, datasets.DatasetDict):
                raise DatasetLayoutError(f"saved dataset '{local}' has no splits; do not pass split={split!r}")
            if split not in ds:
                raise DatasetLayoutError(f"saved dataset '{local}' has no split {split!r}; it has {list(ds)}")
            return _normalise_any(ds, **kw)[split]  # normalised together: one class list for every split
        if streaming:
            ds = ds.to_iterable_dataset() if isinstance(ds, datasets.Dataset) else datasets.IterableDatasetDict(
                {k: v.to_iterable_dataset() for k, v in ds.items()})
        return _normalise_any(ds, **kw)
    try:
        ds = datasets.load_dataset(target, name, split=split, streaming=streaming, **load_kwargs)
    except Exception as err:
        err.add_note(f"hf-alm: while loading the dataset {target!r} (name={name!r}, split={split!r}, "
                     f"streaming={streaming}); without network only local paths and cached Hub datasets load")
        raise
    if split is not None and not isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        return _normalise(ds, split_name=_split_base(split), **kw)
    return _normalise_any(ds, **kw)


# --------------------------------------------------------------------------------------------------------------------
# spec parser, cross-validation


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def _call(loader: Callable, args: Sequence[Any], kw: dict[str, Any], spec: str):
    """Call ``loader`` with the keyword options it accepts; drop unset (None) ones, reject the rest by name."""
    params = inspect.signature(loader).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    accepted = {}
    for key, value in kw.items():
        if value is None:
            continue  # unset option: the loader's own default applies
        if key in params or takes_any:
            accepted[key] = value
        elif not ((key == "audio_column" and value == "audio") or (key == "streaming" and value is False)):
            raise ValueError(f"option {key}={value!r} does not apply to the dataset spec {spec!r}")
    return loader(*args, **accepted)


def _split_csv_spec(rest: str) -> tuple[str, str | None]:
    """``CSV[:AUDIO_DIR]``: split after the ``.csv`` part (paths may not end in .csv: then the last ':')."""
    low = rest.lower()
    pos = low.find(".csv:")
    if pos >= 0:
        return rest[: pos + 4], rest[pos + 5 :] or None
    if low.endswith(".csv") or ":" not in rest:
        return rest, None
    csv_part, audio = rest.rsplit(":", 1)
    return csv_part, audio or None


# what each prefix that needs a path expects after its colon, and what that path is
_SPEC_PATHS = {
    "esc10": ("PATH", "the folder of the ESC-10 release"),
    "esc50": ("PATH", "the folder of the ESC-50 release, with meta/esc50.csv and audio/"),
    "fsdd": ("PATH", "the folder of the Free Spoken Digit Dataset, or its recordings/ folder"),
    "audiofolder": ("PATH", "a folder of class sub-folders and/or a metadata.csv"),
    "audiocaps": ("CSV[:AUDIO_DIR]", "an AudioCaps CSV and the folder of its clips"),
    "clotho": ("CSV[:AUDIO_DIR]", "a Clotho captions CSV and the folder of its clips"),
    "hf": ("NAME[:CONFIG]", "a Hub dataset id or a local dataset path"),
}


def check_dataset_spec(spec: str) -> None:
    """Check the form of a ``--dataset`` spec without opening anything (recipes call it right after parsing).

    Raises ValueError for an empty spec and for a known prefix without its path: ``esc10`` alone (which would
    otherwise be looked up as a Hub dataset id) gives "esc10 needs a path: --dataset esc10:PATH (the folder of the
    ESC-10 release)".
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty dataset spec {spec!r}; expected one of: {DATASET_SPEC_HELP}")
    kind, sep, rest = spec.strip().partition(":")
    kind_l = kind.lower()
    if kind_l in _SPEC_PATHS and not rest.strip():
        what, meaning = _SPEC_PATHS[kind_l]
        local = Path(spec.strip()).expanduser()
        hint = (f"; for the local folder '{local}' write --dataset {kind_l}:{local}"
                if not sep and local.exists() else "")
        raise ValueError(f"{kind_l} needs a {'path' if what != 'NAME[:CONFIG]' else 'dataset id'}: "
                         f"--dataset {kind_l}:{what} ({meaning}){hint}")


def load_dataset_spec(spec: str, **kw):
    """Open the dataset named by a recipe's ``--dataset`` string.

    ``synthetic`` / ``synthetic:N`` (``hf_alm.data.synthetic.make_synthetic_dataset(num_per_class=N, **kw)``),
    ``esc10:PATH``, ``esc50:PATH``, ``fsdd:PATH``, ``audiocaps:CSV[:AUDIO_DIR]``, ``clotho:CSV[:AUDIO_DIR]``,
    ``audiofolder:PATH``, ``hf:NAME[:CONFIG]``, or a bare Hub id / local dataset path (:func:`load_hub`).
    Keyword options go to the loader (``sampling_rate``, ``split``, ``streaming``, ``audio_column``, ...); options a
    loader does not take are ignored when unset (None / default) and rejected with a ValueError otherwise.

    Raises:
        ValueError: an empty or unknown spec, a bad ``N``, a known prefix without its path (``esc10`` alone:
        :func:`check_dataset_spec`); FileNotFoundError: a path that does not exist.
    """
    check_dataset_spec(spec)
    spec = spec.strip()
    kind, sep, rest = spec.partition(":")
    kind_l = kind.lower()
    if kind_l == "synthetic":
        from . import synthetic  # written by another module owner; imported only when asked for

        if sep and rest:
            try:
                n = int(rest)
            except ValueError:
                n = -1
            if n < 1:
                raise ValueError(f"bad dataset spec {spec!r}: N in synthetic:N must be a positive integer, got {rest!r}")
            kw = {**kw, "num_per_class": n}  # the N written in the spec wins over a default passed along
        elif sep:
            raise ValueError(f"bad dataset spec {spec!r}: write 'synthetic' or 'synthetic:N'")
        return _call(synthetic.make_synthetic_dataset, (), kw, spec)
    path_loaders = {"esc10": load_esc10, "esc50": load_esc50, "fsdd": load_fsdd, "audiofolder": load_audiofolder}
    if sep and kind_l in path_loaders:
        return _call(path_loaders[kind_l], (rest,), kw, spec)
    if sep and kind_l in ("audiocaps", "clotho"):
        csv_path, audio_dir = _split_csv_spec(rest)
        loader = load_audiocaps if kind_l == "audiocaps" else load_clotho
        return _call(loader, (csv_path, audio_dir), kw, spec)
    if sep and kind_l == "hf":
        name, _, config = rest.partition(":") if not Path(rest).exists() else (rest, "", "")
        if config:
            kw = {"name": config, **kw}
        return _call(load_hub, (name,), kw, spec)
    if Path(spec).expanduser().exists():
        return _call(load_hub, (spec,), kw, spec)
    known = "synthetic, esc10, esc50, fsdd, audiocaps, clotho, audiofolder, hf"
    if sep:
        raise ValueError(f"unknown dataset spec {spec!r}: the prefix {kind!r} is not one of {known}, and no such "
                         f"local path exists. Expected one of: {DATASET_SPEC_HELP}")
    if spec.startswith((".", "/", "~")) or os.sep in spec and not _HUB_ID.match(spec):
        raise FileNotFoundError(f"dataset path not found: '{spec}'")
    if not _HUB_ID.match(spec):
        raise ValueError(f"unknown dataset spec {spec!r}: not a Hub dataset id (owner/name) nor an existing path. "
                         f"Expected one of: {DATASET_SPEC_HELP}")
    return _call(load_hub, (spec,), kw, spec)


def load_labelled_dataset(spec: str, *, need_labels: bool = True):
    """``load_dataset_spec(spec)`` as one map-style ``datasets.Dataset`` (the splits of a ``DatasetDict`` are
    concatenated, keeping their name in a ``split`` column); checks the ``audio`` (and ``label``) columns and that it
    is not empty. The loader of the classification recipes (BEATs pre-training / fine-tuning, tiny edge)."""
    import datasets

    ds = load_dataset_spec(spec)
    if isinstance(ds, datasets.DatasetDict):
        parts = []
        for name, part in ds.items():
            if "split" not in part.column_names:
                part = part.add_column("split", [name] * len(part))
            parts.append(part)
        ds = datasets.concatenate_datasets(parts)
    if not isinstance(ds, datasets.Dataset):
        raise ValueError(f"--dataset {spec!r} gave a {type(ds).__name__}; the recipe needs a map-style dataset "
                         "(streaming datasets are not supported)")
    required = ["audio", "label"] if need_labels else ["audio"]
    missing = [c for c in required if c not in ds.column_names]
    if missing:
        raise ValueError(f"--dataset {spec!r} has no {missing} column(s) (columns: {ds.column_names})"
                         + ("; the recipe needs labelled audio" if need_labels else ""))
    if len(ds) == 0:
        raise ValueError(f"--dataset {spec!r} is empty")
    return ds


def fold_split(dataset, eval_fold: int | str):
    """Cross-validation split: ``(train, eval)`` where eval holds the rows of ``eval_fold`` and train all others.

    An ``int`` selects by the ``fold`` column (ESC: 1..5); a ``str`` by the ``split`` column (e.g. FSDD's ``"test"``).
    Works on a ``Dataset`` (``select``: no audio is decoded) and an ``IterableDataset`` (``filter``).
    """
    datasets = _datasets()
    column = "split" if isinstance(eval_fold, str) else "fold"
    if isinstance(eval_fold, bool) or not isinstance(eval_fold, (int, str)):
        raise ValueError(f"eval_fold must be a fold number or a split name, got {eval_fold!r}")
    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        raise ValueError(f"fold_split needs one Dataset, got a {type(dataset).__name__} with splits {list(dataset)}")
    names = dataset.column_names or list(dataset.features or {})
    if column not in names:
        raise ValueError(f"fold_split({eval_fold!r}) needs a {column!r} column; the dataset has {names}")
    if isinstance(dataset, datasets.IterableDataset):
        return (dataset.filter(lambda v: v != eval_fold, input_columns=[column]),
                dataset.filter(lambda v: v == eval_fold, input_columns=[column]))
    values = _column_values(dataset, column)
    present = sorted(set(values), key=str)
    if eval_fold not in present:
        raise ValueError(f"eval_fold={eval_fold!r} is not in the dataset's {column} values {present}")
    train = [i for i, v in enumerate(values) if v != eval_fold]
    evaluation = [i for i, v in enumerate(values) if v == eval_fold]
    return dataset.select(train), dataset.select(evaluation)


def evaluation_units(ds, choice: str) -> list:
    """Evaluation protocol for ``--eval_fold``: ``auto`` = the ``test`` split when there is one, else
    cross-validation over the ``fold`` column (ESC: 5 folds), else none; ``all`` = every fold; ``none``; a fold
    number; a split name. Returns a list of folds (int) / a split name (str), or ``[None]`` (no evaluation)."""
    choice_l = str(choice).strip().lower()
    folds = sorted({int(v) for v in ds["fold"]} - {0}) if "fold" in ds.column_names else []
    splits = sorted(set(ds["split"])) if "split" in ds.column_names else []
    if choice_l == "auto":
        if "test" in splits:
            return ["test"]
        return folds if len(folds) >= 2 else [None]
    if choice_l == "all":
        if len(folds) < 2:
            raise ValueError(f"--eval_fold all needs a 'fold' column with at least 2 folds; the dataset has folds "
                             f"{folds}")
        return folds
    if choice_l == "none":
        return [None]
    if choice_l.lstrip("-").isdigit():
        if int(choice_l) not in folds:
            raise ValueError(f"--eval_fold {choice}: not one of the dataset's folds {folds}")
        return [int(choice_l)]
    if choice not in splits:
        raise ValueError(f"--eval_fold {choice!r} is neither a fold number, 'auto', 'all', 'none' nor one of the "
                         f"splits {splits}")
    return [choice]


def unit_indices(ds, unit) -> tuple[list[int], list[int]]:
    """``(train, eval)`` row indices for an evaluation unit of :func:`evaluation_units`."""
    if unit is None:
        return list(range(len(ds))), []
    column = "fold" if isinstance(unit, int) else "split"
    values = ds[column]
    return ([i for i, v in enumerate(values) if v != unit], [i for i, v in enumerate(values) if v == unit])
