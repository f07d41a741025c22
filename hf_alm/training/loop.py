"""The one training loop every hf-alm recipe shares.

``fit`` trains a model for one *stage* (e.g. ``"base"``, ``"teminal_a"``) with Accelerate:

* deterministic data order: a seeded permutation per epoch (same on every process, so sharding is consistent);
* AdamW (no weight decay on biases and norms), linear warm-up then cosine decay, gradient clipping, accumulation;
* tqdm progress bars on the local main process only, optional trackers (``--report_to``);
* one checkpoint per epoch, ``{output_dir}/checkpoints/{stage}/epoch_{k}`` (``accelerator.save_state``: model,
  optimizer, scheduler and every RNG, plus ``trainer_state.json``), written to a temporary folder and renamed;
* resume (``resume_from_checkpoint="latest"``, an output folder, or one epoch folder): training continues with the
  same next loss as an uninterrupted run; a stage whose last epoch is already saved is restored and skipped, so a
  multi-stage recipe resumes where it stopped.

Recipes stay thin: they build a model, a dataset, a ``collate_fn`` and a ``compute_loss(model, batch)`` and call
``fit`` once per stage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Sampler

__all__ = ["TrainConfig", "FitResult", "add_common_args", "make_accelerator", "fit", "find_checkpoint"]

TRAINER_STATE = "trainer_state.json"
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


def add_common_args(parser: argparse.ArgumentParser, **defaults) -> argparse.ArgumentParser:
    """Add the flags every recipe shares; ``defaults`` overrides a flag's default (e.g. ``learning_rate=3e-4``)."""
    d = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    d.update(defaults)
    g = parser.add_argument_group("training (shared by every hf-alm recipe)")
    g.add_argument("--output_dir", default=d["output_dir"],
                   help="folder for the final model, eval_results.json and checkpoints/ (default: %(default)s)")
    g.add_argument("--num_epochs", type=int, default=d["num_epochs"],
                   help="epochs per training stage (default: %(default)s)")
    g.add_argument("--batch_size", type=int, default=d["batch_size"],
                   help="batch size per process (default: %(default)s)")
    g.add_argument("--learning_rate", type=float, default=d["learning_rate"],
                   help="peak AdamW learning rate (default: %(default)s)")
    g.add_argument("--weight_decay", type=float, default=d["weight_decay"],
                   help="AdamW weight decay; never applied to biases and norms (default: %(default)s)")
    g.add_argument("--warmup_ratio", type=float, default=d["warmup_ratio"],
                   help="fraction of optimizer steps of linear warm-up before cosine decay (default: %(default)s)")
    g.add_argument("--max_grad_norm", type=float, default=d["max_grad_norm"],
                   help="clip the gradient norm to this value; 0 disables clipping (default: %(default)s)")
    g.add_argument("--gradient_accumulation_steps", type=int, default=d["gradient_accumulation_steps"],
                   help="batches accumulated per optimizer step (default: %(default)s)")
    g.add_argument("--seed", type=int, default=d["seed"],
                   help="seed for model init, data order and augmentation (default: %(default)s)")
    g.add_argument("--resume_from_checkpoint", default=d["resume_from_checkpoint"], metavar="PATH|latest",
                   help="resume from 'latest' (newest checkpoint under --output_dir), an output folder or one "
                        "checkpoints/<stage>/epoch_<k> folder; finished stages are restored and skipped")
    g.add_argument("--report_to", default=d["report_to"], metavar="TRACKER",
                   help="experiment tracker for accelerate (tensorboard, wandb, all, ...); none by default")
    g.add_argument("--mixed_precision", default=d["mixed_precision"], choices=["no", "fp16", "bf16"],
                   help="mixed precision mode passed to accelerate (default: %(default)s)")
    g.add_argument("--num_workers", type=int, default=d["num_workers"],
                   help="DataLoader worker processes (default: %(default)s)")
    g.add_argument("--num_threads", type=int, default=d["num_threads"],
                   help="torch CPU threads per process; 0 keeps torch's own setting. Unset: on CPU, when `accelerate "
                        "launch` has exported OMP_NUM_THREADS=1 (it does without --cpu), the machine's cores are "
                        "shared out between the processes, else torch's setting is kept (default: %(default)s)")
    g.add_argument("--push_to_hub", action="store_true",
                   help="publish the final model to the Hugging Face Hub with a model card (hf_alm.hub.publish)")
    g.add_argument("--hub_model_id", default=None, metavar="ORG/NAME",
                   help="Hub repository for --push_to_hub (default: the output folder's name)")
    g.add_argument("--hub_private", action="store_true", help="create the Hub repository as private")
    return parser


def make_accelerator(config: TrainConfig, *, find_unused_parameters: bool = False):
    """An ``Accelerator`` for ``config`` (trackers in ``output_dir``; CPU when no GPU is present).

    ``find_unused_parameters`` is passed to DistributedDataParallel, for models whose stages leave some parameters
    without gradients (e.g. one modality of a multimodal model).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    log_with = None if config.report_to in (None, "", "none") else config.report_to
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
    threads = cpu_threads_per_process(config.num_threads, accelerator.device.type, accelerator.num_processes)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
        accelerator.print(f"torch CPU threads per process: {threads} (--num_threads)")
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


def cpu_threads_per_process(requested: int | None, device_type: str, num_processes: int) -> int | None:
    """The torch thread count a process should use, or None to keep the current one.

    ``requested`` (``--num_threads``) wins (0: keep the current setting). Otherwise, on CPU: ``accelerate launch``
    without ``--cpu`` exports ``OMP_NUM_THREADS=1``, which would leave all but one core idle in a single-process CPU
    run; in that case (the variable is exactly ``"1"``) the cores are divided between the processes.
    """
    if requested is not None:
        if requested < 0:
            raise ValueError(f"--num_threads must be >= 0 (0 = torch's own setting), got {requested}")
        return requested or None
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


def find_checkpoint(resume: str | os.PathLike | None, output_dir: str | os.PathLike, stage: str) -> Path | None:
    """The checkpoint folder a stage resumes from, or ``None`` (train from scratch).

    ``resume`` is ``"latest"`` (this stage's newest epoch under ``output_dir``), an output folder (same, under that
    folder), a ``checkpoints`` folder, or one ``.../checkpoints/<stage>/epoch_<k>`` folder: for its own stage that exact
    epoch; other stages use their newest epoch under the same ``checkpoints`` folder.
    """
    if not resume:
        return None
    if str(resume) == "latest":
        root = Path(output_dir) / "checkpoints"
        cap = None
    else:
        path = Path(resume)
        if not path.exists():
            raise FileNotFoundError(f"--resume_from_checkpoint: no such folder: {path}")
        cap = None
        if _EPOCH_RE.match(path.name):
            root = path.parent.parent
            if path.parent.name == stage:
                if not (path / TRAINER_STATE).is_file():
                    raise FileNotFoundError(f"--resume_from_checkpoint: {path} is not a complete checkpoint "
                                            f"(no {TRAINER_STATE})")
                return path
        elif path.name == "checkpoints":
            root = path
        elif (path / "checkpoints").is_dir():
            root = path / "checkpoints"
        else:
            root = path.parent if path.parent.name == "checkpoints" else path / "checkpoints"
    epochs = _epoch_dirs(root / stage)
    if cap is not None:
        epochs = {k: v for k, v in epochs.items() if k <= cap}
    return epochs[max(epochs)] if epochs else None


def _param_groups(model: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def _warmup_cosine(total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

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
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    steps_per_epoch = math.ceil(len(loader) / config.gradient_accumulation_steps)
    total_steps = max(1, steps_per_epoch * config.num_epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _warmup_cosine(total_steps, int(config.warmup_ratio * total_steps)))
    accelerator.register_for_checkpointing(scheduler)

    stage_dir = Path(config.output_dir) / "checkpoints" / stage
    result = FitResult(model=accelerator.unwrap_model(model))
    start_epoch = 0
    ckpt = find_checkpoint(config.resume_from_checkpoint, config.output_dir, stage)
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        state = json.loads((ckpt / TRAINER_STATE).read_text())
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
        sampler.set_epoch(epoch)
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        bar = tqdm(loader, desc=f"{stage} epoch {epoch + 1}/{config.num_epochs}", disable=not main,
                   dynamic_ncols=True, leave=False)
        losses = []
        for batch in bar:
            with accelerator.accumulate(model):
                loss, logs = _split_loss(compute_loss(model, batch))
                if not torch.isfinite(loss.detach()).all():
                    raise FloatingPointError(f"[{stage}] non-finite loss {loss.item()} at step {result.global_step}")
                accelerator.backward(loss)
                if accelerator.sync_gradients and clip is not None:
                    accelerator.clip_grad_norm_(model.parameters(), clip)
                optimizer.step()
                if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            mean_loss = float(accelerator.reduce(loss.detach().float(), reduction="mean"))
            losses.append(mean_loss)
            if accelerator.sync_gradients:
                result.global_step += 1
            record = {"epoch": epoch, "step": result.global_step, "loss": mean_loss,
                      "lr": optimizer.param_groups[0]["lr"], **{k: _scalar(v) for k, v in logs.items()}}
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
            _save_checkpoint(accelerator, stage_dir, epoch, result)
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


def _save_checkpoint(accelerator, stage_dir: Path, epoch: int, result: FitResult) -> None:
    final = stage_dir / f"epoch_{epoch}"
    tmp = stage_dir / f".epoch_{epoch}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = {"epoch": epoch, "global_step": result.global_step, "history": result.history,
                 "epoch_metrics": result.epoch_metrics}
        (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    accelerator.wait_for_everyone()
