"""``hf-alm demo``: launch the Gradio demo (the Space in ``spaces/hf-alm-demo/app.py``) locally."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

APP_ENV = "HF_ALM_DEMO_APP"


def find_app() -> Path:
    """The Space's ``app.py``: ``$HF_ALM_DEMO_APP``, else the installed copy (``hf_alm.space``, what setup.py maps
    ``spaces/hf-alm-demo`` to, in a wheel or an editable install), else ``spaces/hf-alm-demo/app.py`` of a checkout."""
    import hf_alm

    candidates = [Path(os.environ[APP_ENV])] if os.environ.get(APP_ENV) else []
    try:
        spec = importlib.util.find_spec("hf_alm.space")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidates.append(Path(location) / "app.py")
    candidates.append(Path(hf_alm.__file__).resolve().parents[1] / "spaces" / "hf-alm-demo" / "app.py")
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        "the demo app (spaces/hf-alm-demo/app.py, installed as hf_alm/space/app.py) was not found; reinstall hf-alm, "
        f"run it from a clone of the repository or set {APP_ENV} to the path of app.py (looked in: "
        f"{', '.join(map(str, candidates))})")


def load_app(path: Path | None = None):
    """Import the Space's ``app.py`` as a module (it launches nothing on import)."""
    path = path or find_app()
    name = "hf_alm_space_app"
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def resolve_model_folder(path: str | None, flag: str) -> str | None:
    """The model folder to load for ``--clap`` / ``--beats``: ``path`` itself when it is a model folder (has a
    config.json) or not a local folder (a Hub id). A recipe's output folder is accepted when it holds its final model
    ``path/model`` (used, and said so on stderr); one with only cross-validation fold models
    (``recipes/beats_finetune.py`` without ``--final_model``: ``path/folds/fold_<k>``) is refused with a ValueError that
    names the folders to pass, as is a folder without any model."""
    if not path:
        return path
    from hf_alm.utils import check_weight_files

    folder = Path(path).expanduser()
    if not folder.is_dir() or (folder / "config.json").is_file():
        check_weight_files(folder)  # a local folder's unsafe .bin / truncated .safetensors: one error naming the file
        return path
    final = folder / "model"
    if (final / "config.json").is_file():
        print(f"hf-alm demo: {flag} {path} is a recipe output folder; using its final model {final}", file=sys.stderr)
        check_weight_files(final)
        return str(final)
    folds = sorted(p.parent for p in folder.glob("folds/*/config.json"))
    if folds:
        raise ValueError(
            f"{flag} {path} is an output folder of recipes/beats_finetune.py without a final model (no {final}): pass "
            f"one of its fold models, e.g. {flag} {folds[0]} (folds: {', '.join(f.name for f in folds)}; each was "
            "trained without its held-out fold), or train the final model on every clip with "
            "`recipes/beats_finetune.py --final_model` and pass its model/ folder")
    raise ValueError(f"{flag} {path} is not a model folder: no config.json in it, nor in {final} or "
                     f"{folder / 'folds'}/*/")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="launch the Gradio demo (zero-shot, what came first?, tagging, search) in the browser",
        description="Launch the hf-alm Gradio demo locally: zero-shot classification and 'what came first?' with "
        "CLAP-TeminAL, audio tagging with a BEATs classifier, and text-to-audio search over synthetic example clips. "
        "Without --clap / --beats the app uses tiny random models (and says so on the page).",
    )
    parser.add_argument("--clap", default=os.environ.get("HF_ALM_CLAP"),
                        help="CLAP-TeminAL model: the --output_dir of recipes/teminal.py or a Hub id "
                        "(default: $HF_ALM_CLAP, else a tiny random model)")
    parser.add_argument("--beats", default=os.environ.get("HF_ALM_BEATS"),
                        help="audio classifier for tagging: a model folder or Hub id, e.g. OUT/model of "
                        "`recipes/beats_finetune.py --final_model --output_dir OUT` (trained on every clip) or one "
                        "fold's OUT/folds/fold_1; OUT itself is accepted when it holds OUT/model. Any hf-alm "
                        "audio-classification folder works (default: $HF_ALM_BEATS, else a tiny random BEATs)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default: 7860)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 to expose it)")
    parser.add_argument("--max_seconds", type=float, default=30.0,
                        help="longest clip the app accepts, in seconds (default: 30)")
    parser.add_argument("--cache_dir", default=None,
                        help="folder for the synthesised example clips (default: $HF_ALM_DEMO_CACHE or "
                        "~/.cache/hf-alm/demo)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    if args.max_seconds <= 0:
        raise ValueError(f"--max_seconds must be positive, got {args.max_seconds}")
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {args.port}")
    clap = resolve_model_folder(args.clap, "--clap")
    beats = resolve_model_folder(args.beats, "--beats")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    app = load_app()
    demo = app.build_demo(clap=clap, beats=beats, cache_dir=args.cache_dir, max_seconds=args.max_seconds)
    demo.launch(server_name=args.host, server_port=args.port, ssr_mode=False)
    return 0
