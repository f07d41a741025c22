#!/usr/bin/env python
"""ONE-PEACE-lite: vision-language then audio-language pretraining (CL + DCL), with held-out retrieval evaluation.

    accelerate launch recipes/one_peace.py                                  # CPU, embedded synthetic data, < 10 min
    accelerate launch recipes/one_peace.py --dataset clotho:CSV:AUDIO_DIR   # audio-language stage on Clotho
    accelerate launch --num_processes 2 --cpu recipes/one_peace.py         # negatives gathered across processes
    python recipes/one_peace.py --preset tiny --num_epochs 1 --output_dir /tmp/op   # a quick smoke run
    python recipes/one_peace.py --output_dir out --resume_from_checkpoint latest   # continue an interrupted run

Steps: procedural image-caption pairs (``hf_alm.data.synthetic_images``) and captioned sound events (``--dataset``,
default the synthetic corpus) are split into train / held-out; a caption tokenizer is trained offline on the training
captions; stage ``vl`` trains the ONE-PEACE-lite adapters, shared attention and text/image FFNs with the cross-modal
contrast and the denoising contrasts; stage ``al`` freezes everything but the audio adapter, the audio FFNs and the
audio final LayerNorm (+ audio projection, decoder, logit scale) and trains audio-text alignment. ONE-PEACE's text
branch comes out of web-scale VL training knowing every word; the synthetic VL captions never contain sound words, so
by default (``--al_text embeddings``) the token embeddings also train in stage ``al`` (``--al_text frozen`` is the
paper's exact stage 2: the frozen text embeddings of unseen words barely differ and audio-text R@1 stays at chance).
After each stage the
held-out image<->text and audio<->text retrieval R@1/5/10 and zero-shot audio classification (``evaluate_zste``) are
measured. The retrieval model (``OnePeaceModelWithProjection``), its processor and ``eval_results.json`` are written to
``--output_dir``; per-epoch checkpoints (``--resume_from_checkpoint latest``) live under ``checkpoints/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import resource
import sys
import time
from pathlib import Path

STAGES = ("vl", "al")
STAGE_DEFAULTS = {
    "vl": {"epochs": 6, "learning_rate": 1e-3, "batch_size": 48},
    "al": {"epochs": 8, "learning_rate": 1e-3, "batch_size": 32},
}
RECIPE, MODEL_TYPE = "one_peace", "one_peace"
NOT_RUN_IDENTITY = ("num_eval_per_class", "num_eval_images", "no_zste")  # they only shape the held-out evaluation
MAX_AUDIO_SECONDS = 1.5  # --max_audio_seconds default, when the model's audio position table allows it


def build_parser() -> argparse.ArgumentParser:
    from hf_alm.data.loaders import DATASET_SPEC_HELP
    from hf_alm.training.loop import RecipeHelpFormatter, add_common_args

    p = argparse.ArgumentParser(description=__doc__, formatter_class=RecipeHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="synthetic",
                   help=f"audio-caption data of the audio-language stage: {DATASET_SPEC_HELP}")
    g.add_argument("--num_per_class", type=int, default=24,
                   help="training clips per class of the synthetic sound corpus (only for --dataset synthetic)")
    g.add_argument("--num_eval_per_class", type=int, default=6,
                   help="held-out clips per class of the synthetic corpus, drawn with another seed")
    g.add_argument("--eval_fraction", type=float, default=0.2,
                   help="share of a non-synthetic --dataset held out for evaluation")
    g.add_argument("--split", default=None, help="split of a Hub / local dataset with several splits (default: all)")
    g.add_argument("--audio_column", default=None, help="audio column of a Hub / local dataset (default: 'audio')")
    g.add_argument("--caption_column", default=None,
                   help="caption column of a Hub / local dataset (default: 'captions' or 'caption')")
    g.add_argument("--max_audio_seconds", type=float, default=None,
                   help="clips are cut to their first N seconds (ONE-PEACE allows 15; small keeps CPU training fast). "
                        "At most what the model's audio position table holds (audio_config.max_relative_positions - "
                        f"1 frames): --preset tiny {_audio_seconds_limit_of_preset('tiny')} s, lite "
                        f"{_audio_seconds_limit_of_preset('lite')} s (default: {MAX_AUDIO_SECONDS}, or that limit "
                        "if it is shorter)")
    g.add_argument("--num_train_images", type=int, default=1536, help="procedural image-caption training pairs")
    g.add_argument("--num_eval_images", type=int, default=200,
                   help="held-out procedural image-caption pairs (another seed)")
    g.add_argument("--image_dataset", default="synthetic",
                   help="'synthetic' (procedural shapes) or a saved datasets folder with 'image' and 'caption' columns")

    g = p.add_argument_group("model")
    g.add_argument("--model_name_or_path", default=None,
                   help="start from this ONE-PEACE folder (with its processor) instead of a new --preset model")
    g.add_argument("--preset", default="lite", choices=["tiny", "lite"],
                   help="size of the ONE-PEACE trained from scratch (tiny: tests only)")
    g.add_argument("--vocab_size", type=int, default=1000, help="size of the caption tokenizer trained offline")
    g.add_argument("--max_text_length", type=int, default=32, help="tokens per caption (ONE-PEACE: 70)")

    g = p.add_argument_group("stages")
    g.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages to run, in order: vl, al")
    for stage, dd in STAGE_DEFAULTS.items():
        g.add_argument(f"--{stage}_epochs", type=int, default=None,
                       help=f"epochs of stage {stage} (default: --num_epochs if given, else {dd['epochs']})")
        g.add_argument(f"--{stage}_learning_rate", type=float, default=None,
                       help=f"peak learning rate of stage {stage} (default: --learning_rate if given, else "
                            f"{dd['learning_rate']})")
        g.add_argument(f"--{stage}_batch_size", type=int, default=None,
                       help=f"pairs per batch and process in stage {stage} (default: --batch_size if given, else "
                            f"{dd['batch_size']})")
    g.add_argument("--label_smoothing", type=float, default=0.1,
                   help="label smoothing of the denoising (DCL) losses; the cross-modal contrast uses none, as in the "
                        "original's criteria")
    g.add_argument("--no_dcl", action="store_true", help="train with the cross-modal contrast only (ablation)")
    g.add_argument("--al_text", default="embeddings", choices=["frozen", "embeddings", "branch"],
                   help="text side of the audio-language stage: 'frozen' = ONE-PEACE's exact stage 2 (needs a text "
                        "branch that already knows the audio captions' words); 'embeddings' = also train the token "
                        "embeddings (the synthetic VL captions never contain sound words, so their embeddings are "
                        "still random); 'branch' = also train the text adapter, text FFNs, text LN and text_proj")

    g = p.add_argument_group("evaluation")
    g.add_argument("--eval_batch_size", type=int, default=64, help="items per forward pass in evaluation")
    g.add_argument("--no_zste", action="store_true", help="skip the zero-shot audio classification (evaluate_zste)")
    per_stage = {key: "each stage's own: " + ", ".join(f"{s} {dd[key]}" for s, dd in STAGE_DEFAULTS.items())
                 + f"; --<stage>_{key} wins" for key in ("epochs", "learning_rate", "batch_size")}
    add_common_args(p, output_dir="outputs/one_peace", num_epochs=None, learning_rate=None, batch_size=None,
                    warmup_ratio=0.1, weight_decay=0.05, num_threads=1,
                    outputs="the retrieval model, its processor, eval_results.json",
                    default_text={"num_epochs": per_stage["epochs"], "learning_rate": per_stage["learning_rate"],
                                  "batch_size": per_stage["batch_size"],
                                  "num_threads": "1: on a shared, busy 2-core machine 2 OpenMP threads were several "
                                                 "times slower"})
    return p


def _audio_seconds_limit(audio_config, sampling_rate: int = 16000) -> float:
    """The longest clip, in seconds rounded down to 0.01, whose conv frames fit the audio position table
    (``max_relative_positions - 1`` frames besides CLS): longer clips fail in evaluation, which sees every frame."""
    import torch

    from hf_alm.modeling.one_peace.modeling_one_peace import conv_output_lengths

    hundredths = torch.arange(1, 1501)  # 0.01 .. 15 s, the longest clip ONE-PEACE takes
    frames = conv_output_lengths(torch.round(hundredths * sampling_rate / 100).long(), audio_config.conv_feature_layers)
    fits = hundredths[frames <= audio_config.max_relative_positions - 1]
    return int(fits.max()) / 100 if len(fits) else 0.0


def _audio_seconds_limit_of_preset(preset: str) -> float:
    from hf_alm.modeling.one_peace import OnePeaceConfig

    return _audio_seconds_limit(OnePeaceConfig.from_preset(preset).audio_config)


def _check_max_audio_seconds(args) -> None:
    """Set ``args.max_audio_seconds`` (default: MAX_AUDIO_SECONDS, or the model's limit if shorter); SystemExit when
    a value given exceeds what the model's audio position table holds (evaluation would fail after training)."""
    from hf_alm.modeling.one_peace import OnePeaceConfig

    if args.model_name_or_path:
        config, model = OnePeaceConfig.from_pretrained(args.model_name_or_path), f"{args.model_name_or_path}"
    else:
        config, model = OnePeaceConfig.from_preset(args.preset), f"--preset {args.preset}"
    limit = _audio_seconds_limit(config.audio_config)
    if args.max_audio_seconds is None:
        args.max_audio_seconds = min(MAX_AUDIO_SECONDS, limit)
    elif args.max_audio_seconds <= 0:
        raise SystemExit(f"--max_audio_seconds must be > 0, got {args.max_audio_seconds}")
    elif args.max_audio_seconds > limit:
        raise SystemExit(f"--max_audio_seconds {args.max_audio_seconds} is too long for {model}: its audio position "
                         f"table holds {config.audio_config.max_relative_positions - 1} frames "
                         f"(audio_config.max_relative_positions - 1); the largest value that fits is {limit}")


def _stage_settings(args, stage: str) -> dict:
    dd = STAGE_DEFAULTS[stage]

    def pick(name, common):
        own = getattr(args, f"{stage}_{name}")
        return own if own is not None else (common if common is not None else dd[name])

    return {"num_epochs": pick("epochs", args.num_epochs),
            "learning_rate": pick("learning_rate", args.learning_rate),
            "batch_size": pick("batch_size", args.batch_size)}


# ------------------------------------------------------------------------------------------------------ data
def _captions(row) -> list[str]:
    caps = row.get("captions")
    if isinstance(caps, str):
        caps = [caps]
    caps = [c for c in (caps or []) if c]
    if not caps and row.get("caption"):
        caps = [row["caption"]]
    if not caps and row.get("label_name"):
        from hf_alm.data.loaders import caption_for_label

        caps = [caption_for_label(row["label_name"])]
    return caps


def _audio_rows(ds, sampling_rate, max_seconds, progress):
    """Decode once to in-memory float arrays (cut to ``max_seconds``); rows without captions are dropped."""
    from tqdm.auto import tqdm

    from hf_alm.data.audio import load_audio

    rows, limit = [], int(max_seconds * sampling_rate)
    for row in tqdm(ds, desc="decoding audio", disable=not progress, leave=False):
        caps = _captions(row)
        if not caps:
            continue
        wav = load_audio(row["audio"], sampling_rate)[:limit].numpy()
        rows.append({"audio": wav, "captions": caps, "label_name": row.get("label_name")})
    return rows


def load_audio_data(args, sampling_rate, progress):
    """``(train_rows, eval_rows)`` of ``{"audio", "captions", "label_name"}``; held-out rows never train."""
    import datasets

    from hf_alm.data.loaders import load_dataset_spec

    if args.dataset.strip().lower() == "synthetic":
        from hf_alm.data.synthetic import make_synthetic_dataset

        train = make_synthetic_dataset(args.num_per_class, sampling_rate=sampling_rate, seed=args.seed)
        held = make_synthetic_dataset(args.num_eval_per_class, sampling_rate=sampling_rate, seed=args.seed + 7919)
        return (_audio_rows(train, sampling_rate, args.max_audio_seconds, progress),
                _audio_rows(held, sampling_rate, args.max_audio_seconds, progress))
    kw = {"sampling_rate": sampling_rate} if args.dataset.split(":")[0].lower() == "synthetic" else {}
    for name in ("split", "audio_column", "caption_column"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    ds = load_dataset_spec(args.dataset, **kw)
    if isinstance(ds, datasets.DatasetDict):
        ds = datasets.concatenate_datasets([ds[k] for k in ds])
    if not isinstance(ds, datasets.Dataset):
        raise ValueError(f"--dataset {args.dataset}: need a map-style dataset, got {type(ds).__name__}")
    rows = _audio_rows(ds, sampling_rate, args.max_audio_seconds, progress)
    if len(rows) < 4:
        raise ValueError(f"--dataset {args.dataset}: only {len(rows)} captioned clips; need at least 4")
    order = list(range(len(rows)))
    random.Random(args.seed).shuffle(order)
    n_eval = max(1, int(round(args.eval_fraction * len(rows))))
    return [rows[i] for i in order[n_eval:]], [rows[i] for i in order[:n_eval]]


def load_image_data(args, image_size):
    import datasets

    from hf_alm.data.synthetic_images import make_synthetic_image_dataset

    if args.image_dataset == "synthetic":
        train = make_synthetic_image_dataset(args.num_train_images, image_size=image_size, seed=args.seed)
        held = make_synthetic_image_dataset(args.num_eval_images, image_size=image_size, seed=args.seed + 7919)
    else:
        ds = datasets.load_from_disk(args.image_dataset)
        if "image" not in ds.column_names or not ({"caption", "captions"} & set(ds.column_names)):
            raise ValueError(f"--image_dataset {args.image_dataset}: needs 'image' and 'caption'/'captions' columns, "
                             f"has {ds.column_names}")
        ds = ds.shuffle(seed=args.seed)
        n_eval = max(1, len(ds) // 8)
        train, held = ds.select(range(n_eval, len(ds))), ds.select(range(n_eval))
    to_rows = lambda d: [{"image": r["image"], "captions": _captions(r),  # noqa: E731
                          "canonical": r.get("canonical_caption") or _captions(r)[0]} for r in d]
    return to_rows(train), to_rows(held)


# ------------------------------------------------------------------------------------------------------ evaluation
def _unique_targets(texts):
    uniq = sorted(set(texts))
    index = {t: i for i, t in enumerate(uniq)}
    return uniq, [[index[t]] for t in texts]


def evaluate_retrieval(model, processor, image_rows, audio_rows, batch_size) -> dict:
    """Held-out image<->text and audio<->text R@k; targets are the distinct canonical captions (duplicates merged)."""
    import numpy as np
    import torch

    from hf_alm.evaluation.retrieval import embed_audio, embed_texts, retrieval_metrics

    out = {}
    model.eval()
    with torch.no_grad():
        if image_rows:
            uniq, positives = _unique_targets([r["canonical"] for r in image_rows])
            embs = []
            for s in range(0, len(image_rows), batch_size):
                pix = processor(images=[np.asarray(r["image"]) for r in image_rows[s:s + batch_size]])
                embs.append(model.get_image_features(pix["pixel_values"]).pooler_output)
            res = retrieval_metrics(torch.cat(embs), embed_texts(model, processor, uniq), positives)
            out.update({k.replace("audio", "image"): v for k, v in res.items()})
            out["image_num_captions"] = len(uniq)
            out["image_chance_R@1"] = 1.0 / len(uniq)
        if audio_rows:
            uniq, positives = _unique_targets([r["captions"][0] for r in audio_rows])
            a = embed_audio(model, processor, [r["audio"] for r in audio_rows],
                            sampling_rate=processor.feature_extractor.sampling_rate, batch_size=batch_size)
            res = retrieval_metrics(a, embed_texts(model, processor, uniq), positives)
            out.update(res)
            out["audio_num_captions"] = len(uniq)
            out["audio_chance_R@1"] = 1.0 / len(uniq)
    return out


def _retrieval_model(pretrain_model):
    """The ``OnePeaceModelWithProjection`` sharing the pretraining model's encoder / projection weights."""
    from hf_alm.modeling.one_peace import OnePeaceModelWithProjection

    model = OnePeaceModelWithProjection(pretrain_model.config)
    missing, _ = model.load_state_dict(pretrain_model.state_dict(), strict=False)
    if missing:
        raise RuntimeError(f"retrieval model weights missing from the pretraining model: {missing}")
    return model.eval()


# ------------------------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    from accelerate.utils import set_seed

    args = build_parser().parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        raise SystemExit(f"--stages: unknown stage(s) {bad or args.stages!r}; choose from {', '.join(STAGES)}")
    _check_max_audio_seconds(args)
    from hf_alm.training.loop import prepare_run

    run = prepare_run(args, recipe=RECIPE, model_type=MODEL_TYPE, ignore=NOT_RUN_IDENTITY)

    import hf_alm  # noqa: F401  (registers the Auto classes)
    from hf_alm.modeling.one_peace import (OnePeaceConfig, OnePeaceFeatureExtractor, OnePeaceForPreTraining,
                                           OnePeaceImageProcessor, OnePeaceProcessor)
    from hf_alm.training.loop import TrainConfig, fit, make_accelerator
    from hf_alm.training.one_peace import (ALCollator, VLCollator, al_pretrain_loss, freeze_for_audio_stage,
                                           vl_pretrain_loss)
    from hf_alm.utils import atomic_write_text, save_pretrained_into

    t_start = time.time()
    output_dir = Path(args.output_dir)
    train_config = TrainConfig.from_args(args, run=run)
    # each stage leaves one modality's branch without gradients (audio in vl, image in al)
    accelerator = make_accelerator(train_config, find_unused_parameters=True)
    main_proc = accelerator.is_main_process
    set_seed(args.seed)

    # ---- model config, processors
    processor_dir = output_dir / "checkpoints" / "processor"
    if args.model_name_or_path:
        from transformers import AutoProcessor

        model = OnePeaceForPreTraining.from_pretrained(args.model_name_or_path)
        processor = AutoProcessor.from_pretrained(args.model_name_or_path)
        mcfg = model.config
    else:
        mcfg = OnePeaceConfig.from_preset(args.preset)
        processor = None
    image_size = mcfg.vision_config.image_size
    fe = processor.feature_extractor if processor else OnePeaceFeatureExtractor()
    sampling_rate = int(fe.sampling_rate)

    # ---- data
    t0 = time.time()
    image_train, image_eval = load_image_data(args, image_size) if "vl" in stages else ([], [])
    audio_train, audio_eval = load_audio_data(args, sampling_rate, main_proc)
    accelerator.print(f"data: {len(image_train)} / {len(image_eval)} image pairs (train / held-out), "
                      f"{len(audio_train)} / {len(audio_eval)} audio clips ({time.time() - t0:.1f} s)")

    if processor is None:
        from transformers import AutoProcessor

        from hf_alm.training.tokenizer import train_caption_tokenizer

        if args.resume_from_checkpoint and (processor_dir / "processor_config.json").is_file():
            processor = AutoProcessor.from_pretrained(processor_dir)  # the tokenizer the checkpoints know
        else:
            corpus = [c for r in image_train + audio_train for c in r["captions"]]
            tokenizer = train_caption_tokenizer(corpus, vocab_size=args.vocab_size,
                                                model_max_length=args.max_text_length)
            processor = OnePeaceProcessor(fe, OnePeaceImageProcessor(size={"height": image_size,
                                                                           "width": image_size}),
                                          tokenizer, max_text_length=args.max_text_length)
            if main_proc:
                from hf_alm.utils import atomic_directory

                with atomic_directory(processor_dir) as tmp:
                    processor.save_pretrained(tmp)
            accelerator.wait_for_everyone()
        tok = processor.tokenizer
        set_seed(args.seed)
        mcfg = OnePeaceConfig.from_preset(args.preset, text_config={
            "vocab_size": len(tok), "pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
            "max_position_embeddings": max(args.max_text_length + 2,
                                           OnePeaceConfig.from_preset(args.preset).text_config.max_position_embeddings)})
        model = OnePeaceForPreTraining(mcfg)
    tok = processor.tokenizer
    n_params = sum(p.numel() for p in model.parameters())
    accelerator.print(f"model: ONE-PEACE-{args.preset}, {n_params / 1e6:.2f} M parameters (with the DCL decoder)")

    results: dict = {}
    timing: dict = {"data_s": round(time.time() - t0, 1)}

    def evaluate(tag):
        t = time.time()
        if main_proc:
            retrieval = _retrieval_model(accelerator.unwrap_model(model))
            res = evaluate_retrieval(retrieval, processor, image_eval, audio_eval, args.eval_batch_size)
            if not args.no_zste and audio_eval and all(r.get("label_name") for r in audio_eval):
                from hf_alm.evaluation.zste import evaluate_zste

                singles = [{"audio": {"array": r["audio"], "sampling_rate": sampling_rate},
                            "label_name": r["label_name"]} for r in audio_eval]
                z = evaluate_zste(retrieval, processor, {"compositions": [], "singles": singles},
                                  batch_size=args.eval_batch_size, sampling_rate=sampling_rate,
                                  tasks=("zero_shot",), seed=args.seed)
                res.update({f"zste_{k}": v for k, v in z.items()})
            results[tag] = res
            accelerator.print(f"[eval {tag}] " + ", ".join(
                f"{k}={100 * res[k]:.1f}" for k in ("image_to_text_R@1", "text_to_image_R@1", "audio_to_text_R@1",
                                                    "text_to_audio_R@1", "zste_zero_shot_accuracy") if k in res))
        accelerator.wait_for_everyone()
        timing[f"eval_{tag}_s"] = round(time.time() - t, 1)

    max_len = args.max_text_length
    collators = {
        "vl": VLCollator(processor.image_processor, tok, max_text_length=max_len),
        "al": ALCollator(processor.feature_extractor, tok, mcfg.audio_config.conv_feature_layers,
                         max_text_length=max_len),
    }
    data = {"vl": image_train, "al": audio_train}
    use_dcl = not args.no_dcl

    def vl_loss(m, batch):
        return vl_pretrain_loss(m, batch, label_smoothing=args.label_smoothing, use_dcl=use_dcl)

    def al_loss(m, batch):
        return al_pretrain_loss(m, batch, label_smoothing=args.label_smoothing, use_dcl=use_dcl,
                                text_grad=args.al_text != "frozen")

    losses = {"vl": vl_loss, "al": al_loss}
    for stage in stages:
        settings = _stage_settings(args, stage)
        cfg = dataclasses.replace(train_config, **settings)
        unwrapped = accelerator.unwrap_model(model)
        if stage == "al":
            trainable = freeze_for_audio_stage(unwrapped)
            enc = unwrapped.one_peace.encoder
            if args.al_text == "embeddings":
                enc.text_adapter.embed_tokens.requires_grad_(True)
            elif args.al_text == "branch":
                for mod in [enc.text_adapter, enc.fusion_model.text_layer_norm, unwrapped.text_proj] + \
                        [layer.text_ffn for layer in enc.fusion_model.layers]:
                    mod.requires_grad_(True)
            trainable = [n for n, p in unwrapped.named_parameters() if p.requires_grad]
            accelerator.print(f"[al] stage switch: {len(trainable)} trainable tensors, "
                              f"{sum(p.numel() for p in unwrapped.parameters() if p.requires_grad) / 1e6:.2f} M "
                              f"parameters (audio adapter, audio FFNs, audio LN, audio_proj, decoder, logit scale; "
                              f"text: {args.al_text})")
        accelerator.print(f"[{stage}] {len(data[stage])} pairs/epoch, {settings}")
        t = time.time()
        result = fit(model, data[stage], collate_fn=collators[stage], compute_loss=losses[stage], config=cfg,
                     accelerator=accelerator, stage=stage)
        model = result.model
        timing[f"{stage}_s"] = round(time.time() - t, 1)
        evaluate(stage)

    timing["total_s"] = round(time.time() - t_start, 1)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if main_proc:
        final = _retrieval_model(accelerator.unwrap_model(model))
        save_pretrained_into(output_dir, final, processor)
        last = list(results)[-1] if results else None
        meta = {"dataset": args.dataset, "image_dataset": args.image_dataset, "preset": args.preset,
                "stages": stages, "timing_s": timing, "peak_rss_mb_main_process": round(peak_mb, 1),
                "num_parameters": n_params, "final": last}
        payload = {**meta, **{k: results[k] for k in results}}
        atomic_write_text(output_dir / "eval_results.json", json.dumps(payload, indent=2, default=float) + "\n")
        print(f"{timing['total_s']:.0f} s, peak RSS {peak_mb:.0f} MB; saved to {output_dir} (every metric of every "
              f"stage, R@5 and R@10 included: {output_dir / 'eval_results.json'})")
    accelerator.wait_for_everyone()

    if args.push_to_hub and main_proc:
        from hf_alm.hub import publish_from_args

        publish_from_args(args, output_dir, eval_results=output_dir / "eval_results.json")
    accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
