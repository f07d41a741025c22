"""Two CPU processes (torch.distributed, gloo, DistributedDataParallel) versus one process on the same global batch.

The contrastive losses gather negatives across processes; a few optimiser steps must give the same losses, gradients
and weights as one process that sees the concatenated batch.
"""

import json
import textwrap
from pathlib import Path

import pytest
import torch

WORKER = textwrap.dedent(
    r"""
    import json, os, sys
    import torch
    import torch.nn.functional as F
    import importlib.util

    # load losses.py by path: it needs only torch, and skipping `import hf_alm` (which registers every model with
    # transformers) keeps the start-up of each process short
    spec = importlib.util.spec_from_file_location("hf_alm_losses", sys.argv[3])
    losses = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(losses)
    contrastive_loss, tact_weighted_loss = losses.contrastive_loss, losses.tact_weighted_loss

    torch.set_num_threads(1)
    out_path, loss_kind = sys.argv[1], sys.argv[2]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        torch.distributed.init_process_group("gloo")

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.audio = torch.nn.Linear(6, 4)
            self.text = torch.nn.Linear(5, 4)
            self.logit_scale = torch.nn.Parameter(torch.tensor(2.0))

        def forward(self, xa, xt):
            return F.normalize(self.audio(xa), dim=-1), F.normalize(self.text(xt), dim=-1), self.logit_scale.exp()

    model = Tiny().double()
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    # shard sizes: unequal on purpose for the plain loss (a short last batch); equal halves for TACT
    sizes = [5, 3] if loss_kind == "plain" else [3, 3]
    records = []
    for step in range(3):
        g = torch.Generator().manual_seed(100 + step)
        n_total = sum(sizes)
        xa = torch.randn(n_total, 6, generator=g, dtype=torch.float64)
        xt = torch.randn(n_total, 5, generator=g, dtype=torch.float64)
        if loss_kind == "tact":
            # per process: [its originals; their reversals]; the global layout is [all originals; all reversals]
            n_orig = [s for s in sizes]
            starts = [sum(n_orig[:r]) for r in range(len(n_orig))]
            rev_a = torch.randn(n_total, 6, generator=g, dtype=torch.float64)
            rev_t = torch.randn(n_total, 5, generator=g, dtype=torch.float64)
            # extras (overlaps / singles), a different number on each process
            extra_sizes = [2, 1]
            ext_a = torch.randn(sum(extra_sizes), 6, generator=g, dtype=torch.float64)
            ext_t = torch.randn(sum(extra_sizes), 5, generator=g, dtype=torch.float64)
            if world > 1:
                sl = slice(starts[rank], starts[rank] + n_orig[rank])
                es = slice(sum(extra_sizes[:rank]), sum(extra_sizes[:rank + 1]))
                a_in = torch.cat([xa[sl], rev_a[sl], ext_a[es]])
                t_in = torch.cat([xt[sl], rev_t[sl], ext_t[es]])
                n_local = n_orig[rank]
            else:
                a_in, t_in, n_local = torch.cat([xa, rev_a, ext_a]), torch.cat([xt, rev_t, ext_t]), n_total
            ea, et, scale = model(a_in, t_in)
            loss = tact_weighted_loss(ea, et, scale, n_orig=n_local, alpha_same=2.5, alpha_cross=0.7)
        else:
            if world > 1:
                start = sum(sizes[:rank])
                xa, xt = xa[start:start + sizes[rank]], xt[start:start + sizes[rank]]
            ea, et, scale = model(xa, xt)
            loss = contrastive_loss(ea, et, scale, label_smoothing=0.05)
        opt.zero_grad()
        loss.backward()
        grads = {k: p.grad.detach().flatten().tolist() for k, p in model.named_parameters()}
        grads = {k.removeprefix("module."): v for k, v in grads.items()}
        opt.step()
        records.append({"loss": loss.item(), "grads": grads})
    params = {k.removeprefix("module."): p.detach().flatten().tolist() for k, p in model.named_parameters()}
    if rank == 0:
        with open(out_path, "w") as fh:
            json.dump({"records": records, "params": params}, fh)
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    # leave without C++ static destructors: gloo's teardown can abort ("terminate called without an active
    # exception") after everything above has finished; the results are already on disk
    sys.stdout.flush()
    os._exit(0)
    """
)


LOSSES_PY = str(Path(__file__).resolve().parents[1] / "hf_alm" / "training" / "losses.py")


def _run(run_ranks, tmp_path, world, loss_kind):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / f"out_{world}_{loss_kind}.json"
    run_ranks([script, out, loss_kind, LOSSES_PY], world, timeout=120)
    return json.loads(out.read_text())


@pytest.mark.parametrize("loss_kind", ["plain", "tact"])
def test_two_processes_match_one_process(tmp_path, loss_kind, run_ranks):
    single = _run(run_ranks, tmp_path, 1, loss_kind)
    double = _run(run_ranks, tmp_path, 2, loss_kind)
    for step, (r1, r2) in enumerate(zip(single["records"], double["records"])):
        assert r2["loss"] == pytest.approx(r1["loss"], abs=1e-5), f"step {step}"
        for name, g1 in r1["grads"].items():
            torch.testing.assert_close(torch.tensor(r2["grads"][name]), torch.tensor(g1), atol=1e-5, rtol=1e-5,
                                       msg=f"gradient of {name} at step {step}")
    for name, p1 in single["params"].items():
        torch.testing.assert_close(torch.tensor(double["params"][name]), torch.tensor(p1), atol=1e-5, rtol=1e-5)
    # the steps did change the weights (the comparison is not vacuous)
    assert single["records"][0]["loss"] != pytest.approx(single["records"][-1]["loss"], abs=1e-4)


def test_gathering_matters(tmp_path):
    """Without gathering, each process would only see its own negatives: the loss differs from the global one."""
    from hf_alm.training.losses import contrastive_loss

    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(8, 4, generator=g), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(8, 4, generator=g), dim=-1)
    full = contrastive_loss(a, t, 5.0).item()
    halves = 0.5 * (contrastive_loss(a[:4], t[:4], 5.0).item() + contrastive_loss(a[4:], t[4:], 5.0).item())
    assert abs(full - halves) > 1e-3
