"""Convert a Microsoft BEATs checkpoint (.pt: pre-trained, fine-tuned or tokenizer) into an hf-alm folder.

The source is the released format ``{'cfg': dict, 'model': state_dict[, 'label_dict': {int: str}]}``, read with
``torch.load(..., weights_only=True)``. A pre-trained checkpoint becomes a ``BeatsModel``, a fine-tuned one
(``cfg['finetuned_model']``) a ``BeatsForAudioClassification`` whose ``id2label`` comes from ``label_dict``, and a
tokenizer checkpoint (``quantize.*`` keys) a ``BeatsAcousticTokenizer``. The output folder holds ``model.safetensors``,
``config.json`` (with ``auto_map``), ``preprocessor_config.json`` and the model's code (Hub remote code), written
atomically; it must be missing or empty unless --overwrite is given. Unknown or missing weights, NaN / Inf weights and
a cfg without an architecture key (e.g. ``encoder_embed_dim``) are errors that name them.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from hf_alm.convert import check_weights

logger = logging.getLogger(__name__)

PROBLEM_TYPES = ("multi_label_classification", "single_label_classification")
SRC_HELP = "the original BEATs checkpoint file (.pt)"
# what a user re-saves from a checkpoint that pickles Python objects (see hf_alm.utils.load_torch_file), if they trust it
RESAVE = "{k: c[k] for k in ('cfg', 'model', 'label_dict') if k in c}"

# cfg keys that fix the architecture or its arithmetic: every released checkpoint carries them, and a missing one
# must not silently take BeatsConfig's default (a wrong width only shows up later as a list of shape mismatches)
REQUIRED_CFG_KEYS = ("input_patch_size", "embed_dim", "conv_bias", "encoder_layers", "encoder_embed_dim",
                     "encoder_ffn_embed_dim", "encoder_attention_heads", "layer_norm_first", "deep_norm", "conv_pos",
                     "conv_pos_groups", "relative_position_embedding", "num_buckets", "max_distance", "gru_rel_pos")
REQUIRED_CFG_KEYS_BY_KIND = {"model": (), "classifier": ("predictor_class",), "tokenizer": ("quant_n", "quant_dim")}

_ENCODER_RULES = [
    (r"^encoder\.pos_conv\.0\.weight_g$", "encoder.pos_conv.conv.parametrizations.weight.original0"),
    (r"^encoder\.pos_conv\.0\.weight_v$", "encoder.pos_conv.conv.parametrizations.weight.original1"),
    (r"^encoder\.pos_conv\.0\.parametrizations\.weight\.original([01])$",
     r"encoder.pos_conv.conv.parametrizations.weight.original\1"),
    (r"^encoder\.pos_conv\.0\.bias$", "encoder.pos_conv.conv.bias"),
    (r"^(patch_embedding\.weight|patch_embedding\.bias)$", r"\1"),
    (r"^(layer_norm|post_extract_proj|encoder\.layer_norm)\.(weight|bias)$", r"\1.\2"),
    (r"^(encoder\.layers\.\d+\.self_attn\.(?:q_proj|k_proj|v_proj|out_proj|grep_linear)\.(?:weight|bias))$", r"\1"),
    (r"^(encoder\.layers\.\d+\.self_attn\.grep_a)$", r"\1"),
    (r"^(encoder\.layers\.\d+\.(?:self_attn_layer_norm|final_layer_norm|fc1|fc2)\.(?:weight|bias))$", r"\1"),
]
_HEAD_RULES = [(r"^predictor\.(weight|bias)$", r"classifier.\1")]
_TOKENIZER_RULES = [
    (r"^quantize_layer\.([02])\.(weight|bias)$", r"quantize_layer.\1.\2"),
    (r"^quantize\.embedding\.(weight|cluster_size|embed_avg|initted)$", r"quantizer.\1"),
    (r"^quantize\.cluster_size$", "quantizer.ema_cluster_size"),
]
_REL_BIAS = re.compile(r"^encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.weight$")


def map_state_dict(original: dict, kind: str) -> tuple[dict, list[str]]:
    """Rename an original BEATs / Tokenizers state dict to hf-alm names for ``kind`` in {"model", "classifier",
    "tokenizer"}. Returns (new state dict, original keys that matched no rule)."""
    prefix = "" if kind == "model" else "beats."
    rules = [(re.compile(p), prefix + r) for p, r in _ENCODER_RULES]
    if kind == "classifier":
        rules += [(re.compile(p), r) for p, r in _HEAD_RULES]
    if kind == "tokenizer":
        rules += [(re.compile(p), r) for p, r in _TOKENIZER_RULES]
    out, unknown, rel_bias = {}, [], {}
    for key, value in original.items():
        match = _REL_BIAS.match(key)
        if match:
            rel_bias[int(match.group(1))] = (key, value)
            continue
        for pattern, repl in rules:
            if pattern.match(key):
                out[pattern.sub(repl, key)] = value
                break
        else:
            unknown.append(key)
    if rel_bias:
        first_key, first = rel_bias[min(rel_bias)]
        for key, value in rel_bias.values():
            if value.shape != first.shape or not torch.equal(value, first):
                raise ValueError(f"the relative position bias table must be shared by all layers, but {key} differs "
                                 f"from {first_key}")
        out[prefix + "encoder.relative_attention_bias.weight"] = first
    return out, unknown


def _load_checkpoint(src) -> dict:
    from hf_alm.utils import load_torch_file

    path = Path(src)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.pt"))
        raise IsADirectoryError(f"BEATs checkpoint {path} is a folder; pass the .pt file itself"
                                + (f" (it holds {', '.join(found)})" if found else " (it holds no .pt file)"))
    # tensors and plain values only (never a full unpickle); errors are CheckpointError (ValueError) naming the file
    ckpt = load_torch_file(path, what="BEATs checkpoint", resave=RESAVE)
    if not isinstance(ckpt, dict) or "cfg" not in ckpt or "model" not in ckpt:
        keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is not in the BEATs release format {{'cfg', 'model', ['label_dict']}}; found {keys}")
    return ckpt


def _check_cfg(cfg: dict, kind: str) -> None:
    missing = [k for k in REQUIRED_CFG_KEYS + REQUIRED_CFG_KEYS_BY_KIND[kind] if k not in cfg]
    if missing:
        raise ValueError(f"the checkpoint's cfg lacks the required key(s) {missing} (every released BEATs {kind} "
                         f"checkpoint carries them); refusing to guess them")


def build_model(ckpt: dict, *, padding_mode: str = "time_aligned", problem_type: str = "multi_label_classification"):
    """Build the hf-alm model for an original checkpoint dict and load its weights (strict)."""
    from hf_alm.modeling.beats import (BeatsAcousticTokenizer, BeatsConfig, BeatsForAudioClassification,
                                       BeatsModel)

    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}")
    cfg, state = ckpt["cfg"], ckpt["model"]
    if not isinstance(cfg, dict) or not isinstance(state, dict):
        raise ValueError(f"the checkpoint's cfg and model must be dicts, got {type(cfg).__name__} and "
                         f"{type(state).__name__}")
    cfg = dict(cfg)
    is_tokenizer = any(k.startswith("quantize.") or k.startswith("quantize_layer.") for k in state)
    kind = "tokenizer" if is_tokenizer else "classifier" if cfg.get("finetuned_model") else "model"
    _check_cfg(cfg, kind)
    extra = {"padding_mode": padding_mode}
    if kind == "tokenizer":
        cls = BeatsAcousticTokenizer
    elif kind == "classifier":
        cls = BeatsForAudioClassification
        label_dict = ckpt.get("label_dict")
        num_classes = int(cfg.get("predictor_class") or 0)
        if label_dict:
            id2label = {int(k): str(v) for k, v in label_dict.items()}
            if sorted(id2label) != list(range(num_classes)):
                raise ValueError(f"label_dict has ids {sorted(id2label)[:5]}... ({len(id2label)} labels) but the "
                                 f"classifier has predictor_class={num_classes} outputs")
        else:
            id2label = {i: f"LABEL_{i}" for i in range(num_classes)}
        extra.update(id2label=id2label, label2id={v: k for k, v in id2label.items()}, problem_type=problem_type)
    else:
        cls = BeatsModel
    config = BeatsConfig.from_original(cfg, **extra)
    mapped, unknown = map_state_dict(state, kind)
    if unknown:
        raise ValueError(f"unknown keys in the {kind} checkpoint (no hf-alm parameter for them): {unknown}")
    model = cls(config)
    ids = {id(v): old for old, v in state.items()}
    sources = {new: ids.get(id(v), new) for new, v in mapped.items()}
    check_weights(mapped, model.state_dict(), sources)  # non-tensors, int / bool tensors for float weights, NaN / Inf
    expected = set(model.state_dict())
    missing = sorted(expected - set(mapped))
    unexpected = sorted(set(mapped) - expected)
    if missing or unexpected:
        raise ValueError(f"checkpoint does not match a {cls.__name__} built from its cfg: missing {missing}, "
                         f"unexpected {unexpected}")
    shapes = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(model.state_dict()[k].shape)}"
              for k, v in mapped.items() if tuple(v.shape) != tuple(model.state_dict()[k].shape)]
    if shapes:
        raise ValueError("shape mismatches: " + "; ".join(shapes))
    model.load_state_dict(mapped, strict=True)
    if kind == "tokenizer" and float(model.quantizer.initted.item()) != 1.0:
        logger.warning("tokenizer checkpoint has quantize.embedding.initted=%s: its codebook was never trained; "
                       "training will re-initialise it with k-means", float(model.quantizer.initted.item()))
    return model.eval(), kind


def convert(src, dst, *, padding_mode: str = "time_aligned", problem_type: str = "multi_label_classification",
            overwrite: bool = False, **_ignored) -> Path:
    """Convert ``src`` (an original BEATs ``.pt``) into the folder ``dst``; returns ``dst`` (resolved).

    ``dst`` must be missing or an empty folder; a non-empty folder is replaced (atomically) only with ``overwrite``.
    """
    from hf_alm.modeling.beats import BeatsFeatureExtractor
    from hf_alm.utils import atomic_directory, check_output_dir

    dst = check_output_dir(dst, overwrite=overwrite, sources=[src])  # before the work: fail fast
    ckpt = _load_checkpoint(src)
    try:
        model, kind = build_model(ckpt, padding_mode=padding_mode, problem_type=problem_type)
    except ValueError as err:  # name the file: "checkpoint weight predictor.weight has dtype torch.int32 ..."
        raise ValueError(f"{src}: {err}") from None
    extractor = BeatsFeatureExtractor(feature_size=model.config.num_mel_bins, padding_mode=padding_mode,
                                      fbank_mean=model.config.fbank_mean, fbank_std=model.config.fbank_std)
    with atomic_directory(dst, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        extractor.save_pretrained(tmp)
    logger.info("converted %s (%s, %s) -> %s", src, kind, type(model).__name__, dst)
    return dst


def add_arguments(parser) -> None:
    parser.add_argument("--padding_mode", choices=["reference", "time_aligned"], default="time_aligned",
                        help="how padding becomes the patch mask: 'time_aligned' (default) masks exactly the padded "
                             "time columns, so a padded batch gives the same outputs per clip as each clip alone; "
                             "'reference' reproduces the original BEATs code bit for bit on padded batches too (a short "
                             "clip's outputs then depend on the longer clips beside it). Unpadded clips give the "
                             "original numbers in both modes")
    parser.add_argument("--problem_type", choices=list(PROBLEM_TYPES), default="multi_label_classification",
                        help="for fine-tuned checkpoints: how the classifier's logits are read (AudioSet heads are "
                             "multi-label, i.e. sigmoid; default multi_label_classification)")
