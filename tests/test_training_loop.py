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
