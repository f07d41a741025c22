"""``hf-alm eval TASK MODEL --dataset SPEC``: ZSTE, classification or retrieval on any dataset the data layer loads."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TASKS = ("zste", "classification", "retrieval")


def add_parser(subparsers) -> None:
    from hf_alm.data.loaders import DATASET_SPEC_HELP

    parser = subparsers.add_parser(
        "eval",
        help="evaluate a model: ZSTE-style temporal tasks, classification, audio-text retrieval",
        description="Evaluate a model folder or Hub id on a dataset. zste: build temporal compositions (A then B, "
        "B then A, A while B) from a labelled single-event dataset and run the ZSTE-style tasks (order, relation, "
        "both events, zero-shot classification, retrieval R@1/5/10) with any model that has get_audio_features / "
        "get_text_features. classification: zero-shot ('This is a sound of X.') for a dual encoder, or the "
        "classifier head of an audio-classification model (its id2label names are matched to the dataset's "
        "classes). retrieval: R@1/5/10 between clips and their captions, one text query per (clip, caption) as in "
        "the AudioCaps / Clotho protocol. Ties count as the expected value of a random tie-break. Clips longer than "
        "the feature extractor's max length are cut to their first max_length samples: there is no CLAP 'fusion' of "
        "several crops, so a fused LAION-CLAP checkpoint (e.g. laion/clap-htsat-fused) on clips longer than its 10 s "
        "window will not reproduce LAION-CLAP's published numbers.",
    )
    parser.add_argument("task", choices=TASKS, help="what to evaluate")
    parser.add_argument("model", help="model folder (save_pretrained / recipe output) or Hub id, with its processor")
    parser.add_argument("--dataset", required=True, help=f"evaluation data: {DATASET_SPEC_HELP}")
    parser.add_argument("--split", default=None, help="split of a dataset with several splits (default: all)")
    parser.add_argument("--folds", default=None,
                        help="comma-separated folds to evaluate on (e.g. '5' for ESC's usual held-out fold; default: "
                             "every fold)")
    parser.add_argument("--audio_column", default=None, help="audio column of a Hub / local dataset")
    parser.add_argument("--label_column", default=None, help="label column of a Hub / local dataset")
    parser.add_argument("--caption_column", default=None, help="caption column of a Hub / local dataset")
    parser.add_argument("--num_pairs", type=int, default=150,
                        help="zste: event pairs to compose, each giving A->B, B->A and A+B clips "
                             "(default: %(default)s)")
    parser.add_argument("--max_seconds", type=float, default=None,
                        help="zste: longest composed clip (default: the feature extractor's max_length_s)")
    parser.add_argument("--num_distractors", type=int, default=4,
                        help="zste: wrong captions per both-events item (default: %(default)s)")
    parser.add_argument("--template", default="This is a sound of {label}.",
                        help="zero-shot prompt ({label} is the class phrase) (default: '%(default)s')")
    parser.add_argument("--batch_size", type=int, default=32, help="clips per forward pass (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the compositions and distractors (default: %(default)s)")
    parser.add_argument("--output", default=None,
                        help="write the metrics to this JSON file (atomically; default: only print them)")
    parser.add_argument("--trust_remote_code", action="store_true",
                        help="allow model code from the model folder / Hub repo (needed for hf-alm models without "
                             "`import hf_alm`; not needed here)")
    parser.set_defaults(func=run)


def _load_data(args, sampling_rate: int | None):
    import datasets

    from hf_alm.data.loaders import load_dataset_spec

    kw = {}
    for name in ("split", "audio_column", "label_column", "caption_column"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    if args.dataset.split(":")[0].lower() == "synthetic" and sampling_rate:
        kw["sampling_rate"] = sampling_rate
    ds = load_dataset_spec(args.dataset, **kw)
    if isinstance(ds, datasets.DatasetDict):
        ds = datasets.concatenate_datasets([ds[k] for k in ds])
    if not isinstance(ds, datasets.Dataset):
        raise ValueError(f"--dataset {args.dataset}: evaluation needs a map-style dataset, got {type(ds).__name__}")
    if args.folds:
        try:
            folds = {int(f) for f in str(args.folds).split(",") if f.strip()}
        except ValueError:
            raise ValueError(f"--folds must be comma-separated integers, got {args.folds!r}") from None
        if "fold" not in ds.column_names:
            raise ValueError(f"--folds {args.folds}: the dataset has no 'fold' column ({ds.column_names})")
        ds = ds.filter(lambda f: f in folds, input_columns="fold")
        if len(ds) == 0:
            raise ValueError(f"--folds {args.folds}: no rows left (the dataset's folds are "
                             f"{sorted(set(load_dataset_spec(args.dataset, **kw)['fold']))})")
    return ds


def _label_names(ds) -> list[str]:
    feature = ds.features.get("label")
    if feature is not None and hasattr(feature, "names"):
        return list(feature.names)
    if "label_name" in ds.column_names:
        return sorted(set(ds["label_name"]))
    raise ValueError(f"this task needs class labels: the dataset has no 'label' ClassLabel / 'label_name' column "
                     f"({ds.column_names})")


def _check_model(model: str) -> None:
    """FileNotFoundError naming ``model`` when it is meant as a local folder (it exists, or looks like a path: starts
    with ``/``, ``.`` or ``~``, or has more than one ``/``) and is not a model folder; Hub ids pass."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            inside = sorted({p.parent for pattern in ("*/config.json", "folds/*/config.json")
                             for p in path.glob(pattern)})
            hint = f"; model folders inside it: {', '.join(map(str, inside))}" if inside else ""
            raise FileNotFoundError(f"{model} is not a model folder (no config.json){hint}")
        from hf_alm.utils import check_weight_files

        check_weight_files(path)  # an unsafe .bin / truncated .safetensors: one CheckpointError naming the file
        return
    if path.exists():
        raise FileNotFoundError(f"{model} is a file, not a model folder")
    if model.startswith(("/", ".", "~")) or model.count("/") > 1 or (os.sep != "/" and os.sep in model):
        raise FileNotFoundError(f"model folder not found: {model}")


def run(args) -> int:
    from hf_alm.data.loaders import check_dataset_spec

    check_dataset_spec(args.dataset)  # before loading the model: "esc10" alone is not a Hub id
    _check_model(args.model)
    import hf_alm  # noqa: F401  (Auto registration)
    from transformers import AutoModel, AutoProcessor

    from hf_alm.evaluation.zste import ZsteTemplates, evaluate_zste, format_zste_table

    try:
        processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    except OSError as err:
        if Path(args.model).expanduser().exists():
            raise
        raise RuntimeError(f"model not found: {args.model!r} is not a local folder, and loading it as a Hub id failed: "
                           f"{err}") from None
    fe = getattr(processor, "feature_extractor", processor)
    sampling_rate = getattr(fe, "sampling_rate", None)
    dual = args.task != "classification"
    if args.task == "classification":
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
        dual = not getattr(config, "num_labels", None) or "ForAudioClassification" not in " ".join(
            getattr(config, "architectures", None) or [])
    if dual:
        model = AutoModel.from_pretrained(args.model, trust_remote_code=args.trust_remote_code).eval()
        for name in ("get_audio_features", "get_text_features"):
            if not hasattr(model, name):
                raise ValueError(f"{args.task} needs a dual encoder with {name}; {type(model).__name__} has none")
    ds = _load_data(args, sampling_rate)
    templates = ZsteTemplates(zero_shot=args.template)
    results: dict
    if args.task == "zste":
        from hf_alm.data.compositions import make_compositions

        max_seconds = args.max_seconds or getattr(fe, "max_length_s", None)
        comps = make_compositions(ds, num_pairs=args.num_pairs, sampling_rate=sampling_rate, seed=args.seed,
                                  max_seconds=max_seconds)
        results = evaluate_zste(model, processor, {"compositions": comps, "singles": ds}, batch_size=args.batch_size,
                                sampling_rate=sampling_rate, templates=templates, class_names=_label_names(ds),
                                num_distractors=args.num_distractors, seed=args.seed, progress=True)
        print(format_zste_table({args.model: results}))
    elif args.task == "classification":
        results = _classification(args, ds, processor, model if dual else None, templates, sampling_rate)
        print(json.dumps({k: v for k, v in results.items() if not isinstance(v, (list, dict))}, indent=2))
    else:
        results = _retrieval(args, ds, model, processor, sampling_rate)
        print(format_zste_table({args.model: results}, metrics=[k for k in results if "@" in k],
                                title="audio-text retrieval (recall in %)"))
    if args.output:
        from hf_alm.utils import atomic_write_text

        payload = {"model": args.model, "dataset": args.dataset, "task": args.task, args.task: results}
        atomic_write_text(args.output, json.dumps(payload, indent=2, default=float) + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _classification(args, ds, processor, model, templates, sampling_rate) -> dict:
    import numpy as np

    from hf_alm.evaluation.classification import metrics_from_logits, predict_logits
    from hf_alm.evaluation.retrieval import audio_rows, embed_audio, embed_texts, load_clip

    names = _label_names(ds)
    labels = ds["label"] if "label" in ds.column_names else [names.index(n) for n in ds["label_name"]]
    clips = [load_clip(a, sampling_rate) for a in audio_rows(ds)]
    if model is None:
        from transformers import AutoModelForAudioClassification

        clf = AutoModelForAudioClassification.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
        logits = predict_logits(clf, processor, clips, sampling_rate=sampling_rate, batch_size=args.batch_size)
        columns = _classifier_columns(clf.config.id2label, logits.shape[1], names)
        # column j of the reordered logits scores the dataset's class j: predictions and references share one space
        return metrics_from_logits(logits[:, columns], labels, label_names=names)
    prompts = [templates.zero_shot.format(label=templates.phrase(n)) for n in names]
    audio = embed_audio(model, processor, clips, sampling_rate=sampling_rate, batch_size=args.batch_size)
    text = embed_texts(model, processor, prompts)
    out = metrics_from_logits(audio.double() @ text.double().t(), np.asarray(labels), label_names=names)
    out["prompts"] = prompts
    return out


def _classifier_columns(id2label, num_outputs: int, names: list[str]) -> list[int]:
    """For each dataset class name, the classifier output (``config.id2label``) of that name; ``ValueError`` listing
    the differences when the model's label set is not exactly the dataset's (no partial mapping)."""
    model_names = {}
    for key, name in (id2label or {}).items():
        model_names[int(key)] = str(name)
    if sorted(model_names) != list(range(num_outputs)):
        raise ValueError(f"the classifier has {num_outputs} outputs but its config.id2label has ids "
                         f"{sorted(model_names)}; cannot name its predictions")
    by_name: dict[str, int] = {}
    for i in range(num_outputs):
        if model_names[i] in by_name:
            raise ValueError(f"the classifier's config.id2label names {model_names[i]!r} twice (ids "
                             f"{by_name[model_names[i]]} and {i}); cannot match it to the dataset's classes")
        by_name[model_names[i]] = i
    missing = [n for n in names if n not in by_name]
    extra = [n for n in by_name if n not in set(names)]
    if missing or extra:
        raise ValueError(f"the classifier's labels (config.id2label, {num_outputs}) are not the dataset's classes "
                         f"({len(names)}): dataset classes the model lacks: {missing}; model labels not in the "
                         f"dataset: {extra}")
    return [by_name[n] for n in names]


def _retrieval(args, ds, model, processor, sampling_rate) -> dict:
    from hf_alm.evaluation.retrieval import audio_rows, embed_audio, embed_texts, load_clip, retrieval_metrics

    if "captions" not in ds.column_names:
        raise ValueError(f"retrieval needs a 'captions' column (a list of captions per clip); got {ds.column_names}")
    captions = [list(c or []) for c in ds["captions"]]
    keep = [i for i, c in enumerate(captions) if c]
    if not keep:
        raise ValueError("retrieval: no clip of the dataset has a caption")
    # one text query per (clip, caption), as LAION-CLAP / open_clip score AudioCaps and Clotho: a caption string that
    # several clips share is several queries, each with its own clip as the one correct answer. Each distinct string
    # is embedded once, so the copies' scores tie exactly.
    columns = [c for i in keep for c in captions[i]]
    audio_texts, start = [], 0
    for i in keep:
        audio_texts.append(list(range(start, start + len(captions[i]))))
        start += len(captions[i])
    uniq = sorted(set(columns))
    index = {t: k for k, t in enumerate(uniq)}
    audio_col = audio_rows(ds)
    clips = [load_clip(audio_col[i], sampling_rate) for i in keep]
    audio = embed_audio(model, processor, clips, sampling_rate=sampling_rate, batch_size=args.batch_size)
    text = embed_texts(model, processor, uniq)[[index[c] for c in columns]]
    out = retrieval_metrics(audio, text, audio_texts)
    out.update({"num_audio": len(keep), "num_texts": len(columns), "num_distinct_texts": len(uniq)})
    return out
