#!/usr/bin/env python
"""Train the tiny edge transformer (~6k parameters) for sound classification, with cross-validation and export.

    accelerate launch recipes/tiny_edge.py                                  # embedded synthetic set, 5-fold CV
    accelerate launch recipes/tiny_edge.py --dataset esc10:../shared/data/esc10 --preset tiny --export_onnx
    accelerate launch recipes/tiny_edge.py --dataset fsdd:../shared/data/fsdd --preset small   # FSDD train/test

What it does:

1. opens ``--dataset`` with ``hf_alm.data.loaders.load_dataset_spec`` (any source of the data layer) and decodes every
   clip once with ``hf_alm.data.audio.load_audio`` at 16 kHz;
2. computes the log-mel features of every clip once, plus ``--augment_views`` augmented copies made with
   audiomentations (added noise, time shift, gain, pitch shift: ``hf_alm.training.augment``), and caches them in
   ``OUTPUT_DIR/feature_cache/`` (reused by later runs and by resume);
3. evaluation protocol (``--eval_fold``): ``auto`` = the source's ``test`` split when it has one (FSDD), else
   k-fold cross-validation over its ``fold`` column (ESC-10/ESC-50: 5 folds; synthetic: 5), else no evaluation;
   ``all`` = k-fold CV; a number = that fold only; a name = that split only; ``none``;
4. per fold: feature normalisation (mean/std) from the training clips only, training with the shared loop
   (``hf_alm.training.loop.fit``: checkpoints per epoch under ``OUTPUT_DIR/checkpoints/fold_<k>``, resume with
   ``--resume_from_checkpoint latest``), accuracy on the held-out fold, the fold model in ``OUTPUT_DIR/folds/fold_<k>``
   and, with ``--export_onnx``, its ONNX fp32 / int8 export (calibrated on that fold's training clips) and their
   onnxruntime accuracies on the held-out fold;
5. a final model trained on every clip (``--final_model``, default on) in ``OUTPUT_DIR/model`` (model, feature
   extractor, ``calibration_features.npz`` for ``hf-alm export tiny``), ``OUTPUT_DIR/eval_results.json``, and with
   ``--push_to_hub`` publication through ``hf_alm.hub.publish``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

SAMPLING_RATE = 16000
RECIPE, MODEL_TYPE = "tiny_edge", "tiny_edge_transformer"
RUN_FOLDERS = ("folds", "model", "onnx")  # removed with checkpoints/ by --overwrite_output_dir
# flags that change neither what a fold trains nor on what (a fold's training set does not depend on --eval_fold)
NOT_RUN_IDENTITY = ("eval_fold", "final_model", "export_onnx", "onnx_only", "calibration_clips")


def build_parser() -> argparse.ArgumentParser:
    from hf_alm.data.loaders import DATASET_SPEC_HELP
    from hf_alm.training.loop import RecipeHelpFormatter, add_common_args

    p = argparse.ArgumentParser(description=__doc__, formatter_class=RecipeHelpFormatter)
    g = p.add_argument_group("tiny edge transformer")
    g.add_argument("--dataset", default="synthetic", help=f"training data: {DATASET_SPEC_HELP} (default: synthetic)")
    g.add_argument("--preset", default="tiny", choices=["tiny", "small"],
                   help="model size: tiny (~6.2k parameters with 10 classes) or small (~15.6k) (default: tiny)")
    g.add_argument("--pooling", default="mean", choices=["mean", "cls"],
                   help="sequence pooling before the classifier (default: mean)")
    g.add_argument("--eval_fold", default="auto", metavar="auto|all|none|N|SPLIT",
                   help="evaluation protocol: auto (test split if any, else k-fold CV over the fold column), all "
                        "(k-fold CV), none, a fold number, or a split name (default: auto)")
    g.add_argument("--augment", default="noise,shift,gain,pitch",
                   help="comma-separated audiomentations chain for the augmented views: any of noise, shift, gain, "
                        "pitch; 'none' disables augmentation (default: noise,shift,gain,pitch)")
    g.add_argument("--augment_views", type=int, default=4,
                   help="augmented copies of each training clip, computed once and cached; one epoch visits the "
                        "clean clip and every copy (default: 4)")
    g.add_argument("--max_seconds", type=float, default=None,
                   help="cut clips to their first N seconds (default: the model's frame limit, 6.1 s)")
    g.add_argument("--final_model", default=True, action=argparse.BooleanOptionalAction,
                   help="after evaluation, train the released model on every clip into OUTPUT_DIR/model "
                        "(default: on)")
    g.add_argument("--export_onnx", action="store_true",
                   help="export each fold model to ONNX fp32 + int8 (calibrated on its training clips) and report "
                        "their onnxruntime accuracies, and export the final model to OUTPUT_DIR/onnx")
    g.add_argument("--onnx_only", action="store_true",
                   help="train nothing: re-export the finished fold models (and OUTPUT_DIR/model) of an earlier run "
                        "to ONNX and re-measure their onnxruntime accuracies, e.g. after changing export settings")
    g.add_argument("--calibration_clips", type=int, default=128,
                   help="training clips used to calibrate the int8 model (default: 128)")
    g.add_argument("--keep_checkpoints", action="store_true",
                   help="keep every epoch's checkpoint (default: keep only the newest of each fold)")
    add_common_args(p, output_dir="outputs/tiny_edge", num_epochs=30, batch_size=32, learning_rate=3e-3,
                    weight_decay=0.01, warmup_ratio=0.05, num_threads=1,
                    default_text={"num_threads": "1: a ~6k-parameter model trains fastest on one thread (starting "
                                                 "more costs more than they save)"},
                    outputs="each fold's model (folds/fold_<k>), the final model (model/), onnx/ (with "
                            "--export_onnx), eval_results.json", run_folders=RUN_FOLDERS)
    return p


# ------------------------------------------------------------------------------------------------ data and features

def _cache_key(args, fe, n_rows: int) -> str:
    payload = json.dumps({"dataset": args.dataset, "n": n_rows, "fe": fe.to_dict(), "augment": args.augment,
                          "views": args.augment_views, "seed": args.seed, "max_seconds": args.max_seconds},
                         sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


def compute_features(args, ds, fe, accelerator) -> list[list[np.ndarray]]:
    """``feats[i][v]``: un-normalised log-mel of clip ``i``, view ``v`` (0 = clean, 1.. = augmented); cached."""
    from tqdm.auto import tqdm

    from hf_alm.data.audio import load_audio
    from hf_alm.training.augment import WaveformAugmenter

    views = args.augment_views if args.augment.strip().lower() != "none" else 0
    cache = Path(args.output_dir) / "feature_cache" / f"features_{_cache_key(args, fe, len(ds))}.npz"
    if not cache.is_file() and accelerator.is_main_process:
        augmenter = WaveformAugmenter.from_spec(args.augment) if views else None
        max_samples = int(args.max_seconds * SAMPLING_RATE) if args.max_seconds else (
            (fe.max_frames - 1) * fe.hop_length + fe.n_fft)
        arrays = {}
        audio_column = ds.select_columns(["audio"])
        for i in tqdm(range(len(ds)), desc="features", disable=not accelerator.is_local_main_process):
            wave = load_audio(audio_column[i]["audio"], SAMPLING_RATE).numpy()[:max_samples]
            arrays[f"c{i}_v0"] = fe.log_mel(wave)
            for v in range(1, views + 1):
                seed = (args.seed * 1_000_003 + i) * 31 + v
                arrays[f"c{i}_v{v}"] = fe.log_mel(augmenter(wave, SAMPLING_RATE, seed=seed))
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.stem}.tmp.npz")
        np.savez(tmp, views=np.array(views), **arrays)
        tmp.replace(cache)
    accelerator.wait_for_everyone()
    with np.load(cache) as data:
        views = int(data["views"])
        return [[data[f"c{i}_v{v}"] for v in range(views + 1)] for i in range(len(ds))]


def _pad(features: list[np.ndarray], fe) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(f.shape[0] for f in features)
    values = torch.zeros(len(features), length, fe.feature_size)
    mask = torch.zeros(len(features), length, dtype=torch.long)
    for i, f in enumerate(features):
        values[i, : f.shape[0]] = torch.from_numpy(fe.normalize(f))
        mask[i, : f.shape[0]] = 1
    return values, mask


def _logits(model, feats: list[np.ndarray], fe, batch_size: int = 64) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(feats), batch_size):
            values, mask = _pad(feats[start: start + batch_size], fe)
            out.append(model(input_values=values, attention_mask=mask).logits.float().cpu().numpy())
    return np.concatenate(out)


# ------------------------------------------------------------------------------------------------ one training run

def train_one(args, stage: str, ds_labels, label_names, feats, train_idx, eval_idx, out_dir: Path, accelerator_factory,
              run: dict):
    """Train on ``train_idx``, evaluate on ``eval_idx``; writes the model folder ``out_dir`` with fold_results.json
    (metrics and the run identity ``run``, which a resumed run must match); returns metrics."""
    from hf_alm.evaluation.classification import metrics_from_logits
    from hf_alm.export import save_calibration_features
    from hf_alm.modeling.tiny_edge_transformer import (
        TinyEdgeTransformerConfig,
        TinyEdgeTransformerFeatureExtractor,
        TinyEdgeTransformerForAudioClassification,
    )
    from hf_alm.training.loop import TrainConfig, fit
    from hf_alm.utils import atomic_directory, atomic_write_text, seed_everything

    fe = TinyEdgeTransformerFeatureExtractor()
    clean_train = np.concatenate([feats[i][0] for i in train_idx])
    fe.mean, fe.std = float(clean_train.mean()), float(clean_train.std() + 1e-6)
    config = TinyEdgeTransformerConfig.from_preset(
        args.preset, num_labels=len(label_names), id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)}, pooling=args.pooling)
    seed_everything(args.seed)
    model = TinyEdgeTransformerForAudioClassification(config)
    items = [(i, v) for i in train_idx for v in range(len(feats[i]))]

    def collate(batch):
        values, mask = _pad([feats[i][v] for i, v in batch], fe)
        return {"input_values": values, "attention_mask": mask,
                "labels": torch.tensor([ds_labels[i] for i, _ in batch])}

    def compute_loss(m, batch):
        return m(**batch).loss

    eval_feats = [feats[i][0] for i in eval_idx]
    eval_labels = [ds_labels[i] for i in eval_idx]

    def eval_fn(m):
        if not eval_idx:
            return {}
        return {"eval_accuracy": float((_logits(m, eval_feats, fe).argmax(-1) == np.array(eval_labels)).mean())}

    stage_dir = Path(args.output_dir) / "checkpoints" / stage

    def prune(epoch, _metrics):
        if not args.keep_checkpoints and accelerator.is_main_process:
            for old in stage_dir.glob("epoch_*"):
                if old.name != f"epoch_{epoch}":
                    shutil.rmtree(old, ignore_errors=True)

    cfg = TrainConfig.from_args(args, run=run)
    accelerator = accelerator_factory(cfg)
    started = time.time()
    result = fit(model, items, collate_fn=collate, compute_loss=compute_loss, config=cfg, accelerator=accelerator,
                 stage=stage, eval_fn=eval_fn, on_epoch_end=prune)
    model = result.model.eval()
    metrics = {"num_train_clips": len(train_idx), "num_eval_clips": len(eval_idx),
               "train_seconds": round(time.time() - started, 1), "skipped_training": result.skipped}
    if eval_idx:
        report = metrics_from_logits(_logits(model, eval_feats, fe), eval_labels, label_names=label_names)
        metrics.update({k: report[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")})
        metrics["confusion_matrix"] = report["confusion_matrix"]
    if accelerator.is_main_process:
        rng = np.random.default_rng(args.seed)
        calib_idx = rng.permutation(train_idx)[: args.calibration_clips]
        with atomic_directory(out_dir) as tmp:
            model.save_pretrained(tmp)
            fe.save_pretrained(tmp)
            save_calibration_features(tmp / "calibration_features.npz",
                                      [fe.normalize(feats[int(i)][0]) for i in calib_idx])
            atomic_write_text(tmp / "fold_results.json", json.dumps({**metrics, "run": run}, indent=2))
        if args.export_onnx:
            metrics.update(_onnx_eval(out_dir, eval_feats, eval_labels, fe, args))
            atomic_write_text(out_dir / "fold_results.json", json.dumps({**metrics, "run": run}, indent=2))
    accelerator.wait_for_everyone()
    return metrics


def _onnx_eval(model_dir: Path, eval_feats, eval_labels, fe, args) -> dict:
    from hf_alm.export import export_tiny, onnx_session, run_onnx

    onnx_dir = model_dir / "onnx"
    report = export_tiny(model_dir, onnx_dir, max_calibration_clips=args.calibration_clips)
    out = {"onnx_int8_bytes": report["model_int8_onnx_bytes"], "onnx_fp32_bytes": report["model_onnx_bytes"],
           "onnx_fp32_max_abs_diff_vs_pytorch": report["fp32_max_abs_diff_vs_pytorch"]}
    if eval_feats:
        normed = [fe.normalize(f) for f in eval_feats]
        labels = np.array(eval_labels)
        for name, file in (("onnx_fp32", "model.onnx"), ("onnx_int8", "model_int8.onnx")):
            logits = run_onnx(onnx_session(onnx_dir / file), normed)
            out[f"{name}_accuracy"] = float((logits.argmax(-1) == labels).mean())
    return out


# ------------------------------------------------------------------------------------------------ main

def _summary(per_unit: list[dict]) -> dict:
    out = {}
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "onnx_fp32_accuracy", "onnx_int8_accuracy"):
        values = [u[key] for u in per_unit if key in u]
        if values:
            out[key] = float(np.mean(values))
            out[f"{key}_stdev"] = float(np.std(values))
    return out


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.augment_views < 0:
        raise SystemExit(f"--augment_views must be >= 0, got {args.augment_views}")
    if args.calibration_clips < 1:
        raise SystemExit(f"--calibration_clips must be >= 1, got {args.calibration_clips}")
    from hf_alm.training.loop import TrainConfig, make_accelerator, prepare_run

    # --onnx_only reads the fold results of an earlier run: they must be this run's, as when resuming
    run = prepare_run(args, recipe=RECIPE, model_type=MODEL_TYPE, ignore=NOT_RUN_IDENTITY, run_folders=RUN_FOLDERS,
                      reuse=bool(args.resume_from_checkpoint or args.onnx_only))
    import hf_alm  # noqa: F401
    from hf_alm.data.loaders import evaluation_units, load_labelled_dataset, unit_indices
    from hf_alm.modeling.tiny_edge_transformer import TinyEdgeTransformerFeatureExtractor, num_parameters_for
    from hf_alm.modeling.tiny_edge_transformer import TinyEdgeTransformerConfig
    from hf_alm.utils import atomic_write_text

    output_dir = Path(args.output_dir)
    accelerator = make_accelerator(TrainConfig.from_args(args, run=run))
    ds = load_labelled_dataset(args.dataset)
    label_names = list(ds.features["label"].names) if hasattr(ds.features["label"], "names") else sorted(
        {str(v) for v in ds["label"]})
    labels = list(ds["label"])
    units = evaluation_units(ds, args.eval_fold)
    fe = TinyEdgeTransformerFeatureExtractor()
    feats = compute_features(args, ds, fe, accelerator)
    accelerator.print(f"{len(ds)} clips, {len(label_names)} classes, {len(feats[0])} views per clip, evaluation: "
                      f"{units if units != [None] else 'none'}")

    def accelerator_factory(cfg):
        return accelerator if len(units) == 1 and units[0] is None and not args.final_model else make_accelerator(cfg)

    per_unit = []
    for unit in units:
        if unit is None:
            continue
        train_idx, eval_idx = unit_indices(ds, unit)
        name = f"fold_{unit}" if isinstance(unit, int) else f"split_{unit}"
        done = output_dir / "folds" / name / "fold_results.json"
        if args.onnx_only:
            if not done.is_file():
                raise SystemExit(f"--onnx_only: {done} does not exist; train this fold first")
            metrics = json.loads(done.read_text())
            if accelerator.is_main_process:
                from hf_alm.export import load_tiny

                _, fold_fe = load_tiny(done.parent)
                metrics.update(_onnx_eval(done.parent, [feats[i][0] for i in eval_idx],
                                          [labels[i] for i in eval_idx], fold_fe, args))
                atomic_write_text(done, json.dumps(metrics, indent=2))
        elif done.is_file() and args.resume_from_checkpoint:  # prepare_run checked that it belongs to this run
            metrics = json.loads(done.read_text())
            accelerator.print(f"[{name}] already finished (resume): accuracy {metrics.get('accuracy')}")
        else:
            metrics = train_one(args, name, labels, label_names, feats, train_idx, eval_idx,
                                output_dir / "folds" / name, accelerator_factory, run)
        metrics.pop("run", None)
        accelerator.print(f"[{name}] " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                                                     if isinstance(v, float)))
        per_unit.append({"eval": unit, **metrics})

    final_dir = output_dir / "model"
    if args.onnx_only:
        if final_dir.is_dir() and accelerator.is_main_process:
            from hf_alm.export import export_tiny

            export_tiny(final_dir, output_dir / "onnx", max_calibration_clips=args.calibration_clips)
    elif args.final_model or units == [None]:
        metrics = train_one(args, "final", labels, label_names, feats, list(range(len(ds))), [], final_dir,
                            accelerator_factory, run)
        if args.export_onnx and accelerator.is_main_process:
            shutil.copytree(final_dir / "onnx", output_dir / "onnx", dirs_exist_ok=True)

    config = TinyEdgeTransformerConfig.from_preset(args.preset, num_labels=len(label_names), pooling=args.pooling)
    results = {
        "dataset": args.dataset,
        "preset": args.preset,
        "num_parameters": num_parameters_for(config),
        "num_labels": len(label_names),
        "num_clips": len(ds),
        "protocol": ("cross_validation" if len(per_unit) > 1 else
                     "held_out" if per_unit else "none"),
        "eval_units": [u["eval"] for u in per_unit],
        **_summary(per_unit),
        "per_fold": per_unit,
        "training": {k: v for k, v in dataclasses.asdict(TrainConfig.from_args(args)).items()
                     if isinstance(v, (int, float, str, bool)) or v is None},
        "augment": args.augment, "augment_views": args.augment_views,
    }
    if accelerator.is_main_process:
        atomic_write_text(output_dir / "eval_results.json", json.dumps(results, indent=2))
        if final_dir.is_dir():
            atomic_write_text(final_dir / "eval_results.json", json.dumps(results, indent=2))
        summary = _summary(per_unit)
        if summary:
            accelerator.print("summary: " + ", ".join(f"{k}={v:.4f}" for k, v in summary.items()))
    accelerator.wait_for_everyone()

    if args.push_to_hub and accelerator.is_main_process:
        if not final_dir.is_dir():
            raise SystemExit("--push_to_hub needs the final model (do not pass --no-final_model)")
        from hf_alm.hub import publish_from_args

        publish_from_args(args, final_dir, eval_results=output_dir / "eval_results.json")
    accelerator.end_training() if accelerator.log_with else None
    return 0


if __name__ == "__main__":
    sys.exit(main())
