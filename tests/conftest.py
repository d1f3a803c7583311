"""Shared test set-up: the CUDA simulator, and where the shared datasets are."""
import os
from pathlib import Path

import pytest

# The numba.cuda kernels are tested on the CPU under Numba's simulator unless a real GPU run is
# asked for; the flag must be set before numba is first imported, which is why it lives here.
if os.environ.get("GNN_SCRATCH_TEST_DEVICE", "sim") == "sim":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")



def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a real CUDA GPU (skipped under the simulator)")


REPO = Path(__file__).resolve().parents[1]


def shared_data_root():
    """The data root holding planetoid/: $GNN_SCRATCH_DATA, else the shared/datasets beside the clone."""
    env = os.environ.get("GNN_SCRATCH_DATA")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def data_root():
    root = shared_data_root()
    if not (root / "planetoid" / "ind.cora.x").exists():
        pytest.skip(f"Planetoid files not found under {root} (set GNN_SCRATCH_DATA)")
    return root
