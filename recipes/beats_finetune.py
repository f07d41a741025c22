#!/usr/bin/env python
"""Fine-tune (or linear-probe) BEATs for audio classification on any dataset of the hf-alm data layer.

    accelerate launch recipes/beats_finetune.py                                    # synthetic set, small random BEATs
    accelerate launch recipes/beats_finetune.py --dataset esc10:../shared/data/esc10 --model_name_or_path BEATS_DIR
    accelerate launch recipes/beats_finetune.py --dataset esc10:../shared/data/esc10 --model_name_or_path \\
        outputs/beats_pretrain/model --linear_probe --eval_fold 1                   # frozen encoder, fold 1 held out
    python recipes/beats_finetune.py --output_dir out --resume_from_checkpoint latest  # continue an interrupted run

What it does:

1. opens ``--dataset`` with ``hf_alm.data.loaders.load_dataset_spec``, decodes every clip once at 16 kHz, keeps its
   loudest ``--max_seconds`` and computes its BEATs fbank once (BeatsFeatureExtractor of the model);
2. evaluation protocol (``--eval_fold``): ``auto`` = the source's ``test`` split if it has one, else k-fold
   cross-validation over its ``fold`` column (ESC-10 / ESC-50 / synthetic: 5 folds), else none; ``all``; ``none``;
   a fold number; a split name;
3. per fold, a fresh ``BeatsForAudioClassification`` from ``--model_name_or_path`` (a converted or pre-trained BEATs
   folder: BeatsModel, BeatsForAudioClassification or BeatsForPreTraining; a head of another size is replaced) or, by
   default, a small random BEATs (``--preset``). Full fine-tuning applies SpecAugment (time / frequency masking) to
   the fbank of every training batch. ``--linear_probe`` freezes the encoder: its pooled embedding of every clip is
   computed once and only the linear head is trained (exactly the model's head: linear-then-mean = mean-then-linear).
   Training runs in the shared loop (hf_alm.training.loop.fit: progress bars, a checkpoint per epoch under
   OUTPUT_DIR/checkpoints/fold_<k>, ``--resume_from_checkpoint latest`` continues an interrupted run);
4. writes each fold's model to OUTPUT_DIR/folds/fold_<k> (loadable with ``AutoModelForAudioClassification`` after
   ``import hf_alm``, and with ``pipeline("audio-classification")``), OUTPUT_DIR/eval_results.json (per-fold and mean
   accuracy), optionally a model trained on every clip in OUTPUT_DIR/model (``--final_model``) and publishes it with
   ``--push_to_hub``. ``hf-alm demo --beats OUTPUT_DIR/model`` (or one fold's folder) tags clips with it.

Every checkpoint and fold_results.json records the run's flags: ``--resume_from_checkpoint latest`` with other flags,
or a new run into an OUTPUT_DIR that holds one, stops before any work (``--overwrite_output_dir`` starts over).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

RECIPE, MODEL_TYPE = "beats_finetune", "hf_alm_beats"
RUN_FOLDERS = ("folds", "model")  # removed with checkpoints/ by --overwrite_output_dir
# flags that change neither what a fold trains nor on what (a fold's training set does not depend on --eval_fold)
NOT_RUN_IDENTITY = ("eval_fold", "final_model", "feature_cache")
PROBLEM_TYPES = {"single": "single_label_classification", "multi": "multi_label_classification",
                 "single_label_classification": "single_label_classification",
                 "multi_label_classification": "multi_label_classification"}


def build_parser() -> argparse.ArgumentParser:
    from hf_alm.data.loaders import DATASET_SPEC_HELP
    from hf_alm.training.beats import BEATS_PRESETS
    from hf_alm.training.loop import RecipeHelpFormatter, add_common_args

    p = argparse.ArgumentParser(description=__doc__, formatter_class=RecipeHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="synthetic", help=f"labelled audio: {DATASET_SPEC_HELP} (default: synthetic)")
    g.add_argument("--eval_fold", default="auto", metavar="auto|all|none|N|SPLIT",
                   help="evaluation protocol: auto (the test split if any, else k-fold cross-validation over the fold "
                        "column), all (k-fold CV), none, one fold number, or a split name (default: auto)")
    g.add_argument("--max_seconds", type=float, default=2.0,
                   help="keep at most this many seconds of each clip (see --crop); 0 keeps whole clips "
                        "(default: %(default)s)")
    g.add_argument("--crop", default="loudest", choices=["loudest", "start"],
                   help="which --max_seconds window to keep: the loudest one or the beginning (default: %(default)s)")
    g.add_argument("--feature_cache", default=None, metavar="DIR",
                   help="folder caching every clip's fbank between runs (keyed by dataset, crop and feature "
                        "settings; default: OUTPUT_DIR/feature_cache; 'none' disables it)")
    g = p.add_argument_group("model")
    g.add_argument("--model_name_or_path", default=None, metavar="PATH",
                   help="BEATs folder to start from (converted with 'hf-alm convert beats', or written by "
                        "recipes/beats_pretrain.py); default: a randomly initialised BEATs of --preset")
    g.add_argument("--preset", default="tiny", choices=sorted(BEATS_PRESETS),
                   help="architecture of the random BEATs used without --model_name_or_path (default: %(default)s)")
    g.add_argument("--linear_probe", action="store_true",
                   help="freeze the encoder and train only the linear head on pooled embeddings computed once per "
                        "clip (no SpecAugment: the encoder input never changes)")
    g.add_argument("--problem_type", default="single", choices=sorted(PROBLEM_TYPES),
                   help="single-label (softmax, cross-entropy) or multi-label (sigmoid, BCE; each clip's label becomes "
                        "a one-hot target, or a multi-hot one from a list-valued label column) (default: single)")
    g = p.add_argument_group("SpecAugment (fine-tuning only)")
    g.add_argument("--time_mask_width", type=int, default=20,
                   help="largest width of a time mask in fbank frames (10 ms each); 0 disables time masking "
                        "(default: %(default)s)")
    g.add_argument("--freq_mask_width", type=int, default=16,
                   help="largest width of a frequency mask in mel bins (of 128); 0 disables frequency masking "
                        "(default: %(default)s)")
    g.add_argument("--num_time_masks", type=int, default=2, help="time masks per clip (default: %(default)s)")
    g.add_argument("--num_freq_masks", type=int, default=2, help="frequency masks per clip (default: %(default)s)")
    g = p.add_argument_group("run")
    g.add_argument("--final_model", action="store_true",
                   help="after evaluation, also train on every clip into OUTPUT_DIR/model (implied by --push_to_hub "
                        "and by --eval_fold none)")
    g.add_argument("--eval_batch_size", type=int, default=32,
                   help="batch size for evaluation and for the linear-probe embeddings (default: %(default)s)")
    g.add_argument("--keep_checkpoints", action="store_true",
                   help="keep every epoch's checkpoint (default: keep only the newest of each fold)")
    add_common_args(p, output_dir="outputs/beats_finetune", num_epochs=10, batch_size=32, learning_rate=1e-3,
                    weight_decay=0.01, warmup_ratio=0.1, num_threads=2,
                    default_text={"num_threads": "2: the fbank and the encoder use both cores of the 2-core machine "
                                                 "the recipe's defaults were tuned on"},
                    outputs="each fold's model (folds/fold_<k>), eval_results.json, the final model (model/, with "
                            "--final_model)", run_folders=RUN_FOLDERS)
    return p


def _check_args(args) -> None:
    for name in ("time_mask_width", "freq_mask_width", "num_time_masks", "num_freq_masks"):
        if getattr(args, name) < 0:
            raise SystemExit(f"--{name} must be >= 0, got {getattr(args, name)}")
    if args.eval_batch_size < 1:
        raise SystemExit(f"--eval_batch_size must be >= 1, got {args.eval_batch_size}")
    if args.max_seconds is not None and args.max_seconds < 0:
        raise SystemExit(f"--max_seconds must be >= 0, got {args.max_seconds}")
    if args.model_name_or_path and not Path(args.model_name_or_path).exists() and "/" not in args.model_name_or_path:
        raise SystemExit(f"--model_name_or_path: no such folder: {args.model_name_or_path}")


# ------------------------------------------------------------------------------------------------ model

def load_feature_extractor(args):
    from hf_alm.modeling.beats import BeatsFeatureExtractor

    if args.model_name_or_path:
        try:
            return BeatsFeatureExtractor.from_pretrained(args.model_name_or_path)
        except (OSError, ValueError):
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(args.model_name_or_path)
            return BeatsFeatureExtractor(feature_size=config.num_mel_bins, padding_mode=config.padding_mode,
                                         fbank_mean=config.fbank_mean, fbank_std=config.fbank_std)
    from hf_alm.training.beats import beats_preset_config

    config = beats_preset_config(args.preset)
    return BeatsFeatureExtractor(feature_size=config.num_mel_bins, padding_mode=config.padding_mode)


def build_model(args, label_names: list[str]):
    """A fresh classifier for ``label_names`` (same initialisation for every fold)."""
    from hf_alm.modeling.beats import BeatsForAudioClassification
    from hf_alm.training.beats import beats_preset_config
    from hf_alm.utils import seed_everything

    labels = dict(num_labels=len(label_names), id2label=dict(enumerate(label_names)),
                  label2id={n: i for i, n in enumerate(label_names)}, problem_type=PROBLEM_TYPES[args.problem_type])
    seed_everything(args.seed)
    if not args.model_name_or_path:
        return BeatsForAudioClassification(beats_preset_config(args.preset, finetuned_model=True, **labels))
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(args.model_name_or_path)
    if getattr(config, "model_type", None) != "hf_alm_beats":
        raise SystemExit(f"--model_name_or_path {args.model_name_or_path!r} is a {config.model_type!r} model, not "
                         "BEATs (model_type 'hf_alm_beats')")
    for key, value in labels.items():
        setattr(config, key, value)
    config.finetuned_model = True
    config.predictor_class = len(label_names)
    return BeatsForAudioClassification.from_pretrained(args.model_name_or_path, config=config,
                                                       ignore_mismatched_sizes=True)


def _targets(ds, num_labels: int, problem_type: str) -> list:
    values = list(ds["label"])
    if problem_type == "single_label_classification":
        bad = [v for v in values if isinstance(v, (list, tuple))]
        if bad:
            raise SystemExit(f"--problem_type single needs one class id per clip; got list labels such as {bad[0]} "
                             "(use --problem_type multi)")
        return [torch.tensor(int(v)) for v in values]
    out = []
    for v in values:
        hot = torch.zeros(num_labels)
        hot[torch.as_tensor(v if isinstance(v, (list, tuple)) else [v], dtype=torch.long)] = 1.0
        out.append(hot)
    return out


@torch.no_grad()
def predict_logits(model, features, batch_size: int) -> torch.Tensor:
    """Logits of every clip (clips batched only with clips of the same length: no padding)."""
    model.eval()
    by_length: dict[int, list[int]] = {}
    for i, f in enumerate(features):
        by_length.setdefault(int(f.shape[0]), []).append(i)
    device = next(model.parameters()).device
    out = [None] * len(features)
    for idx in by_length.values():
        for s in range(0, len(idx), batch_size):
            chunk = idx[s: s + batch_size]
            logits = model(torch.stack([features[i] for i in chunk]).to(device)).logits.float().cpu()
            for row, i in enumerate(chunk):
                out[i] = logits[row]
    return torch.stack(out)


def _accuracy(logits: torch.Tensor, targets) -> float:
    refs = torch.stack([t if t.dim() == 0 else t.argmax() for t in targets])
    return float((logits.argmax(-1) == refs).float().mean())


# ------------------------------------------------------------------------------------------------ one run

def train_one(args, name: str, label_names, features, targets, embeddings, train_idx, eval_idx, out_dir: Path,
              fe, is_main, run: dict) -> dict:
    """Train one fold (or the final model) and write its folder with fold_results.json (metrics and the run
    identity ``run``, which a resumed run must match); returns the metrics."""
    from hf_alm.evaluation.classification import metrics_from_logits
    from hf_alm.training.beats import SpecAugment, classifier_collate
    from hf_alm.training.loop import TrainConfig, fit, make_accelerator
    from hf_alm.utils import atomic_directory, atomic_write_text

    model = build_model(args, label_names)
    cfg = TrainConfig.from_args(args, run=run)
    accelerator = make_accelerator(cfg)
    stage_dir = Path(args.output_dir) / "checkpoints" / name

    def prune(epoch, _metrics):
        if not args.keep_checkpoints and accelerator.is_main_process:
            for old in stage_dir.glob("epoch_*"):
                if old.name != f"epoch_{epoch}":
                    shutil.rmtree(old, ignore_errors=True)

    eval_targets = [targets[i] for i in eval_idx]
    if args.linear_probe:
        head = model.classifier
        emb_eval = embeddings[eval_idx] if eval_idx else None

        def collate(indices):
            return {"embeddings": embeddings[indices], "labels": torch.stack([targets[i] for i in indices])}

        def compute_loss(m, batch):
            return model.compute_loss(m(batch["embeddings"]), batch["labels"])

        def eval_fn(m):
            return {"eval_accuracy": _accuracy(m(emb_eval), eval_targets)} if eval_idx else {}

        trained = head
    else:
        spec = SpecAugment(args.time_mask_width, args.freq_mask_width, args.num_time_masks, args.num_freq_masks)
        collate = classifier_collate(features, targets, spec)

        def compute_loss(m, batch):
            return m(**batch).loss

        eval_feats = [features[i] for i in eval_idx]

        def eval_fn(m):
            return ({"eval_accuracy": _accuracy(predict_logits(m, eval_feats, args.eval_batch_size), eval_targets)}
                    if eval_idx else {})

        trained = model
    started = time.time()
    result = fit(trained, train_idx, collate_fn=collate, compute_loss=compute_loss, config=cfg,
                 accelerator=accelerator, stage=name, eval_fn=eval_fn, on_epoch_end=prune)
    if args.linear_probe:
        model.classifier = result.model
    else:
        model = result.model
    model.eval()
    metrics = {"num_train_clips": len(train_idx), "num_eval_clips": len(eval_idx),
               "train_seconds": round(time.time() - started, 1), "skipped_training": result.skipped,
               "epoch_metrics": result.epoch_metrics}
    if eval_idx:
        logits = predict_logits(model, [features[i] for i in eval_idx], args.eval_batch_size)
        refs = [int(t) if t.dim() == 0 else int(t.argmax()) for t in eval_targets]
        report = metrics_from_logits(logits, refs, label_names=label_names)
        metrics.update({k: report[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")})
        metrics["confusion_matrix"] = report["confusion_matrix"]
    if is_main:
        with atomic_directory(out_dir) as tmp:
            model.save_pretrained(tmp)
            fe.save_pretrained(tmp)
            atomic_write_text(tmp / "fold_results.json", json.dumps({**metrics, "run": run}, indent=2))
    accelerator.wait_for_everyone()
    return metrics


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _check_args(args)
    from hf_alm.training.loop import TrainConfig, make_accelerator, prepare_run

    run = prepare_run(args, recipe=RECIPE, model_type=MODEL_TYPE, ignore=NOT_RUN_IDENTITY, run_folders=RUN_FOLDERS)
    import hf_alm  # noqa: F401  (registers the Auto classes)
    from hf_alm.training.beats import (cached_clips, evaluation_units, load_labelled_dataset, pooled_embeddings,
                                       unit_indices)
    from hf_alm.utils import atomic_write_text

    output_dir = Path(args.output_dir)
    accelerator = make_accelerator(TrainConfig.from_args(args, run=run))
    is_main = accelerator.is_main_process
    ds = load_labelled_dataset(args.dataset)
    feature = ds.features["label"]
    label_names = (list(feature.names) if hasattr(feature, "names") else
                   list(getattr(getattr(feature, "feature", None), "names", None) or
                        [str(i) for i in range(1 + max(max(v) if isinstance(v, list) else v for v in ds["label"]))]))
    problem_type = PROBLEM_TYPES[args.problem_type]
    targets = _targets(ds, len(label_names), problem_type)
    units = evaluation_units(ds, args.eval_fold)
    fe = load_feature_extractor(args)
    cache = None if (args.feature_cache or "").lower() == "none" else (
        args.feature_cache or output_dir / "feature_cache")
    features = cached_clips(cache, ds, fe, dataset_spec=args.dataset, max_seconds=args.max_seconds or None,
                            crop=args.crop, progress=accelerator.is_local_main_process, is_main=is_main,
                            wait=accelerator.wait_for_everyone)
    embeddings = None
    if args.linear_probe:  # the frozen encoder is the same for every fold: embed every clip once
        encoder = build_model(args, label_names).beats
        embeddings = pooled_embeddings(encoder, features, batch_size=args.eval_batch_size,
                                       progress=accelerator.is_local_main_process)
        del encoder
    accelerator.print(f"{len(ds)} clips, {len(label_names)} classes, evaluation: "
                      f"{units if units != [None] else 'none'}, "
                      f"{'linear probe' if args.linear_probe else 'fine-tuning'} of "
                      f"{args.model_name_or_path or 'a random ' + args.preset + ' BEATs'}")

    per_unit = []
    for unit in units:
        if unit is None:
            continue
        train_idx, eval_idx = unit_indices(ds, unit)
        name = f"fold_{unit}" if isinstance(unit, int) else f"split_{unit}"
        done = output_dir / "folds" / name / "fold_results.json"
        if done.is_file() and args.resume_from_checkpoint:  # prepare_run checked that it belongs to this run
            metrics = json.loads(done.read_text())
            metrics.pop("run", None)
            accelerator.print(f"[{name}] already finished (resume): accuracy {metrics.get('accuracy')}")
        else:
            metrics = train_one(args, name, label_names, features, targets, embeddings, train_idx, eval_idx,
                                output_dir / "folds" / name, fe, is_main, run)
        accelerator.print(f"[{name}] accuracy={metrics.get('accuracy', float('nan')):.4f} "
                          f"({metrics['num_eval_clips']} clips)")
        per_unit.append({"eval": unit, **metrics})

    final_dir = output_dir / "model"
    if args.final_model or args.push_to_hub or units == [None]:
        train_one(args, "final", label_names, features, targets, embeddings, list(range(len(ds))), [], final_dir, fe,
                  is_main, run)

    accuracies = [u["accuracy"] for u in per_unit if "accuracy" in u]
    results = {
        "dataset": args.dataset,
        "model_name_or_path": args.model_name_or_path,
        "preset": None if args.model_name_or_path else args.preset,
        "linear_probe": bool(args.linear_probe),
        "problem_type": problem_type,
        "num_labels": len(label_names),
        "num_clips": len(ds),
        "max_seconds": args.max_seconds,
        "protocol": "cross_validation" if len(per_unit) > 1 else "held_out" if per_unit else "none",
        "eval_units": [u["eval"] for u in per_unit],
        "per_fold_accuracy": accuracies,
        "spec_augment": None if args.linear_probe else {
            "time_mask_width": args.time_mask_width, "freq_mask_width": args.freq_mask_width,
            "num_time_masks": args.num_time_masks, "num_freq_masks": args.num_freq_masks},
        "training": {k: v for k, v in dataclasses.asdict(TrainConfig.from_args(args)).items()
                     if isinstance(v, (int, float, str, bool)) or v is None},
        "per_fold": per_unit,
    }
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        values = [u[key] for u in per_unit if key in u]
        if values:
            results[key] = float(np.mean(values))
            results[f"{key}_stdev"] = float(np.std(values))
    if is_main:
        atomic_write_text(output_dir / "eval_results.json", json.dumps(results, indent=2))
        if final_dir.is_dir():
            atomic_write_text(final_dir / "eval_results.json", json.dumps(results, indent=2))
        if accuracies:
            accelerator.print("per-fold accuracy: " + ", ".join(f"{a:.4f}" for a in accuracies)
                              + f"; mean {np.mean(accuracies):.4f}")
    accelerator.wait_for_everyone()

    if args.push_to_hub and is_main:
        from hf_alm.hub import publish_from_args

        publish_from_args(args, final_dir, eval_results=output_dir / "eval_results.json")
    if accelerator.log_with:
        accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
