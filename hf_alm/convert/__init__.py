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
