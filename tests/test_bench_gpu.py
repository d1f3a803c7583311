"""The GPU benchmark (gnn_scratch.bench.gpu = gnn-scratch bench --gpu = scripts/bench_gpu.py) without a GPU: one model config for both sides, the PyG twin computing our model,
the targets table with the memory rows, the device-memory counter and its fallback, the whole run
under the simulator. (Argument parsing and the bytes-moved formulas: tests/test_cuda_training.py.)"""
import importlib.util
import json
import os
import types
import weakref

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bench():
    from gnn_scratch.bench import gpu
    return gpu


def _torch_and_pyg():
    try:
        import torch  # noqa: F401
        import torch_geometric  # noqa: F401
    except ImportError:
        return False
    return True


# ================================================================================ one model, two sides
def test_model_config_is_the_cpu_benchmarks(bench):
    from gnn_scratch.bench.models import model_config as cpu_config
    spec = types.SimpleNamespace(kind="random")
    for name in ("gcn", "sage", "gat"):
        assert bench.model_config(name, 64) == cpu_config(name, spec)
    cfg, lr = bench.model_config("gat", hidden=16)               # --hidden does not change GAT's 8 heads x 8
    assert (cfg["hidden_channels"], cfg["heads"], cfg["dropout"], lr) == (8, 8, 0.6, 0.005)
    assert bench.hidden_width("gat", cfg) == 64
    cfg, _ = bench.model_config("sage", hidden=16)
    assert (cfg["hidden_channels"], cfg["aggr"], cfg["dropout"]) == (16, "mean", 0.5)
    assert bench.model_config("gcn", hidden=16)[0]["hidden_channels"] == 16


def test_pyg_twin_is_described_from_our_model(bench):
    args = bench.parse_args(["--features", "6", "--classes", "3"])
    _, _, _, twin = bench.build_pair("gat", args)
    layers = [(d["type"], d["args"]) for d in twin["desc"]]
    assert [t for t, _ in layers] == ["Dropout", "GATConv", "ELU", "Dropout", "GATConv"]
    assert layers[0][1]["p"] == layers[3][1]["p"] == 0.6
    conv1, conv2 = layers[1][1], layers[4][1]
    assert (conv1["in_channels"], conv1["out_channels"], conv1["heads"], conv1["concat"], conv1["dropout"]) == \
        (6, 8, 8, True, 0.6)
    assert (conv2["in_channels"], conv2["out_channels"], conv2["heads"], conv2["concat"], conv2["dropout"]) == \
        (64, 3, 1, False, 0.6)
    for name, conv in (("gcn", "GCNConv"), ("sage", "SAGEConv")):
        _, cfg, _, twin = bench.build_pair(name, args)
        layers = [(d["type"], d["args"]) for d in twin["desc"]]
        assert [t for t, _ in layers] == ["Dropout", conv, "ReLU", "Dropout", conv]
        assert layers[1][1]["out_channels"] == layers[4][1]["in_channels"] == cfg["hidden_channels"] == 64
        assert layers[0][1]["p"] == layers[3][1]["p"] == 0.5
        if name == "sage":
            assert layers[1][1]["aggr"] == "mean" and layers[1][1]["root_weight"]


@pytest.mark.oracle
@pytest.mark.skipif(not _torch_and_pyg(), reason="needs torch and torch_geometric")
def test_pyg_twin_computes_our_model_in_every_form(bench, monkeypatch):
    """On the CPU: each PyG form of the twin reproduces our model's eval output; the rows carry the check."""
    monkeypatch.setattr(bench, "TORCH_DEVICE", "cpu")
    args = bench.parse_args(["--features", "5", "--classes", "3", "--hidden", "4", "--repeats", "1", "--warmup", "0"])
    g = bench.random_graph(15, 45, seed=1)
    data = bench.bench_data(g, args)
    for name in ("gcn", "sage", "gat"):
        model, _, lr, twin = bench.build_pair(name, args)
        model.eval()
        expected = np.asarray(model.forward(data[0], g), dtype=np.float64)
        rows = bench.bench_pyg(name, twin, lr, g, data, expected, args, None, "g")
        assert [r["impl"] for r in rows] == [f"PyG ({f})" for f in bench.PYG_FORMS]
        for r in rows:
            assert r.get("matches") is True, (name, r)
            assert r["note"].startswith("max |diff| vs ours") and r["n"] == 1 and "peak_MiB" not in r
        wrong = bench.bench_pyg(name, twin, lr, g, data, expected + 1.0, args, None, "g")[:1]
        assert wrong[0]["matches"] is False and wrong[0]["note"].endswith("computes something else, left out")


def test_random_graph_is_simple_and_sorted(bench):
    g = bench.random_graph(50, 400, seed=3)
    dst = np.repeat(np.arange(50), np.diff(g.indptr))
    assert not np.any(g.indices == dst)                                   # no self-loop
    keys = dst * 50 + g.indices
    assert np.all(np.diff(keys) > 0)                                      # sorted within rows, no repeat
    assert 300 < g.num_edges <= 450 and g.indices.dtype == np.int32


# ============================================================================ the tables and targets
def _rows():
    g = "1,000 nodes / 10,000 edges"
    return [
        dict(graph=g, op="SpMM F=64", impl="gnn_scratch spmm_sum", side="ours", median=1.2, min=1.1, max=1.3, n=3,
             bound_ms=0.5),
        dict(graph=g, op="SpMM F=64", impl="cuSPARSE (CuPy)", side="peer", median=1.0, min=1.0, max=1.1, n=3,
             bound_ms=0.5),
        dict(graph=g, op="gcn step", impl="gnn_scratch", side="ours", model="gcn", median=8.0, min=7, max=9, n=3,
             bound_ms=2.0, peak_MiB=30.0),
        dict(graph=g, op="gcn step", impl="PyG (edge_index)", side="peer", model="gcn", median=10.0, min=9, max=11,
             n=3, peak_MiB=50.0, matches=True),
        dict(graph=g, op="gcn step", impl="PyG (csr)", side="peer", model="gcn", median=6.0, min=6, max=7, n=3,
             peak_MiB=20.0, matches=False, note="max |diff| vs ours 1e-1: computes something else, left out"),
        dict(graph=g, op="gat step", impl="gnn_scratch", side="ours", model="gat", median=20.0, min=19, max=21, n=3,
             peak_MiB=100.0),
        dict(graph=g, op="gat step", impl="PyG (edge_index)", side="peer", model="gat", median=25.0, min=24, max=26,
             n=3, peak_MiB=300.0, matches=True),
        dict(graph=g, op="gat step", impl="PyG (csr)", side="peer", model="gat", note="failed: OutOfMemoryError: x"),
        dict(graph=g, op="sage step", impl="gnn_scratch", side="ours", model="sage",
             note="failed: ValueError: no device path"),
        dict(graph="10,000,000 nodes / 100,000,000 edges", op="all", impl="-", note="skipped: needs ~90 GiB"),
    ]


def test_table_has_the_peak_memory_column(bench):
    lines = bench.format_table(_rows()).splitlines()
    assert lines[0] == ("| graph | operation | implementation | median ms | min-max ms | bound ms | x bound "
                        "| peak MiB | note |")
    assert "| 8.000 | 7.000-9.000 | 2.000 | 4.0 | 30.0 |  |" in lines[4]
    assert lines[9].endswith("| - | - | - | - | - | failed: OutOfMemoryError: x |")
    assert len(lines) == 2 + len(_rows())


def test_targets_ratios_and_verdicts(bench):
    t = {(r["graph"][:5], r["comparison"]): r for r in bench.targets(_rows())}
    spmm = t["1,000", "SpMM F=64: ours / cuSPARSE"]
    assert spmm["ratio"] == pytest.approx(1.2) and spmm["target"] == 1.3 and spmm["status"] == "PASS"
    assert t["1,000", "SpMM F=64: ours / bytes-moved bound"]["ratio"] == pytest.approx(2.4)
    gcn = t["1,000", "gcn step: ours / PyG"]         # PyG (csr) is faster but computes something else: left out
    assert gcn["peer_impl"] == "PyG (edge_index)" and gcn["ratio"] == pytest.approx(0.8) and gcn["status"] == "PASS"
    assert t["1,000", "gcn step: ours / bytes-moved bound"]["ratio"] == pytest.approx(4.0)
    assert t["1,000", "gcn step peak memory: ours / PyG"]["status"] == "-"        # reported, no target
    gat = t["1,000", "gat step: ours / PyG"]
    assert gat["ratio"] == pytest.approx(0.8) and gat["status"] == "PASS"
    mem = t["1,000", "gat step peak memory: ours / PyG"]
    assert mem["ratio"] == pytest.approx(1 / 3) and mem["target"] == 0.5 and mem["status"] == "PASS"
    sage = t["1,000", "sage step: ours / PyG"]
    assert sage["status"] == "not measured" and "no device path" in sage["note"]
    assert t["10,00", "all"]["status"] == "not measured" and "90 GiB" in t["10,00", "all"]["note"]
    table = bench.format_targets(bench.targets(_rows())).splitlines()
    assert table[0] == "| graph | comparison | ours | peer | ratio | target | status | note |"
    row = next(line for line in table if "gat step peak memory" in line)
    assert "| 100.000 MiB | 300.000 MiB (PyG (edge_index)) | 0.33x | <= 0.5x | PASS |" in row


def test_spmm_peers_rows_and_the_fastest_is_compared(bench):
    from numba import cuda
    args = bench.parse_args(["--repeats", "2", "--warmup", "0"])
    want = np.arange(6.0).reshape(3, 2)
    ok = bench._spmm_peer(cuda, "g", "SpMM F=2", "cuSPARSE (x)", lambda host: want * (1 + 1e-7), want, args, 0.5)
    assert ok["side"] == "peer" and ok["n"] == 2 and ok["note"].startswith("max rel diff 1.0e-07")

    def oom(host):
        raise MemoryError("out of memory")
    bad = bench._spmm_peer(cuda, "g", "SpMM F=2", "cuSPARSE (y)", oom, want, args, 0.5)
    assert bad["note"] == "failed: MemoryError: out of memory" and "median" not in bad
    rows = [dict(graph="g", op="SpMM F=2", impl="ours", side="ours", median=3.0, min=3, max=3, n=1),
            dict(graph="g", op="SpMM F=2", impl="cuSPARSE (CuPy A @ X)", side="peer", median=4.0, min=4, max=4, n=1),
            dict(graph="g", op="SpMM F=2", impl="cuSPARSE (torch CSR @ X)", side="peer", median=2.0, min=2, max=2,
                 n=1), bad]
    t = bench.targets(rows)[0]
    assert t["peer_impl"] == "cuSPARSE (torch CSR @ X)" and t["ratio"] == 1.5 and t["status"] == "MISS"


def test_targets_say_why_memory_is_not_measured(bench):
    rows = [dict(graph="g", op="gat step", impl="gnn_scratch", side="ours", model="gat", median=5.0, min=5, max=5,
                 n=1, memory_note="peak memory: not measured (the simulator)", note="x"),
            dict(graph="g", op="gat step", impl="PyG (edge_index)", side="peer", model="gat", median=4.0, min=4,
                 max=4, n=1, peak_MiB=10.0)]
    t = {r["comparison"]: r for r in bench.targets(rows)}
    assert t["gat step: ours / PyG"]["status"] == "MISS" and t["gat step: ours / PyG"]["ratio"] == 1.25
    mem = t["gat step peak memory: ours / PyG"]
    assert mem["status"] == "not measured" and mem["note"] == "peak memory: not measured (the simulator)"


# ================================================================================ device-memory counter
class _FakeDeallocs:
    """numba's _PendingDeallocs: add_item queues a free, flushed past 2 items."""

    def __init__(self):
        self.queue, self.freed = [], []

    def add_item(self, dtor, handle, size=0):
        self.queue.append(handle)
        if len(self.queue) > 2:
            self.clear()

    def clear(self):
        self.freed += self.queue
        self.queue = []

    def __len__(self):
        return len(self.queue)


class _FakePointer:
    """numba's OwnedPointer: ``device_ctypes_pointer`` is a c_size_t (``int()`` of it raises)."""

    def __init__(self, ptr, size):
        import ctypes
        self.device_ctypes_pointer, self.size = ctypes.c_size_t(ptr), size


class _FakeManager:
    """numba's NumbaCUDAMemoryManager, enough of it: memalloc hands out pointers, frees go through deallocations."""

    def __init__(self, context=None):
        self.context, self.deallocations, self.next = context, _FakeDeallocs(), 4096

    def memalloc(self, size):
        ptr, self.next = self.next, self.next + size + 256
        mem = _FakePointer(ptr, size)
        weakref.finalize(mem, self.deallocations.add_item, None, ptr, size)   # the array died: queue its free
        return mem


def test_device_addresses_match_across_pointer_kinds(bench):
    import ctypes

    class CUdeviceptr:                          # cuda-bindings' handle: int() works, no .value
        def __init__(self, v):
            self.v = v

        def __int__(self):
            return self.v
    owned = types.SimpleNamespace(device_pointer=CUdeviceptr(4096), device_ctypes_pointer=ctypes.c_size_t(4096))
    assert bench._address(owned) == bench._address(CUdeviceptr(4096)) == 4096
    assert bench._address(ctypes.c_void_p(4096)) == bench._address(ctypes.c_size_t(4096)) == 4096
    assert bench._address(_FakePointer(4096, 1)) == 4096 and bench._address(ctypes.c_void_p(None)) == 0


def test_counting_manager_counts_live_and_peak_bytes(bench):
    mm = bench.make_counting_manager(_FakeManager)(context=None)
    a, b = mm.memalloc(100), mm.memalloc(50)
    assert (mm.live, mm.peak) == (150, 150)
    del a
    assert (mm.live, mm.peak, mm.deferred) == (50, 150, 100)
    mm.reset_peak()
    c = mm.memalloc(30)
    assert (mm.live, mm.peak, mm.held_peak) == (80, 80, 180)            # held: the deferred free still counts
    del b, c                                                             # third queued item: the queue flushes
    assert (mm.live, mm.deferred, len(mm.deallocations)) == (0, 0, 0)
    mm.deallocations.add_item(None, 123456, 8)                           # a free the counter never handed out
    assert mm.live == 0 and mm.sizes == {}


def test_device_memory_peak_of_a_step_and_its_self_check(bench):
    cls = bench.make_counting_manager(_FakeManager)
    mm = cls(context=None)
    fake_cuda = types.SimpleNamespace(
        current_context=lambda: types.SimpleNamespace(memory_manager=mm, deallocations=_FakeDeallocs()),
        device_array=lambda n, dtype: mm.memalloc(n * np.dtype(dtype).itemsize))
    memory = bench.DeviceMemory.attach(fake_cuda, cls, None)
    assert memory.ok and memory.reason is None
    keep = mm.memalloc(1000)

    def step():
        t = mm.memalloc(300)
        u = mm.memalloc(200)
        del t, u
        mm.memalloc(10)                                                  # freed at once: a temporary
    peak, held = memory.peak_of(step, lambda: None)
    assert peak == pytest.approx(500 / bench.MiB) and held >= peak
    del keep
    not_ours = bench.DeviceMemory.attach(fake_cuda, bench.make_counting_manager(_FakeManager), None)
    assert not not_ours.ok and "existed before" in not_ours.reason


def test_memory_counter_fallback_without_a_gpu(bench, monkeypatch):
    from gnn_scratch.kernels import cuda as ck
    if not ck._simulator_enabled():
        pytest.skip("would install the counter into this process's numba-cuda")
    cls, why = bench.install_memory_counter()                           # under the simulator
    assert cls is None and "simulator" in why
    memory = bench.DeviceMemory.attach(None, cls, why)
    assert not memory.ok and memory.peak_of(lambda: None, lambda: None) == (None, None)
    monkeypatch.setattr(ck, "_simulator_enabled", lambda: False)        # a numba.cuda that cannot take a plugin
    cls, why = bench.install_memory_counter()
    assert cls is None and why and len(why) <= 160


def test_numba_frees_device_memory_through_deallocations_add_item():
    """The counter hooks ``deallocations.add_item``; this is where numba-cuda's allocation finalizer frees."""
    spec = importlib.util.find_spec("numba_cuda")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("numba-cuda is not installed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "numba", "cuda", "cudadrv", "driver.py")
    if not os.path.exists(path):
        pytest.skip(f"no {path}")
    src = open(path, encoding="utf-8").read()
    assert "class NumbaCUDAMemoryManager" in src and "def set_memory_manager" in src
    assert "deallocations.add_item(driver.cuMemFree, ptr, size)" in src


# ======================================================================== the run, under the simulator
def _small_run(bench, monkeypatch, tmp_path, extra):
    from numba import cuda
    from gnn_scratch.kernels import cuda as ck
    from gnn_scratch.kernels import dense_cuda as dc
    monkeypatch.setattr(ck, "_MAX_BLOCKS", 1)
    monkeypatch.setattr(ck, "_BLOCK_THREADS", 32)
    monkeypatch.setattr(dc, "_MAX_BLOCKS", 2)
    monkeypatch.setattr(bench, "require_real_gpu", lambda: cuda)
    monkeypatch.setattr(bench, "copy_bandwidth", lambda *a, **k: 1e9)
    monkeypatch.setattr(bench, "TORCH_DEVICE", "cpu")
    if not ck._simulator_enabled():                                      # a real GPU: leave numba's manager alone
        monkeypatch.setattr(bench, "install_memory_counter", lambda: (None, "not installed by the tests"))
    out = tmp_path / "gpu.json"
    assert bench.main(["--out", str(out), "--sizes", "12:36", "--features", "4", "--hidden", "4", "--classes",
                       "3", "--repeats", "1", "--warmup", "0"] + extra) == 0
    return json.loads(out.read_text())


def test_whole_run_under_the_simulator(bench, monkeypatch, tmp_path, capsys):
    forms = ["--forms", "edge_index"] if _torch_and_pyg() else ["--no-peers"]
    result = _small_run(bench, monkeypatch, tmp_path, ["--models", "gcn"] + forms)
    assert result["models"]["gcn"]["config"]["hidden_channels"] == 4 and result["memory_counter"] is False
    ops = [(r["op"], r["impl"]) for r in result["rows"]]
    assert ops[0] == ("SpMM F=4", "gnn_scratch spmm_sum") and ("gcn step", "gnn_scratch") in ops
    ours = next(r for r in result["rows"] if r["op"] == "gcn step" and r["side"] == "ours")
    assert "median" in ours and ours["memory_note"].startswith("peak memory: not measured (")
    if "--no-peers" not in forms:
        pyg = next(r for r in result["rows"] if r["impl"] == "PyG (edge_index)")
        assert pyg["matches"] is True                                   # PyG reproduces our device model
    comparisons = [t["comparison"] for t in result["targets"]]
    assert "gcn step: ours / PyG" in comparisons and "SpMM F=4: ours / cuSPARSE" in comparisons
    printed = capsys.readouterr().out
    assert "| graph | comparison | ours | peer | ratio | target | status | note |" in printed


def test_run_out_of_budget_still_writes_its_rows(bench, monkeypatch, tmp_path):
    result = _small_run(bench, monkeypatch, tmp_path, ["--budget", "1e-9", "--models", "gcn"])
    assert [r["op"] for r in result["rows"]] == ["all"]
    assert result["rows"][0]["note"] == "skipped: time budget spent"
    assert result["targets"][0]["status"] == "not measured"


_REAL_MANAGER_CHECK = r'''
import gc, logging, sys
sys.path.insert(0, sys.argv[1])
from gnn_scratch.bench import gpu as bench
from numba.cuda.cudadrv import driver as D
from cuda.bindings import driver as binding


class FakeDriver:                                   # what the memory manager asks of the CUDA driver
    def __init__(self):
        self.next, self.freed = 1 << 20, []

    def cuMemAlloc(self, size):
        p, self.next = self.next, self.next + size + 512
        return binding.CUdeviceptr(p)

    def cuMemFree(self, ptr):
        self.freed.append(int(ptr))

    def cuMemGetInfo(self):
        return (1 << 30, 1 << 30)


class Context:
    pass


D.driver = fake = FakeDriver()
if not hasattr(D, "_logger"):                       # made when the real driver initialises
    D._logger = logging.getLogger("fake")
mm = bench.make_counting_manager(D.NumbaCUDAMemoryManager)(context=Context())
mm.initialize()
a, b = mm.memalloc(1000), mm.memalloc(24)
assert (mm.live, mm.peak) == (1024, 1024), (mm.live, mm.peak)
addr = bench._address(a)
del a
gc.collect()
assert (mm.live, mm.deferred, len(mm.deallocations)) == (24, 1000, 1), (mm.live, mm.deferred)
mm.deallocations.clear()
assert (mm.live, mm.deferred, fake.freed) == (24, 0, [addr]), (mm.live, mm.deferred, fake.freed)
print("ok")
'''


def test_counter_on_numbas_own_memory_manager(tmp_path):
    """The counter subclassing the installed numba-cuda's NumbaCUDAMemoryManager (the driver faked, no GPU)."""
    import subprocess
    import sys
    try:
        import cuda.bindings.driver  # noqa: F401
    except ImportError:
        pytest.skip("numba-cuda without cuda-bindings")
    script = tmp_path / "check.py"
    script.write_text(_REAL_MANAGER_CHECK)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    run = subprocess.run([sys.executable, str(script), ROOT],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]


# ============================================================================== where the benchmark lives
def test_cli_bench_gpu_hands_the_rest_of_the_line_to_the_gpu_benchmark(monkeypatch):
    from gnn_scratch.bench import gpu
    from gnn_scratch.cli import main
    seen = []
    monkeypatch.setattr(gpu, "main", lambda argv=None: seen.append(argv) or 0)
    assert main(["bench", "--gpu", "--sizes", "1k:5k", "--out", "x.json"]) == 0
    assert main(["bench", "--gpu"]) == 0
    assert seen == [["--sizes", "1k:5k", "--out", "x.json"], []]


def test_scripts_bench_gpu_is_the_package_module():
    import importlib.util
    from gnn_scratch.bench import gpu
    spec = importlib.util.spec_from_file_location("bench_gpu_script", os.path.join(ROOT, "scripts", "bench_gpu.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for name in ("main", "parse_args", "parse_count", "spmm_bytes", "model_config", "format_table", "PYG_FORMS"):
        assert getattr(script, name) is getattr(gpu, name), name
