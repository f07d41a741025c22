"""Convert a transformers ClapModel folder (e.g. laion/clap-htsat-unfused) into a CLAP-TeminAL folder.

SRC is a folder with a transformers `ClapModel` (config.json + model.safetensors / pytorch_model.bin, sharded or not)
and, usually, its processor files (tokenizer + ClapFeatureExtractor settings). Every weight is copied one to one (the
module layout is the same); the feature extractor becomes the batched-torch `ClapTeminalFeatureExtractor` with the
same settings. Unless --no_verify is given, the audio and text embeddings of the converted model are checked against
the source model on a fixed random input (max abs difference <= --atol). DST is written atomically.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

DEFAULT_ATOL = 1e-5
SRC_HELP = "the transformers ClapModel folder (config.json, weights and, usually, the processor files)"


def add_arguments(parser) -> None:
    parser.add_argument("--no_verify", action="store_true",
                        help="skip the embedding check of the converted model against the source ClapModel")
    parser.add_argument("--atol", type=float, default=DEFAULT_ATOL,
                        help=f"largest allowed absolute embedding difference in the check (default {DEFAULT_ATOL})")
    parser.add_argument("--no_overwrite", action="store_true",
                        help="fail instead of replacing a non-empty DST folder: this is now the default (use "
                             "--overwrite to replace); the flag is still accepted for existing scripts")
    parser.add_argument("--audio_time_segments", type=int, default=1,
                        help="order-preserving audio pooling for TeminAL post-training: the clip vector concatenates "
                             "the means of this many time segments; the converted model still gives the checkpoint's "
                             "embeddings (its projection is tiled over the segments) (default 1: CLAP's mean pooling)")


def _load_processor_parts(src: Path):
    """(ClapFeatureExtractor or None, tokenizer or None) of the source folder."""
    from transformers import AutoTokenizer, ClapFeatureExtractor

    feature_extractor = tokenizer = None
    if (src / "preprocessor_config.json").is_file() or (src / "processor_config.json").is_file():
        try:
            feature_extractor = ClapFeatureExtractor.from_pretrained(src)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"cannot read the ClapFeatureExtractor settings of {src}: {err}") from err
    if any((src / name).is_file() for name in ("tokenizer.json", "vocab.json", "tokenizer_config.json")):
        try:
            tokenizer = AutoTokenizer.from_pretrained(src)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"cannot load the tokenizer of {src}: {err}") from err
    return feature_extractor, tokenizer


def verify(source, converted, *, atol: float = DEFAULT_ATOL, seed: int = 0) -> dict:
    """Max abs differences of the L2-normalised audio / text embeddings of `source` (ClapModel) and `converted`."""
    import torch

    g = torch.Generator().manual_seed(seed)
    audio_cfg = source.config.audio_config
    text_cfg = source.config.text_config
    frames = min(audio_cfg.spec_size * (audio_cfg.spec_size // audio_cfg.num_mel_bins), 1001)
    channels = 4 if audio_cfg.enable_fusion else 1
    features = torch.randn(2, channels, frames, audio_cfg.num_mel_bins, generator=g) * 20 - 50
    is_longer = torch.tensor([[True], [False]])
    length = min(12, text_cfg.max_position_embeddings - 2)
    ids = torch.randint(5, text_cfg.vocab_size, (2, length), generator=g)
    ids[:, 0] = text_cfg.bos_token_id if text_cfg.bos_token_id is not None else 0
    mask = torch.ones_like(ids)
    mask[1, length // 2:] = 0
    with torch.no_grad():
        a_ref = source.get_audio_features(input_features=features, is_longer=is_longer).pooler_output
        a_new = converted.get_audio_features(input_features=features, is_longer=is_longer).pooler_output
        t_ref = source.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
        t_new = converted.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
    diffs = {"audio": (a_ref - a_new).abs().max().item(), "text": (t_ref - t_new).abs().max().item()}
    if max(diffs.values()) > atol:
        raise RuntimeError(f"converted embeddings differ from the source ClapModel beyond atol={atol}: {diffs}")
    return diffs


def convert(src, dst, *, no_verify: bool = False, atol: float = DEFAULT_ATOL, overwrite: bool = False,
            no_overwrite: bool = False, audio_time_segments: int = 1, **_unused) -> Path:
    """Convert the ClapModel folder `src` into a CLAP-TeminAL folder `dst` (model + processor); returns `dst`.

    `dst` must be missing or an empty folder; a non-empty folder is replaced only with `overwrite` (`no_overwrite`,
    the old opt-out, is the default now and is still accepted). `audio_time_segments` > 1 turns on order-preserving
    pooling (see `ClapTeminalConfig`) without changing the embeddings, which the check against the source still
    verifies."""
    from transformers import ClapModel

    from hf_alm.modeling.clap_teminal import ClapTeminalFeatureExtractor, ClapTeminalModel, ClapTeminalProcessor
    from hf_alm.utils import atomic_directory, check_output_dir, check_weight_files

    if overwrite and no_overwrite:
        raise ValueError("overwrite and no_overwrite contradict each other (--overwrite / --no_overwrite); pass one")
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"source ClapModel folder not found: {src}")
    # before the (slow) check: fail fast; also refuses dst == src ("output folder ... contains the source")
    dst = check_output_dir(dst, overwrite=overwrite, sources=[src])
    # before transformers reads them: an unsafe pytorch_model.bin (pickled objects) or a truncated model.safetensors is
    # one CheckpointError naming the file, not torch's traceback advising weights_only=False
    check_weight_files(src)
    model = ClapTeminalModel.from_clap(os.fspath(src), audio_time_segments=audio_time_segments)
    if not no_verify:
        source = ClapModel.from_pretrained(src).eval()
        verify(source, model, atol=atol)
        del source
    clap_fe, tokenizer = _load_processor_parts(src)
    processor = None
    if clap_fe is not None and tokenizer is not None:
        processor = ClapTeminalProcessor(ClapTeminalFeatureExtractor.from_clap_feature_extractor(clap_fe), tokenizer)
    else:
        missing = [name for name, part in (("feature extractor", clap_fe), ("tokenizer", tokenizer)) if part is None]
        warnings.warn(f"{src} has no {' or '.join(missing)}; writing the model without a processor", stacklevel=2)
    with atomic_directory(dst, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        if processor is not None:
            processor.save_pretrained(tmp)
        elif clap_fe is not None:
            ClapTeminalFeatureExtractor.from_clap_feature_extractor(clap_fe).save_pretrained(tmp)
        elif tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return dst
