"""``hf-alm tag MODEL AUDIO OUT.{csv,json}``: tag a long recording window by window with a BEATs classifier.

Sliding-window inference (:meth:`BeatsForAudioClassification.predict_long`): windows of the training length with
overlap, memory linear in the duration (an hour of audio works on a laptop), a tqdm progress bar over the windows.
The output lists each window's start / end time and its top labels with scores (sigmoid for multi-label heads,
softmax otherwise), plus the clip-level labels pooled over the windows; it is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

FORMATS = ("csv", "json")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "tag",
        help="tag a long audio file window by window with a BEATs classifier (CSV / JSON)",
        description="Tag a long recording with a BEATs audio classifier (a converted or fine-tuned folder): windows "
        "of --window_seconds every --hop_seconds, each window's top labels with scores, and the clip's labels pooled "
        "over the windows. Memory grows linearly with the duration. OUT ends in .csv (one row per window and label) "
        "or .json (windows, clip labels and settings); it is written atomically.",
    )
    parser.add_argument("model", help="a BEATs audio-classification folder (config.json, model.safetensors, "
                        "preprocessor_config.json), e.g. the output of 'hf-alm convert beats'")
    parser.add_argument("audio", help="the audio file (wav, flac, ogg, mp3; any rate and channel count: it is "
                        "down-mixed and resampled to 16 kHz)")
    parser.add_argument("out", help="output file, .csv or .json")
    parser.add_argument("--window_seconds", type=float, default=10.0,
                        help="window length in seconds, the model's training clip length (default: %(default)s)")
    parser.add_argument("--hop_seconds", type=float, default=5.0,
                        help="step between windows in seconds, at most --window_seconds (default: %(default)s)")
    parser.add_argument("--top_k", type=int, default=5, help="labels listed per window (default: %(default)s)")
    parser.add_argument("--pooling", choices=["mean", "max"], default="mean",
                        help="how the clip's labels pool the window logits (default: %(default)s)")
    parser.add_argument("--batch_size", type=int, default=4, help="windows per forward pass (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    parser.add_argument("--no_progress", action="store_true", help="do not show the progress bar")
    parser.set_defaults(func=_run)


def _scores(logits, config):
    """Logits -> scores in [0, 1]: sigmoid for multi-label heads, softmax for single-label ones."""
    if config.problem_type == "multi_label_classification" or config.num_labels == 1:
        return logits.sigmoid()
    return logits.softmax(-1)


def _top(scores, id2label, k):
    values, ids = scores.topk(min(k, scores.shape[-1]))
    return [{"label": id2label[int(i)], "score": round(float(v), 6)} for v, i in zip(values, ids)]


def tag(model_dir, audio_path, *, window_seconds: float = 10.0, hop_seconds: float = 5.0, top_k: int = 5,
        pooling: str = "mean", batch_size: int = 4, device: str = "cpu", progress: bool = True) -> dict:
    """Tag ``audio_path`` with the BEATs classifier in ``model_dir``; returns the JSON-ready result."""
    import hf_alm  # noqa: F401  (registers the Auto classes)
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

    from hf_alm.data.audio import load_audio
    from hf_alm.modeling.beats import BeatsForAudioClassification
    from hf_alm.utils import check_weight_files

    if top_k < 1:
        raise ValueError(f"--top_k must be >= 1, got {top_k}")
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a model folder (no config.json)")
    config = AutoConfig.from_pretrained(model_dir)
    if config.model_type != "hf_alm_beats" or not any(a.endswith("ForAudioClassification")
                                                      for a in (config.architectures or [])):
        raise ValueError(f"{model_dir} is a {config.model_type!r} model with architectures {config.architectures}; "
                         f"'hf-alm tag' needs a BEATs audio classifier (BeatsForAudioClassification)")
    check_weight_files(model_dir)
    model = AutoModelForAudioClassification.from_pretrained(model_dir).to(device).eval()
    assert isinstance(model, BeatsForAudioClassification)
    fe = AutoFeatureExtractor.from_pretrained(model_dir) if (model_dir / "preprocessor_config.json").is_file() else None
    rate = fe.sampling_rate if fe is not None else 16000
    wave = load_audio(str(audio_path), rate, max_seconds=None)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=None, unit="window", desc=f"tagging {Path(audio_path).name}")

    def update(done, total):
        bar.total = total
        bar.update(done - bar.n)

    try:
        out = model.predict_long(wave, fe, sampling_rate=rate, window_seconds=window_seconds, hop_seconds=hop_seconds,
                                 batch_size=batch_size, pooling=pooling, output_frame_logits=False,
                                 progress=update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
    scores = _scores(out.window_logits, model.config)
    windows = [{"start_s": round(float(t[0]), 3), "end_s": round(float(t[1]), 3), "labels": _top(s, id2label, top_k)}
               for t, s in zip(out.window_times, scores)]
    return {
        "model": str(model_dir), "audio": str(audio_path), "duration_s": round(wave.numel() / rate, 3),
        "window_seconds": window_seconds, "hop_seconds": hop_seconds, "pooling": pooling,
        "clip_labels": _top(_scores(out.logits, model.config), id2label, top_k), "windows": windows,
    }


def to_csv(result: dict) -> str:
    """One row per (window, label): start_s, end_s, rank, label, score."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["start_s", "end_s", "rank", "label", "score"])
    for window in result["windows"]:
        for rank, item in enumerate(window["labels"], 1):
            writer.writerow([f"{window['start_s']:.3f}", f"{window['end_s']:.3f}", rank, item["label"],
                             f"{item['score']:.6f}"])
    return buf.getvalue()


def _run(args) -> int:
    from hf_alm.utils import atomic_write_text

    out = Path(args.out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"OUT must end in .csv or .json, got {str(out)!r}")
    if out.is_dir():
        raise ValueError(f"OUT {str(out)!r} is a folder; give a .csv or .json file name")
    if not Path(args.audio).is_file():
        raise FileNotFoundError(f"audio file not found: {args.audio}")
    result = tag(args.model, args.audio, window_seconds=args.window_seconds, hop_seconds=args.hop_seconds,
                 top_k=args.top_k, pooling=args.pooling, batch_size=args.batch_size, device=args.device,
                 progress=not args.no_progress)
    text = to_csv(result) if fmt == "csv" else json.dumps(result, indent=2) + "\n"
    atomic_write_text(out, text)
    print(f"tagged {len(result['windows'])} windows of {args.audio} ({result['duration_s']} s) -> {out}")
    return 0
