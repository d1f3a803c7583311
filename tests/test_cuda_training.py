"""Whole training steps on the GPU: dense kernels, placement, layers, GCN steps and fit, the GPU benchmark.

Runs under Numba's CUDA simulator (tests/conftest.py turns it on), or on a real GPU with
GNN_SCRATCH_TEST_DEVICE=gpu. The simulator runs every GPU thread as a Python thread, so everything
here is tiny (<= 30 nodes, <= 8 features, hidden 4, two or three epochs) and the grids are capped
(``small_grids``): each kernel then launches one or two blocks that loop over the work. The CPU path
is the reference: the same model seed gives the same numbers on the device -- to 1e-5 in float32,
1e-10 in float64 -- dropout included, since a mask is the counter hash of ``kernels/rng.py`` under a
key drawn from the layer's own generator, the same bits on the host and the device. The test marked
``gpu`` trains on a real GPU only.
"""
import os
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from cuda_support import REAL_GPU, SIMULATOR, cuda, small_grids  # noqa: E402,F401  (skips without a GPU; the fixture, by name)

from gnn_scratch import device as placement  # noqa: E402
from gnn_scratch import ops  # noqa: E402
from gnn_scratch.data import csbm  # noqa: E402
from gnn_scratch.graph import Graph  # noqa: E402
from gnn_scratch.kernels import cuda as ck  # noqa: E402
from gnn_scratch.kernels import dense_cuda as dc  # noqa: E402
from gnn_scratch.kernels import elementwise_cuda as ec  # noqa: E402
from gnn_scratch.kernels import registry  # noqa: E402
from gnn_scratch.kernels import rng as krng  # noqa: E402
from gnn_scratch.models.gcn import GCN  # noqa: E402
from gnn_scratch.nn import (ELU, Dropout, LeakyReLU, Linear, ReLU, SoftmaxCrossEntropy,  # noqa: E402
                            accuracy)
from gnn_scratch.optim import SGD, Adam  # noqa: E402
from gnn_scratch.train import fit, run, train_step  # noqa: E402

DTYPES = (np.float32, np.float64)
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
ids = lambda d: np.dtype(d).name  # noqa: E731
d = cuda.to_device


pytestmark = pytest.mark.usefixtures("small_grids")   # every test: small grids


def close(got, want, dtype, msg=""):
    np.testing.assert_allclose(placement.to_host(got), want, err_msg=msg, **TOL[np.dtype(dtype).type])


def rand(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def fixture_graph():
    # 9 nodes: node 8 isolated, self-loop 2 -> 2, repeated edge 0 -> 1.
    src = [0, 0, 2, 1, 3, 2, 4, 5, 3, 0, 6, 7, 5]
    dst = [1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 5, 6, 7]
    return Graph.from_edge_index(np.array([src, dst]), num_nodes=9)


# ======================================================================================== kernels
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_matrix_products(dtype):
    rng = np.random.default_rng(0)
    A, B = rand(rng, 13, 11, dtype=dtype), rand(rng, 11, 6, dtype=dtype)
    close(ops.matmul(d(A), d(B)), A @ B, dtype, "A B")
    G = rand(rng, 13, 6, dtype=dtype)
    close(ops.matmul_nt(d(G), d(B)), G @ B.T, dtype, "G B^T")
    for K in (5, 37):                                  # one chunk, and three chunks of _SPLIT_K = 16 rows
        if SIMULATOR:
            assert (K > dc._SPLIT_K) == (K == 37)
        H, Z = rand(rng, K, 7, dtype=dtype), rand(rng, K, 3, dtype=dtype)
        close(ops.matmul_tn(d(H), d(Z)), H.T @ Z, dtype, f"H^T Z, K={K}")
        acc = rand(rng, 7, 3, dtype=dtype)
        out = d(acc)
        ops.matmul_tn(d(H), d(Z), out=out, accumulate=True)
        close(out, acc + H.T @ Z, dtype, f"acc + H^T Z, K={K}")
    empty = d(np.full((4, 3), np.nan, dtype))
    dc.matmul(d(np.ones((4, 0), dtype)), d(np.ones((0, 3), dtype)), empty)   # K = 0: zeros
    assert not placement.to_host(empty).any()


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_col_sum_chunks_and_repeatability(dtype):
    rng = np.random.default_rng(1)
    G = rand(rng, 150, 3, dtype=dtype)                 # 3 chunks of 64 rows under the simulator: two passes
    first = ops.col_sum(d(G))
    close(first, G.sum(axis=0), dtype)
    assert placement.to_host(first).tobytes() == placement.to_host(ops.col_sum(d(G))).tobytes()
    acc = rand(rng, 3, dtype=dtype)
    out = d(acc)
    ops.col_sum(d(G[:5]), out=out, accumulate=True)
    close(out, acc + G[:5].sum(axis=0), dtype)
    zero = d(np.full(3, np.nan, dtype))
    dc.col_sum(d(np.ones((0, 3), dtype)), zero)
    assert placement.to_host(zero).tolist() == [0, 0, 0]


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_elementwise_and_activations_match_the_cpu(dtype):
    rng = np.random.default_rng(2)
    x = rand(rng, 5, 4, dtype=dtype)
    x[0, 0] = 0                                        # the kink: subgradient 0, and +0 out of ReLU
    g = rand(rng, 5, 4, dtype=dtype)
    b = rand(rng, 4, dtype=dtype)
    y = d(x)
    assert ops.add_bias(y, d(b)) is y
    close(y, x + b, dtype, "bias")
    close(ops.add_(d(x), d(g)), x + g, dtype, "add")
    close(ops.mul(d(x), d(g)), x * g, dtype, "mul")
    assert not placement.to_host(ops.zero_(d(x))).any()
    zeros = placement.zeros_like(d(x))
    assert placement.is_device(zeros) and not placement.to_host(zeros).any()
    for fwd, bwd, extra in ((ops.relu, ops.relu_backward, ()),
                            (ops.leaky_relu, ops.leaky_relu_backward, (0.2,)),
                            (ops.elu, None, (1.3,))):
        want_y, want_pos = fwd(x, *extra)              # the host op (the CPU kernels) is the reference
        got_y, got_pos = fwd(d(x), *extra)
        assert placement.is_device(got_y) and placement.is_device(got_pos)
        close(got_y, want_y, dtype, fwd.__name__)
        assert np.array_equal(want_pos, x > 0) and placement.to_host(got_pos).dtype == np.bool_
        assert np.array_equal(placement.to_host(got_pos), want_pos)
        if bwd is not None:
            close(bwd(d(g), got_pos, *extra), bwd(g, want_pos, *extra), dtype, bwd.__name__)
        else:
            close(ops.elu_backward(d(g), got_pos, got_y, 1.3), ops.elu_backward(g, want_pos, want_y, 1.3), dtype)
    assert np.signbit(placement.to_host(ops.relu(d(-np.ones(3, dtype)))[0])).sum() == 0


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_dropout_mask_is_the_cpus_counter_hash_bit_for_bit_and_ignores_the_grid(monkeypatch, dtype):
    n, keep = 2000, 0.75
    x = np.random.default_rng(3).standard_normal(n).astype(dtype)
    key = np.uint64(0xFEDCBA9876543210)                # above 2^63: the whole uint64 range reaches the device
    t, scale = krng.keep_threshold(keep), dtype(1) / dtype(keep)
    kept = krng.keep_mask_host(key, t, n)              # the NumPy reference of every mask
    want = np.where(kept, x * scale, dtype(0))
    assert abs(kept.mean() - keep) < 0.04
    for impl in ("reference", "cpu"):                  # the host kernels draw it too
        host = np.full_like(x, np.nan)
        registry.resolve("dropout", impl)(x, key, t, scale, host)
        assert host.tobytes() == want.tobytes(), impl
    out = cuda.device_array_like(x)
    ec.dropout(d(x), key, t, scale, out)
    assert out.copy_to_host().tobytes() == want.tobytes()
    got = ops.dropout(d(x), key, keep)                 # the op: the same key, the same bits as on the host
    assert placement.is_device(got) and placement.to_host(got).tobytes() == ops.dropout(x, key, keep).tobytes()
    assert placement.to_host(got).tobytes() == want.tobytes()
    mask = cuda.device_array(n, np.uint8)
    ec.keep_mask(key, t, mask)
    assert np.array_equal(mask.copy_to_host(), kept.astype(np.uint8))
    monkeypatch.setattr(dc, "_MAX_BLOCKS", 1)          # another launch shape: the same mask
    monkeypatch.setattr(dc, "_BLOCK_THREADS", 4)
    ec.dropout(d(x), key, t, scale, out)
    assert out.copy_to_host().tobytes() == want.tobytes()
    ec.dropout(d(x), key + np.uint64(1), t, scale, out)   # another key: another mask
    assert not np.array_equal(out.copy_to_host() != 0, kept)


def test_keep_mask_on_the_device_equals_the_cpus():
    # GAT's attention dropout, (E, H): element k = e H + h, kept with probability keep
    E, H, keep = 300, 3, 0.6
    for key in (0, 12345, 2 ** 64 - 1):
        want = ops.keep_mask((E, H), key, keep, like=np.empty(0))
        got = ops.keep_mask((E, H), key, keep, like=d(np.empty(1)))
        assert placement.is_device(got) and got.shape == (E, H) and got.dtype == np.uint8
        assert np.array_equal(placement.to_host(got), want), key
        assert np.array_equal(want.reshape(-1), krng.keep_mask_host(key, krng.keep_threshold(keep), E * H))
        assert abs(want.mean() - keep) < 0.05


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_cross_entropy_and_accuracy_match_the_cpu_loss(dtype):
    rng = np.random.default_rng(3)
    Z = 20 * rand(rng, 12, 4, dtype=dtype)             # large logits: the max shift matters
    Z[3, 1] = Z[3, 2] = Z[3].max() + 1                 # a tie: the first maximum is the prediction
    y = rng.integers(0, 4, 12)
    for mask in (rng.random(12) < 0.5, None):
        ce = SoftmaxCrossEntropy()
        want = ce.forward(Z, y, mask)
        dce = SoftmaxCrossEntropy()
        loss = dce.forward(d(Z), d(y), None if mask is None else d(mask))
        assert placement.is_device(loss) and loss.shape == () == np.shape(want)   # a 0-d array where Z lives
        np.testing.assert_allclose(placement.item(loss), float(want), rtol=1e-6 if dtype == np.float32 else 1e-12)
        close(dce.backward(), ce.backward(), dtype, "dZ")
        assert accuracy(d(Z), d(y), None if mask is None else d(mask)) == accuracy(Z, y, mask)


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_optimisers_match_the_cpu(dtype):
    rng = np.random.default_rng(4)
    p0, grads = rand(rng, 3, 4, dtype=dtype), [rand(rng, 3, 4, dtype=dtype) for _ in range(3)]
    for make in (lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
                 lambda ps: Adam([{"params": ps, "weight_decay": 5e-4}], lr=0.01)):
        host_p, host_g = p0.copy(), np.zeros_like(p0)
        dev_p, dev_g = d(p0), d(np.zeros_like(p0))
        opt_h, opt_d = make([(host_p, host_g)]), make([(dev_p, dev_g)])
        for g in grads:
            for opt, grad in ((opt_h, host_g), (opt_d, dev_g)):
                opt.zero_grad()
                ops.add_(grad, g if grad is host_g else d(g))
                opt.step()
        close(dev_p, host_p, dtype, type(opt_h).__name__)
        assert all(placement.is_device(a) for s in opt_d.state.values() for a in s.values())


def test_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match=r"op 'matmul' got arrays on the GPU and a host array \(argument 1"):
        ops.matmul(d(np.ones((2, 2))), np.ones((2, 2)))          # refused before any kernel: nothing copied silently
    with pytest.raises(TypeError, match="B must be a device array"):
        dc.matmul(d(np.ones((2, 2))), np.ones((2, 2)), cuda.device_array((2, 2)))   # the kernel's own check
    with pytest.raises(ValueError, match="A and B do not chain: the inner dimensions are 3 and 2"):
        dc.matmul(d(np.ones((2, 3))), d(np.ones((2, 2))), cuda.device_array((2, 2)))
    with pytest.raises(ValueError, match="device must be one of"):
        GCN(4, 2, hidden_channels=3).to("tpu")
    with pytest.raises(ValueError, match=r"keep probability must be in \(0, 1\]"):
        ops.dropout(d(np.ones(3)), 7, 0.0)
    with pytest.raises(TypeError, match=r"mask must have dtype .*uint8.*, got float32"):
        ec.keep_mask(7, krng.keep_threshold(0.5), cuda.device_array(4, np.float32))
    with pytest.raises(TypeError, match="x must be a device array"):
        ec.dropout(np.ones(3), 7, krng.keep_threshold(0.5), 2.0, cuda.device_array(3))
    monkeypatch.setattr(ck, "_cuda_ok", False)
    monkeypatch.setattr(ck, "_simulator_enabled", lambda: False)
    monkeypatch.setattr(ck.cuda, "is_available", lambda: False)
    for move in (lambda: fixture_graph().to("cuda"), lambda: GCN(4, 2).to("cuda"),
                 lambda: placement.to_device(np.ones(3)), lambda: dc.fill(None, 0),
                 lambda: ec.dropout(None, 7, 1, 1.0, None), lambda: registry.module("elementwise", "cuda")):
        with pytest.raises(RuntimeError, match=r"no CUDA GPU available; install the `cuda` extra"):
            move()


# ======================================================================================= placement
def test_graph_to_device_and_back():
    g = fixture_graph()
    dg = g.to("cuda")
    assert dg.device == "cuda" and dg.host is g and g.device == "cpu"
    assert dg is g.to("cuda") and dg.to("cuda") is dg and dg.to("cpu") is g and g.to("cpu") is g
    assert dg.num_edges == g.num_edges and dg.shape == g.shape
    for name in ("indptr", "indices", "t_indptr", "t_indices", "t_perm"):
        assert placement.is_device(getattr(dg, name)), name
        assert np.array_equal(placement.to_host(getattr(dg, name)), getattr(g, name)), name
    gh, val = ops.gcn_norm(g, np.float64)
    dgh, dval = ops.gcn_norm(dg, np.float64)
    assert dgh.device == "cuda" and dgh.host is gh and ops.gcn_norm(dg, np.float64)[1] is dval
    assert np.array_equal(placement.to_host(dval), val) and np.array_equal(placement.to_host(dgh.t_perm), gh.t_perm)
    assert placement.to_host(ops.ones_on_edges(dg, np.float32)).tolist() == [1.0] * g.num_edges
    with pytest.raises(ValueError, match="device must be one of"):
        g.to("gpu")


def test_sparse_features_on_the_device():
    rng = np.random.default_rng(5)
    X = sp.random(10, 7, density=0.3, format="csr", random_state=6, dtype=np.float32)
    dX = placement.to_device(X)
    assert placement.issparse(dX) and dX.shape == (10, 7) and dX.nnz == X.nnz
    W, G = rand(rng, 7, 3), rand(rng, 10, 3)
    close(ops.matmul(dX, d(W)), X @ W, np.float32, "X W: spmm_sum")
    close(ops.matmul_tn(dX, d(G)), X.T @ G, np.float32, "X^T G: spmm_sum_perm on the transpose")
    assert (placement.to_host(dX) != X).nnz == 0
    doubled = dX.with_data(d(2 * X.data))
    close(ops.matmul_tn(doubled, d(G)), 2 * (X.T @ G), np.float32, "new data, same structure")


def test_module_to_device_and_back():
    model = GCN(5, 3, hidden_channels=4, seed=2)
    host = model.state_dict()
    model.to("cuda")
    assert all(placement.is_device(p) and placement.is_device(g) for _, p, g in model.named_parameters())
    state = model.state_dict()
    assert all(isinstance(v, np.ndarray) and np.array_equal(v, host[k]) for k, v in state.items())
    model.load_state_dict({k: v + 1 for k, v in state.items()})
    model.zero_grad()
    model.to("cpu")
    assert all(isinstance(p, np.ndarray) for _, p, _ in model.named_parameters())
    assert all(np.array_equal(p, host[k] + 1) for k, p, _ in model.named_parameters())


# ========================================================================================= layers
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_layers_on_the_device_match_the_cpu(dtype):
    # Dropout draws its key from its own generator: the same seed, the same mask on the CPU and the device
    rng = np.random.default_rng(7)
    x, g = rand(rng, 6, 5, dtype=dtype), rand(rng, 6, 3, dtype=dtype)
    X = sp.random(6, 5, density=0.4, format="csr", random_state=8, dtype=dtype)
    for make, inp, grad in ((lambda: Linear(5, 3, seed=1, dtype=dtype), x, g),
                            (lambda: Linear(5, 3, seed=1, dtype=dtype), X, g),
                            (ReLU, x, x[:, ::-1].copy()), (lambda: LeakyReLU(0.1), x, x),
                            (lambda: ELU(0.7), x, x), (lambda: Dropout(0.4, seed=3), x, x),
                            (lambda: Dropout(0.4, seed=3), X, None)):
        cpu, gpu = make(), make().to("cuda")
        want, got = cpu.forward(inp, None), gpu.forward(placement.to_device(inp), None)
        assert placement.is_device(got), type(cpu).__name__
        if sp.issparse(want):
            close(placement.to_host(got).toarray(), want.toarray(), dtype, type(cpu).__name__)
        else:
            close(got, want, dtype, type(cpu).__name__)
        if isinstance(cpu, Dropout):                   # the same mask, and x * scale: the same bits
            host_got = placement.to_host(got)
            if sp.issparse(want):
                assert np.array_equal(host_got.indptr, want.indptr) and np.array_equal(host_got.indices, want.indices)
                host_got, want = host_got.data, want.data
            assert host_got.tobytes() == want.tobytes() and 0 < np.count_nonzero(want) < want.size
        if grad is None:
            assert gpu.backward(d(x)) is None
            continue
        want_dx, got_dx = cpu.backward(grad), gpu.backward(d(grad))
        if want_dx is None:
            assert got_dx is None
        else:
            close(got_dx, want_dx, dtype, f"{type(cpu).__name__} backward")
        for k in cpu.grads:
            close(gpu.grads[k], cpu.grads[k], dtype, f"{type(cpu).__name__} d{k}")


# ================================================================================ GCN on the device
def small_data(seed=0, sparse=False):
    data = csbm(num_nodes=24, num_classes=3, num_features=6, avg_degree=3, train_per_class=3, num_val=6,
                num_test=8, seed=seed)
    if sparse:
        x = data.x.copy()
        x[np.random.default_rng(seed).random(x.shape) < 0.5] = 0
        data.x = sp.csr_matrix(x)
    return data


@pytest.mark.parametrize("dtype, sparse", [(np.float32, False), (np.float64, False), (np.float32, True)],
                         ids=["float32", "float64", "float32-sparse-x"])
def test_gcn_step_on_the_device_equals_the_cpu(dtype, sparse):
    data = small_data(sparse=sparse)                    # dropout 0.5: the device draws the CPU's masks
    x = data.x.astype(dtype)
    results = []
    for device in ("cpu", "cuda"):
        model = GCN(6, 3, hidden_channels=4, dropout=0.5, seed=1, dtype=dtype).to(device)
        opt = Adam(model.param_groups(5e-4), lr=0.01)
        graph, xx = data.graph.to(device), placement.to(x, device)
        y, mask = placement.to(data.y, device), placement.to(data.train_mask, device)
        ce = SoftmaxCrossEntropy()
        opt.zero_grad()
        Z = model.forward(xx, graph)
        loss = placement.item(ce.forward(Z, y, mask))
        model.backward(ce.backward())
        grads = {n: placement.to_host(gr).copy() for n, _, gr in model.named_parameters()}
        opt.step()
        results.append((placement.to_host(Z), loss, grads, model.state_dict()))
    (Z0, l0, g0, p0), (Z1, l1, g1, p1) = results
    close(Z1, Z0, dtype, "logits")
    np.testing.assert_allclose(l1, l0, **TOL[dtype])
    for k in g0:
        close(g1[k], g0[k], dtype, f"grad {k}")
        close(p1[k], p0[k], dtype, f"param {k} after Adam")


def test_fit_on_the_device_equals_the_cpu():
    # dropout 0.5 on both sides: the device draws the CPU's masks, so three epochs agree step for step
    data = small_data(seed=1)
    logs = {}
    models = {}
    for device in ("cpu", "cuda"):
        model = GCN(6, 3, hidden_channels=4, dropout=0.5, seed=3).to(device)
        opt = Adam(model.param_groups(5e-4), lr=0.05)
        lines = logs[device] = []
        res = fit(model, data, opt, epochs=3, log=lines.append, device=device)
        models[device] = (model, res)
    (m0, r0), (m1, r1) = models["cpu"], models["cuda"]
    assert (r1.best_epoch, r1.val_acc, r1.test_acc, r1.train_acc) == (r0.best_epoch, r0.val_acc, r0.test_acc,
                                                                      r0.train_acc)
    for (n, p, _), (_, q, _) in zip(m0.named_parameters(), m1.named_parameters()):
        close(q, p, np.float32, n)
    for a, b in zip(logs["cpu"], logs["cuda"]):        # same losses and accuracies to the printed digits
        assert a.split()[:9] == b.split()[:9], (a, b)


def test_device_masks_repeat_for_a_seed_and_change_per_call():
    data = small_data(seed=2)
    x, graph = placement.to_device(data.x), data.graph.to("cuda")
    y, mask = placement.to_device(data.y), placement.to_device(data.train_mask)
    out = []
    for seed in (5, 5, 6):
        model = GCN(6, 3, hidden_channels=4, dropout=0.5, seed=seed).to("cuda")
        train_step(model, x, graph, y, mask, Adam(model.parameters(), lr=0.05), SoftmaxCrossEntropy())
        out.append(model.state_dict())
    assert all(np.array_equal(out[0][k], out[1][k]) for k in out[0])
    assert not all(np.array_equal(out[0][k], out[2][k]) for k in out[0])
    drop, twin = Dropout(0.5, seed=1), Dropout(0.5, seed=1)   # a fresh key per training forward
    first, second = (placement.to_host(drop.forward(x)) for _ in range(2))
    assert not np.array_equal(first, second)
    assert first.tobytes() == twin.forward(data.x).tobytes()    # the CPU layer draws the same two masks
    assert second.tobytes() == twin.forward(data.x).tobytes()
    ones = np.ones_like(data.x)                                 # the backward recomputes the last mask
    assert placement.to_host(drop.backward(d(ones))).tobytes() == twin.backward(ones).tobytes()


def test_fit_refuses_an_optimiser_built_before_the_move():
    model = GCN(6, 3, hidden_channels=4)
    opt = Adam(model.parameters())
    with pytest.raises(ValueError, match=r"create it after model.to\('cuda'\)"):
        fit(model, small_data(), opt, epochs=1, device="cuda")


def test_cli_device_cuda_without_a_gpu_says_so_in_one_line(monkeypatch, capsys):
    from gnn_scratch.cli import main
    monkeypatch.setattr(ck, "_cuda_ok", False)
    monkeypatch.setattr(ck, "_simulator_enabled", lambda: False)
    monkeypatch.setattr(ck.cuda, "is_available", lambda: False)
    assert main(["train", "--dataset", "karate", "--epochs", "1", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no CUDA GPU available; ") and "\n" not in err


def test_options_not_yet_on_the_device_are_refused_in_one_line(capsys):
    # GCN, GAT and SAGE (mean / sum / max, projected or not) train on the device; the LSTM aggregator and
    # mini-batches do not
    from gnn_scratch.cli import main
    for extra, message in ((["--aggr", "lstm"], "error: SAGEConv(aggr='lstm') cannot run on the GPU yet; "),
                           (["--batch-size", "8"], "error: mini-batch training (batch_size, --batch-size) runs on cpu, not 'cuda'")):
        argv = ["train", "--dataset", "karate", "--model", "sage", "--epochs", "1", "--device", "cuda"] + extra
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(message) and "\n" not in err, err


def test_docs_gpu_python_snippets_run():
    import re
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "gpu.md")
    blocks = re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", open(path, encoding="utf-8").read(), re.S | re.M)
    assert blocks
    namespace = {"__name__": "docs.gpu"}
    for n, code in enumerate(blocks):
        exec(compile(code, f"{path}:python-block-{n}", "exec"), namespace)
    assert namespace["result"].epochs_run == 2 and isinstance(namespace["state"]["conv1.W"], np.ndarray)


# =================================================================================== the benchmark
@pytest.fixture(scope="module")
def bench():
    from gnn_scratch.bench import gpu          # = scripts/bench_gpu.py (tests/test_bench_gpu.py checks it)
    return gpu


def test_bench_arguments(bench):
    assert bench.parse_count("10M") == 10_000_000 and bench.parse_count("2.5k") == 2500
    assert bench.parse_sizes("1M:10M,10M:100M") == [(10 ** 6, 10 ** 7), (10 ** 7, 10 ** 8)]
    for bad in ("ten", "-1", "1.5"):
        with pytest.raises(ValueError):
            bench.parse_count(bad)
    args = bench.parse_args(["--out", "x.json", "--sizes", "1k:5k", "--models", "gcn, sage"])
    assert (args.out, args.sizes, args.models, args.features, args.repeats) == ("x.json", [(1000, 5000)],
                                                                                 ["gcn", "sage"], 64, 10)
    default = bench.parse_args([])
    assert default.sizes == [(10 ** 6, 10 ** 7), (10 ** 7, 10 ** 8)]          # the two graphs
    assert (default.hidden, default.forms, default.models) == (64, list(bench.PYG_FORMS), ["gcn", "gat", "sage"])
    for bad in (["--sizes", "1M"], ["--sizes", "1:5"], ["--forms", "coo"], ["--budget", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_bench_bytes_moved_lower_bound(bench):
    # 3 rows, 4 sources, 5 edges, F = 2, float32: indptr 4*8, edges 5*(4+4), X 4*2*4, out 3*2*4
    assert bench.spmm_bytes(3, 4, 5, 2) == 32 + 40 + 32 + 24
    assert bench.spmm_bytes(3, 100, 5, 2) == 32 + 40 + 5 * 8 + 24          # at most nnz rows of X are read
    N, E = 10, 30
    assert bench.gcn_step_bytes(N, E, 8, 4, 2) == (2 * N * 8 * 4 + 2 * bench.spmm_bytes(N, N, E + N, 4)
                                                  + 2 * bench.spmm_bytes(N, N, E + N, 2))
    assert bench.summarize([3.0, 1.0, 2.0]) == dict(median=2.0, min=1.0, max=3.0, n=3)


def test_bench_table_and_no_gpu(bench, tmp_path):
    table = bench.format_table([
        dict(graph="g", op="SpMM F=64", impl="gnn_scratch", median=2.0, min=1.5, max=3.0, bound_ms=1.0),
        dict(graph="g", op="gcn step", impl="PyG", note="skipped: no torch")])
    lines = table.splitlines()
    assert lines[0].startswith("| graph | operation |") and len(lines) == 4
    assert "| 2.000 | 1.500-3.000 | 1.000 | 2.0 |" in lines[2] and lines[3].endswith("| skipped: no torch |")
    if REAL_GPU:
        return
    with pytest.raises(SystemExit) as e:                 # the simulator is no GPU for a benchmark
        bench.main(["--out", str(tmp_path / "gpu.json")])
    assert str(e.value).startswith("error: no CUDA GPU available;")
    assert not (tmp_path / "gpu.json").exists()


# ========================================================================================= real GPU
@pytest.mark.gpu
@pytest.mark.skipif(not REAL_GPU, reason="needs a real CUDA GPU (too slow for the simulator)")
def test_gcn_trains_on_the_gpu_like_on_the_cpu():
    data = csbm(seed=0)
    cpu, _ = run("gcn", data, seed=0, epochs=100)
    gpu, model = run("gcn", data, seed=0, epochs=100, device="cuda")
    assert gpu["device"] == "cuda" and all(placement.is_device(p) for p, _ in model.parameters())
    assert gpu["test_acc_mean"] >= 0.85 and abs(gpu["test_acc_mean"] - cpu["test_acc_mean"]) < 0.03
    # the device draws the CPU's dropout masks: the same training, to float32 rounding
    same, _ = run("gcn", data, seed=0, epochs=30, device="cuda")
    ref, _ = run("gcn", data, seed=0, epochs=30)
    assert abs(same["test_acc_mean"] - ref["test_acc_mean"]) <= 0.005


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
