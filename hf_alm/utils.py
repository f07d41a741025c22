"""Small shared helpers: atomic outputs, the ../shared location, seeding."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np
import torch


def check_output_dir(dst: str | os.PathLike, *, overwrite: bool = False, sources=()) -> Path:
    """Resolve the output folder ``dst`` and check, before any work, that it may be written; returns the resolved
    path.

    A missing ``dst`` or an empty folder is fine; a non-empty folder is an error unless ``overwrite``; an existing
    file is always an error (a file is never replaced by a folder), and so is a ``dst`` that would contain one of
    ``sources`` (replacing it would delete the input). Errors are ``OSError`` subclasses / ``ValueError`` naming
    ``dst``.
    """
    dst = Path(dst).resolve()  # "." or "out/.." get a real name (the temporary folder is named after it)
    if not dst.name:
        raise ValueError(f"output folder {dst} is a file-system root; choose a folder inside it")
    for src in sources:
        src = Path(src).resolve()
        if src == dst or dst in src.parents:
            raise ValueError(f"output folder {dst} contains the source {src}; writing there would delete it, "
                             f"choose another output folder")
    ancestor = dst.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(f"cannot create the output folder {dst}: {ancestor} is a file, not a folder")
    if dst.exists() or dst.is_symlink():
        if not dst.is_dir():
            raise FileExistsError(_is_a_file_message(dst))
        if not overwrite and any(dst.iterdir()):
            raise FileExistsError(_not_empty_message(dst))
    return dst


def _not_empty_message(dst: Path) -> str:
    return f"output folder {dst} exists and is not empty; pass --overwrite to replace it (overwrite=True in Python)"


def _is_a_file_message(dst: Path) -> str:
    return (f"output {dst} is an existing file, not a folder; refusing to replace a file with a folder (remove it or "
            f"choose another output folder)")


def _naming_dst(err: OSError, tmp: Path, dst: Path) -> OSError:
    """``err`` with the temporary folder's path in its message replaced by ``dst`` (same type and errno)."""
    text, old, new_path = str(err), str(tmp), str(dst)
    if old not in text:
        return err

    def fix(value):
        return value.replace(old, new_path) if isinstance(value, str) else value

    try:
        if err.errno is not None and err.strerror is not None:  # keep errno, strerror and the file names
            args = (err.errno, err.strerror, fix(err.filename))
            new = type(err)(*args, None, fix(err.filename2)) if err.filename2 is not None else type(err)(*args)
        else:
            new = type(err)(fix(text))
            new.errno = err.errno
    except Exception:  # noqa: BLE001 - an OSError subclass with another signature: keep the original
        return err
    return new


def _read_umask() -> int:
    """The process umask. Read from /proc where it exists: ``os.umask`` can only read it by setting it, which is
    process-wide, so a file another thread creates meanwhile would get the wrong mode."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc (macOS, Windows): read it by setting it, and put it straight back
    os.umask(mask)
    return mask


def _mkdir_mode() -> int:
    return 0o777 & ~_read_umask()


def _open_file_modes(folder: Path) -> None:
    """Add to every file under ``folder`` the read bits a plain ``open()`` would give (umask applied): transformers
    writes the weights through a private temporary file (0600), which would leave a published model unreadable to
    others. Bits are only added, never removed (write and execute bits stay as they are)."""
    readable = 0o444 & ~_read_umask()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode | readable != mode:
                os.chmod(path, mode | readable)


@contextlib.contextmanager
def atomic_directory(dst: str | os.PathLike, *, overwrite: bool = True):
    """Yield a temporary folder beside ``dst``; on success it is renamed to ``dst``, on error removed.

    A reader never sees a half-written ``dst``: either the old one (if any) or the complete new one. ``dst`` may be
    missing or an empty folder; a non-empty folder is replaced only with ``overwrite`` (otherwise ``FileExistsError``)
    and an existing file is always an error (see :func:`check_output_dir`). Errors name ``dst``, never the temporary
    folder.
    """
    dst = check_output_dir(dst, overwrite=overwrite)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
        # mkdtemp makes 0700; the output gets the mode of the folder it replaces, or what mkdir would give it
        os.chmod(tmp, stat.S_IMODE(dst.stat().st_mode) if dst.is_dir() else _mkdir_mode())
    except OSError as err:
        new = type(err)(f"cannot create the output folder {dst}: {err.strerror or err} (in {dst.parent})")
        new.errno = err.errno
        raise new from err
    try:
        yield tmp
        _open_file_modes(tmp)
        if overwrite and dst.is_dir() and not dst.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
            try:
                os.replace(dst, old)  # onto the empty folder just made: a unique name, no leftover can collide
            except BaseException:
                os.rmdir(old)
                raise
            try:
                os.replace(tmp, dst)
            except BaseException:
                os.replace(old, dst)  # put the old folder back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            if dst.exists() and not dst.is_dir():  # appeared meanwhile
                raise FileExistsError(_is_a_file_message(dst))
            try:  # rename(2) replaces a missing or empty folder and refuses a non-empty one
                os.replace(tmp, dst)
            except OSError as err:
                if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise FileExistsError(_not_empty_message(dst)) from err
                if err.errno == errno.EBUSY:
                    raise OSError(err.errno, f"cannot replace the output folder {dst}: it is busy (a mount point?); "
                                             f"choose a folder inside it") from err
                raise
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            renamed = _naming_dst(err, tmp, dst)
            if renamed is not err:
                raise renamed from err
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, _mkdir_mode() & 0o666)  # mkstemp makes 0600; give what a plain open() would
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
        _open_file_modes(tmp)
        for f in sorted(tmp.iterdir()):
            dst = output_dir / f.name
            if f.is_dir() and dst.exists():
                shutil.rmtree(dst)
            os.replace(f, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
