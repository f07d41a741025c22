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
