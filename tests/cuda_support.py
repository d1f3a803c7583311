"""What the CUDA test modules share: is Numba's simulator on, skip without a GPU, small launch grids.

Import it at the top of a CUDA test module, before anything from numba.cuda:

    from cuda_support import SIMULATOR, cuda, small_grids   # skips the module without numba-cuda or a GPU
"""
import os

import pytest

pytest.importorskip("numba.cuda")
import numba  # noqa: E402
from numba import cuda  # noqa: E402

try:
    from numba.cuda.core import config as _cuda_config   # numba-cuda's flag decides what numba.cuda is
except ImportError:
    _cuda_config = numba.config

SIMULATOR = bool(getattr(_cuda_config, "ENABLE_CUDASIM", 0))
REAL_GPU = not SIMULATOR

if not SIMULATOR and not cuda.is_available():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        pytest.skip("NUMBA_ENABLE_CUDASIM=1 was set after numba.cuda was imported in this process, so the "
                    "simulator is off: run this file in its own pytest process", allow_module_level=True)
    pytest.skip("no CUDA GPU and the simulator is off: run with NUMBA_ENABLE_CUDASIM=1 "
                "(in its own pytest process) to test the CUDA kernels on the CPU", allow_module_level=True)


@pytest.fixture
def small_grids(monkeypatch):
    """One or two blocks per launch under the simulator (grid-stride loops do the rest).

    ``dense_cuda``'s launch helpers serve the element-wise, loss and optimiser kernels too
    (``elementwise_cuda``, ``loss_cuda``, ``optim_cuda`` import them), so capping it caps them all.
    A test module makes it apply to every test with ``pytestmark = pytest.mark.usefixtures("small_grids")``
    or an autouse fixture that requests it.
    """
    from gnn_scratch.kernels import cuda as ck
    from gnn_scratch.kernels import dense_cuda as dc
    if SIMULATOR:
        monkeypatch.setattr(dc, "_MAX_BLOCKS", 2)
        monkeypatch.setattr(ck, "_MAX_BLOCKS", 1)
        monkeypatch.setattr(ck, "_BLOCK_THREADS", 32)
