"""ONE-PEACE: convert an original fairseq checkpoint ({'cfg', 'model'}, e.g. one-peace.pt) to an hf-alm folder.

Every key of the original state dict is mapped (encoder adapters, fusion layers, projections, logit scale, the
pretraining decoder, the classification head); a key that is not understood is an error listing all such keys, and a
model weight left without a source is an error too. Sizes are read from the checkpoint's tensors (and from ``cfg`` for
what shapes cannot tell: conv strides, attention heads). One shared relative-position table (pretrained checkpoints)
and per-layer copies (fine-tuned, ``copy_rel_pos_table``) are both accepted; saved ``rp_bucket`` buffers are checked
against the recomputed ones. The converted weights keep the Apache-2.0 licence of ONE-PEACE (a NOTICE is written).

The checkpoint is read with ``torch.load(..., weights_only=True)`` only: tensors and plain values. hf-alm never
unpickles Python objects from a file (that runs code the file names). Original fairseq checkpoints store ``cfg`` as an
omegaconf ``DictConfig`` (older ones as an ``argparse.Namespace``) and are refused with that explanation; if you trust
the file and where it came from, re-save its weights and a plain-dict cfg yourself, knowingly, and convert the copy::

    import torch; from omegaconf import OmegaConf
    c = torch.load("one-peace.pt", map_location="cpu", weights_only=False)  # runs the file's code: trusted files only
    cfg = OmegaConf.to_container(c["cfg"], resolve=True) if OmegaConf.is_config(c["cfg"]) else vars(c["cfg"])
    torch.save({"cfg": cfg, "model": c["model"]}, "one-peace.weights.pt")
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from pathlib import Path

import torch

from hf_alm.convert import check_weights

_ORIG_SPEC = "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]"
TARGETS = ("auto", "model", "projection", "pretraining", "classification")
SRC_HELP = "the original ONE-PEACE checkpoint file (.pt, fairseq {'cfg', 'model'})"
# what a user re-saves from a checkpoint whose cfg is a pickled omegaconf / argparse object, if they trust the file
RESAVE = ("{'model': c['model'], "
          "'cfg': __import__('omegaconf').OmegaConf.to_container(c['cfg'], resolve=True)}")

NOTICE = """This folder contains weights converted from ONE-PEACE (OFA-Sys/ONE-PEACE, https://github.com/OFA-Sys/ONE-PEACE),
released under the Apache License 2.0 (https://www.apache.org/licenses/LICENSE-2.0). The converted weights keep that
licence. Conversion code: hf-alm (MIT).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", choices=TARGETS, default="auto",
                        help="model class to build: 'auto' picks classification when a classify_head is present, "
                             "pretraining when the decoder is present, else projection (retrieval) model")
    parser.add_argument("--drop_image", action="store_true",
                        help="drop the vision adapter and image FFNs (audio-language port, as ONE-PEACE stage 2 does)")
    parser.add_argument("--num_attention_heads", type=int, default=None,
                        help="attention heads of the fusion encoder when neither cfg nor a relative-bias table tells")


# ---------------------------------------------------------------------------------------------------------------------
def _cfg_get(cfg, *path, default=None):
    cur = cfg
    for key in path:
        if cur is None:
            return default
        if isinstance(cur, dict):
            cur = cur.get(key)
        else:
            cur = getattr(cur, key, None)
    return default if cur is None else cur


def _parse_spec(spec):
    if spec is None:
        spec = _ORIG_SPEC
    if isinstance(spec, str):
        # the spec is a small Python expression over literal tuples: evaluate it without eval()
        tree = ast.parse(spec, mode="eval")

        def ev(node):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
                return ev(node.left) + ev(node.right)
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
                return ev(node.left) * ev(node.right)
            return ast.literal_eval(node)

        spec = ev(tree.body)
    return [[int(a), int(b), int(c)] for a, b, c in spec]


_SUB = [
    # adapters (text / image / audio), relative to "<wrapper>.<m>_adapter."
    (r"embed_tokens\.weight", "embed_tokens.weight"),
    (r"embed_positions\.weight", "embed_positions.weight"),
    (r"(cls_embedding|cls_pos_embed|mask_embedding|pos_embed)", r"\1"),
    (r"rel_pos_table_list\.(\d+)\.weight", r"rel_bias.rel_pos_tables.\1.weight"),
    (r"embed_images\.0\.(weight|bias)", r"stem_conv1.\1"),
    (r"embed_images\.1\.layer_norm\.(weight|bias)", r"stem_norm1.\1"),
    (r"embed_images\.3\.(weight|bias)", r"stem_conv2.\1"),
    (r"embed_images\.4\.layer_norm\.(weight|bias)", r"stem_norm2.\1"),
    (r"embed_images\.6\.(weight|bias)", r"stem_conv3.\1"),
    (r"embed_audios\.0\.conv_layers\.(\d+)\.0\.(weight|bias)", r"conv_layers.\1.conv.\2"),
    (r"embed_audios\.0\.conv_layers\.(\d+)\.2\.1\.(weight|bias)", r"conv_layers.\1.layer_norm.\2"),
    (r"embed_audios\.2\.(weight|bias)", r"feature_layer_norm.\1"),
    (r"embed_audios\.3\.(weight|bias)", r"feature_projection.\1"),
]
_LAYER = [
    (r"self_attn\.(q_proj|k_proj|v_proj|out_proj|ln)\.(weight|bias)", r"self_attn.\1.\2"),
    (r"(self_attn_layer_norm|final_layer_norm)\.(weight|bias)", r"\1.\2"),
    (r"(gamma_1|gamma_2)", r"\1"),
    (r"(text|image|audio)_ffn\.0\.(wi_0|wi_1)\.weight", r"\1_ffn.\2.weight"),
    (r"(text|image|audio)_ffn\.2\.(weight|bias)", r"\1_ffn.ln.\2"),
    (r"(text|image|audio)_ffn\.3\.(weight|bias)", r"\1_ffn.fc_out.\2"),
]
_HEAD = [
    (r"classify_head\.attn_pooling_func\.(q)", r"classify_head.attn_pooling.\1"),
    (r"classify_head\.attn_pooling_func\.(k_proj|v_proj|out_proj)\.(weight|bias)", r"classify_head.attn_pooling.\1.\2"),
    (r"classify_head\.norm\.(weight|bias)", r"classify_head.norm.\1"),
    (r"classify_head\.classifier\.0\.(weight|bias)", r"classify_head.dense.\1"),
    (r"classify_head\.classifier\.1\.(weight|bias)", r"classify_head.dense_norm.\1"),
    (r"classify_head\.classifier\.3\.(weight|bias)", r"classify_head.classifier.\1"),
]
# buffers of the original that we recompute (checked, not copied)
_BUFFERS = re.compile(r"(.*_adapter\.rp_bucket|.*image_adapter\.position_idx|.*fusion_model\.version)$")


def map_key(key: str, drop_image: bool = False) -> str | None:
    """Original key -> hf-alm key (without the class prefix decided later); ``None`` = recognised buffer / dropped.

    Raises ``KeyError`` for a key that is not understood.
    """
    if _BUFFERS.match(key):
        return None
    if drop_image and re.search(r"(^|\.)(image_adapter|image_ffn|image_layer_norm)\.|^image_proj\.|"
                                r"^decoder_image_embed\.|^image_mask_(token|head)", key):
        return None
    m = re.match(r"(encoder_wrapper|decoder_wrapper)\.(.*)$", key)
    if m:
        wrapper = "one_peace.encoder." if m.group(1) == "encoder_wrapper" else "decoder."
        rest = m.group(2)
        am = re.match(r"(text|image|audio)_adapter\.(.*)$", rest)
        if am:
            sub = am.group(2)
            if am.group(1) == "audio":
                pm = re.match(r"embed_positions\.(\d+)\.0\.(weight|bias)$", sub)
                if pm:
                    return f"{wrapper}audio_adapter.pos_conv.{int(pm.group(1)) - 1}.conv.{pm.group(2)}"
            for pat, rep in _SUB:
                if re.fullmatch(pat, sub):
                    return f"{wrapper}{am.group(1)}_adapter." + re.sub(pat, rep, sub)
            raise KeyError(key)
        lm = re.match(r"fusion_model\.layers\.(\d+)\.(.*)$", rest)
        if lm:
            for pat, rep in _LAYER:
                if re.fullmatch(pat, lm.group(2)):
                    return f"{wrapper}fusion_model.layers.{lm.group(1)}." + re.sub(pat, rep, lm.group(2))
            raise KeyError(key)
        nm = re.fullmatch(r"fusion_model\.(text|image|audio)_layer_norm\.(weight|bias)", rest)
        if nm:
            return f"{wrapper}fusion_model.{nm.group(1)}_layer_norm.{nm.group(2)}"
        raise KeyError(key)
    if re.fullmatch(r"(text|image|audio)_proj\.(weight|bias)|logit_scale", key):
        return key
    if re.fullmatch(r"decoder_(text|image|audio)_embed\.(weight|bias)|(text|image|audio)_mask_token|"
                    r"(text|image|audio)_mask_head\.(weight|bias)", key):
        return key
    for pat, rep in _HEAD:
        if re.fullmatch(pat, key):
            return re.sub(pat, rep, key)
    raise KeyError(key)


def config_from_checkpoint(state: dict, cfg=None, *, drop_image=False, num_attention_heads=None, num_labels=None):
    """Build an ``OnePeaceConfig`` from tensor shapes (and ``cfg`` for strides / heads)."""
    from hf_alm.modeling.one_peace import OnePeaceConfig

    enc_cfg = _cfg_get(cfg, "model", "encoder") or _cfg_get(cfg, "encoder")
    dec_cfg = _cfg_get(cfg, "model", "decoder") or _cfg_get(cfg, "decoder")
    pre = "encoder_wrapper."
    q = state[f"{pre}fusion_model.layers.0.self_attn.q_proj.weight"]
    hidden = q.shape[0]
    layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder_wrapper\.fusion_model\.layers\.(\d+)\.", k)))
    has = {m: any(k.startswith(f"{pre}{m}_adapter.") for k in state) for m in ("text", "image", "audio")}
    if drop_image:
        has["image"] = False
    any_layer_ffn = f"{pre}fusion_model.layers.0.{next(m for m in has if has[m])}_ffn.0.wi_0.weight"
    inter = state[any_layer_ffn].shape[0]
    tables = [k for k in state if re.match(r"encoder_wrapper\.\w+_adapter\.rel_pos_table_list\.\d+\.weight", k)]
    heads = num_attention_heads or _cfg_get(enc_cfg, "attention_heads")
    if heads is None and tables:
        heads = state[tables[0]].shape[1]
    if heads is None:
        raise ValueError("cannot tell the number of attention heads: no cfg.model.encoder.attention_heads and no "
                         "relative-bias table; pass --num_attention_heads")
    n_tables = {int(re.search(r"list\.(\d+)\.", k).group(1)) for k in tables}
    if n_tables and len(n_tables) not in (1, layers):
        raise ValueError(f"found {len(n_tables)} relative-position tables per adapter; expected 1 (shared) or "
                         f"{layers} (one per layer)")
    share = len(n_tables) <= 1
    kw = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=int(heads), intermediate_size=inter,
              use_text_moe=has["text"], use_image_moe=has["image"], use_audio_moe=has["audio"],
              share_rel_pos_table=share,
              scale_fc=any(".text_ffn.2." in k or ".audio_ffn.2." in k or ".image_ffn.2." in k for k in state),
              magneto_scale_attn=f"{pre}fusion_model.layers.0.self_attn.ln.weight" in state)
    g = state.get(f"{pre}fusion_model.layers.0.gamma_1")
    kw["layer_scale_init_value"] = float(_cfg_get(enc_cfg, "layer_scale_init_value", default=1e-6)) if g is not None \
        else 0.0
    if has["audio"]:
        ap = f"{pre}audio_adapter."
        convs = sorted(int(m.group(1)) for k in state if (m := re.match(
            rf"{re.escape(ap)}embed_audios\.0\.conv_layers\.(\d+)\.0\.weight", k)))
        spec = _parse_spec(_cfg_get(enc_cfg, "audio_adapter", "feature_encoder_spec"))
        if len(spec) != len(convs):
            raise ValueError(f"cfg feature_encoder_spec has {len(spec)} blocks but the checkpoint has {len(convs)}")
        for j, (dim, k, s) in enumerate(spec):
            w = state[f"{ap}embed_audios.0.conv_layers.{j}.0.weight"]
            if (w.shape[0], w.shape[2]) != (dim, k):
                raise ValueError(f"conv block {j}: checkpoint shape {tuple(w.shape)} disagrees with spec {(dim, k, s)}")
        pos = sorted(int(m.group(1)) for k in state if (m := re.match(
            rf"{re.escape(ap)}embed_positions\.(\d+)\.0\.weight", k)))
        pw = state[f"{ap}embed_positions.{pos[0]}.0.weight"]
        table = state.get(f"{ap}rel_pos_table_list.0.weight")
        kw["audio_config"] = dict(
            conv_feature_layers=spec, conv_bias=f"{ap}embed_audios.0.conv_layers.0.0.bias" in state,
            conv_pos_depth=len(pos), conv_pos_width=pw.shape[2] * len(pos), conv_pos_groups=hidden // pw.shape[1],
            bucket_size=(table.shape[0] - 3 + 1) // 2 if table is not None else 512,
            max_relative_positions=state[f"{ap}rp_bucket"].shape[0] if f"{ap}rp_bucket" in state else 1024)
    if has["text"]:
        tp = f"{pre}text_adapter."
        table = state.get(f"{tp}rel_pos_table_list.0.weight")
        kw["text_config"] = dict(
            vocab_size=state[f"{tp}embed_tokens.weight"].shape[0],
            max_position_embeddings=state[f"{tp}embed_positions.weight"].shape[0],
            bucket_size=(table.shape[0] - 3 + 1) // 2 if table is not None else 256,
            max_relative_positions=state[f"{tp}rp_bucket"].shape[0] if f"{tp}rp_bucket" in state else 1024,
            pad_token_id=1, bos_token_id=0, eos_token_id=2)
    if has["image"]:
        ip = f"{pre}image_adapter."
        grid = int(round((state[f"{ip}pos_embed"].shape[0] - 1) ** 0.5))
        table = state.get(f"{ip}rel_pos_table_list.0.weight")
        rel = int(round(((table.shape[0] - 3) ** 0.5 + 1) / 2)) if table is not None else grid
        kw["vision_config"] = dict(image_size=grid * 16, bucket_size=grid, rel_bucket_size=rel)
    dq = state.get("decoder_wrapper.fusion_model.layers.0.self_attn.q_proj.weight")
    if dq is not None:
        dlayers = 1 + max(int(m.group(1)) for k in state
                          if (m := re.match(r"decoder_wrapper\.fusion_model\.layers\.(\d+)\.", k)))
        dffn = next(k for k in state if re.match(r"decoder_wrapper\.fusion_model\.layers\.0\.\w+_ffn\.0\.wi_0", k))
        dtab = [k for k in state if re.match(r"decoder_wrapper\.\w+_adapter\.rel_pos_table_list\.0\.weight", k)]
        dheads = _cfg_get(dec_cfg, "attention_heads") or (state[dtab[0]].shape[1] if dtab else None)
        if dheads is None:
            raise ValueError("cannot tell the decoder's attention heads (no cfg.model.decoder.attention_heads)")
        kw.update(decoder_hidden_size=dq.shape[0], decoder_num_hidden_layers=dlayers,
                  decoder_num_attention_heads=int(dheads), decoder_intermediate_size=state[dffn].shape[0])
        dpos = state.get("decoder_wrapper.audio_adapter.embed_positions.weight")
        if dpos is not None and has["audio"]:
            kw["audio_config"]["max_relative_positions"] = dpos.shape[0] - 2
    if "text_proj.weight" in state:
        kw["projection_dim"] = state["text_proj.weight"].shape[0]
    if num_labels is not None:
        kw["num_labels"] = num_labels
    return OnePeaceConfig(**kw)


def _check_buckets(state, model_state_buckets):
    for key, ours in model_state_buckets.items():
        if key in state:
            theirs = state[key]
            n = min(theirs.shape[0], ours.shape[0])
            if not torch.equal(theirs[:n, :n].long(), ours[:n, :n].long()):
                raise ValueError(f"saved {key} differs from the bucket ids recomputed from the config")


def convert_state_dict(state: dict, cfg=None, *, target="auto", drop_image=False, num_attention_heads=None):
    """Map an original state dict onto a fresh hf-alm model; returns the model (weights loaded, eval mode)."""
    from hf_alm.modeling.one_peace import (
        OnePeaceForAudioClassification,
        OnePeaceForPreTraining,
        OnePeaceModel,
        OnePeaceModelWithProjection,
    )

    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {TARGETS}")
    unknown, mapped = [], {}
    for key, value in state.items():
        try:
            new = map_key(key, drop_image=drop_image)
        except KeyError:
            unknown.append(key)
            continue
        if new is not None:
            mapped[new] = value
    if unknown:
        raise ValueError(f"{len(unknown)} key(s) of the checkpoint are not understood: {', '.join(sorted(unknown))}")
    if target == "auto":
        target = ("classification" if any(k.startswith("classify_head.") for k in mapped)
                  else "pretraining" if any(k.startswith("decoder.") for k in mapped)
                  else "projection" if "logit_scale" in mapped or any(f"{m}_proj.weight" in mapped for m in
                                                                      ("text", "image", "audio"))
                  else "model")
    num_labels = mapped["classify_head.classifier.weight"].shape[0] if "classify_head.classifier.weight" in mapped \
        else None
    config = config_from_checkpoint(state, cfg, drop_image=drop_image, num_attention_heads=num_attention_heads,
                                    num_labels=num_labels)
    cls = {"model": OnePeaceModel, "projection": OnePeaceModelWithProjection, "pretraining": OnePeaceForPreTraining,
           "classification": OnePeaceForAudioClassification}[target]
    model = cls(config)
    if target == "model":
        mapped = {k[len("one_peace."):]: v for k, v in mapped.items() if k.startswith("one_peace.")}
    elif target != "pretraining":
        mapped = {k: v for k, v in mapped.items()
                  if not (k.startswith("decoder.") or k.startswith("decoder_") or "_mask_" in k)}
    if target in ("model", "classification"):
        mapped = {k: v for k, v in mapped.items() if not re.fullmatch(r"(text|image|audio)_proj\.\w+|logit_scale", k)}
    ours = model.state_dict()
    buckets = {}
    prefix = "" if target == "model" else "one_peace."
    for name, buf in model.named_buffers():
        if name.endswith("_adapter.rp_bucket"):
            orig = name.replace(f"{prefix}encoder.", "encoder_wrapper.").replace("decoder.", "decoder_wrapper.")
            buckets[orig] = buf
    _check_buckets(state, buckets)
    missing = sorted(set(ours) - set(mapped) - {n for n, _ in model.named_buffers()})
    if missing:
        raise ValueError(f"{len(missing)} weight(s) of the {cls.__name__} have no source in the checkpoint: "
                         f"{', '.join(missing)}")
    extra = sorted(set(mapped) - set(ours))
    if extra:
        raise ValueError(f"{len(extra)} mapped key(s) do not exist in {cls.__name__}: {', '.join(extra)}")
    ids = {id(v): old for old, v in state.items()}
    check_weights(mapped, ours, {new: ids.get(id(v), new) for new, v in mapped.items()})  # int for float, NaN / Inf
    for k, v in mapped.items():
        if ours[k].shape != v.shape:
            raise ValueError(f"shape mismatch for {k}: checkpoint {tuple(v.shape)} vs model {tuple(ours[k].shape)}")
        if v.is_floating_point() and ours[k].dtype != v.dtype:
            v = v.to(ours[k].dtype)
        mapped[k] = v
    model.load_state_dict(mapped, strict=False)
    return model.eval()


def _load(src):
    from hf_alm.utils import load_torch_file

    path = Path(src)
    if path.is_dir():
        raise IsADirectoryError(f"ONE-PEACE checkpoint {src} is a folder; pass the .pt file itself")
    if not path.is_file():
        raise FileNotFoundError(f"ONE-PEACE checkpoint not found: {src}")
    # tensors and plain values only, never a full unpickle (a fairseq checkpoint whose cfg is an omegaconf /
    # argparse object is refused with the way to re-save it; see the module docstring)
    ckpt = load_torch_file(path, what="ONE-PEACE checkpoint", resave=RESAVE)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"{src} is not a fairseq checkpoint: expected a dict with a 'model' entry, got "
                         f"{type(ckpt).__name__} with keys {list(ckpt)[:5] if isinstance(ckpt, dict) else '-'}")
    cfg = ckpt.get("cfg")
    if cfg is not None and not isinstance(cfg, dict):
        raise ValueError(f"{src}: the checkpoint's 'cfg' is a {type(cfg).__name__}, expected a dict (or none)")
    if not isinstance(ckpt["model"], dict):
        raise ValueError(f"{src}: the checkpoint's 'model' is a {type(ckpt['model']).__name__}, expected a state dict")
    return ckpt["model"], cfg


def convert(src, dst, target="auto", drop_image=False, num_attention_heads=None, overwrite: bool = False, **kwargs):
    """Convert ``src`` (fairseq ``{'cfg', 'model'}`` checkpoint) into the hf-alm folder ``dst`` (written atomically).

    ``dst`` must be missing or an empty folder; a non-empty folder is replaced only with ``overwrite``."""
    from hf_alm.modeling.one_peace import OnePeaceFeatureExtractor, OnePeaceImageProcessor
    from hf_alm.utils import atomic_directory, check_output_dir

    dst = check_output_dir(dst, overwrite=overwrite, sources=[src])  # before the work: fail fast
    state, cfg = _load(src)
    try:
        model = convert_state_dict(state, cfg, target=target, drop_image=drop_image,
                                   num_attention_heads=num_attention_heads)
    except ValueError as err:  # name the file: "checkpoint weight ... has dtype torch.int32 ..."
        raise ValueError(f"{src}: {err}") from None
    with atomic_directory(dst, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        OnePeaceFeatureExtractor(sampling_rate=model.config.audio_config.sampling_rate).save_pretrained(tmp)
        if model.config.use_image_moe:
            size = model.config.vision_config.image_size
            # feature extractor and image processor both use preprocessor_config.json: the image one goes in a subfolder
            OnePeaceImageProcessor(size={"height": size, "width": size}).save_pretrained(tmp / "image_processor")
        (tmp / "NOTICE").write_text(NOTICE, encoding="utf-8")
        (tmp / "conversion.json").write_text(json.dumps(
            {"source": str(src), "target": type(model).__name__, "num_source_keys": len(state)}, indent=2) + "\n")
    return str(dst)
