"""Small shared helpers: atomic outputs, the ../shared location, seeding."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch


@contextlib.contextmanager
def atomic_directory(dst: str | os.PathLike, *, overwrite: bool = True):
    """Yield a temporary folder beside ``dst``; on success it is renamed to ``dst``, on error removed.

    A reader never sees a half-written ``dst``: either the old one (if any) or the complete new one.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and not overwrite:
        raise FileExistsError(f"output folder already exists: {dst}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
    try:
        yield tmp
        if dst.exists():
            old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
            os.replace(dst, old)
            os.replace(tmp, dst)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def shared_dir() -> Path | None:
    """The project's ``../shared`` folder (data, fixtures), or ``$HF_ALM_SHARED``; ``None`` when absent."""
    env = os.environ.get("HF_ALM_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared")
    for cand in candidates:
        if cand.is_dir():
            return cand
    return None


def save_pretrained_into(output_dir: str | os.PathLike, *objects) -> None:
    """``save_pretrained`` every object (model, processor, ...) into a temporary folder inside ``output_dir``, then
    move each file into ``output_dir`` with ``os.replace``: no file of the final model is ever half-written, and other
    contents of ``output_dir`` (checkpoints/, eval_results.json) stay."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".final.tmp-", dir=output_dir))
    try:
        for obj in objects:
            obj.save_pretrained(tmp)
        for f in sorted(tmp.iterdir()):
            dst = output_dir / f.name
            if f.is_dir() and dst.exists():
                shutil.rmtree(dst)
            os.replace(f, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
