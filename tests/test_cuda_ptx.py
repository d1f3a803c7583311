"""Every CUDA kernel compiles for a real GPU, with the argument types the code launches it with.

The simulator runs kernels as Python and never compiles them, so a construct that numba-cuda
cannot lower (a NumPy call, a Python object, a type mix) would first fail on a GPU. This test
records, under the simulator, the argument types of every kernel launch of a small workload
(one training step of GCN with dense and sparse features, SAGE mean / sum / normalize / max /
projected, GAT with attention dropout, in float32 and float64, plus the sparse kernels and
optimisers no step uses and products wide enough for every matmul register tile), then compiles each
(kernel, signature) to PTX for sm_90 with the real numba-cuda in a subprocess
(``cuda.compile_ptx``: NVVM, no GPU, no driver), and checks that no float32 kernel contains
float64 arithmetic. It needs libNVVM and NVRTC (the CUDA toolkit, or the ``nvidia-nvvm`` and
``nvidia-cuda-nvrtc`` wheels; ``CUDA_HOME`` pointing at them) and is skipped without them.
"""
import inspect
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("numba.cuda")
from numba import cuda  # noqa: E402

from gnn_scratch import device as placement  # noqa: E402
from gnn_scratch import ops  # noqa: E402
from gnn_scratch.graph import Graph  # noqa: E402
from gnn_scratch.kernels import cuda as ck  # noqa: E402
from gnn_scratch.kernels import dense_cuda as dc  # noqa: E402
from gnn_scratch.kernels import elementwise_cuda as ec  # noqa: E402
from gnn_scratch.kernels import gat_cuda as gc_  # noqa: E402
from gnn_scratch.kernels import loss_cuda as lc  # noqa: E402
from gnn_scratch.kernels import optim_cuda as oc  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = (9, 0)

if not ck._simulator_enabled():
    pytest.skip("records the launches under the simulator", allow_module_level=True)

_PROBE = r'''
import gnn_scratch.kernels.cuda  # noqa: F401  (first, as gnn_scratch loads numba.cuda: its NumPy 2.5 shim)
from numba import cuda, types
def k(a):
    i = cuda.grid(1)
    if i < a.shape[0]:
        a[i] = a[i] * 2
cuda.compile_ptx(k, (types.float32[::1],), cc=(9, 0))
print("ok")
'''

_COMPILE = r'''
import json, re, sys
sys.path.insert(0, sys.argv[1])
from numba import cuda, types
import numba.cuda.dispatcher as _dispatcher


class _Device:                      # device functions ask the current device for its compute capability
    compute_capability = (9, 0)


_dispatcher.get_current_device = lambda: _Device()
from gnn_scratch.kernels import cuda as ck, dense_cuda as dc, elementwise_cuda as ec, gat_cuda as gc_
from gnn_scratch.kernels import loss_cuda as lc, optim_cuda as oc
MODULES = {m.__name__: m for m in (ck, dc, ec, gc_, lc, oc)}


def kernel(rec):
    q, c = rec["qualname"], rec["closure"]
    if q.startswith("_matmul_kernel."):
        return dc._matmul_kernel(c["dtype"], c["trans_a"], c["trans_b"], dc._TILE, c["RN"])
    if q.startswith("_make_gather_kernel."):
        return ck._make_gather_kernel(c["mode"])
    if q.startswith("_col_sum_kernel."):
        return dc._col_sum_kernel(c["dtype"], dc._BLOCK_THREADS, c["weighted"])
    if q.startswith("_mask_kernels."):       # built around rng's device hash on first use
        dropout, keep_mask = ec._mask_kernels()
        return {"dropout_kernel": dropout, "keep_mask_kernel": keep_mask}[q.split(".")[-1]]
    return getattr(MODULES[rec["module"]], q)


def numba_type(t):
    if t[0] == "array":
        dt = types.boolean if t[1] == "bool" else getattr(types, t[1])
        return types.Array(dt, t[2], t[3])
    return types.boolean if t[1] == "bool" else getattr(types, t[1])


failures = []
for line in open(sys.argv[2]):
    rec = json.loads(line)
    sig = tuple(numba_type(t) for t in rec["types"])
    try:
        ptx, _ = cuda.compile_ptx(kernel(rec).py_func, sig, cc=(9, 0))
    except Exception as e:
        failures.append(f"{rec['qualname']}{[str(s) for s in sig]}: {type(e).__name__}: {str(e)[:1500]}")
        continue
    single = all("float64" not in str(s) for s in sig)
    if single and re.search(r"\.f64\b", ptx):
        lines = [l.strip() for l in ptx.splitlines() if re.search(r"\.f64\b", l)][:3]
        failures.append(f"{rec['qualname']}{[str(s) for s in sig]}: float64 arithmetic in a float32 kernel: {lines}")
print(json.dumps(failures))
'''


def _env():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def nvvm():
    try:
        run = subprocess.run([sys.executable, "-c", _PROBE], env=_env(), capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.skip("compiling a probe kernel timed out")
    if run.returncode != 0 or run.stdout.strip() != "ok":
        last = (run.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"numba-cuda cannot compile to PTX here (no NVVM / NVRTC?): {last[:200]}")


def _type_of(a):
    import numba
    t = numba.typeof(a)
    if hasattr(t, "ndim"):
        return ["array", "bool" if str(t.dtype) == "bool" else str(t.dtype), t.ndim, t.layout]
    return ["scalar", "bool" if str(t) == "bool" else str(t)]


def _record(monkeypatch):
    """Patch the simulator's kernel launch to record (kernel, closure constants, argument types)."""
    from numba.cuda.simulator import kernel as K
    seen = set()
    orig = K.FakeCUDAKernel.__call__

    def call(self, *args):
        if not self._device and not K._kernel_context:
            fn = self.fn
            closure = {}
            for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
                v = cell.cell_contents
                if name == "nbt":
                    closure["dtype"] = str(v)
                elif name in ("trans_a", "trans_b", "weighted"):
                    closure[name] = bool(v)
                elif name in ("mode", "RN"):               # the gather kernels' mode, matmul's columns per thread
                    closure[name] = int(v)
            seen.add(json.dumps(dict(module=fn.__module__, qualname=fn.__qualname__, closure=closure,
                                     types=[_type_of(a) for a in args]), sort_keys=True))
        return orig(self, *args)

    monkeypatch.setattr(K.FakeCUDAKernel, "__call__", call)
    return seen


def _graph():
    src = [0, 0, 2, 1, 3, 2, 4, 5, 3, 0, 6, 7]
    dst = [1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 7, 6]
    return Graph.from_edge_index(np.array([src, dst]), num_nodes=9)


def _workload(dtype):
    from gnn_scratch.models import build_model
    from gnn_scratch.nn import SoftmaxCrossEntropy
    from gnn_scratch.optim import Adam
    from gnn_scratch.train import train_step
    g = _graph()
    N, F, C = g.num_nodes, 5, 3
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, F)).astype(dtype)
    xs = x.copy()
    xs[rng.random(x.shape) < 0.5] = 0
    y, mask = placement.to_device(rng.integers(0, C, N)), placement.to_device(rng.random(N) < 0.6)
    dg = g.to("cuda")
    # dropout (the models' defaults) on dense and sparse features, GAT's attention dropout, ReLU and ELU
    steps = [("gcn", dict(hidden_channels=4), x), ("gcn", dict(hidden_channels=4), sp.csr_matrix(xs)),
             ("sage", dict(hidden_channels=4, aggr="mean"), x),
             ("sage", dict(hidden_channels=4, aggr="sum", normalize=True), sp.csr_matrix(xs)),
             ("sage", dict(hidden_channels=4, aggr="max"), x),                    # the pooling aggregator
             ("gat", dict(hidden_channels=3, heads=2), x)]
    for name, cfg, features in steps:
        model = build_model(name, in_channels=F, out_channels=C, dtype=dtype, **cfg).to("cuda")
        opt = Adam([{"params": model.parameters(), "weight_decay": 5e-4}], lr=0.01)
        train_step(model, placement.to_device(features), dg, y, mask, opt, SoftmaxCrossEntropy())
        model.eval()
        ops.accuracy(model.forward(placement.to_device(features), dg), y, mask)
        ops.accuracy(model.forward(placement.to_device(features), dg), y)
    p = placement.to_device(rng.standard_normal(6).astype(dtype))
    grad = placement.to_device(rng.standard_normal(6).astype(dtype))
    ops.sgd_update(p, grad, {}, 0.1, momentum=0.9, weight_decay=1e-3)
    ops.sgd_update(p, grad, {}, 0.1)
    h, pos = ops.leaky_relu(placement.to_device(x), 0.2)
    ops.leaky_relu_backward(h, pos, 0.2)
    h, pos = ops.relu(placement.to_device(x))
    ops.relu_backward(h, pos)
    ops.mul(h, placement.to_device(x))
    # the sparse kernels that no step calls
    E, H = g.num_edges, 2
    d = cuda.to_device
    r = lambda *s: d(rng.standard_normal(s).astype(dtype))        # noqa: E731
    o = lambda *s: cuda.device_array(s, dtype=dtype)             # noqa: E731
    argmax = cuda.device_array((N, F), dtype=np.int64)
    ck.spmm_max(d(g.indptr), d(g.indices), r(N, F), o(N, F), argmax)
    ck.spmm_max_backward(d(g.t_indptr), d(g.t_indices), argmax, r(N, F), o(N, F))
    ck.spmm_mean_backward(d(g.t_indptr), d(g.t_indices), d(g.indptr), r(N, F), o(N, F))
    ck.scale_rows_by_inverse_degree(d(g.indptr), r(N, F), o(N, F))
    ck.sddmm_dot(d(g.indptr), d(g.indices), r(N, H, F), r(N, H, F), o(E, H))
    ck.sddmm_add(d(g.indptr), d(g.indices), r(N, H), r(N, H), o(E, H))
    ck.segment_sum(d(g.indptr), r(E, H), o(N, H))
    ck.segment_sum_perm(d(g.t_indptr), d(g.t_perm), r(E, H), o(N, H))
    alpha = o(E, H)
    ck.edge_softmax(d(g.indptr), r(E, H), alpha)
    ck.edge_softmax_backward(d(g.indptr), alpha, r(E, H), o(E, H))
    # the MSE loss (PyG Temporal's regression) and the in-place subtraction (Chebyshev recurrences)
    P, T = r(N, 2), r(N, 2)
    lc.mse(P, T, o(N), o(1))
    lc.mse_backward(P, T, o(N, 2))
    dc.sub(r(N, F), r(N, F))
    # products wide enough for the register tiles of 2 and 4 columns per thread (the layers above are at most
    # 5 wide: 1 column), in the three transpose patterns; under the simulator _TILE = 8, so N = 12 and 40
    for width in (dc._TILE + 4, 40):
        dc.matmul(r(3, 2), r(2, width), o(3, width))
        dc.matmul_tn(r(2, 3), r(2, width), o(3, width))
        dc.matmul_nt(r(3, 2), r(width, 2), o(3, width))


KERNEL_MODULES = (ck, dc, ec, gc_, lc, oc)


def _all_kernels():
    """Every ``@_jit`` kernel of the CUDA modules, by function name (nested ones too: the mask kernels)."""
    names = set()
    for mod in KERNEL_MODULES:
        src = inspect.getsource(mod)
        names |= set(re.findall(r"@_jit\s*\n\s*def (\w+)", src))
    return names


def _launched(records):
    """Names of the launched kernels: the function, and the factory a nested one was built by."""
    names = set()
    for r in records:
        parts = json.loads(r)["qualname"].split(".")
        names |= {parts[0], parts[-1]}
    return names


def test_every_kernel_compiles_for_a_gpu(nvvm, monkeypatch, tmp_path):
    monkeypatch.setattr(dc, "_MAX_BLOCKS", 2)
    monkeypatch.setattr(ck, "_MAX_BLOCKS", 1)
    monkeypatch.setattr(ck, "_BLOCK_THREADS", 32)
    seen = _record(monkeypatch)
    for dtype in (np.float32, np.float64):
        _workload(dtype)
    records = sorted(seen)
    launched = _launched(records)
    for factory in ("_matmul_kernel", "_col_sum_kernel", "_mask_kernels"):
        assert factory in launched
    tiles = {(c["trans_a"], c["trans_b"], c["RN"]) for c in (json.loads(r)["closure"] for r in records)
             if "RN" in c}
    assert tiles >= {(ta, tb, rn) for ta, tb in ((False, False), (True, False), (False, True)) for rn in (1, 2, 4)}, \
        f"matmul register tiles recorded (trans_a, trans_b, columns per thread): {sorted(tiles)}"
    missing = sorted(_all_kernels() - launched - {"kernel"})
    assert not missing, f"kernels the workload never launches (add them to _workload): {missing}"
    path = tmp_path / "launches.jsonl"
    path.write_text("\n".join(records) + "\n")
    run = subprocess.run([sys.executable, "-c", _COMPILE, ROOT, str(path)], env=_env(), capture_output=True,
                         text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    failures = json.loads(run.stdout.strip().splitlines()[-1])
    assert not failures, "\n".join(failures)
