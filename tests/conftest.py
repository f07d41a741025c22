import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
torch.set_num_threads(min(2, torch.get_num_threads()))


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
