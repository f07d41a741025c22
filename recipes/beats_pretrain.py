#!/usr/bin/env python
"""BEATs self-supervised pre-training from scratch: iterative masked audio modelling with acoustic tokenizers.

    accelerate launch recipes/beats_pretrain.py                                   # embedded synthetic set, CPU, minutes
    accelerate launch recipes/beats_pretrain.py --dataset esc10:../shared/data/esc10 --max_seconds 2
    accelerate launch recipes/beats_pretrain.py --preset small --iterations 3 --num_epochs 20
    python recipes/beats_pretrain.py --output_dir out --resume_from_checkpoint latest   # continue an interrupted run

Stages (BEATs, Chen et al. 2023; see hf_alm/training/beats.py and ../shared/docs/models.md section 2.5):

1. ``iter1_mam``: masked audio modelling of ``BeatsForPreTraining`` (``--mask_ratio`` of the patches hidden, the
   encoder sees only the visible ones, a Transformer label predictor predicts the masked patches' labels) against the
   frozen **random-projection tokenizer** (iteration 1);
2. for every further iteration k = 2 .. ``--iterations``:
   ``iterk_tokenizer``: an acoustic tokenizer (BEATs encoder + quantize layer + EMA vector quantiser with k-means
   initialisation) and a small Transformer "tokenizer estimator" on its quantised vectors are trained so that the
   estimator reproduces the last layer of the previous iteration's encoder (the teacher; cosine loss + commitment
   loss, EMA codebook); then ``iterk_mam``: masked audio modelling against the labels of that trained tokenizer.

Every clip's fbank (and its tokenizer labels, and the frozen teacher's outputs) is computed once. Every stage runs in
the shared loop (hf_alm.training.loop.fit: progress bars, a checkpoint per epoch under OUTPUT_DIR/checkpoints/<stage>,
exact resume; finished stages are restored and skipped). Outputs: OUTPUT_DIR/model (the final encoder as a BeatsModel
folder with its feature extractor: ``AutoModel.from_pretrained`` after ``import hf_alm``), OUTPUT_DIR/iterations/iterK
(each iteration's encoder), OUTPUT_DIR/tokenizers/iterK (each trained BeatsAcousticTokenizer) and
OUTPUT_DIR/pretrain_results.json (per-stage losses and accuracies).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import torch

RECIPE, MODEL_TYPE = "beats_pretrain", "hf_alm_beats"
RUN_FOLDERS = ("model", "iterations", "tokenizers")  # removed with checkpoints/ by --overwrite_output_dir
# --iterations only adds stages (iter<k>_...): a run may be resumed with more iterations than it had
NOT_RUN_IDENTITY = ("iterations", "feature_cache")


def build_parser() -> argparse.ArgumentParser:
    from hf_alm.data.loaders import DATASET_SPEC_HELP
    from hf_alm.training.beats import BEATS_PRESETS
    from hf_alm.training.loop import RecipeHelpFormatter, add_common_args

    p = argparse.ArgumentParser(description=__doc__, formatter_class=RecipeHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="synthetic",
                   help=f"pre-training audio (labels are not used): {DATASET_SPEC_HELP} (default: synthetic)")
    g.add_argument("--max_seconds", type=float, default=2.0,
                   help="keep at most this many seconds of each clip (see --crop); 0 keeps whole clips "
                        "(default: %(default)s)")
    g.add_argument("--crop", default="loudest", choices=["loudest", "start"],
                   help="which --max_seconds window to keep: the loudest one or the beginning (default: %(default)s)")
    g.add_argument("--feature_cache", default=None, metavar="DIR",
                   help="folder caching every clip's fbank between runs (keyed by dataset, crop and feature "
                        "settings; default: OUTPUT_DIR/feature_cache; 'none' disables it)")
    g = p.add_argument_group("model size (from scratch)")
    g.add_argument("--preset", default="tiny", choices=sorted(BEATS_PRESETS),
                   help="architecture preset: tiny (2 x 64), small (4 x 128) or base (the released 12 x 768) "
                        "(default: %(default)s)")
    g.add_argument("--encoder_layers", type=int, default=None, help="override the preset's number of layers")
    g.add_argument("--encoder_embed_dim", type=int, default=None, help="override the preset's transformer width")
    g.add_argument("--encoder_ffn_embed_dim", type=int, default=None,
                   help="override the preset's feed-forward inner width")
    g.add_argument("--encoder_attention_heads", type=int, default=None,
                   help="override the preset's number of attention heads")
    g.add_argument("--codebook_size", type=int, default=None,
                   help="number of tokenizer codes = pre-training classes (quant_n; preset default)")
    g.add_argument("--codebook_dim", type=int, default=None, help="tokenizer code dimension (quant_dim; preset default)")
    g.add_argument("--predictor_layers", type=int, default=None,
                   help="layers of the masked-label predictor of BeatsForPreTraining (preset default)")
    g = p.add_argument_group("BEATs pre-training")
    g.add_argument("--iterations", type=int, default=2,
                   help="SSL iterations: 1 = random-projection tokenizer only; each further one trains a tokenizer "
                        "from the previous encoder and pre-trains again on its labels (default: %(default)s)")
    g.add_argument("--mask_ratio", type=float, default=0.75,
                   help="fraction of patches masked in masked audio modelling (default: %(default)s)")
    g.add_argument("--tokenizer_epochs", type=int, default=None,
                   help="epochs of each tokenizer-distillation stage (default: --num_epochs)")
    g.add_argument("--tokenizer_learning_rate", type=float, default=None,
                   help="peak learning rate of the tokenizer stages (default: --learning_rate)")
    g.add_argument("--estimator_layers", type=int, default=3,
                   help="transformer layers of the tokenizer estimator (discarded after training) "
                        "(default: %(default)s)")
    g.add_argument("--codebook_decay", type=float, default=0.99,
                   help="EMA decay of the tokenizer codebook (default: %(default)s)")
    g.add_argument("--next_iteration_init", default="previous", choices=["previous", "scratch"],
                   help="initialise iteration k >= 2's encoder from iteration k-1's (previous; cheaper on small "
                        "budgets) or randomly (scratch) (default: %(default)s)")
    g.add_argument("--keep_checkpoints", action="store_true",
                   help="keep every epoch's checkpoint (default: keep only the newest of each stage)")
    add_common_args(p, output_dir="outputs/beats_pretrain", num_epochs=8, batch_size=32, learning_rate=2e-3,
                    weight_decay=0.01, warmup_ratio=0.1, num_threads=2,
                    default_text={"num_threads": "2: the fbank and the encoder use both cores of the 2-core machine "
                                                 "the recipe's defaults were tuned on"},
                    outputs="the final encoder (model/), each iteration's encoder (iterations/) and tokenizer "
                            "(tokenizers/), pretrain_results.json", run_folders=RUN_FOLDERS)
    return p


def _check_args(args) -> None:
    if args.iterations < 1:
        raise SystemExit(f"--iterations must be >= 1, got {args.iterations}")
    if not 0.0 < args.mask_ratio < 1.0:
        raise SystemExit(f"--mask_ratio must be in (0, 1), got {args.mask_ratio}")
    if args.tokenizer_epochs is not None and args.tokenizer_epochs < 0:
        raise SystemExit(f"--tokenizer_epochs must be >= 0, got {args.tokenizer_epochs}")
    if args.estimator_layers < 1:
        raise SystemExit(f"--estimator_layers must be >= 1, got {args.estimator_layers}")
    if not 0.0 < args.codebook_decay < 1.0:
        raise SystemExit(f"--codebook_decay must be in (0, 1), got {args.codebook_decay}")
    if args.max_seconds is not None and args.max_seconds < 0:
        raise SystemExit(f"--max_seconds must be >= 0, got {args.max_seconds}")


def _stage_summary(name: str, result, seconds: float) -> dict:
    losses = [h["loss"] for h in result.history]
    out = {"stage": name, "steps": result.global_step, "seconds": round(seconds, 1), "skipped": result.skipped,
           "step_losses": [round(v, 6) for v in losses],
           "epoch_losses": [round(m["train_loss"], 6) for m in result.epoch_metrics]}
    for key in ("mam_accuracy", "cosine", "codes_used"):
        values = [h[key] for h in result.history if key in h]
        if values:
            out[f"last_{key}"] = values[-1]
    return out


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _check_args(args)
    from hf_alm.training.loop import prepare_run

    run = prepare_run(args, recipe=RECIPE, model_type=MODEL_TYPE, ignore=NOT_RUN_IDENTITY, run_folders=RUN_FOLDERS)
    import hf_alm  # noqa: F401  (registers the Auto classes)
    from hf_alm.modeling.beats import (BeatsAcousticTokenizer, BeatsFeatureExtractor, BeatsForPreTraining,
                                       BeatsRandomProjectionTokenizer)
    from hf_alm.training.beats import (BeatsTokenizerDistiller, beats_preset_config, cached_clips, clip_labels,
                                       distill_collate, load_labelled_dataset, mam_collate, mam_loss, teacher_targets)
    from hf_alm.training.loop import TrainConfig, fit, make_accelerator
    from hf_alm.utils import atomic_directory, atomic_write_text, seed_everything

    output_dir = Path(args.output_dir)
    base = TrainConfig.from_args(args, run=run)
    accelerator = make_accelerator(base)
    is_main = accelerator.is_main_process
    config = beats_preset_config(
        args.preset, encoder_layers=args.encoder_layers, encoder_embed_dim=args.encoder_embed_dim,
        encoder_ffn_embed_dim=args.encoder_ffn_embed_dim, encoder_attention_heads=args.encoder_attention_heads,
        quant_n=args.codebook_size, quant_dim=args.codebook_dim, predictor_layers=args.predictor_layers,
        mask_ratio=args.mask_ratio, quant_decay=args.codebook_decay, random_projection_seed=args.seed)
    fe = BeatsFeatureExtractor(feature_size=config.num_mel_bins, padding_mode=config.padding_mode)

    ds = load_labelled_dataset(args.dataset, need_labels=False)
    cache = None if (args.feature_cache or "").lower() == "none" else (
        args.feature_cache or output_dir / "feature_cache")
    features = cached_clips(cache, ds, fe, dataset_spec=args.dataset, max_seconds=args.max_seconds or None,
                            crop=args.crop, progress=accelerator.is_local_main_process, is_main=is_main,
                            wait=accelerator.wait_for_everyone)
    items = list(range(len(features)))
    frames = [int(f.shape[0]) for f in features]
    accelerator.print(f"{len(features)} clips, {min(frames)}..{max(frames)} fbank frames; BEATs {args.preset}: "
                      f"{config.encoder_layers} x {config.encoder_embed_dim}, {config.quant_n} codes, "
                      f"{args.iterations} iteration(s)")

    def pruner(stage: str):
        stage_dir = output_dir / "checkpoints" / stage

        def prune(epoch, _metrics):
            if not args.keep_checkpoints and accelerator.is_main_process:
                for old in stage_dir.glob("epoch_*"):
                    if old.name != f"epoch_{epoch}":
                        shutil.rmtree(old, ignore_errors=True)
        return prune

    def save_model(model, folder: Path, with_fe: bool = True):
        if is_main:
            with atomic_directory(folder) as tmp:
                model.save_pretrained(tmp)
                if with_fe:
                    fe.save_pretrained(tmp)
        accelerator.wait_for_everyone()

    stages = []
    tokenizer = BeatsRandomProjectionTokenizer(config)
    labels = clip_labels(tokenizer, features)
    encoder = None
    for it in range(1, args.iterations + 1):
        if it > 1:
            stage = f"iter{it}_tokenizer"
            targets = teacher_targets(encoder, features, progress=accelerator.is_local_main_process)
            seed_everything(args.seed + 1000 * it + 1)
            distiller = BeatsTokenizerDistiller(BeatsAcousticTokenizer(config), encoder.config.encoder_embed_dim,
                                                args.estimator_layers)
            cfg = dataclasses.replace(
                base, num_epochs=args.tokenizer_epochs if args.tokenizer_epochs is not None else base.num_epochs,
                learning_rate=args.tokenizer_learning_rate or base.learning_rate)
            started = time.time()
            result = fit(distiller, items, collate_fn=distill_collate(features, targets, config),
                         compute_loss=lambda m, b: m(**b), config=cfg, accelerator=make_accelerator(cfg),
                         stage=stage, on_epoch_end=pruner(stage))
            stages.append(_stage_summary(stage, result, time.time() - started))
            tokenizer = result.model.tokenizer.eval()
            save_model(tokenizer, output_dir / "tokenizers" / f"iter{it}")
            labels = clip_labels(tokenizer, features)
            used = torch.unique(torch.cat(labels)).numel()
            stages[-1]["label_codes_used"] = int(used)
            accelerator.print(f"[{stage}] tokenizer uses {used} of {config.quant_n} codes on the training clips")
        stage = f"iter{it}_mam"
        seed_everything(args.seed + 1000 * it)
        model = BeatsForPreTraining(config)
        if it > 1 and args.next_iteration_init == "previous":
            model.beats.load_state_dict(encoder.state_dict())
        started = time.time()
        result = fit(model, items, collate_fn=mam_collate(features, labels, config), compute_loss=mam_loss,
                     config=base, accelerator=make_accelerator(base), stage=stage, on_epoch_end=pruner(stage))
        stages.append(_stage_summary(stage, result, time.time() - started))
        encoder = result.model.beats.eval()
        save_model(encoder, output_dir / "iterations" / f"iter{it}")

    final_dir = output_dir / "model"
    save_model(encoder, final_dir)
    results = {
        "dataset": args.dataset, "num_clips": len(features), "preset": args.preset,
        "num_parameters_encoder": sum(p.numel() for p in encoder.parameters()),
        "iterations": args.iterations, "mask_ratio": args.mask_ratio, "codebook_size": config.quant_n,
        "stages": stages,
        "training": {k: v for k, v in dataclasses.asdict(base).items()
                     if isinstance(v, (int, float, str, bool)) or v is None},
    }
    if is_main:
        atomic_write_text(output_dir / "pretrain_results.json", json.dumps(results, indent=2))
        for s in stages:
            epochs = s["epoch_losses"]
            accelerator.print(f"[{s['stage']}] loss {epochs[0] if epochs else float('nan'):.4f} -> "
                              f"{epochs[-1] if epochs else float('nan'):.4f} over {len(epochs)} epoch(s)")
        accelerator.print(f"final encoder: {final_dir}")
    accelerator.wait_for_everyone()

    if args.push_to_hub and is_main:
        from hf_alm.hub import publish_from_args

        publish_from_args(args, final_dir)
    if accelerator.log_with:
        accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
