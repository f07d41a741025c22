"""Converters from original (non-HF) checkpoints to hf-alm folders.

Each family has a module here (``hf_alm/convert/<family>.py``) with a ``convert(src, dst, **kwargs)`` function and an
``add_arguments(parser)`` hook; ``hf-alm convert <family> SRC DST`` dispatches to it.
"""

from __future__ import annotations

import importlib
import pkgutil


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get_converter(family: str):
    if family not in available():
        raise ValueError(f"unknown converter {family!r}; available: {', '.join(available()) or 'none'}")
    return importlib.import_module(f"{__name__}.{family}")


def check_weights(mapped: dict, expected: dict, source_keys: dict | None = None) -> None:
    """Refuse weights that would load as garbage: ``mapped`` (hf-alm name -> value from the checkpoint) against
    ``expected`` (the model's ``state_dict()``). A value that is not a tensor, an integer / bool tensor where the model
    holds floats (``load_state_dict`` would cast it, e.g. an int32 classifier of zeros and ones becomes a silent,
    useless head) and NaN / Inf values are errors naming the checkpoint key (``source_keys`` maps hf-alm names back
    to the original ones) and the dtype or first bad value."""
    import torch

    source_keys = source_keys or {}
    for key, value in mapped.items():
        name = source_keys.get(key, key)
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"checkpoint weight {name} is a {type(value).__name__}, not a tensor")
        want = expected.get(key)
        if want is not None and want.is_floating_point() and not value.is_floating_point():
            raise ValueError(f"checkpoint weight {name} has dtype {value.dtype} where the model expects floating-point "
                             f"weights ({want.dtype}); the checkpoint is corrupt or not a model checkpoint, refusing "
                             f"to cast it")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = value[~torch.isfinite(value)].flatten()[0].item()
            raise ValueError(f"checkpoint weight {name} has non-finite values (first: {bad}); the checkpoint is "
                             f"corrupt or from a diverged run")
