"""The ``hf-alm`` command line.

Each subcommand lives in its own module here (``hf_alm/cli/<name>.py``) that defines ``add_parser(subparsers)``; the
parser it adds sets ``func`` (called with the parsed arguments, returning an exit code). ``hf-alm --help`` lists them
and ``hf-alm <command> --help`` explains every flag.
"""

from __future__ import annotations

import argparse
import importlib
import pickle
import pkgutil
import re
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-alm",
        description="hf-alm: convert, evaluate, export, publish and demo audio-language models.",
    )
    from hf_alm import __version__

    parser.add_argument("--version", action="version", version=f"hf-alm {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "add_parser"):
            module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, KeyError, RuntimeError) as err:  # OSError: missing files, permissions, disk full
        print(f"hf-alm {args.command}: error: {err}", file=sys.stderr)
        return 1
    except pickle.UnpicklingError as err:  # a weights-only load refused a file we did not check first (e.g. a Hub
        # download): one line, without torch's advice to re-run with weights_only=False
        print(f"hf-alm {args.command}: error: {_refused_pickle(err)}", file=sys.stderr)
        return 1


def _refused_pickle(err: Exception) -> str:
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    what = f"the Python object {found.group(1)}" if found else "Python objects"
    return (f"a weights file pickles {what}, which hf-alm never unpickles (loading it would run code the file "
            f"names); re-save its tensors yourself only if you trust it (see hf_alm.utils.load_torch_file)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
