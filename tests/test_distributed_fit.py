"""hf_alm.training.loop.fit in 2 CPU processes (the environment torchrun / `accelerate launch --multi_gpu` set up):
accelerate must see one 2-process job (not two lone processes), the gradients must be averaged so that the result
equals one process on the union of both shards, and each epoch's checkpoint must be written once."""

import json
import textwrap

import pytest

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from hf_alm.training.loop import TrainConfig, fit, make_accelerator

    out_dir, result_path, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.manual_seed(0)
    data = [(torch.randn(3), torch.randn(1)) for _ in range(16)]
    model = torch.nn.Linear(3, 1).double()
    initial = [p.detach().flatten().tolist() for p in model.parameters()]

    def collate(items):
        return torch.stack([x for x, _ in items]).double(), torch.stack([y for _, y in items]).double()

    def compute_loss(model, batch):
        x, y = batch
        return torch.nn.functional.mse_loss(model(x), y)

    config = TrainConfig(output_dir=out_dir, num_epochs=2, batch_size=batch_size, learning_rate=0.1,
                         weight_decay=0.0, max_grad_norm=None, seed=3,
                         run={"recipe": "worker", "model_type": "linear", "batch_size": batch_size})
    accelerator = make_accelerator(config)
    result = fit(model, data, collate_fn=collate, compute_loss=compute_loss, config=config,
                 accelerator=accelerator, stage="s")
    info = {"num_processes": accelerator.num_processes, "type": str(accelerator.distributed_type),
            "params": [p.detach().flatten().tolist() for p in result.model.parameters()],
            "steps": result.global_step, "initial": initial}
    with open(f"{result_path}.{accelerator.process_index}", "w") as fh:
        json.dump(info, fh)
    accelerator.wait_for_everyone()
    sys.stdout.flush()
    os._exit(0)  # skip gloo's C++ teardown, which can abort after everything has finished
    """
)


def _launch(run_ranks, tmp_path, world, batch_size):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out_dir, result = tmp_path / f"run{world}", tmp_path / f"result{world}.json"
    run_ranks([script, out_dir, result, batch_size], world)
    return out_dir, [json.loads((tmp_path / f"result{world}.json.{r}").read_text()) for r in range(world)]


def test_two_cpu_processes_train_as_one_job(tmp_path, run_ranks):
    pytest.importorskip("accelerate")
    _, (single,) = _launch(run_ranks, tmp_path, 1, batch_size=8)
    out_dir, ranks = _launch(run_ranks, tmp_path, 2, batch_size=4)  # 2 x 4 = the single process's 8 per step
    for info in ranks:
        assert info["num_processes"] == 2 and "MULTI_CPU" in info["type"], info
        assert info["steps"] == single["steps"] == 4
    # DistributedDataParallel averaged the gradients: both ranks hold the same weights, equal to one process
    # trained on the union of the two shards
    for p0, p1, ps in zip(ranks[0]["params"], ranks[1]["params"], single["params"]):
        assert p0 == pytest.approx(p1, abs=1e-12)
        assert p0 == pytest.approx(ps, abs=1e-9)
    # the weights moved (the comparison is not vacuous)
    assert max(abs(a - b) for p, q in zip(single["params"], single["initial"]) for a, b in zip(p, q)) > 1e-3
    # each epoch checkpointed once, by one writer, with no temporary folder left behind
    stage_dir = out_dir / "checkpoints" / "s"
    assert sorted(p.name for p in stage_dir.iterdir()) == ["epoch_0", "epoch_1"]
    for epoch in ("epoch_0", "epoch_1"):
        names = sorted(p.name for p in (stage_dir / epoch).iterdir())
        assert "model.safetensors" in names and "trainer_state.json" in names, names
        assert {"random_states_0.pkl", "random_states_1.pkl"} <= set(names), names
        state = json.loads((stage_dir / epoch / "trainer_state.json").read_text())
        assert state["run"] == {"recipe": "worker", "model_type": "linear", "batch_size": 4}  # the run identity
