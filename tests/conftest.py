import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
torch.set_num_threads(min(2, torch.get_num_threads()))

try:  # hypothesis profiles for tests/test_fuzz_inputs.py: "ci" by default, `--hypothesis-profile long` for local runs
    from hypothesis import HealthCheck, settings

    _slow = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
    settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True, database=None,
                              suppress_health_check=_slow, print_blob=True)
    settings.register_profile("long", max_examples=2000, deadline=None, database=None,
                              suppress_health_check=_slow, print_blob=True)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis is a dev extra
    pass


def _shared():
    from hf_alm.utils import shared_dir

    return shared_dir()


@pytest.fixture(scope="session")
def shared_path():
    """Path of ../shared; tests that need it skip with a clear reason in a fresh clone without it."""
    path = _shared()
    if path is None:
        pytest.skip("../shared (real datasets and reference fixtures) is not present next to this clone; "
                    "set HF_ALM_SHARED to its location to run this test")
    return path


@pytest.fixture(scope="session")
def esc10_path(shared_path):
    path = shared_path / "data" / "esc10"
    if not path.is_dir():
        pytest.skip(f"ESC-10 not found at {path}")
    return path


@pytest.fixture(scope="session")
def fsdd_path(shared_path):
    path = shared_path / "data" / "fsdd"
    if not path.is_dir():
        pytest.skip(f"FSDD not found at {path}")
    return path


@pytest.fixture(scope="session")
def beats_reference_path(shared_path):
    path = shared_path / "fixtures" / "beats_reference"
    if not path.is_dir():
        pytest.skip(f"BEATs reference fixtures not found at {path}")
    return path


@pytest.fixture
def run_ranks():
    """``run_ranks(argv, world, env=None, timeout=240)``: start ``world`` copies of ``[python, *argv]`` as the ranks
    of one torch.distributed job on this machine (the environment torchrun sets: WORLD_SIZE, RANK, LOCAL_RANK,
    LOCAL_WORLD_SIZE, MASTER_ADDR / MASTER_PORT; one OpenMP thread each), wait, and assert every rank exited 0.
    ``world=1`` starts one plain process without that environment. Returns the ranks' output."""
    import socket
    import subprocess
    import sys

    def run(argv, world, env=None, timeout=240):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        procs = []
        for rank in range(world):
            rank_env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
            if world > 1:
                rank_env.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank),
                                LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
            procs.append(subprocess.Popen([sys.executable, *map(str, argv)], env=rank_env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
        logs = [p.communicate(timeout=timeout)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs), "\n".join(logs)
        return logs

    return run
