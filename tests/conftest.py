"""Shared test set-up: the CUDA simulator, the markers, and where the shared datasets are."""
import importlib.util
import os
from pathlib import Path

import pytest

# The numba.cuda kernels are tested on the CPU under Numba's simulator unless a real GPU run is
# asked for; the flag must be set before numba is first imported, which is why it lives here.
if os.environ.get("GNN_SCRATCH_TEST_DEVICE", "sim") == "sim":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

# Under pytest-xdist (the README's `-n auto`) every worker process starts Numba's pool, by default one thread
# per core: on a many-core machine, workers x cores threads. Each worker takes its share of the cores, at least
# 2 (tests compare one and two threads), unless NUMBA_NUM_THREADS is set already. Also before numba's import.
_workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
if _workers and "NUMBA_NUM_THREADS" not in os.environ:
    os.environ["NUMBA_NUM_THREADS"] = str(max(2, (os.cpu_count() or 2) // max(int(_workers), 1)))

# Set (to anything but "" or "0") by .ci/run: an oracle test that skips (no torch, no torch_geometric)
# fails instead, so a green CI means the comparisons against the reference implementations ran.
REQUIRE_ORACLES = os.environ.get("GNN_SCRATCH_REQUIRE_ORACLES", "") not in ("", "0")


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a real CUDA GPU (skipped under the simulator)")
    config.addinivalue_line("markers", "oracle: compares against a trusted reference implementation (PyG, "
                                       "PyG Temporal); needs the bench extra")
    if REQUIRE_ORACLES:      # say it once, up front, rather than only test by test (or not at all for a
        # module that skips at import); found, not imported: importing torch here would do it before
        # pytest captures warnings
        missing = [m for m in ("torch", "torch_geometric") if importlib.util.find_spec(m) is None]
        if missing:
            raise pytest.UsageError(f"GNN_SCRATCH_REQUIRE_ORACLES is set but {' and '.join(missing)} cannot be found: "
                                    'install torch==2.13.0 first, then ".[bench]"')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if (REQUIRE_ORACLES and report.skipped and not hasattr(report, "wasxfail")
            and item.get_closest_marker("oracle") is not None):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"oracle test skipped while GNN_SCRATCH_REQUIRE_ORACLES is set "
                           f"(install torch==2.13.0 first, then the bench extra): {reason}")


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


@pytest.fixture(params=["cpu", "reference"])
def backend(request):
    """Run the test once with the Numba kernels and once with the NumPy reference ones (restored after)."""
    from gnn_scratch.kernels import get_cpu_backend, set_cpu_backend
    old = get_cpu_backend()
    set_cpu_backend(request.param)
    yield request.param
    set_cpu_backend(old)


@pytest.fixture
def pyg_temporal():
    """PyG Temporal's recurrent cells ({name: class}, ``bench.pyg_temporal.cells``), or a skip when torch or
    torch-geometric-temporal is missing (the package itself cannot be imported here: see ORACLES.md)."""
    pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    from gnn_scratch.bench.pyg_temporal import cells
    try:
        return cells()
    except ImportError as e:
        pytest.skip(str(e))
