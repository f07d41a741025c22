"""hf-alm data layer: audio input (:mod:`.audio`), dataset loaders (:mod:`.loaders`), the synthetic corpus
(:mod:`.synthetic`) and temporal compositions (:mod:`.compositions`).

``audio`` and ``loaders`` are imported eagerly (they import ``datasets`` only when a loader runs); the synthetic and
composition modules load on first attribute access, e.g. ``hf_alm.data.make_synthetic_dataset``.
"""

from __future__ import annotations

import importlib

from .audio import AUDIO_EXTENSIONS, MAX_CHANNELS, AudioInputError, decode_audio, load_audio, pad_batch, resample
from .loaders import (
    DATASET_SPEC_HELP,
    DatasetLayoutError,
    caption_for_label,
    fold_split,
    load_audiocaps,
    load_audiofolder,
    load_clotho,
    load_dataset_spec,
    load_esc10,
    load_esc50,
    load_fsdd,
    load_hub,
)

_LAZY_MODULES = ("synthetic", "compositions")

__all__ = [
    "AUDIO_EXTENSIONS",
    "MAX_CHANNELS",
    "AudioInputError",
    "DATASET_SPEC_HELP",
    "DatasetLayoutError",
    "caption_for_label",
    "decode_audio",
    "fold_split",
    "load_audio",
    "load_audiocaps",
    "load_audiofolder",
    "load_clotho",
    "load_dataset_spec",
    "load_esc10",
    "load_esc50",
    "load_fsdd",
    "load_hub",
    "pad_batch",
    "resample",
]


def __getattr__(name: str):
    """Lazy access to the sibling modules and their public names (``make_synthetic_dataset``, ``concat_events``...)."""
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    for module_name in _LAZY_MODULES:
        try:
            module = importlib.import_module(f".{module_name}", __name__)
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{module_name}":
                raise
            continue
        if name in getattr(module, "__all__", ()) or (not name.startswith("_") and hasattr(module, name)):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
