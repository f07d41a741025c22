"""The one training loop every hf-alm recipe shares.

``fit`` trains a model for one *stage* (e.g. ``"base"``, ``"teminal_a"``) with Accelerate:

* deterministic data order: a seeded permutation per epoch (same on every process, so sharding is consistent);
* AdamW (no weight decay on biases and norms), linear warm-up then cosine decay (transformers' convention,
  :func:`_warmup_cosine`), gradient clipping, accumulation: every optimizer step gets the mean gradient of its own
  window of micro-batches, the shorter last window of an epoch included;
* tqdm progress bars on the local main process only, optional trackers (``--report_to``);
* one checkpoint per epoch, ``{output_dir}/checkpoints/{stage}/epoch_{k}`` (``accelerator.save_state``: model,
  optimizer, scheduler and every RNG, plus ``trainer_state.json``), written to a temporary folder and renamed;
* resume (``resume_from_checkpoint="latest"``, an output folder, or one epoch folder): training continues with the
  same next loss as an uninterrupted run; a stage whose last epoch is already saved is restored and skipped, so a
  multi-stage recipe resumes where it stopped; a checkpoint whose batches / optimizer steps per epoch or total steps
  differ from this run's (the data on disk changed, another batch size or process count) is refused;
* run identity (``TrainConfig.run``, from :func:`run_identity`): the recipe, the model type and the flags that change
  what is trained, recorded in every checkpoint's ``trainer_state.json`` (and by the cross-validation recipes in every
  ``folds/<fold>/fold_results.json``); resuming from a checkpoint of another run fails and names the differing flags.

Recipes stay thin: they parse their flags, call :func:`prepare_run` (checks the shared flags, the ``--dataset`` spec,
``--resume_from_checkpoint`` and the output folder before anything expensive runs; returns the run identity), build a
model, a dataset, a ``collate_fn`` and a ``compute_loss(model, batch)`` and call ``fit`` once per stage.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Sampler

__all__ = ["TrainConfig", "FitResult", "RecipeHelpFormatter", "add_common_args", "prepare_run", "run_identity",
           "run_differences", "check_report_to", "make_accelerator", "fit", "find_checkpoint", "checkpoint_root"]

TRAINER_STATE = "trainer_state.json"
FOLD_RESULTS = "fold_results.json"
_EPOCH_RE = re.compile(r"^epoch_(\d+)$")


@dataclass
class TrainConfig:
    """Settings of one training stage (``dataclasses.replace`` it per stage)."""

    output_dir: str = "outputs"
    num_epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    max_grad_norm: float | None = 1.0
    gradient_accumulation_steps: int = 1
    seed: int = 0
    resume_from_checkpoint: str | None = None
    report_to: str | None = None
    mixed_precision: str = "no"
    num_workers: int = 0
    drop_last: bool = False
    log_every: int = 10
    save_checkpoints: bool = True
    num_threads: int | None = None
    default_num_threads: int | None = None  # the recipe's default, used when num_threads (the flag) is unset
    run: dict | None = None  # the run identity (run_identity) recorded in every checkpoint and checked on resume

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides) -> "TrainConfig":
        """Build from parsed ``add_common_args`` flags (unknown attributes ignored), then apply ``overrides``."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in vars(args).items() if k in names and v is not None}
        values.update(overrides)
        return cls(**values)


@dataclass
class FitResult:
    """What ``fit`` did: per-step ``history`` (epoch, step, loss, lr and the extra logs of ``compute_loss``),
    per-epoch ``epoch_metrics`` (mean loss and ``eval_fn`` results), the unwrapped ``model``."""

    model: torch.nn.Module
    history: list[dict] = field(default_factory=list)
    epoch_metrics: list[dict] = field(default_factory=list)
    global_step: int = 0
    resumed_from: str | None = None
    skipped: bool = False


class RecipeHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The recipes' ``--help`` layout: the description keeps its line breaks (usage examples), and a flag whose help
    does not already state its default gets ``(default: X)`` appended once. Flags whose default is ``None`` / ``False``
    get nothing appended: their help says what happens when they are not given."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or "default" in text.lower() or not action.option_strings
                or default is None or default is False or default is argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"


def add_common_args(parser: argparse.ArgumentParser, *, default_text: dict[str, str] | None = None,
                    outputs: str = "the final model, eval_results.json", run_folders: Iterable[str] = (),
                    **defaults) -> argparse.ArgumentParser:
    """Add the flags every recipe shares; ``defaults`` overrides a flag's default (e.g. ``learning_rate=3e-4``).

    ``default_text`` says in words what a flag's default is where the value alone would not (``num_epochs`` of a
    multi-stage recipe: each stage's own count; ``num_threads``: the value and why). ``outputs`` names what the
    recipe writes to ``--output_dir`` besides ``checkpoints/``; ``run_folders`` the sub-folders that
    ``--overwrite_output_dir`` removes besides ``checkpoints/`` (pass the same to :func:`prepare_run`).
    """
    d = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    d.update(defaults)
    text = {k: v.replace("%", "%%") for k, v in (default_text or {}).items()}

    def dflt(name: str) -> str:
        return f"(default: {text[name]})" if name in text else "(default: %(default)s)"

    removed = ", ".join(f"{f}/" for f in ("checkpoints", *run_folders))
    threads = d["num_threads"]
    if "num_threads" in text:
        threads_default = dflt("num_threads")
    elif threads is None:
        threads_default = ("(default: on CPU, when `accelerate launch` has exported OMP_NUM_THREADS=1 (it does without "
                           "--cpu), the machine's cores are shared out between the processes, else torch's setting "
                           "is kept)")
    else:
        threads_default = f"(default: {threads})"
    g = parser.add_argument_group("training (shared by every hf-alm recipe)")
    g.add_argument("--output_dir", default=d["output_dir"],
                   help=f"folder for {outputs} and checkpoints/ (default: %(default)s)")
    g.add_argument("--overwrite_output_dir", action="store_true",
                   help=f"start over in an --output_dir that holds an earlier run: remove its {removed} first "
                        "(without this flag such a run stops before training; --resume_from_checkpoint latest "
                        "continues the earlier run instead)")
    g.add_argument("--num_epochs", type=int, default=d["num_epochs"],
                   help=f"epochs per training stage {dflt('num_epochs')}")
    g.add_argument("--batch_size", type=int, default=d["batch_size"],
                   help=f"batch size per process {dflt('batch_size')}")
    g.add_argument("--learning_rate", type=float, default=d["learning_rate"],
                   help=f"peak AdamW learning rate {dflt('learning_rate')}")
    g.add_argument("--weight_decay", type=float, default=d["weight_decay"],
                   help="AdamW weight decay; never applied to biases and norms (default: %(default)s)")
    g.add_argument("--warmup_ratio", type=float, default=d["warmup_ratio"],
                   help="fraction of optimizer steps of linear warm-up (rounded up, as transformers' Trainer) before "
                        "cosine decay (default: %(default)s)")
    g.add_argument("--max_grad_norm", type=float, default=d["max_grad_norm"],
                   help="clip the gradient norm to this value; 0 disables clipping (default: %(default)s)")
    g.add_argument("--gradient_accumulation_steps", type=int, default=d["gradient_accumulation_steps"],
                   help="batches accumulated per optimizer step (default: %(default)s)")
    g.add_argument("--seed", type=int, default=d["seed"],
                   help="seed for model init, data order and augmentation (default: %(default)s)")
    g.add_argument("--resume_from_checkpoint", default=d["resume_from_checkpoint"], metavar="PATH|latest",
                   help="resume from 'latest' (newest checkpoint under --output_dir; none yet: train from the start), "
                        "an output folder or one checkpoints/<stage>/epoch_<k> folder; finished stages are restored "
                        "and skipped. The checkpoints must come from a run with the same flags (default: off, a "
                        "fresh run)")
    g.add_argument("--report_to", default=d["report_to"], metavar="TRACKER",
                   help="experiment tracker(s) for accelerate, comma-separated (tensorboard, wandb, all, ...; its "
                        "package must be installed, e.g. pip install 'hf-alm[tensorboard]') (default: none)")
    g.add_argument("--mixed_precision", default=d["mixed_precision"], choices=["no", "fp16", "bf16"],
                   help="mixed precision mode passed to accelerate (default: %(default)s)")
    g.add_argument("--num_workers", type=int, default=d["num_workers"],
                   help="DataLoader worker processes; part of the run identity, since random augmentations draw "
                        "other numbers in workers (default: %(default)s)")
    g.add_argument("--num_threads", type=int, default=None,
                   help=f"torch CPU threads per process; 0 keeps torch's own setting {threads_default}")
    g.add_argument("--push_to_hub", action="store_true",
                   help="publish the final model to the Hugging Face Hub with a model card (hf_alm.hub.publish)")
    g.add_argument("--hub_model_id", default=None, metavar="ORG/NAME",
                   help="Hub repository for --push_to_hub (default: the output folder's name)")
    g.add_argument("--hub_private", action="store_true", help="create the Hub repository as private")
    parser.set_defaults(default_num_threads=threads)
    return parser


# ------------------------------------------------------------------------------------------------ run identity

#: flags that never change the trained weights: where the run writes, how it logs, its CPU threads, evaluation
#: batches. Not ``num_workers``: the random draws of datasets and collate functions (ONE-PEACE captions and masks,
#: BEATs SpecAugment) come from the main process's generator without workers and from each worker's own seeded
#: generator with them, so another worker count trains other weights (and a resume with it would mix two runs).
RUN_IDENTITY_IGNORED = frozenset({
    "output_dir", "overwrite_output_dir", "resume_from_checkpoint", "report_to", "num_threads",
    "default_num_threads", "push_to_hub", "hub_model_id", "hub_private", "eval_batch_size", "keep_checkpoints",
})
_NOT_FLAGS = ("recipe", "model_type")


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def run_identity(args: argparse.Namespace, *, recipe: str, model_type: str, ignore: Iterable[str] = ()) -> dict:
    """What a run trains: ``recipe``, ``model_type`` and every parsed flag except :data:`RUN_IDENTITY_IGNORED` and the
    recipe's own ``ignore`` (flags that only change evaluation or exports). JSON-ready (tuples become lists)."""
    skip = RUN_IDENTITY_IGNORED | set(ignore)
    out = {"recipe": recipe, "model_type": model_type}
    for key, value in sorted(vars(args).items()):
        if key not in skip and not key.startswith("_"):
            out[key] = _jsonable(_absolute_paths(value))
    return out


def _absolute_paths(value):
    """A flag value naming an existing local path, alone or after a ``prefix:`` (``esc10:../data/esc10``), with that
    path made absolute: the same folder given relatively and absolutely is the same run."""
    if not isinstance(value, str) or not value:
        return value
    if os.path.exists(value):
        return os.path.abspath(value)
    prefix, sep, rest = value.partition(":")
    if sep and prefix.isidentifier():
        path, sep2, tail = rest.partition(":")
        if path and os.path.exists(path):
            return f"{prefix}:{os.path.abspath(path)}{sep2}{tail}"
    return value


def run_differences(recorded: dict, current: dict) -> list[str]:
    """The fields in which two run identities differ, as ``"--preset: 'tiny' (recorded) != 'small' (now)"``. A flag
    only one of them knows (added or removed by another hf-alm version) is not compared."""
    out = []
    for key in sorted(set(recorded) & set(current) | set(_NOT_FLAGS)):
        old, new = recorded.get(key), current.get(key)
        if old != new:
            out.append(f"{key if key in _NOT_FLAGS else '--' + key}: {old!r} (recorded) != {new!r} (now)")
    return out


def checkpoint_root(resume: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """The ``checkpoints`` folder that ``resume_from_checkpoint`` points into (see :func:`find_checkpoint`)."""
    if str(resume) == "latest":
        return Path(output_dir) / "checkpoints"
    path = Path(resume)
    if _EPOCH_RE.match(path.name):
        return path.parent.parent
    if path.name == "checkpoints":
        return path
    if (path / "checkpoints").is_dir():
        return path / "checkpoints"
    return path.parent if path.parent.name == "checkpoints" else path / "checkpoints"


def _read_run(path: Path):
    try:
        return json.loads(path.read_text()).get("run")
    except (OSError, ValueError, AttributeError) as err:
        raise SystemExit(f"{path} is not a readable JSON record of a run ({err}); remove it or start over with "
                         "--overwrite_output_dir") from None


def _run_records(root: Path, output_dir: Path) -> list[tuple[Path, dict | None]]:
    """``(file, run identity or None)`` of every checkpoint under ``root`` and every fold result of ``output_dir``."""
    records = []
    if root.is_dir():
        for stage_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for _, path in sorted(_epoch_dirs(stage_dir).items()):
                records.append((path / TRAINER_STATE, _read_run(path / TRAINER_STATE)))
    folds = output_dir / "folds"
    if folds.is_dir():
        for path in sorted(folds.glob(f"*/{FOLD_RESULTS}")):
            records.append((path, _read_run(path)))
    return records


def _is_main_rank() -> bool:
    """Rank 0 of a distributed launch (``RANK``), or a lone process: usable before the Accelerator exists."""
    return os.environ.get("RANK", "0").strip() in ("", "0")


def prepare_output_dir(args: argparse.Namespace, run: dict, *, run_folders: Iterable[str] = (),
                       reuse: bool | None = None) -> None:
    """Check ``--output_dir`` / ``--resume_from_checkpoint`` against the run identity ``run``, before any work.

    * ``--resume_from_checkpoint PATH``: PATH must exist and hold checkpoints; ``latest`` may find none (fresh start);
    * resuming (or ``reuse=True``: a recipe mode that reads an earlier run's results): every checkpoint and fold
      result found must record the same identity, else SystemExit listing the differing flags;
    * a fresh run into a folder that holds checkpoints or fold results stops, unless ``--overwrite_output_dir``,
      which removes ``checkpoints/`` and ``run_folders`` (e.g. ``folds``, ``model``; on rank 0) first.
    """
    out = Path(args.output_dir)
    resume = getattr(args, "resume_from_checkpoint", None)
    overwrite = bool(getattr(args, "overwrite_output_dir", False))
    reuse = bool(resume) if reuse is None else reuse
    if resume and overwrite:
        raise SystemExit(f"--resume_from_checkpoint {resume} continues an earlier run and --overwrite_output_dir "
                         "deletes it: pass only one of them")
    if resume and str(resume) != "latest":
        try:
            path = _explicit_resume_path(resume)
        except FileNotFoundError as err:
            raise SystemExit(str(err)) from None
        root = checkpoint_root(path, out)
        if not (root.is_dir() and any(_epoch_dirs(d) for d in root.iterdir() if d.is_dir())):
            raise SystemExit(f"--resume_from_checkpoint: {path} holds no checkpoint (no "
                             f"checkpoints/<stage>/epoch_<k>/{TRAINER_STATE} in {root}); pass 'latest', an output "
                             "folder of an earlier run or one of its epoch folders")
    if reuse:
        records = _run_records(checkpoint_root(resume or "latest", out), out)
        unrecorded = [p for p, r in records if r is None]
        for path, recorded in records:
            diffs = run_differences(recorded, run) if recorded is not None else []
            if diffs:
                raise SystemExit(f"{path} was written by another run; differing: {'; '.join(diffs)}. Continue it "
                                 "with that run's flags, or start over with --overwrite_output_dir (or another "
                                 "--output_dir)")
        if unrecorded:
            print(f"warning: {len(unrecorded)} checkpoint(s) or fold result(s), e.g. {unrecorded[0]}, record no run "
                  "identity (written by an older hf-alm); cannot check that they belong to this run",
                  file=sys.stderr)
        return
    if not overwrite and _run_records(out / "checkpoints", out):  # with overwrite, rank 0 may be deleting them
        raise SystemExit(f"{out} already holds checkpoints of an earlier run; pass --resume_from_checkpoint latest "
                         "to continue it or --overwrite_output_dir to start over")
    if overwrite and _is_main_rank():
        removed = [out / f for f in ("checkpoints", *run_folders) if (out / f).exists()]
        for folder in removed:
            shutil.rmtree(folder) if folder.is_dir() else folder.unlink()
        if removed:
            print(f"--overwrite_output_dir: removed {', '.join(map(str, removed))}", file=sys.stderr)


_TRACKER_PACKAGES = {  # accelerate's tracker name -> (importable modules, pip install hint)
    "tensorboard": (("tensorboard", "tensorboardX"), "pip install 'hf-alm[tensorboard]'"),
    "wandb": (("wandb",), "pip install wandb"),
    "trackio": (("trackio",), "pip install trackio"),
    "comet_ml": (("comet_ml",), "pip install comet-ml"),
    "mlflow": (("mlflow",), "pip install mlflow"),
    "aim": (("aim",), "pip install aim"),
    "clearml": (("clearml",), "pip install clearml"),
    "dvclive": (("dvclive",), "pip install dvclive"),
    "swanlab": (("swanlab",), "pip install swanlab"),
}


def _trackers(report_to: str | None) -> list[str]:
    if report_to is None:
        return []
    return [n for n in (n.strip() for n in str(report_to).split(",")) if n and n != "none"]


def check_report_to(report_to: str | None) -> None:
    """ValueError unless every tracker of ``--report_to`` is known and its package installed (accelerate itself only
    warns and then logs nothing). ``all`` needs at least one installed tracker."""
    names = _trackers(report_to)

    def installed(name):
        return any(importlib.util.find_spec(m) is not None for m in _TRACKER_PACKAGES[name][0])

    for name in names:
        if name == "all":
            if not any(installed(n) for n in _TRACKER_PACKAGES):
                raise ValueError("--report_to all: no tracker package is installed (e.g. pip install "
                                 "'hf-alm[tensorboard]')")
        elif name not in _TRACKER_PACKAGES:
            raise ValueError(f"--report_to {name!r} is not a tracker accelerate knows; choose from all, "
                             f"{', '.join(_TRACKER_PACKAGES)} or none")
        elif not installed(name):
            modules, hint = _TRACKER_PACKAGES[name]
            raise ValueError(f"--report_to {name} needs the {modules[0]} package: {hint}")


def prepare_run(args: argparse.Namespace, *, recipe: str, model_type: str, ignore: Iterable[str] = (),
                run_folders: Iterable[str] = (), reuse: bool | None = None) -> dict:
    """The checks every recipe makes right after parsing its flags, before loading data or models: ``--report_to``
    (:func:`check_report_to`), the ``--dataset`` spec's form (no I/O), ``--resume_from_checkpoint`` and the output
    folder (:func:`prepare_output_dir`). Returns the run identity (:func:`run_identity`) for ``TrainConfig.run``.
    Every problem is a SystemExit naming the flag and its value."""
    try:
        check_report_to(getattr(args, "report_to", None))
        if getattr(args, "dataset", None) is not None:
            from hf_alm.data.loaders import check_dataset_spec

            check_dataset_spec(args.dataset)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    run = run_identity(args, recipe=recipe, model_type=model_type, ignore=ignore)
    prepare_output_dir(args, run, run_folders=run_folders, reuse=reuse)
    return run


def make_accelerator(config: TrainConfig, *, find_unused_parameters: bool = False):
    """An ``Accelerator`` for ``config`` (trackers in ``output_dir``; CPU when no GPU is present).

    ``find_unused_parameters`` is passed to DistributedDataParallel, for models whose stages leave some parameters
    without gradients (e.g. one modality of a multimodal model).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    check_report_to(config.report_to)
    log_with = _trackers(config.report_to) or None
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if find_unused_parameters else []
    accelerator = Accelerator(
        cpu=_multi_process_cpu(),
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=config.output_dir, logging_dir=os.path.join(
            config.output_dir, "logs")),
        kwargs_handlers=handlers,
    )
    threads = cpu_threads_per_process(config.num_threads, accelerator.device.type, accelerator.num_processes,
                                      default=config.default_num_threads)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
        source = ("--num_threads" if config.num_threads is not None else "default"
                  if config.default_num_threads is not None else
                  f"default: the cores shared out between {accelerator.num_processes} process(es)")
        accelerator.print(f"torch CPU threads per process: {threads} ({source})")
    return accelerator


def _multi_process_cpu() -> bool:
    """True when this process is one of several (``torchrun`` / ``accelerate launch --multi_gpu`` set
    ``WORLD_SIZE``) on a machine without CUDA. accelerate then needs ``cpu=True`` to run them as one MULTI_CPU job
    (gloo, DistributedDataParallel); without it each process believes it is alone (``DistributedType.NO``): gradients
    are never averaged and every process writes the checkpoints."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        world = 1
    return world > 1 and not torch.cuda.is_available()


def cpu_threads_per_process(requested: int | None, device_type: str, num_processes: int,
                            default: int | None = None) -> int | None:
    """The torch thread count a process should use, or None to keep the current one.

    ``requested`` (``--num_threads``) wins (0: keep the current setting), then the recipe's ``default``. Otherwise, on
    CPU: ``accelerate launch`` without ``--cpu`` exports ``OMP_NUM_THREADS=1``, which would leave all but one core idle
    in a single-process CPU run; in that case (the variable is exactly ``"1"``) the cores are divided between the
    processes.
    """
    for value in (requested, default):
        if value is not None:
            if value < 0:
                raise ValueError(f"--num_threads must be >= 0 (0 = torch's own setting), got {value}")
            return value or None
    if device_type != "cpu" or os.environ.get("OMP_NUM_THREADS") != "1":
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, num_processes))


class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(n)`` seeded by ``(seed, epoch)``: the same on every process and every run."""

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def _epoch_dirs(stage_dir: Path) -> dict[int, Path]:
    out = {}
    if stage_dir.is_dir():
        for p in stage_dir.iterdir():
            m = _EPOCH_RE.match(p.name)
            if m and p.is_dir() and (p / TRAINER_STATE).is_file():
                out[int(m.group(1))] = p
    return out


def _explicit_resume_path(resume: str | os.PathLike, stage: str | None = None) -> Path:
    """``--resume_from_checkpoint PATH`` (not ``latest``), checked: it exists, and an epoch folder (of ``stage``, when
    given) holds a complete checkpoint. FileNotFoundError otherwise."""
    path = Path(resume)
    if not path.exists():
        raise FileNotFoundError(f"--resume_from_checkpoint: no such folder: {path}")
    if _EPOCH_RE.match(path.name) and (stage is None or path.parent.name == stage) and not (
            path / TRAINER_STATE).is_file():
        raise FileNotFoundError(f"--resume_from_checkpoint: {path} is not a complete checkpoint (no {TRAINER_STATE})")
    return path


def checkpoint_problem(path: Path) -> str | None:
    """Why the epoch folder ``path`` cannot be resumed from (naming the file), or None when it looks complete. Cheap:
    ``trainer_state.json`` parses, every ``*.safetensors`` header fits its file (no tensor is read), every other file
    is non-empty and a torch zip archive's directory is readable. accelerate reads ``custom_checkpoint_*.pkl`` (the
    scheduler) with a full unpickle: it must load weights-only (an UnsafeCheckpointError is raised, never skipped)."""
    import zipfile

    from hf_alm.utils import CheckpointError, UnsafeCheckpointError, check_safetensors_file, load_torch_file

    try:
        state = json.loads((path / TRAINER_STATE).read_text())
        if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
            return f"{path / TRAINER_STATE} holds no epoch number"
    except (OSError, ValueError) as err:
        return f"{path / TRAINER_STATE} is not readable JSON ({err})"
    for file in sorted(path.iterdir()):
        if not file.is_file() or file.name == TRAINER_STATE:
            continue
        try:
            if file.stat().st_size == 0:
                return f"{file} is empty (0 bytes)"
            if file.suffix == ".safetensors":
                check_safetensors_file(file)
            elif file.name.startswith("custom_checkpoint_"):
                load_torch_file(file, what="checkpoint state file")
            elif zipfile.is_zipfile(file) or file.suffix in (".bin", ".pkl", ".pt"):
                with zipfile.ZipFile(file) as archive:
                    archive.namelist()
        except UnsafeCheckpointError:
            raise
        except (CheckpointError, OSError, zipfile.BadZipFile) as err:
            return str(err) if str(file) in str(err) else f"{file} is truncated or corrupt ({err})"
    return None


def find_checkpoint(resume: str | os.PathLike | None, output_dir: str | os.PathLike, stage: str) -> Path | None:
    """The checkpoint folder a stage resumes from, or ``None`` (train from scratch).

    ``resume`` is ``"latest"`` (this stage's newest epoch under ``output_dir``), an output folder (same, under that
    folder), a ``checkpoints`` folder, or one ``.../checkpoints/<stage>/epoch_<k>`` folder: for its own stage that exact
    epoch; other stages use their newest epoch under the same ``checkpoints`` folder.

    A broken newest epoch (see :func:`checkpoint_problem`: e.g. a truncated ``model.safetensors``) is skipped with a
    warning naming it, for the previous complete one; when every epoch is broken, or an explicitly named epoch folder
    is, the error (a CheckpointError, i.e. ValueError) names the file.
    """
    from hf_alm.utils import CheckpointError

    if not resume:
        return None
    if str(resume) != "latest":
        path = _explicit_resume_path(resume, stage)
        if _EPOCH_RE.match(path.name) and path.parent.name == stage:
            problem = checkpoint_problem(path)
            if problem:
                raise CheckpointError(f"[{stage}] --resume_from_checkpoint {path} cannot be resumed from: {problem}")
            return path
    epochs = _epoch_dirs(checkpoint_root(resume, output_dir) / stage)
    broken = []
    for epoch in sorted(epochs, reverse=True):
        problem = checkpoint_problem(epochs[epoch])
        if problem is None:
            return epochs[epoch]
        broken.append(problem)
        if _is_main_rank():
            print(f"warning: [{stage}] checkpoint {epochs[epoch]} cannot be resumed from ({problem}); "
                  + ("trying the previous epoch" if epoch != min(epochs) else "it was the oldest"), file=sys.stderr)
    if broken:
        raise CheckpointError(f"[{stage}] no checkpoint under {checkpoint_root(resume, output_dir) / stage} can be "
                              f"resumed from (the newest: {broken[0]}); remove the broken ones or start over with "
                              "--overwrite_output_dir")
    return None


def remove_stale_checkpoint_temps(stage_dir: Path) -> None:
    """Remove ``.epoch_<k>.tmp`` folders that a killed run left in ``stage_dir`` (a save in progress renames its temp
    folder before returning, so at the start of a stage every one is stale). Never read as checkpoints either way."""
    if stage_dir.is_dir():
        for tmp in stage_dir.glob(".epoch_*.tmp"):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)


def _param_groups(model: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def _warmup_steps(warmup_ratio: float, total_steps: int) -> int:
    """Warm-up steps of ``warmup_ratio``: rounded up, as transformers' Trainer does
    (``TrainingArguments.get_warmup_steps``: ``math.ceil(num_training_steps * warmup_ratio)``)."""
    return math.ceil(warmup_ratio * total_steps)


def _warmup_cosine(total_steps: int, warmup_steps: int):
    """The ``LambdaLR`` factor of optimizer step ``step`` (0-based), transformers' convention
    (``get_cosine_schedule_with_warmup`` with ``num_cycles=0.5``): ``step / warmup_steps`` during the warm-up (so the
    first step runs at 0 and step ``warmup_steps`` at the peak), then ``0.5 * (1 + cos(pi * progress))`` with
    ``progress = (step - warmup_steps) / (total_steps - warmup_steps)``, never below 0."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return factor


def _split_loss(out) -> tuple[torch.Tensor, dict]:
    if isinstance(out, tuple):
        loss, logs = out
        return loss, dict(logs or {})
    if isinstance(out, dict):
        out = dict(out)
        return out.pop("loss"), out
    if hasattr(out, "loss"):
        return out.loss, {}
    return out, {}


def _scalar(v):
    return float(v.detach().float().mean()) if torch.is_tensor(v) else v


def fit(
    model: torch.nn.Module,
    dataset,
    *,
    collate_fn: Callable[[list], Any],
    compute_loss: Callable[[torch.nn.Module, Any], Any],
    config: TrainConfig,
    accelerator=None,
    stage: str = "train",
    eval_fn: Callable[[torch.nn.Module], dict] | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    shuffle: bool = True,
    optimizer: torch.optim.Optimizer | None = None,
) -> FitResult:
    """Train ``model`` on ``dataset`` for ``config.num_epochs`` epochs as stage ``stage``; see the module docstring.

    ``compute_loss(model, batch)`` returns a loss tensor, ``(loss, logs)``, a dict with ``"loss"`` or an output with
    ``.loss``. ``eval_fn(unwrapped_model)`` runs after each epoch (in eval mode, no grad) and returns metrics.
    ``on_epoch_end(epoch, metrics)`` runs after the epoch's checkpoint is saved.

    With ``gradient_accumulation_steps=k`` the batches of an epoch form windows of ``k`` (the last one may be shorter)
    and each optimizer step sees the mean of its window's micro-batch gradients: the loss is scaled by
    ``1 / len(window)`` (accelerate alone would divide the last, shorter window by ``k`` too). ``history`` has one
    record per micro-batch; its ``lr`` is the rate the window's optimizer step uses.
    """
    from tqdm.auto import tqdm

    if not stage or "/" in stage or stage.startswith("."):
        raise ValueError(f"invalid stage name {stage!r}")
    if config.num_epochs < 0:
        raise ValueError(f"num_epochs must be >= 0, got {config.num_epochs}")
    try:
        n = len(dataset)
    except TypeError as err:
        raise ValueError("fit needs a sized dataset (len(dataset)); got an iterable/streaming one") from err
    if n == 0:
        raise ValueError(f"stage {stage!r}: the training dataset is empty")

    accelerator = accelerator if accelerator is not None else make_accelerator(config)
    if accelerator.log_with and not getattr(accelerator, "_hf_alm_trackers", False):
        accelerator.init_trackers(Path(config.output_dir).name or "hf-alm",
                                  config={k: v for k, v in dataclasses.asdict(config).items()
                                          if isinstance(v, (int, float, str, bool))})
        accelerator._hf_alm_trackers = True

    sampler = EpochShuffleSampler(n, config.seed, shuffle=shuffle)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, collate_fn=collate_fn,
                        num_workers=config.num_workers, drop_last=config.drop_last)
    if optimizer is None:
        optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.learning_rate)
    accum = accelerator.gradient_accumulation_steps
    if accum != config.gradient_accumulation_steps:
        raise ValueError(f"[{stage}] the accelerator accumulates {accum} batches per optimizer step but "
                         f"config.gradient_accumulation_steps is {config.gradient_accumulation_steps}; build it "
                         "with make_accelerator(config)")
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    batches = len(loader)  # per process
    steps_per_epoch = math.ceil(batches / accum)
    total_steps = max(1, steps_per_epoch * config.num_epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _warmup_cosine(total_steps, _warmup_steps(config.warmup_ratio, total_steps)))
    accelerator.register_for_checkpointing(scheduler)
    schedule = {"batches_per_epoch": batches, "steps_per_epoch": steps_per_epoch, "total_steps": total_steps}

    stage_dir = Path(config.output_dir) / "checkpoints" / stage
    result = FitResult(model=accelerator.unwrap_model(model))
    start_epoch = 0
    if accelerator.is_main_process:
        remove_stale_checkpoint_temps(stage_dir)
    ckpt = find_checkpoint(config.resume_from_checkpoint, config.output_dir, stage)
    if ckpt is not None:
        state = json.loads((ckpt / TRAINER_STATE).read_text())
        diffs = run_differences(state["run"], config.run) if state.get("run") and config.run else []
        if diffs:
            raise ValueError(f"[{stage}] checkpoint {ckpt} was written by another run; differing: {'; '.join(diffs)}")
        _check_schedule(state, schedule, ckpt, stage, n, accelerator)
        try:
            accelerator.load_state(str(ckpt))
        except Exception as err:  # noqa: BLE001 - e.g. a corrupt tensor inside an intact archive: name the folder
            from hf_alm.utils import CheckpointError

            raise CheckpointError(f"[{stage}] cannot resume from checkpoint {ckpt}: {type(err).__name__}: "
                                  f"{str(err).splitlines()[0][:300] if str(err) else ''}") from err
        start_epoch = state["epoch"] + 1
        result.global_step = state["global_step"]
        result.history = state.get("history", [])
        result.epoch_metrics = state.get("epoch_metrics", [])
        result.resumed_from = str(ckpt)
        accelerator.print(f"[{stage}] resumed from {ckpt} (epoch {state['epoch']} done)")
        if start_epoch >= config.num_epochs:
            result.skipped = True
            accelerator.print(f"[{stage}] already finished; skipping")
            _forget(accelerator, optimizer, loader, scheduler)
            model.eval()
            result.model = accelerator.unwrap_model(model)
            return result

    main = accelerator.is_local_main_process
    clip = config.max_grad_norm if config.max_grad_norm and config.max_grad_norm > 0 else None
    for epoch in range(start_epoch, config.num_epochs):
        model.train()
        accelerator.step = 0  # accelerate's accumulation counter: the windows start with the epoch
        sampler.set_epoch(epoch)
        if hasattr(dataset, "set_epoch"):  # datasets that draw new items per epoch (hf_alm.training.teminal.StageItems)
            dataset.set_epoch(epoch)
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        bar = tqdm(loader, desc=f"{stage} epoch {epoch + 1}/{config.num_epochs}", disable=not main,
                   dynamic_ncols=True, leave=False)
        losses = []
        for index, batch in enumerate(bar):
            # the accumulation window of this batch: accum batches, the epoch's last window possibly fewer
            window = min(accum, batches - index // accum * accum)
            with accelerator.accumulate(model):
                last = (index + 1) % accum == 0 or index + 1 == batches
                if accelerator.sync_gradients != last:
                    raise RuntimeError(f"[{stage}] accelerate's accumulation is out of step with the epoch's windows "
                                       f"of {accum} batches: batch {index} of {batches} (sync_gradients="
                                       f"{accelerator.sync_gradients}, accelerator.step={accelerator.step})")
                loss, logs = _split_loss(compute_loss(model, batch))
                if not torch.isfinite(loss.detach()).all():
                    raise FloatingPointError(f"[{stage}] non-finite loss {loss.item()} at step {result.global_step}")
                # accelerator.backward divides by accum: the window's gradients then add up to their mean
                accelerator.backward(loss if window == accum else loss * (accum / window))
                if accelerator.sync_gradients and clip is not None:
                    accelerator.clip_grad_norm_(model.parameters(), clip)
                lr = optimizer.param_groups[0]["lr"]  # the rate of this window's step (the scheduler moves next)
                optimizer.step()
                if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            mean_loss = float(accelerator.reduce(loss.detach().float(), reduction="mean"))
            losses.append(mean_loss)
            if accelerator.sync_gradients:
                result.global_step += 1
            record = {"epoch": epoch, "step": result.global_step, "loss": mean_loss, "lr": lr,
                      **{k: _scalar(v) for k, v in logs.items()}}
            result.history.append(record)
            bar.set_postfix(loss=f"{mean_loss:.4f}")
            if accelerator.log_with and result.global_step % max(1, config.log_every) == 0:
                accelerator.log({f"{stage}/{k}": v for k, v in record.items() if isinstance(v, (int, float))},
                                step=result.global_step)
        bar.close()
        metrics = {"epoch": epoch, "train_loss": sum(losses) / max(1, len(losses))}
        if eval_fn is not None:
            model.eval()
            with torch.no_grad():
                metrics.update(eval_fn(accelerator.unwrap_model(model)) or {})
        result.epoch_metrics.append(metrics)
        accelerator.print(f"[{stage}] epoch {epoch + 1}/{config.num_epochs}: "
                          + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in metrics.items() if k != "epoch"))
        if accelerator.log_with:
            accelerator.log({f"{stage}/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))},
                            step=result.global_step)
        if config.save_checkpoints:
            _save_checkpoint(accelerator, stage_dir, epoch, result, config.run, schedule)
        if on_epoch_end is not None:
            on_epoch_end(epoch, metrics)

    _forget(accelerator, optimizer, loader, scheduler)
    model.eval()
    result.model = accelerator.unwrap_model(model)
    return result


def _forget(accelerator, optimizer, loader, scheduler) -> None:
    """Drop this stage's optimizer, loader and scheduler from the accelerator, so that a later stage sharing the
    accelerator checkpoints only its own state (the model stays registered once)."""
    for attr, obj in (("_optimizers", optimizer), ("_dataloaders", loader), ("_custom_objects", scheduler)):
        objs = getattr(accelerator, attr, None)
        if objs is not None:
            for i in reversed(range(len(objs))):
                if objs[i] is obj:
                    del objs[i]
    models = getattr(accelerator, "_models", None)
    if models is not None:  # keep one registration per distinct model object
        seen, keep = set(), []
        for m in models:
            if id(m) not in seen:
                seen.add(id(m))
                keep.append(m)
        models[:] = keep


def _check_schedule(state: dict, schedule: dict, ckpt: Path, stage: str, rows: int, accelerator) -> None:
    """Refuse a checkpoint whose batches / optimizer steps per epoch or total optimizer steps differ from this run's:
    the epochs would no longer line up and the learning-rate schedule would jump (e.g. back into warm-up). A
    checkpoint of an older hf-alm that records none of them resumes with a warning."""
    recorded = {k: state[k] for k in schedule if k in state}
    if not recorded:
        if accelerator.is_main_process:
            print(f"warning: [{stage}] checkpoint {ckpt} records no {', '.join(schedule)} (written by an older "
                  "hf-alm); cannot check that the data and the learning-rate schedule match this run",
                  file=sys.stderr)
        return
    diffs = [f"{k}: {recorded[k]!r} (recorded) != {schedule[k]!r} (now)"
             for k in recorded if recorded[k] != schedule[k]]
    if diffs:
        raise ValueError(f"[{stage}] checkpoint {ckpt} was written with another number of batches or optimizer steps; "
                         f"differing: {'; '.join(diffs)}. The dataset changed ({rows} rows now), or the batch size, "
                         "the gradient accumulation, the number of epochs or of processes did; resuming would put the "
                         "epochs and the learning-rate schedule out of step. Restore them, or start over with "
                         "--overwrite_output_dir")


def _save_checkpoint(accelerator, stage_dir: Path, epoch: int, result: FitResult, run: dict | None = None,
                     schedule: dict | None = None) -> None:
    final = stage_dir / f"epoch_{epoch}"
    tmp = stage_dir / f".epoch_{epoch}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = {"epoch": epoch, "global_step": result.global_step, **(schedule or {}), "history": result.history,
                 "epoch_metrics": result.epoch_metrics, "run": run}
        (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    accelerator.wait_for_everyone()
