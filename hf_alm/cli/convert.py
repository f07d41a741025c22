"""``hf-alm convert FAMILY SRC DST``: original checkpoints to hf-alm folders."""

from __future__ import annotations

import os


def add_parser(subparsers) -> None:
    from hf_alm.convert import available, get_converter

    parser = subparsers.add_parser(
        "convert",
        help="convert an original checkpoint into a Hugging Face folder",
        description="Convert an original checkpoint (e.g. Microsoft's BEATs .pt, a transformers ClapModel folder) "
        "into a folder that AutoModel.from_pretrained loads.",
    )
    families = parser.add_subparsers(dest="family", metavar="FAMILY")
    for family in available():
        module = get_converter(family)
        sub = families.add_parser(family, help=(module.__doc__ or family).strip().splitlines()[0],
                                  description=(module.__doc__ or "").strip())
        sub.add_argument("src", help=getattr(module, "SRC_HELP", "the original checkpoint"))
        sub.add_argument("dst", help="output folder: it must be missing or empty unless --overwrite is given "
                                     "(written atomically: a temporary folder, then renamed)")
        sub.add_argument("--overwrite", action="store_true",
                         help="replace DST when it is a non-empty folder (by default that is an error, so that "
                              "nothing in it is lost); an existing file is never replaced")
        if hasattr(module, "add_arguments"):
            module.add_arguments(sub)
        sub.set_defaults(func=_run, _module=module)


def _run(args) -> int:
    kwargs = {k: v for k, v in vars(args).items() if k not in {"command", "family", "src", "dst", "func", "_module"}}
    cwd = os.getcwd()
    out = args._module.convert(args.src, args.dst, **kwargs)
    print(f"converted {args.src} -> {out or args.dst}")
    if out is not None and os.fspath(out) == cwd:  # the folder was replaced by a new one (an atomic rename)
        print("note: DST was the current folder and has been replaced; run `cd .` to see the new files")
    return 0
