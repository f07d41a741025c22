"""The shared training loop: determinism, per-epoch checkpoints, exact resume, multi-stage skip."""

import json

import pytest
import torch

from hf_alm.training.loop import TrainConfig, find_checkpoint, fit


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.GELU(), torch.nn.Dropout(0.3),
                                        torch.nn.Linear(16, 1))

    def forward(self, x):
        return self.body(x).squeeze(-1)


def _data(n=40):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(n, generator=g)
    return [(x[i], y[i]) for i in range(n)]


def _collate(rows):
    return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])


def _loss(model, batch):
    x, y = batch
    loss = torch.nn.functional.mse_loss(model(x), y)
    return loss, {"mse": loss.detach()}


class _Stop(Exception):
    pass


def _cfg(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path), num_epochs=3, batch_size=8, learning_rate=1e-2, warmup_ratio=0.2, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_fit_learns_and_is_deterministic(tmp_path):
    r1 = fit(_Net(), _data(), collate_fn=_collate, compute_loss=_loss, config=_cfg(tmp_path / "a"))
    r2 = fit(_Net(), _data(), collate_fn=_collate, compute_loss=_loss, config=_cfg(tmp_path / "b"))
    assert [h["loss"] for h in r1.history] == [h["loss"] for h in r2.history]
    assert r1.epoch_metrics[-1]["train_loss"] < r1.epoch_metrics[0]["train_loss"]
    assert r1.global_step == 3 * 5 and r1.history[-1]["mse"] == r1.history[-1]["loss"]
    ckpts = sorted(p.name for p in (tmp_path / "a" / "checkpoints" / "train").iterdir())
    assert ckpts == ["epoch_0", "epoch_1", "epoch_2"]  # no temporary folder left behind


def test_interrupted_run_resumes_with_the_same_next_loss(tmp_path):
    full = fit(_Net(), _data(), collate_fn=_collate, compute_loss=_loss, config=_cfg(tmp_path / "full"))

    def stop_after_first(epoch, metrics):
        if epoch == 0:
            raise _Stop

    with pytest.raises(_Stop):
        fit(_Net(), _data(), collate_fn=_collate, compute_loss=_loss, config=_cfg(tmp_path / "cut"),
            on_epoch_end=stop_after_first)
    resumed = fit(_Net(), _data(), collate_fn=_collate, compute_loss=_loss,
                  config=_cfg(tmp_path / "cut", resume_from_checkpoint="latest"))
    assert resumed.resumed_from.endswith("epoch_0")
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in full.history], abs=1e-7)
    assert torch.allclose(_params(resumed.model), _params(full.model), atol=1e-6)


def test_multi_stage_resume_skips_finished_stage(tmp_path):
    def run(out, resume=None, stop_in_b=False):
        model = _Net()
        cfg = _cfg(out, num_epochs=2, resume_from_checkpoint=resume)
        from hf_alm.training.loop import make_accelerator

        acc = make_accelerator(cfg)
        a = fit(model, _data(), collate_fn=_collate, compute_loss=_loss, config=cfg, accelerator=acc, stage="a")

        def stop(epoch, metrics):
            if stop_in_b and epoch == 0:
                raise _Stop

        b = fit(model, _data(), collate_fn=_collate, compute_loss=_loss,
                config=cfg.__class__(**{**cfg.__dict__, "learning_rate": 3e-3}), accelerator=acc, stage="b",
                on_epoch_end=stop)
        return a, b, model

    a_full, b_full, m_full = run(tmp_path / "full")
    with pytest.raises(_Stop):
        run(tmp_path / "cut", stop_in_b=True)
    a_res, b_res, m_res = run(tmp_path / "cut", resume="latest")
    assert a_res.skipped and not b_res.skipped
    assert [h["loss"] for h in b_res.history] == pytest.approx([h["loss"] for h in b_full.history], abs=1e-7)
    assert torch.allclose(_params(m_res), _params(m_full), atol=1e-6)
    # an explicit epoch folder of stage b resumes b from that epoch
    path = tmp_path / "cut" / "checkpoints" / "b" / "epoch_0"
    assert find_checkpoint(str(path), tmp_path / "cut", "b") == path
    assert find_checkpoint(str(path), tmp_path / "cut", "a").name == "epoch_1"
    state = json.loads((path / "trainer_state.json").read_text())
    assert state["epoch"] == 0 and state["global_step"] == 5


def test_bad_inputs_have_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        fit(_Net(), [], collate_fn=_collate, compute_loss=_loss, config=_cfg(tmp_path))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        find_checkpoint(str(tmp_path / "missing"), tmp_path, "train")

    def nan_loss(model, batch):
        return model(batch[0]).sum() * float("nan")

    with pytest.raises(FloatingPointError, match="non-finite loss"):
        fit(_Net(), _data(), collate_fn=_collate, compute_loss=nan_loss, config=_cfg(tmp_path / "n"))


# --- gradient accumulation, the learning-rate schedule and its log, resuming on other data ---------------------------

class _Linear(torch.nn.Module):
    """y = w.x + b in float64, whose MSE gradient is written out by hand in _hand_gradient."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(4, 1).double()

    def forward(self, x):
        return self.lin(x.double()).squeeze(-1)


def _hand_gradient(model, batch):
    """d/d(w, b) of mean((w.x + b - y)^2) = (2/B) * (sum r_i x_i, sum r_i) with r = w.x + b - y, at the current
    weights."""
    lin = getattr(model, "module", model).lin
    x, y = batch[0].double(), batch[1].double()
    w, b = lin.weight.detach()[0], lin.bias.detach()[0]
    r = x @ w + b - y
    return torch.cat([2 * (r[:, None] * x).mean(0), (2 * r.mean())[None]])


class _RecordingAdamW(torch.optim.AdamW):
    """AdamW that records, at every step, the gradient it is given (weight then bias) and its learning rate."""

    def __init__(self, model, **kw):
        self.names = {id(p): n for n, p in model.named_parameters()}
        super().__init__(model.parameters(), **kw)
        self.grads, self.lrs = [], []

    def step(self, closure=None):
        grads = {self.names[id(p)]: p.grad.detach().flatten().clone() for g in self.param_groups for p in g["params"]}
        self.grads.append(torch.cat([grads["lin.weight"], grads["lin.bias"]]))
        self.lrs.append(self.param_groups[0]["lr"])
        return super().step(closure)


@pytest.mark.parametrize("rows, accum, windows", [(40, 2, [[0, 1], [2, 3], [4]]), (48, 4, [[0, 1, 2, 3], [4, 5]])])
def test_each_optimizer_step_gets_the_mean_gradient_of_its_own_window(tmp_path, rows, accum, windows):
    """5 batches with accumulation 2: the last step has one micro-batch, and accelerate alone divided its gradient by
    2 (half the mean); 6 batches with 4: the last window of 2 got half its mean too."""
    micro = []

    def loss(model, batch):
        micro.append(_hand_gradient(model, batch))
        x, y = batch
        return torch.nn.functional.mse_loss(model(x), y.double())

    model = _Linear()
    opt = _RecordingAdamW(model, lr=1e-2, weight_decay=0.0)
    fit(model, _data(rows), collate_fn=_collate, compute_loss=loss, optimizer=opt,
        config=_cfg(tmp_path, num_epochs=1, gradient_accumulation_steps=accum, max_grad_norm=None,
                    save_checkpoints=False))
    assert len(micro) == rows // 8 and len(opt.grads) == len(windows)
    for window, grad in zip(windows, opt.grads):
        expected = torch.stack([micro[i] for i in window]).mean(0)
        torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-12)


_ACCUM_WORKER = """
import json, os, sys
import torch
from hf_alm.training.loop import TrainConfig, fit, make_accelerator

out_dir, result_path = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
data = [(torch.randn(3, dtype=torch.float64), torch.randn((), dtype=torch.float64)) for _ in range(24)]
model = torch.nn.Linear(3, 1).double()
micro, steps = [], []


def hand_gradient(lin, x, y):  # d/d(w, b) of mean((w.x + b - y)^2), from the current weights
    r = x @ lin.weight.detach()[0] + lin.bias.detach()[0] - y
    return (2 * (r[:, None] * x).mean(0)).tolist() + [2 * r.mean().item()]


def compute_loss(model, batch):
    x, y = batch
    micro.append(hand_gradient(getattr(model, "module", model), x, y))
    return torch.nn.functional.mse_loss(model(x).squeeze(-1), y)


class Recording(torch.optim.SGD):
    def step(self, closure=None):
        steps.append(model.weight.grad.flatten().tolist() + model.bias.grad.flatten().tolist())
        return super().step(closure)


config = TrainConfig(output_dir=out_dir, num_epochs=1, batch_size=4, learning_rate=0.1, max_grad_norm=None,
                     gradient_accumulation_steps=2, seed=3, save_checkpoints=False)
accelerator = make_accelerator(config)
fit(model, data, collate_fn=lambda rows: tuple(torch.stack(c) for c in zip(*rows)), compute_loss=compute_loss,
    config=config, accelerator=accelerator, optimizer=Recording(model.parameters(), lr=0.1))
with open(f"{result_path}.{accelerator.process_index}", "w") as fh:
    json.dump({"micro": micro, "steps": steps, "num_processes": accelerator.num_processes}, fh)
accelerator.wait_for_everyone()
sys.stdout.flush()
os._exit(0)  # skip gloo's C++ teardown, which can abort after everything has finished
"""


def test_accumulation_under_ddp_averages_each_window_over_its_micro_batches_and_ranks(tmp_path, run_ranks):
    """2 CPU processes, 24 rows in batches of 4: 3 batches per process, windows of 2 and 1. DDP averages the ranks
    (its no_sync skips the all-reduce inside a window); each step must see the mean over its window's micro-batches
    and over both ranks of the gradients written out by hand."""
    script = tmp_path / "worker.py"
    script.write_text(_ACCUM_WORKER)
    run_ranks([script, tmp_path / "out", tmp_path / "result.json"], 2)
    ranks = [json.loads((tmp_path / f"result.json.{r}").read_text()) for r in range(2)]
    assert [r["num_processes"] for r in ranks] == [2, 2]
    micro = [torch.tensor(r["micro"], dtype=torch.float64) for r in ranks]
    assert [len(m) for m in micro] == [3, 3] and [len(r["steps"]) for r in ranks] == [2, 2]
    for step, window in enumerate([[0, 1], [2]]):
        expected = torch.stack([m[window].mean(0) for m in micro]).mean(0)
        for r in ranks:
            torch.testing.assert_close(torch.tensor(r["steps"][step], dtype=torch.float64), expected, rtol=1e-12,
                                       atol=1e-12)


def _transformers_cosine(step, warmup, total):
    """transformers' get_cosine_schedule_with_warmup factor (num_cycles=0.5), written out."""
    import math

    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))


def _schedule_run(tmp_path):
    """40 rows in batches of 8, accumulation 2: windows of 2, 2, 1 batches = 3 steps per epoch, 6 in 2 epochs;
    warmup_ratio 0.1 -> ceil(0.6) = 1 warm-up step (int() gave none)."""
    model = _Linear()
    opt = _RecordingAdamW(model, lr=1e-2, weight_decay=0.0)
    result = fit(model, _data(40), collate_fn=_collate, compute_loss=lambda m, b: _loss(m, (b[0], b[1].double())),
                 optimizer=opt, config=_cfg(tmp_path, num_epochs=2, gradient_accumulation_steps=2, warmup_ratio=0.1,
                                            save_checkpoints=False))
    return result, opt, [1e-2 * _transformers_cosine(s, 1, 6) for s in range(6)]


def test_learning_rate_per_step_follows_transformers_cosine_with_warmup(tmp_path):
    import math

    from transformers import get_cosine_schedule_with_warmup

    _, opt, expected = _schedule_run(tmp_path)
    assert expected[0] == 0.0 and expected[1] == 1e-2  # one warm-up step, then the peak
    assert opt.lrs == pytest.approx(expected, abs=1e-15)
    # the same numbers as transformers' own scheduler with the Trainer's warm-up (ceil(total * warmup_ratio))
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-2)
    ref = get_cosine_schedule_with_warmup(ref_opt, math.ceil(6 * 0.1), 6)
    lrs = []
    for _ in range(6):
        lrs.append(ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        ref.step()
    assert opt.lrs == pytest.approx(lrs, abs=1e-15)


def test_logged_learning_rate_is_the_rate_the_step_used(tmp_path):
    """history's lr was read after scheduler.step(): the next step's rate."""
    result, opt, expected = _schedule_run(tmp_path)
    windows = [3 * epoch + i // 2 for epoch in range(2) for i in range(5)]  # the optimizer step of each micro-batch
    logged = [h["lr"] for h in result.history]
    assert len(logged) == 10 and len(opt.lrs) == 6
    assert logged == [opt.lrs[w] for w in windows]  # what the optimizer was given at its step
    assert logged == pytest.approx([expected[w] for w in windows], abs=1e-15)


def test_resume_with_another_number_of_batches_per_epoch_is_refused(tmp_path, capsys):
    """The data on disk grew from 40 to 80 rows between the interruption and the resume: 10 batches per epoch
    instead of 5, and the schedule (15 steps then 30) would have jumped back into warm-up."""
    def stop_after_first(epoch, metrics):
        if epoch == 0:
            raise _Stop

    with pytest.raises(_Stop):
        fit(_Net(), _data(40), collate_fn=_collate, compute_loss=_loss, config=_cfg(tmp_path),
            on_epoch_end=stop_after_first)
    state_file = tmp_path / "checkpoints" / "train" / "epoch_0" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    assert (state["batches_per_epoch"], state["steps_per_epoch"], state["total_steps"]) == (5, 5, 3 * 5)
    with pytest.raises(ValueError) as info:
        fit(_Net(), _data(80), collate_fn=_collate, compute_loss=_loss,
            config=_cfg(tmp_path, resume_from_checkpoint="latest"))
    text = str(info.value)
    assert f"checkpoint {state_file.parent} was written with another number of batches or optimizer steps" in text
    assert ("batches_per_epoch: 5 (recorded) != 10 (now); steps_per_epoch: 5 (recorded) != 10 (now); "
            "total_steps: 15 (recorded) != 30 (now)") in text and "(80 rows now)" in text
    # more epochs: the same epochs, another schedule
    with pytest.raises(ValueError, match=r"differing: total_steps: 15 \(recorded\) != 20 \(now\)\."):
        fit(_Net(), _data(40), collate_fn=_collate, compute_loss=_loss,
            config=_cfg(tmp_path, num_epochs=4, resume_from_checkpoint="latest"))
    # a checkpoint of an older hf-alm (none of them recorded) resumes with a warning
    for key in ("batches_per_epoch", "steps_per_epoch", "total_steps"):
        del state[key]
    state_file.write_text(json.dumps(state))
    capsys.readouterr()
    resumed = fit(_Net(), _data(40), collate_fn=_collate, compute_loss=_loss,
                  config=_cfg(tmp_path, resume_from_checkpoint="latest"))
    assert resumed.resumed_from == str(state_file.parent) and resumed.global_step == 15
    assert "records no batches_per_epoch, steps_per_epoch, total_steps (written by an older hf-alm)" in \
        capsys.readouterr().err


def test_cpu_threads_per_process_rule(monkeypatch):
    """`accelerate launch` (without --cpu) exports OMP_NUM_THREADS=1; a CPU run then gets the cores shared out
    between its processes, an explicit --num_threads always wins, and any other setting is left alone."""
    import os

    from hf_alm.training.loop import cpu_threads_per_process

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_threads_per_process(None, "cpu", 1) == 8
    assert cpu_threads_per_process(None, "cpu", 2) == 4
    assert cpu_threads_per_process(None, "cpu", 16) == 1
    assert cpu_threads_per_process(None, "cuda", 1) is None
    assert cpu_threads_per_process(3, "cpu", 1) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "6")
    assert cpu_threads_per_process(None, "cpu", 1) is None
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpu_threads_per_process(None, "cpu", 1) is None
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_threads_per_process(0, "cpu", 1) is None  # 0 = keep torch's own setting
    with pytest.raises(ValueError, match=r"--num_threads must be >= 0 \(0 = torch's own setting\), got -1"):
        cpu_threads_per_process(-1, "cpu", 1)


# --- run identity, output folder, --resume_from_checkpoint, --report_to, --num_threads ---------------------------

def test_fit_records_the_run_identity_and_refuses_a_checkpoint_of_another_run(tmp_path):
    run = {"recipe": "r", "model_type": "m", "preset": "tiny", "seed": 3}
    fit(_Net(), _data(), collate_fn=_collate, compute_loss=_loss, config=_cfg(tmp_path, num_epochs=1, run=run))
    state = json.loads((tmp_path / "checkpoints" / "train" / "epoch_0" / "trainer_state.json").read_text())
    assert state["run"] == run
    other = {**run, "preset": "small"}
    with pytest.raises(ValueError, match=r"checkpoint .*epoch_0 was written by another run; differing: --preset: "
                                         r"'tiny' \(recorded\) != 'small' \(now\)"):
        fit(_Net(), _data(), collate_fn=_collate, compute_loss=_loss,
            config=_cfg(tmp_path, num_epochs=2, run=other, resume_from_checkpoint="latest"))
    again = fit(_Net(), _data(), collate_fn=_collate, compute_loss=_loss,
                config=_cfg(tmp_path, num_epochs=1, run=run, resume_from_checkpoint="latest"))
    assert again.skipped  # the same run resumes


def _recipe_args(argv):
    import argparse

    from hf_alm.training.loop import add_common_args

    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--eval_batch_size", type=int, default=8)
    add_common_args(parser, run_folders=("folds", "model"))
    return parser.parse_args([str(a) for a in argv])


def _prepare(argv):
    from hf_alm.training.loop import prepare_run

    return prepare_run(_recipe_args(argv), recipe="demo_recipe", model_type="demo_model",
                       run_folders=("folds", "model"))


def _fake_checkpoint(out, run, stage="fold_1", epoch=0):
    folder = out / "checkpoints" / stage / f"epoch_{epoch}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"epoch": epoch, "global_step": 1, "run": run}))
    return folder


def test_run_identity_holds_what_changes_training_only(tmp_path):
    run = _prepare(["--output_dir", tmp_path / "a", "--preset", "small", "--eval_batch_size", "99",
                    "--num_threads", "3"])
    assert run["recipe"] == "demo_recipe" and run["model_type"] == "demo_model"
    assert run["preset"] == "small" and run["dataset"] == "synthetic" and run["learning_rate"] == 1e-3
    for flag in ("output_dir", "eval_batch_size", "num_threads", "resume_from_checkpoint", "overwrite_output_dir",
                 "report_to", "push_to_hub"):
        assert flag not in run, flag
    # the same flags written elsewhere, with other evaluation batches, are the same run
    assert _prepare(["--output_dir", tmp_path / "b", "--preset", "small"]) == run


def test_resume_with_another_num_workers_is_refused(tmp_path):
    """Random draws of datasets / collate functions (SpecAugment, ONE-PEACE masks) come from each DataLoader worker's
    own generator: another --num_workers trains other weights, so a resume with it would mix two runs."""
    out = tmp_path / "out"
    run = _prepare(["--output_dir", out, "--num_workers", "0"])
    assert run["num_workers"] == 0
    _fake_checkpoint(out, run)
    with pytest.raises(SystemExit, match=r"was written by another run; differing: --num_workers: 0 \(recorded\) != 2 "
                                         r"\(now\)\."):
        _prepare(["--output_dir", out, "--num_workers", "2", "--resume_from_checkpoint", "latest"])
    # fit itself refuses it too, from the identity in TrainConfig.run
    fit(_Net(), _data(), collate_fn=_collate, compute_loss=_loss,
        config=_cfg(tmp_path / "fit", num_epochs=1, run=run))
    other = _prepare(["--output_dir", tmp_path / "x", "--num_workers", "1"])
    with pytest.raises(ValueError, match=r"differing: --num_workers: 0 \(recorded\) != 1 \(now\)"):
        fit(_Net(), _data(), collate_fn=_collate, compute_loss=_loss,
            config=_cfg(tmp_path / "fit", num_epochs=2, num_workers=1, run=other,
                        resume_from_checkpoint="latest"))


def test_fresh_run_into_a_folder_with_checkpoints_stops_before_any_work(tmp_path):
    out = tmp_path / "out"
    old = _prepare(["--output_dir", out])
    _fake_checkpoint(out, old)
    message = (f"{out} already holds checkpoints of an earlier run; pass --resume_from_checkpoint latest to continue "
               "it or --overwrite_output_dir to start over")
    with pytest.raises(SystemExit) as info:
        _prepare(["--output_dir", out, "--preset", "small"])
    assert str(info.value) == message
    # a fold result alone (checkpoints pruned by hand) also marks an earlier run
    fold = tmp_path / "folds_only" / "folds" / "fold_1"
    fold.mkdir(parents=True)
    (fold / "fold_results.json").write_text(json.dumps({"accuracy": 0.5, "run": old}))
    with pytest.raises(SystemExit, match="already holds checkpoints of an earlier run"):
        _prepare(["--output_dir", tmp_path / "folds_only"])


def test_overwrite_output_dir_removes_the_earlier_runs_checkpoints_only(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _fake_checkpoint(out, {"recipe": "demo_recipe", "model_type": "demo_model", "preset": "base"})
    for folder in ("folds/fold_1", "model", "feature_cache"):
        (out / folder).mkdir(parents=True)
    monkeypatch.setenv("RANK", "1")  # another rank of a distributed launch leaves the files to rank 0
    _prepare(["--output_dir", out, "--overwrite_output_dir"])
    assert (out / "checkpoints").is_dir()
    # ... and does not read them either: rank 0 may be deleting them meanwhile (a half-gone file stopped rank 1)
    state = next((out / "checkpoints").rglob("trainer_state.json"))
    saved = state.read_text()
    state.write_text("{half-deleted")
    _prepare(["--output_dir", out, "--overwrite_output_dir"])
    state.write_text(saved)
    monkeypatch.delenv("RANK")
    _prepare(["--output_dir", out, "--overwrite_output_dir"])
    assert sorted(p.name for p in out.iterdir()) == ["feature_cache"]  # the cache is keyed, not a run's state
    with pytest.raises(SystemExit, match="pass only one of them"):
        _prepare(["--output_dir", out, "--overwrite_output_dir", "--resume_from_checkpoint", "latest"])


def test_resume_compares_the_run_identity_and_lists_the_differing_flags(tmp_path, capsys):
    out = tmp_path / "out"
    run = _prepare(["--output_dir", out, "--preset", "small"])
    _fake_checkpoint(out, run)
    assert _prepare(["--output_dir", out, "--preset", "small", "--resume_from_checkpoint", "latest"]) == run
    with pytest.raises(SystemExit) as info:
        _prepare(["--output_dir", out, "--resume_from_checkpoint", "latest", "--learning_rate", "0.5"])
    text = str(info.value)
    assert "checkpoints/fold_1/epoch_0/trainer_state.json was written by another run" in text
    assert "--learning_rate: 0.001 (recorded) != 0.5 (now)" in text and "--preset: 'small' (recorded) != 'tiny' (now)" \
        in text and "--dataset" not in text
    # a fold result of another run is refused the same way; an explicit epoch folder points at the same records
    fold = out / "folds" / "fold_2"
    fold.mkdir(parents=True)
    (fold / "fold_results.json").write_text(json.dumps({"run": {**run, "dataset": "synthetic:2"}}))
    with pytest.raises(SystemExit, match=r"fold_2/fold_results.json was written by another run; differing: "
                                         r"--dataset: 'synthetic:2' \(recorded\) != 'synthetic' \(now\)"):
        _prepare(["--output_dir", out, "--preset", "small", "--resume_from_checkpoint",
                  out / "checkpoints" / "fold_1" / "epoch_0"])
    # checkpoints of an older hf-alm (no identity) resume with a warning
    old = tmp_path / "old"
    _fake_checkpoint(old, None)
    _prepare(["--output_dir", old, "--resume_from_checkpoint", "latest"])
    assert "record no run identity" in capsys.readouterr().err


def test_resume_from_checkpoint_path_is_checked_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        _prepare(["--output_dir", out, "--resume_from_checkpoint", tmp_path / "nope"])
    assert str(info.value) == f"--resume_from_checkpoint: no such folder: {tmp_path / 'nope'}"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match=rf"--resume_from_checkpoint: {empty} holds no checkpoint"):
        _prepare(["--output_dir", out, "--resume_from_checkpoint", empty])
    assert not out.exists()
    _prepare(["--output_dir", out, "--resume_from_checkpoint", "latest"])  # latest with nothing yet: fresh start


def test_report_to_a_tracker_that_is_not_installed_fails_before_training(tmp_path, monkeypatch):
    import importlib.util

    from hf_alm.training.loop import check_report_to, make_accelerator

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("tensorboard", "tensorboardX") else real(name, *a))
    message = "--report_to tensorboard needs the tensorboard package: pip install 'hf-alm[tensorboard]'"
    with pytest.raises(ValueError) as info:
        check_report_to("tensorboard")
    assert str(info.value) == message
    with pytest.raises(SystemExit) as info:
        _prepare(["--output_dir", tmp_path / "out", "--report_to", "tensorboard"])
    assert str(info.value) == message and not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="needs the tensorboard package"):
        make_accelerator(_cfg(tmp_path, report_to="tensorboard"))
    with pytest.raises(ValueError, match=r"--report_to 'tensorbored' is not a tracker accelerate knows"):
        check_report_to("tensorbored")
    for ok in (None, "", "none"):
        check_report_to(ok)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "tensorboard" else real(name, *a))
    check_report_to("tensorboard")  # installed: accepted
    check_report_to("tensorboard,none")  # "none" in a list adds nothing (it was refused as an unknown tracker)


def test_num_threads_log_says_whether_the_value_is_the_default(tmp_path, capsys):
    from hf_alm.training.loop import make_accelerator

    before = torch.get_num_threads()
    try:
        make_accelerator(_cfg(tmp_path, default_num_threads=before + 1))
        assert f"torch CPU threads per process: {before + 1} (default)" in capsys.readouterr().out
        make_accelerator(_cfg(tmp_path, num_threads=before + 2, default_num_threads=before + 1))
        assert f"torch CPU threads per process: {before + 2} (--num_threads)" in capsys.readouterr().out
    finally:
        torch.set_num_threads(before)
    args = _recipe_args(["--output_dir", tmp_path])
    assert args.num_threads is None and TrainConfig.from_args(args).default_num_threads is None


def _load_recipe(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "recipes" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_recipe_help", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, threads", [("beats_finetune", "(default: 2: "), ("beats_pretrain", "(default: 2: "),
                                           ("tiny_edge", "(default: 1: "), ("one_peace", "(default: 1: "),
                                           ("teminal", "(default: on CPU, when `accelerate launch` has exported")])
def test_recipe_help_states_every_default_once_and_truly(name, threads):
    """ArgumentDefaultsHelpFormatter + help strings with their own default printed '(default: all) (default: None)';
    --num_threads said 'Unset: the cores are shared out' where the recipe's default was 1 or 2."""
    parser = _load_recipe(name).build_parser()
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            text = formatter._expand_help(action)
            assert text.count("(default") <= 1 and "default: None" not in text, (action.dest, text)
            if action.dest == "num_threads":
                assert threads in text, text
    args = parser.parse_args([])
    assert args.num_threads is None  # unset: make_accelerator logs the recipe's default as "(default)"
    output_help = formatter._expand_help(next(a for a in parser._actions if a.dest == "output_dir"))
    results = "pretrain_results.json" if name == "beats_pretrain" else "eval_results.json"
    assert results in output_help and ("eval_results.json" not in output_help or name != "beats_pretrain")


def test_the_same_dataset_folder_given_relatively_or_absolutely_is_the_same_run(tmp_path, monkeypatch):
    from hf_alm.training.loop import run_differences, run_identity

    (tmp_path / "data" / "esc10").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    relative = run_identity(_recipe_args(["--dataset", "esc10:data/esc10"]), recipe="r", model_type="m")
    absolute = run_identity(_recipe_args(["--dataset", f"esc10:{tmp_path / 'data' / 'esc10'}"]), recipe="r",
                            model_type="m")
    assert relative["dataset"] == f"esc10:{tmp_path / 'data' / 'esc10'}" and run_differences(relative, absolute) == []
    other = run_identity(_recipe_args(["--dataset", "synthetic:5"]), recipe="r", model_type="m")
    assert other["dataset"] == "synthetic:5"  # not a path: unchanged
    assert run_differences(relative, other) == [f"--dataset: {relative['dataset']!r} (recorded) != 'synthetic:5' (now)"]
