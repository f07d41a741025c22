"""Small shared helpers: atomic outputs, the ../shared location, seeding."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import random
import re
import shutil
import socket
import stat
import tempfile
import warnings
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


def _temp_dir(parent: Path, prefix: str) -> Path:
    """``mkdtemp`` in ``parent`` named ``{prefix}{pid}@{host}~<random>``: a later run can tell a folder that a killed
    process left (see :func:`remove_stale_temp_dirs`) from one another live process is writing."""
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64]
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}@{host}~", dir=parent))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: keep
    return True


def remove_stale_temp_dirs(parent: str | os.PathLike, prefix: str) -> list[Path]:
    """Remove the ``{prefix}*`` folders in ``parent`` left by a killed process: those of this host whose process is
    gone, and untagged ones from an older hf-alm. Folders of live processes (or of other hosts) stay. Returns what
    was removed."""
    parent, removed = Path(parent), []
    if not parent.is_dir():
        return removed
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64]
    for path in parent.glob(f"{glob.escape(prefix)}*"):
        if not path.is_dir() or path.is_symlink():
            continue
        rest = path.name[len(prefix):]
        tag = re.fullmatch(r"(\d+)@([A-Za-z0-9._-]*)~[a-z0-9_]{8}", rest)
        legacy = re.fullmatch(r"[a-z0-9_]{8}", rest)  # mkdtemp's suffix alone: written before the tags
        if legacy or (tag and tag.group(2) == host and int(tag.group(1)) != os.getpid()
                      and not _pid_alive(int(tag.group(1)))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


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
        remove_stale_temp_dirs(dst.parent, f".{dst.name}.tmp-")  # what a killed earlier write of dst left behind
        if dst.is_dir():  # a killed replace may leave the only copy of the old dst in .old-: keep it then
            remove_stale_temp_dirs(dst.parent, f".{dst.name}.old-")
        tmp = _temp_dir(dst.parent, f".{dst.name}.tmp-")
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
            old = _temp_dir(dst.parent, f".{dst.name}.old-")
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
    remove_stale_temp_dirs(output_dir, ".final.tmp-")  # left by a process killed during an earlier final save
    tmp = _temp_dir(output_dir, ".final.tmp-")
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


# ------------------------------------------------------------------ weight files: read safely, never unpickle objects
# The one rule for every file hf-alm reads weights from (converters, the CLI, training resume, caches): a torch / pickle
# file is read only with torch's weights-only unpickler (tensors and plain values); a file that needs more is refused,
# whoever asks, never retried with a full unpickle. Errors are CheckpointError (a ValueError) naming the file.

class CheckpointError(ValueError):
    """A weights or checkpoint file that cannot be read: missing, empty, truncated, corrupt or not a weights file. The
    message names the file and the problem."""


class UnsafeCheckpointError(CheckpointError):
    """A torch / pickle file that pickles Python objects beyond tensors and plain values: reading it would run
    whatever code it names, so hf-alm refuses it."""


_KNOWN_MAGIC = ((b"RIFF", "a RIFF/WAV audio file"), (b"fLaC", "a FLAC audio file"), (b"OggS", "an Ogg audio file"),
                (b"ID3", "an MP3 audio file"), (b"\x89HDF", "an HDF5 file"), (b"\x93NUMPY", "a numpy .npy file"),
                (b"\x1f\x8b", "a gzip file"), (b"{", "a JSON/text file"), (b"<", "an HTML/XML file"),
                (b"version https://git-lfs", "a Git LFS pointer (the weights were never downloaded)"))
# globals a checkpoint of tensors and plain values may name (reported, never trusted: torch's weights-only unpickler
# is what decides); anything else is "a Python object" in the messages below
_PLAIN_GLOBALS = re.compile(r"^(torch(\.\w+)*|collections\.OrderedDict|_codecs\.encode|builtins\.(set|frozenset|"
                            r"bytearray|slice|complex|int|float|bool|str|bytes|tuple|list|dict))$")


def _sniff(path: Path, head: bytes) -> str | None:
    """What ``head`` (the first bytes of ``path``) says the file is when it is not a torch file, else None."""
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch's zip format / a pickle (legacy torch format)
        return None
    if len(head) >= 10 and head[8:10] == b'{"':
        return "a safetensors file (read it with safetensors, not torch.load)"
    for magic, what in _KNOWN_MAGIC:
        if head.startswith(magic):
            return what
    return f"unrecognised content (first bytes {head[:8]!r})"


_MAX_PICKLE_BYTES = 256 * 2**20  # a checkpoint's pickle holds names and shapes; the tensors are separate members


def _pickle_payloads(path: Path) -> list[bytes]:
    """The pickle stream(s) of a torch file: ``*.pkl`` members of its zip archive, or the whole file (legacy)."""
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if info.filename.endswith(".pkl")]
            if any(info.file_size > _MAX_PICKLE_BYTES for info in members):  # e.g. a zip bomb: do not inflate it
                raise ValueError("pickle member too large to inspect")
            return [archive.read(info) for info in members]
    with open(path, "rb") as fh:  # a legacy file: the pickles come first, then the (possibly huge) storages
        return [fh.read(_MAX_PICKLE_BYTES)]


def pickled_globals(path: str | os.PathLike) -> list[str] | None:
    """The Python objects (``module.name``) that the pickle(s) of the torch file ``path`` name, read statically with
    ``pickletools`` (nothing is imported or run); None when the pickle cannot be parsed (corrupt, truncated)."""
    import io
    import pickletools

    strings = ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING")
    found: list[str] = []
    try:
        for payload in _pickle_payloads(Path(path)):
            stream = io.BytesIO(payload)
            # a zip member is one pickle; a legacy torch file is five in a row, then raw storage bytes
            for _ in range(5):
                recent: list = []
                memo: dict = {}
                stopped = False
                for op, arg, _pos in pickletools.genops(stream):
                    if op.name in ("GLOBAL", "INST"):
                        found.append(str(arg).replace(" ", "."))
                    elif op.name == "STACK_GLOBAL":
                        parts = recent[-2:]
                        found.append(".".join(parts) if len(parts) == 2 and all(isinstance(p, str) for p in parts)
                                     else "<unknown>")
                    if op.name in strings:
                        recent.append(arg if isinstance(arg, str) else arg.decode("latin-1"))
                    elif op.name == "MEMOIZE":
                        memo[len(memo)] = recent[-1] if recent else None
                    elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                        memo[arg] = recent[-1] if recent else None
                    elif op.name in ("GET", "BINGET", "LONG_BINGET"):
                        recent.append(memo.get(arg))
                    else:
                        recent.append(None)
                    del recent[:-4]
                    stopped = op.name == "STOP"
                if not stopped:
                    return None
                if payload[stream.tell():stream.tell() + 1] != b"\x80":  # no further pickle follows
                    break
    except Exception:  # noqa: BLE001 - a corrupt / truncated pickle or zip: "cannot be parsed"
        return None
    # protocol <= 2 pickles write Python 2 module names, which Python 3 maps back on load (pickle's fix_imports)
    found = [re.sub(r"^__builtin__\.", "builtins.", re.sub(r"^copy_reg\.", "copyreg.", n)) for n in found]
    return list(dict.fromkeys(found))


def _resave_advice(path: Path, resave: str) -> str:
    return (f"if you trust this file and where it came from, re-save its weights yourself and use the copy: python -c "
            f"\"import torch; c = torch.load('{path}', map_location='cpu', weights_only=False); "
            f"torch.save({resave}, '{path.with_suffix('.weights' + (path.suffix or '.pt'))}')\" "
            f"(the load runs the file's code: only for a file you trust)")


_RESAVE_TENSORS = "{k: v for k, v in c.items() if isinstance(v, (torch.Tensor, dict))}"


def load_torch_file(path: str | os.PathLike, *, what: str = "torch checkpoint", resave: str = _RESAVE_TENSORS,
                    mmap: bool = False):
    """``torch.load(path, map_location="cpu", weights_only=True)``: tensors and plain values only, never a full
    unpickle. Every failure is a :class:`CheckpointError` naming ``path`` (and ``what`` it should be):
    :class:`UnsafeCheckpointError` for a file that pickles Python objects (the message names them and what the user
    can do: re-save the weights themselves, knowingly; ``resave`` is the expression of the loaded object ``c`` to
    save, e.g. ``"{'model': c['model']}"``), IsADirectoryError / FileNotFoundError for a folder / missing path.
    torch's own advice to set ``weights_only=False`` is never relayed."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; pass the file itself")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: file is empty (0 bytes), not a {what}")
    with open(path, "rb") as fh:
        head = fh.read(32)
    other = _sniff(path, head)
    if other is not None:
        expected = "" if what == "torch checkpoint" else f" (expected a {what})"
        raise CheckpointError(f"{path} is not a torch checkpoint: it is {other}{expected}")
    try:
        with warnings.catch_warnings():  # e.g. torch's "Detected pickle protocol 4" on a foreign pickle
            warnings.simplefilter("ignore")
            if mmap and head.startswith(b"PK\x03\x04"):  # only torch's zip format can be memory-mapped
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - classified below without relaying torch's unsafe advice
        raise _classify_load_error(path, err, what, resave) from None


def _classify_load_error(path: Path, err: Exception, what: str, resave: str) -> CheckpointError:
    names = pickled_globals(path)
    objects = [n for n in names or () if not _PLAIN_GLOBALS.match(n)]
    if objects:
        shown = ", ".join(objects[:5]) + (f" and {len(objects) - 5} more" if len(objects) > 5 else "")
        return UnsafeCheckpointError(
            f"{path} is not a {what}: it pickles the Python object{'s' if len(objects) > 1 else ''} {shown}, which "
            f"hf-alm never unpickles (loading a file's objects runs code the file names); "
            f"{_resave_advice(path, resave)}")
    if names is None:
        return CheckpointError(f"{path} is not a readable {what}: it is truncated or corrupt (its pickle data "
                               f"cannot be parsed{_first_line(err)})")
    return CheckpointError(f"{path} is not a readable {what}{_first_line(err)}")


def _first_line(err: Exception) -> str:
    """``": Type: first line"`` of ``err``, or just the type when torch's text would advise an unsafe load."""
    text = str(err).strip().splitlines()[0].split(". ")[0] if str(err).strip() else ""
    if not text or "weights_only" in text.lower().replace(" ", "_") or "unpickl" in text.lower():
        return f"; torch.load: {type(err).__name__}"
    return f"; torch.load: {type(err).__name__}: {text[:300]}"


def check_safetensors_file(path: str | os.PathLike, *, what: str = "safetensors weights file") -> list[str]:
    """Open ``path`` with safetensors (header and offsets checked against the file size, no tensor read) and return
    its tensor names; a missing, empty, truncated or lying file is a :class:`CheckpointError` naming it."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    size = path.stat().st_size
    if size < 8:
        raise CheckpointError(f"{path} is not a {what}: {size} bytes, shorter than a safetensors header")
    with open(path, "rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
    if header_len > size - 8:
        raise CheckpointError(f"{path} is not a complete {what}: its header claims {header_len} bytes but the file "
                              f"has {size} (truncated, or not a safetensors file)")
    try:
        with safe_open(path, framework="pt") as fh:
            return list(fh.keys())
    except Exception as err:  # noqa: BLE001 - SafetensorError and friends carry no path
        raise CheckpointError(f"{path} is not a valid {what} (truncated or corrupt): {type(err).__name__}: "
                              f"{str(err)[:300]}") from None


def load_safetensors_file(path: str | os.PathLike, *, what: str = "safetensors weights file") -> dict:
    """``safetensors.torch.load_file`` after :func:`check_safetensors_file`; errors name ``path``."""
    from safetensors.torch import load_file

    check_safetensors_file(path, what=what)
    try:
        return load_file(path)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{path} is not a valid {what}: {type(err).__name__}: {str(err)[:300]}") from None


def check_weight_files(folder: str | os.PathLike, *, mmap: bool = True) -> None:
    """Check the weights files transformers' ``from_pretrained`` reads from a model folder, before it reads them:
    ``*.safetensors`` with :func:`check_safetensors_file`, ``pytorch_model*.bin`` with :func:`load_torch_file`
    (memory-mapped where the format allows). So a folder with an unsafe ``pytorch_model.bin`` or a truncated
    ``model.safetensors`` gets one clear :class:`CheckpointError` naming the file, before any model is built. Other
    pickles a training folder may hold (``training_args.bin``, ``rng_state.pth``) are never read, so not checked."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        if path.suffix == ".safetensors":
            check_safetensors_file(path)
        elif re.fullmatch(r"pytorch_model(-\d+-of-\d+)?\.bin", path.name):
            load_torch_file(path, what="weights file", mmap=mmap)
