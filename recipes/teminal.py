#!/usr/bin/env python
"""CLAP-TeminAL: TeminAL-style temporal post-training of a contrastive audio-text model, with ZSTE-style evaluation.

    accelerate launch recipes/teminal.py                                   # CPU, embedded synthetic data, ~7 min
    accelerate launch recipes/teminal.py --dataset esc10:../shared/data/esc10
    accelerate launch --multi_gpu --num_processes 2 recipes/teminal.py     # 2 processes (gloo on CPU), negatives gathered
    python recipes/teminal.py --model_name_or_path PATH                    # post-train an existing CLAP-TeminAL
    python recipes/teminal.py --output_dir out --resume_from_checkpoint latest   # continue an interrupted run

Steps: load a single-event dataset and split its source clips into train / held-out; train a caption tokenizer;
contrastive pre-training of a small CLAP-TeminAL ("base"; skipped with --model_name_or_path); ZSTE before; TeminAL A;
TeminAL B; ZSTE after each stage; print the before/after table; write the model, processor and eval_results.json to
--output_dir. The TeminAL paper's method section and code are not public: this is a documented "TeminAL-style"
method (see hf_alm/training/teminal.py for every choice). All the logic lives in hf_alm; this file only wires it up.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
from pathlib import Path

STAGES = ("base", "teminal_a", "teminal_b")
RECIPE, MODEL_TYPE = "teminal", "clap_teminal"
NOT_RUN_IDENTITY = ("num_eval_pairs", "num_distractors")  # they only shape the held-out evaluation
# defaults of the main job (2 CPU cores), measured 2026-11-25 on 2 quiet cores. With mean pooling the HTSAT tower left
# held-out order accuracy at chance in every setting tried, and the BEATs tower ("small-beats") reached 48.1 -> 62.2 %
# with stage B at 4 epochs. With order-preserving pooling (two time-segment means, audio_time_segments=2 in both
# presets), 4 stage-B epochs gave +28.2 / +13.8 / +21.4 points over seeds 0 / 1 / 2 and 8 epochs +40.0 / +38.1 /
# +43.1, zero-shot accuracy up 16-21 points, in about 3 minutes (HTSAT "small": 48.9 -> 87.2 %), hence these defaults.
# Each stage's default length is a number of optimizer steps, the same for 100 or 100,000 clips (a stage draws fresh
# pairs every round: hf_alm.training.teminal.StageItems). Measured 2026-12-08 on 2 CPU cores: epochs over source clips
# gave a 193-clip dataset 48 base and 80 stage-B steps and left it at chance. With 300 base / 60 A / 600 B steps FSDD
# reached order 54.3 -> 100.0 % and ESC-10 at 5 clips per class 91 % validation order accuracy after the first 150
# stage-B steps, but the job took ~16 CPU-minutes; these budgets keep the default job well inside 10 minutes on 2 cores
# (README "Measured so far" has each dataset's numbers).
STAGE_DEFAULTS = {
    "base": {"steps": 200, "learning_rate": 1e-3, "batch_size": 64},
    "teminal_a": {"steps": 60, "learning_rate": 3e-4, "batch_size": 64},
    "teminal_b": {"steps": 300, "learning_rate": 1e-3, "batch_size": 24},
}


def build_parser() -> argparse.ArgumentParser:
    from hf_alm.data.loaders import DATASET_SPEC_HELP
    from hf_alm.training.loop import RecipeHelpFormatter, add_common_args
    from hf_alm.training.teminal import TeminalConfig

    d = TeminalConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=RecipeHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="synthetic", help=f"single-event labelled dataset: {DATASET_SPEC_HELP}")
    g.add_argument("--num_per_class", type=int, default=40,
                   help="clips per class of the synthetic corpus (only for --dataset synthetic)")
    g.add_argument("--split", default=None, help="split of a Hub / local dataset with several splits (default: all)")
    g.add_argument("--audio_column", default=None, help="audio column of a Hub / local dataset (default: 'audio')")
    g.add_argument("--label_column", default=None, help="label column of a Hub / local dataset (default: 'label')")
    g.add_argument("--caption_column", default=None,
                   help="caption column of a Hub / local dataset (default: 'captions' or 'caption')")
    g.add_argument("--max_clips_per_class", type=int, default=None,
                   help="keep at most this many clips of each class (a seeded choice): try the recipe on a small "
                        "version of a dataset")
    g.add_argument("--eval_fraction", type=float, default=d.eval_fraction,
                   help="share of the source clips held out as the test split (the reported numbers; never heard in "
                        "training nor used to choose a checkpoint)")
    g.add_argument("--val_fraction", type=float, default=d.val_fraction,
                   help="share of the source clips held out as the validation split (stratified per class, disjoint "
                        "from train and test): each stage keeps its best validation round; 0 keeps the last step")
    g.add_argument("--split_by", default=d.split_by,
                   help="'auto': whole folds whose share is nearest to --eval_fraction when the dataset has folds "
                        "(e.g. ESC), falling back to a stratified split (and saying so) when the folds are too "
                        "uneven; 'none': stratified per class; or a column whose groups stay whole on one side")
    g.add_argument("--min_train_per_class", type=int, default=d.min_train_per_class,
                   help="a split leaving a class fewer training clips than this (or training on less than half of "
                        "the clips) is refused")
    g.add_argument("--allow_small_split", action="store_true",
                   help="train on a split that breaks the --min_train_per_class / half-of-the-data rules anyway")
    g.add_argument("--num_eval_pairs", type=int, default=d.num_eval_pairs,
                   help="test event pairs; each gives A->B, B->A and A+B evaluation clips")
    g.add_argument("--num_val_pairs", type=int, default=d.num_val_pairs,
                   help="validation event pairs (as --num_eval_pairs, from the validation clips)")
    g.add_argument("--window_seconds", type=float, default=None,
                   help="model input window; a two-event sequence fills it (default: the feature extractor's "
                        "max_length_s)")
    g.add_argument("--gap_seconds", type=float, nargs=2, default=d.gap_seconds, metavar=("LOW", "HIGH"),
                   help="range of the silent gap between the two events of a sequence")
    g.add_argument("--overlap_snr_db", type=float, nargs=2, default=d.overlap_snr_db, metavar=("LOW", "HIGH"),
                   help="range of the level of event A over event B in overlap ('while') clips")

    g = p.add_argument_group("model")
    g.add_argument("--model_name_or_path", default=None,
                   help="start from this CLAP-TeminAL folder / Hub id (with its processor) and skip the base stage")
    g.add_argument("--preset", default="small-beats", choices=["tiny", "small", "tiny-beats", "small-beats"],
                   help="CLAP-TeminAL preset trained from scratch: HTSAT audio tower ('tiny' for tests, 'small') or "
                        "BEATs audio tower ('tiny-beats', 'small-beats')")
    g.add_argument("--audio_time_segments", type=int, default=None,
                   help="order-preserving audio pooling of a model trained from scratch: the clip vector "
                        "concatenates the means of this many equal time segments (1 = plain mean pooling; default: "
                        "the preset's value, 2 for 'small' and 'small-beats'). For a converted CLAP checkpoint use `hf-alm "
                        "convert clap SRC DST --audio_time_segments 2`, then --model_name_or_path DST")
    g.add_argument("--vocab_size", type=int, default=1000, help="size of the caption tokenizer trained offline")
    g.add_argument("--feature_dtype", default="float32", choices=["float32", "float64"],
                   help="STFT precision of the log-mel features of a model trained from scratch (float32: ~2x "
                        "faster; float64 matches transformers' ClapFeatureExtractor to 1e-5 dB)")

    g = p.add_argument_group("stages")
    g.add_argument("--stages", default=",".join(STAGES),
                   help="comma-separated stages to run, in order, from: " + ", ".join(STAGES))
    for stage, dd in STAGE_DEFAULTS.items():
        what = "units (an event pair in both orders, plus extras)" if stage == "teminal_b" else "clips"
        g.add_argument(f"--{stage}_steps", type=int, default=None,
                       help=f"optimizer steps of stage {stage}, whatever the dataset size (default: {dd['steps']}; "
                            "ignored when the stage is given epochs)")
        g.add_argument(f"--{stage}_epochs", type=int, default=None,
                       help=f"train stage {stage} for this many epochs over the training clips instead of a step "
                            "budget (default: --num_epochs if given, else the step budget)")
        g.add_argument(f"--{stage}_learning_rate", type=float, default=None,
                       help=f"peak learning rate of stage {stage} (default: --learning_rate if given, else "
                            f"{dd['learning_rate']})")
        g.add_argument(f"--{stage}_batch_size", type=int, default=None,
                       help=f"{what} per batch and process in stage {stage} (default: --batch_size if given, else "
                            f"{dd['batch_size']})")
    g.add_argument("--val_rounds", type=int, default=4,
                   help="validation rounds per stage: a step-budget stage is trained in this many equal rounds, each "
                        "followed by a checkpoint and a ZSTE on the validation split; the best round is kept")
    g.add_argument("--base_views_per_clip", type=int, default=d.base_views_per_clip,
                   help="caption views of each training clip per base epoch")
    g.add_argument("--zero_shot_caption_fraction", type=float, default=d.zero_shot_caption_fraction,
                   help="share of single-event items captioned 'This is a sound of {label}.'")
    g.add_argument("--stage_a_items_per_clip", type=float, default=d.stage_a_items_per_clip,
                   help="stage A items per epoch, per training clip")
    g.add_argument("--stage_a_single_fraction", type=float, default=d.stage_a_single_fraction,
                   help="share of single-event clips in stage A (protects zero-shot classification)")
    g.add_argument("--stage_a_overlap_fraction", type=float, default=d.stage_a_overlap_fraction,
                   help="share of overlap ('while') clips in stage A; the rest are sequences")
    g.add_argument("--stage_b_units_per_clip", type=float, default=d.stage_b_units_per_clip,
                   help="stage B units per epoch, per training clip")
    g.add_argument("--stage_b_overlap_fraction", type=float, default=d.stage_b_overlap_fraction,
                   help="probability that a stage B unit adds the overlap 'A while B'")
    g.add_argument("--stage_b_single_fraction", type=float, default=d.stage_b_single_fraction,
                   help="probability that a stage B unit adds one of its single events")
    g.add_argument("--alpha_same", type=float, default=10.0,
                   help="stage B weight of a clip's own time reversal in the softmax (TACT-style; 1 = InfoNCE)")
    g.add_argument("--alpha_cross", type=float, default=d.alpha_cross,
                   help="stage B weight of other clips' time reversals in the softmax (TACT-style; 1 = InfoNCE)")
    g.add_argument("--label_smoothing", type=float, default=d.label_smoothing,
                   help="label smoothing of the InfoNCE of the base stage and stage A")

    g = p.add_argument_group("evaluation")
    g.add_argument("--eval_batch_size", type=int, default=64, help="clips per forward pass in ZSTE")
    g.add_argument("--num_distractors", type=int, default=4, help="wrong captions per ZSTE both-events item")
    g.add_argument("--seeds", default=None,
                   help="comma-separated seeds (e.g. 0,1,2): run the whole job once per seed into "
                        "OUTPUT_DIR/seed_<s> and report each metric's mean and sd over the seeds "
                        "(OUTPUT_DIR/seeds_summary.json); --seed is then ignored")
    per_stage = {key: "each stage's own: " + ", ".join(f"{s} {dd[key]}" for s, dd in STAGE_DEFAULTS.items())
                 + f"; --<stage>_{key} wins" for key in ("learning_rate", "batch_size")}
    per_stage["epochs"] = ("none: each stage runs its step budget (--<stage>_steps); given, every stage trains this "
                           "many epochs over the training clips")
    add_common_args(p, output_dir="outputs/teminal", num_epochs=None, learning_rate=None, batch_size=None,
                    warmup_ratio=0.05, outputs="the final model, its processor, eval_results.json",
                    default_text={"num_epochs": per_stage["epochs"], "learning_rate": per_stage["learning_rate"],
                                  "batch_size": per_stage["batch_size"]})
    return p


def _stage_settings(args, stage: str) -> dict:
    """``num_epochs`` (epoch mode) or ``steps`` (step-budget mode), ``learning_rate`` and ``batch_size`` of a stage."""
    dd = STAGE_DEFAULTS[stage]
    epochs = getattr(args, f"{stage}_epochs")
    epochs = epochs if epochs is not None else args.num_epochs
    steps = getattr(args, f"{stage}_steps")
    lr = getattr(args, f"{stage}_learning_rate")
    bs = getattr(args, f"{stage}_batch_size")
    out = {
        "learning_rate": lr if lr is not None else (args.learning_rate if args.learning_rate is not None
                                                    else dd["learning_rate"]),
        "batch_size": bs if bs is not None else (args.batch_size if args.batch_size is not None
                                                 else dd["batch_size"]),
    }
    if epochs is not None:
        out["num_epochs"] = epochs
    else:
        out["steps"] = steps if steps is not None else dd["steps"]
    return out


def _load_dataset(args, sampling_rate: int):
    import datasets

    from hf_alm.data.loaders import load_dataset_spec

    kw = {}
    if args.dataset.split(":")[0].lower() == "synthetic":
        if ":" not in args.dataset:
            kw["num_per_class"] = args.num_per_class
        kw["sampling_rate"] = sampling_rate  # synthesised directly at the model's rate
    for name in ("split", "audio_column", "label_column", "caption_column"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    ds = load_dataset_spec(args.dataset, **kw)
    if isinstance(ds, datasets.DatasetDict):
        ds = datasets.concatenate_datasets([ds[k] for k in ds])
    if not isinstance(ds, datasets.Dataset):
        raise ValueError(f"--dataset {args.dataset}: TeminAL needs a map-style dataset, got {type(ds).__name__}")
    if args.max_clips_per_class is not None:
        from hf_alm.data.splits import limit_per_class

        ds = limit_per_class(ds, args.max_clips_per_class, seed=args.seed)
    return ds


def _preset_processor(args, processor_cls, tokenizer):
    """The processor of ``--preset`` (CLAP log-mels for HTSAT presets, BEATs fbank for BEATs presets). Before the
    caption tokenizer exists (``tokenizer=None``) a placeholder one is used, only to read the feature extractor."""
    if tokenizer is None:
        from hf_alm.training.tokenizer import train_caption_tokenizer

        tokenizer = train_caption_tokenizer(["placeholder"], vocab_size=300, model_max_length=8)
    kwargs = {} if "beats" in args.preset else {"compute_dtype": args.feature_dtype}
    return processor_cls.from_preset(args.preset, tokenizer, **kwargs)


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"--seeds: expected comma-separated integers such as 0,1,2; got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise SystemExit(f"--seeds: expected distinct non-negative integers such as 0,1,2; got {text!r}")
    return seeds


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.seeds is None:
        return run(args)
    from hf_alm.training.teminal import summarize_seeds

    seeds, root, summaries = _parse_seeds(args.seeds), Path(args.output_dir), {}
    for seed in seeds:
        one = argparse.Namespace(**{**vars(args), "seed": seed, "seeds": None,
                                    "output_dir": str(root / f"seed_{seed}")})
        run(one)
        summaries[seed] = root / f"seed_{seed}" / "eval_results.json"
    text = summarize_seeds(summaries, root / "seeds_summary.json")
    if _is_main():
        print("\n" + text)
    return 0


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def run(args) -> int:
    """One run of the job (one seed)."""
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        raise SystemExit(f"--stages: unknown stage(s) {bad or args.stages!r}; choose from {', '.join(STAGES)}")
    if args.model_name_or_path and "base" in stages:
        stages.remove("base")
    from hf_alm.training.loop import prepare_run

    run = prepare_run(args, recipe=RECIPE, model_type=MODEL_TYPE, ignore=NOT_RUN_IDENTITY)

    from accelerate.utils import set_seed

    from hf_alm.evaluation.zste import (
        HEADLINE_METRICS,
        evaluate_zste,
        format_zste_table,
        write_zste_json,
        zste_warnings,
    )
    from hf_alm.data.splits import SplitError
    from hf_alm.training.loop import TrainConfig, fit, make_accelerator
    from hf_alm.utils import save_pretrained_into
    from hf_alm.training.teminal import (
        StageItems,
        TeminalCollator,
        TeminalConfig,
        base_items,
        caption_corpus,
        keep_best_round,
        make_compute_loss,
        make_validation_fn,
        prepare_teminal_data,
        stage_a_items,
        stage_b_units,
        step_budget,
    )

    t_start = time.time()
    output_dir = Path(args.output_dir)
    train_config = TrainConfig.from_args(args, run=run)
    accelerator = make_accelerator(train_config)
    main_proc = accelerator.is_main_process
    set_seed(args.seed)

    # ---- model and processor (the tokenizer of a new model is trained below, once the captions are known)
    import hf_alm  # noqa: F401  (registers the Auto classes)
    from hf_alm.modeling.clap_teminal import ClapTeminalConfig, ClapTeminalModel, ClapTeminalProcessor

    processor_dir = output_dir / "checkpoints" / "processor"
    model = processor = None
    if args.model_name_or_path:
        from transformers import AutoModel, AutoProcessor

        model = AutoModel.from_pretrained(args.model_name_or_path)
        processor = AutoProcessor.from_pretrained(args.model_name_or_path)
        fe = processor.feature_extractor
    else:
        fe = _preset_processor(args, ClapTeminalProcessor, None).feature_extractor
    sampling_rate = int(fe.sampling_rate)
    split_by = None if str(args.split_by).lower() == "none" else args.split_by
    window = args.window_seconds or float(getattr(fe, "max_length_s", None) or 2.0)  # BEATs: no fixed length
    tcfg = TeminalConfig.from_args(args, window_seconds=window,
                                   split_by=split_by, gap_seconds=tuple(args.gap_seconds),
                                   overlap_snr_db=tuple(args.overlap_snr_db))

    # ---- data: held-out source clips for evaluation, in-memory training bank
    t0 = time.time()
    dataset = _load_dataset(args, sampling_rate)
    try:
        data = prepare_teminal_data(dataset, sampling_rate=sampling_rate, config=tcfg, progress=main_proc)
    except SplitError as err:
        raise SystemExit(f"--dataset {args.dataset}: {err}") from None
    accelerator.print(data.split.describe())
    accelerator.print(f"data: {len(data.train)} training clips, {len(data.val_singles)} validation clips "
                      f"({len(data.val_compositions or [])} compositions), {len(data.eval_singles)} test clips "
                      f"({len(data.eval_compositions)} compositions), {len(data.class_names)} classes "
                      f"({time.time() - t0:.1f} s)")

    if model is None:
        from transformers import AutoProcessor

        from hf_alm.training.tokenizer import train_caption_tokenizer

        mcfg_preview = ClapTeminalConfig.from_preset(args.preset)
        max_len = mcfg_preview.text_config.max_position_embeddings - 2
        if args.resume_from_checkpoint and (processor_dir / "tokenizer.json").is_file():
            # a resumed run must reuse the tokenizer the checkpoints were trained with
            processor = AutoProcessor.from_pretrained(processor_dir)
            tokenizer = processor.tokenizer
        else:
            tokenizer = train_caption_tokenizer(caption_corpus(data.train, data.class_names),
                                                vocab_size=args.vocab_size, model_max_length=max_len)
            processor = _preset_processor(args, ClapTeminalProcessor, tokenizer)
            if main_proc:
                from hf_alm.utils import atomic_directory

                with atomic_directory(processor_dir) as tmp:
                    processor.save_pretrained(tmp)
            accelerator.wait_for_everyone()
        set_seed(args.seed)
        overrides = {} if args.audio_time_segments is None else {"audio_time_segments": args.audio_time_segments}
        mcfg = ClapTeminalConfig.from_preset(args.preset, text_config={"vocab_size": len(tokenizer)}, **overrides)
        model = ClapTeminalModel(mcfg)
    n_params = sum(p.numel() for p in model.parameters())
    accelerator.print(f"model: {type(model).__name__}, {n_params / 1e6:.2f} M parameters")

    # ---- stages
    results: dict = {}
    timing: dict = {"data_s": round(time.time() - t0, 1)}
    compute_loss = make_compute_loss(tcfg)
    collate = TeminalCollator(data.train, processor, tcfg)
    items_for = {"base": base_items, "teminal_a": stage_a_items, "teminal_b": stage_b_units}

    def zste(tag: str) -> None:
        t = time.time()
        if main_proc:
            results[tag] = evaluate_zste(model, processor, data.zste_input(), batch_size=args.eval_batch_size,
                                         sampling_rate=sampling_rate, class_names=data.class_names,
                                         num_distractors=args.num_distractors, seed=args.seed, progress=True)
            accelerator.print(f"[zste {tag}] " + ", ".join(f"{k}={100 * results[tag][k]:.1f}"
                                                           for k in ("order_accuracy", "relation_accuracy",
                                                                     "zero_shot_accuracy")))
        accelerator.wait_for_everyone()
        timing[f"zste_{tag}_s"] = round(time.time() - t, 1)

    if "base" not in stages:
        zste("base" if not args.model_name_or_path else "pretrained")
    val_fn = None
    if data.has_validation:
        val_fn = make_validation_fn(processor, data, sampling_rate=sampling_rate, batch_size=args.eval_batch_size,
                                    seed=args.seed, num_distractors=args.num_distractors)
    selection: dict = {}
    for stage in stages:
        settings = _stage_settings(args, stage)
        steps = settings.pop("steps", None)
        if steps is not None:  # step budget: fresh pairs every round, one validation per round
            budget = step_budget(steps, args.val_rounds, batch_size=settings["batch_size"],
                                 world_size=accelerator.num_processes,
                                 accumulation=train_config.gradient_accumulation_steps)
            settings["num_epochs"] = budget["num_epochs"]
            items = StageItems(stage, data.train, tcfg, budget["items_per_round"])
            accelerator.print(f"[{stage}] {budget['total_steps']} steps in {budget['num_epochs']} rounds, {settings}")
        else:
            items = items_for[stage](data.train, tcfg)
            accelerator.print(f"[{stage}] {len(items)} items/epoch, {settings}")
        cfg = dataclasses.replace(train_config, **settings)
        t = time.time()
        result = fit(model, items, collate_fn=collate, compute_loss=compute_loss, config=cfg,
                     accelerator=accelerator, stage=stage, eval_fn=val_fn)
        model = result.model
        kept = keep_best_round(model, result, output_dir / "checkpoints" / stage)
        if kept is not None:
            selection[stage] = kept
            accelerator.print(f"[{stage}] kept round {kept['round']}/{kept['rounds']} (step {kept['step']} of "
                              f"{kept['total_steps']}): best validation score {100 * kept['val_score']:.1f}")
        timing[f"{stage}_s"] = round(time.time() - t, 1)
        zste(stage)

    # ---- outputs
    timing["total_s"] = round(time.time() - t_start, 1)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if main_proc:
        unwrapped = accelerator.unwrap_model(model)
        save_pretrained_into(output_dir, unwrapped, processor)
        first, last = next(iter(results)), list(results)[-1]
        summary = {
            "compared": [first, last],
            "order_accuracy_gain_points": round(100 * (results[last]["order_accuracy"]
                                                       - results[first]["order_accuracy"]), 2),
            "zero_shot_accuracy_change_points": round(100 * (results[last]["zero_shot_accuracy"]
                                                             - results[first]["zero_shot_accuracy"]), 2),
        }
        meta = {
            "dataset": args.dataset,
            "method": "TeminAL-style (paper body and code not public; see hf_alm/training/teminal.py)",
            "held_out": {"source_clips": len(data.eval_singles), "compositions": len(data.eval_compositions)},
            "split": {**data.split.counts(), "description": data.split.describe()},
            "selection": selection or "none (no validation split): each stage's last step kept",
            "summary": summary,
            "warnings": zste_warnings(results),
            "timing_s": timing,
            "peak_rss_mb_main_process": round(peak_mb, 1),
            "teminal_config": dataclasses.asdict(tcfg),
        }
        # per-stage metrics last: the final stage is the last key (hf_alm.hub reads it as the model's results)
        write_zste_json(output_dir / "eval_results.json", results, extra=meta)
        print()
        print(format_zste_table(results, HEADLINE_METRICS))
        for w in meta["warnings"]:
            print(f"WARNING: {w}")
        print(f"\norder accuracy {summary['order_accuracy_gain_points']:+.1f} points, zero-shot accuracy "
              f"{summary['zero_shot_accuracy_change_points']:+.1f} points ({first} -> {last}); "
              f"{timing['total_s']:.0f} s, peak RSS {peak_mb:.0f} MB; saved to {output_dir}")
    accelerator.wait_for_everyone()

    if args.push_to_hub and main_proc:
        from hf_alm.hub import publish_from_args

        publish_from_args(args, output_dir, eval_results=output_dir / "eval_results.json")
    accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
