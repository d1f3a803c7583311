"""TGCN and A3TGCN (derivations/tgcn.md): finite differences through time, PyTorch Geometric Temporal 0.56.2,
the split Linear against a Linear over the concatenation, the frame stack, the device, errors."""
import numpy as np
import pytest

from gnn_scratch import ops
from gnn_scratch.device import to_host
from gnn_scratch.gradcheck import relative_error
from gnn_scratch.gradcheck import tgcn as cases
from gnn_scratch.graph import Graph
from gnn_scratch.nn import BackwardBeforeForward, Linear
from gnn_scratch.nn.recurrent import A3TGCN, TGCN, Recurrent
from gnn_scratch.nn.recurrent.tgcn import ConcatLinear

F64 = np.float64
GATES = ("z", "r", "h")


def random_graph(seed, n=9, num_edges=24, weighted=False):
    """A random directed graph with an isolated node (the last), self-loops 0 -> 0 and 3 -> 3 (twice) and the
    edge 1 -> 2 three times; (Graph, edge_index (2, E) in input order, weights or None)."""
    rng = np.random.default_rng(seed)
    src = np.concatenate([rng.integers(0, n - 1, num_edges), [0, 1, 1, 1, 3, 3]])
    dst = np.concatenate([rng.integers(0, n - 1, num_edges), [0, 2, 2, 2, 3, 3]])
    ei = np.stack([src, dst])
    w = rng.uniform(0.5, 2.0, ei.shape[1]) if weighted else None
    return Graph.from_edge_index(ei, n, w), ei, w


def host(a):
    return np.array(to_host(a))


# --------------------------------------------------------------------------- finite differences
@pytest.mark.parametrize("rows", [cases.tgcn_rows, cases.a3tgcn_rows, cases.temporal_ops_rows],
                         ids=["TGCN", "A3TGCN", "ops"])
def test_gradcheck_rows_pass(rows, backend):
    got = rows()
    for r in got:
        assert r.passed, f"{r.case} / {r.parameter}: relative error {r.error:.2e} with {backend} kernels"
    checked = {(r.case, r.parameter) for r in got}
    if rows is cases.tgcn_rows:           # every parameter, every step's input and the initial state
        names = [f"cell.{k}" for k, _, _ in TGCN(3, 4).named_parameters()] + ["x_0", "x_3", "state0[0]"]
        assert all(("TGCN (4 steps)", k) in checked for k in names) and len(names) == 12 + 3
    elif rows is cases.a3tgcn_rows:
        names = [f"cell.{k}" for k, _, _ in A3TGCN(3, 4, 4).named_parameters()] + ["x_0", "state0[0]"]
        assert all(("A3TGCN (1 window of 4 periods)", k) in checked for k in names) and len(names) == 13 + 2
    else:
        assert len(got) == 3


# --------------------------------------------------------------------------- the split Linear
def test_concat_linear_equals_a_linear_over_the_concatenation():
    rng = np.random.default_rng(0)
    a, b, G = rng.standard_normal((7, 3)), rng.standard_normal((7, 4)), rng.standard_normal((7, 5))
    cat = ConcatLinear(3, 7, 5, seed=2, dtype=F64)
    lin = Linear(7, 5, dtype=F64)
    lin.params["W"][:], lin.params["b"][:] = cat.params["W"], cat.params["b"]
    y = cat.forward(a, b)
    cat.zero_grad()
    da, db = cat.backward(G)
    y_ref = lin.forward(np.concatenate([a, b], axis=1))
    lin.zero_grad()
    dcat = lin.backward(G)
    np.testing.assert_allclose(y, y_ref, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(np.concatenate([da, db], axis=1), dcat, rtol=1e-13, atol=1e-13)
    for k in ("W", "b"):
        np.testing.assert_allclose(cat.grads[k], lin.grads[k], rtol=1e-13, atol=1e-13)
    bound = 1 / np.sqrt(7)                           # torch.nn.Linear's initialisation, weights and bias
    assert np.abs(cat.params["W"]).max() <= bound and np.abs(cat.params["b"]).max() <= bound
    assert np.abs(cat.params["b"]).max() > 0
    with pytest.raises(ValueError, match="b must have shape"):
        cat.forward(a, b[:, :3])


# --------------------------------------------------------------------------- PyTorch Geometric Temporal


def _load_tgcn(torch, ref, cell):
    """Copy our TGCN's parameters into PyG Temporal's (Linear weights are stored transposed there)."""
    with torch.no_grad():
        for gate in GATES:
            conv, lin = getattr(cell, f"conv_{gate}"), getattr(cell, f"linear_{gate}")
            getattr(ref, f"conv_{gate}").lin.weight.copy_(torch.from_numpy(conv.params["W"].T))
            getattr(ref, f"conv_{gate}").bias.copy_(torch.from_numpy(conv.params["b"]))
            getattr(ref, f"linear_{gate}").weight.copy_(torch.from_numpy(lin.params["W"].T))
            getattr(ref, f"linear_{gate}").bias.copy_(torch.from_numpy(lin.params["b"]))


def _tgcn_param_pairs(ref, cell, prefix=""):
    """(name, our gradient, PyG's gradient in our layout) for every parameter of a TGCN."""
    pairs = []
    for gate in GATES:
        conv, lin = getattr(cell, f"conv_{gate}"), getattr(cell, f"linear_{gate}")
        rconv, rlin = getattr(ref, f"conv_{gate}"), getattr(ref, f"linear_{gate}")
        pairs += [(f"{prefix}conv_{gate}.W", conv.grads["W"], rconv.lin.weight.grad.numpy().T),
                  (f"{prefix}conv_{gate}.b", conv.grads["b"], rconv.bias.grad.numpy()),
                  (f"{prefix}linear_{gate}.W", lin.grads["W"], rlin.weight.grad.numpy().T),
                  (f"{prefix}linear_{gate}.b", lin.grads["b"], rlin.bias.grad.numpy())]
    return pairs


def _assert_close(checks, tol=1e-10):
    worst = 0.0
    for name, ours, theirs in checks:
        err = relative_error(ours, theirs)
        assert err <= tol, (name, err)
        worst = max(worst, err)
    return worst


def _pyg_edge_weight(torch, g, w):
    """PyG's edge_weight for our graph: the weights, or ones -- PyG ignores ``improved`` when edge_weight is
    None (add_remaining_self_loops then adds weight-1 loops), while we read an unweighted graph as weight-1
    edges and add loops of weight 2; with explicit ones the two definitions agree."""
    return torch.from_numpy(np.ones(g.num_edges) if w is None else w)


@pytest.mark.oracle
@pytest.mark.parametrize("add_self_loops", [True, False])
@pytest.mark.parametrize("improved", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_tgcn_equals_pyg_temporal(add_self_loops, improved, weighted, pyg_temporal):
    torch, C = pytest.importorskip("torch"), pyg_temporal
    T, fin, fout = 4, 3, 5
    for seed in range(2):
        g, ei, w = random_graph(seed, weighted=weighted)
        rng = np.random.default_rng(50 + seed)
        xs = [rng.standard_normal((g.num_nodes, fin)) for _ in range(T)]
        H0 = rng.standard_normal((g.num_nodes, fout))
        Gs = [rng.standard_normal((g.num_nodes, fout)) for _ in range(T)]
        cell = TGCN(fin, fout, improved=improved, add_self_loops=add_self_loops, seed=seed, dtype=F64)
        for _, p, _ in cell.named_parameters():          # GCN biases start at 0: make every one count
            p[...] = rng.uniform(-0.5, 0.5, p.shape)
        rnn = Recurrent(cell)
        outs = rnn.forward(xs, g, H0)
        rnn.zero_grad()
        dxs = rnn.backward(Gs)

        ref = C["TGCN"](fin, fout, improved=improved, add_self_loops=add_self_loops).double()
        _load_tgcn(torch, ref, cell)
        ei_t, ew = torch.from_numpy(ei), _pyg_edge_weight(torch, g, w)
        xts = [torch.from_numpy(x).requires_grad_(True) for x in xs]
        Ht0 = torch.from_numpy(H0).requires_grad_(True)
        H, touts = Ht0, []
        for t in range(T):
            H = ref(xts[t], ei_t, ew, H)
            touts.append(H)
        torch.autograd.backward(touts, [torch.from_numpy(G) for G in Gs])
        checks = [(f"H_{t + 1}", outs[t], touts[t].detach().numpy()) for t in range(T)]
        checks += [(f"dx_{t}", dxs[t], xts[t].grad.numpy()) for t in range(T)]
        checks += [("dH0", rnn.state_grad, Ht0.grad.numpy())] + _tgcn_param_pairs(ref, cell)
        _assert_close(checks)


@pytest.mark.oracle
def test_tgcn_zero_initial_state_and_pyg_quirks(pyg_temporal):
    """H=None is zeros in both (PyG makes them float32 whatever X's dtype; torch.cat promotes them, so float64
    results agree); and with edge_weight=None PyG ignores ``improved`` -- documented, not followed."""
    torch, C = pytest.importorskip("torch"), pyg_temporal
    g, ei, _ = random_graph(3)
    rng = np.random.default_rng(3)
    x, G = rng.standard_normal((g.num_nodes, 2)), rng.standard_normal((g.num_nodes, 3))
    cell = TGCN(2, 3, improved=True, seed=3, dtype=F64)
    out = cell.forward(x, g)
    cell.zero_grad()
    dx, dH = cell.backward(G)
    ref = C["TGCN"](2, 3, improved=True).double()
    _load_tgcn(torch, ref, cell)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = ref(xt, torch.from_numpy(ei), _pyg_edge_weight(torch, g, None))
    yt.backward(torch.from_numpy(G))
    _assert_close([("H_1", out, yt.detach().numpy()), ("dx", dx, xt.grad.numpy())]
                  + _tgcn_param_pairs(ref, cell))
    y_none = ref(xt, torch.from_numpy(ei), None).detach().numpy()   # PyG: improved silently off
    assert relative_error(out, y_none) > 1e-6
    plain = TGCN(2, 3, improved=False, seed=3, dtype=F64)
    assert relative_error(plain.forward(x, g), y_none) <= 1e-10


def _load_a3tgcn(torch, ref, cell):
    _load_tgcn(torch, ref._base_tgcn, cell.base_tgcn)
    with torch.no_grad():
        ref._attention.copy_(torch.from_numpy(cell.params["attention"]))


@pytest.mark.oracle
@pytest.mark.parametrize("weighted, improved, add_self_loops", [(False, False, True), (True, True, True),
                                                                (True, False, False)])
def test_a3tgcn_equals_pyg_temporal_over_chained_windows(weighted, improved, add_self_loops, pyg_temporal):
    """Three windows of P = 4 periods, each fed the previous output as H (H0 given): outputs, every window's
    dX, dH0, the attention vector and every base-cell parameter."""
    torch, C = pytest.importorskip("torch"), pyg_temporal
    T, P, fin, fout = 3, 4, 2, 3
    g, ei, w = random_graph(7, weighted=weighted)
    rng = np.random.default_rng(70)
    xs = [rng.standard_normal((g.num_nodes, fin, P)) for _ in range(T)]
    H0 = rng.standard_normal((g.num_nodes, fout))
    Gs = [rng.standard_normal((g.num_nodes, fout)) for _ in range(T)]
    cell = A3TGCN(fin, fout, P, improved=improved, add_self_loops=add_self_loops, seed=7, dtype=F64)
    for _, p, _ in cell.named_parameters():
        p[...] = rng.uniform(-0.5, 0.5, p.shape)
    rnn = Recurrent(cell)
    outs = rnn.forward(xs, g, H0)
    rnn.zero_grad()
    dxs = rnn.backward(Gs)

    ref = C["A3TGCN"](fin, fout, P, improved=improved, add_self_loops=add_self_loops).double()
    _load_a3tgcn(torch, ref, cell)
    ei_t, ew = torch.from_numpy(ei), _pyg_edge_weight(torch, g, w)
    xts = [torch.from_numpy(x).requires_grad_(True) for x in xs]
    Ht0 = torch.from_numpy(H0).requires_grad_(True)
    H, touts = Ht0, []
    for t in range(T):
        H = ref(xts[t], ei_t, ew, H)
        touts.append(H)
    torch.autograd.backward(touts, [torch.from_numpy(G) for G in Gs])
    checks = [(f"H_{t + 1}", outs[t], touts[t].detach().numpy()) for t in range(T)]
    checks += [(f"dx_{t}", dxs[t], xts[t].grad.numpy()) for t in range(T)]
    checks += [("dH0", rnn.state_grad, Ht0.grad.numpy()),
               ("attention", cell.grads["attention"], ref._attention.grad.numpy())]
    checks += _tgcn_param_pairs(ref._base_tgcn, cell.base_tgcn, "base_tgcn.")
    _assert_close(checks)


@pytest.mark.oracle
def test_a3tgcn_recurrent_periods_equals_pyg_tgcn_run_over_the_window(pyg_temporal):
    """``recurrent_periods=True`` against PyG Temporal's own TGCN carried across the periods (the paper's
    recurrence) with PyG's softmax-of-a-vector attention, written out in torch."""
    torch, C = pytest.importorskip("torch"), pyg_temporal
    P, fin, fout = 5, 3, 4
    g, ei, w = random_graph(8, weighted=True)
    rng = np.random.default_rng(80)
    x, H0, G = (rng.standard_normal((g.num_nodes, fin, P)), rng.standard_normal((g.num_nodes, fout)),
                rng.standard_normal((g.num_nodes, fout)))
    cell = A3TGCN(fin, fout, P, recurrent_periods=True, seed=8, dtype=F64)
    out = cell.forward(x, g, H0)
    cell.zero_grad()
    dx, dH = cell.backward(G)

    base = C["TGCN"](fin, fout).double()
    _load_tgcn(torch, base, cell.base_tgcn)
    att = torch.from_numpy(cell.params["attention"].copy()).requires_grad_(True)
    xt, Ht = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(H0).requires_grad_(True)
    probs = torch.softmax(att, dim=0)
    H, acc = Ht, 0
    for k in range(P):
        H = base(xt[:, :, k], torch.from_numpy(ei), torch.from_numpy(w), H)
        acc = acc + probs[k] * H
    acc.backward(torch.from_numpy(G))
    _assert_close([("H_accum", out, acc.detach().numpy()), ("dx", dx, xt.grad.numpy()),
                   ("dH", dH, Ht.grad.numpy()), ("attention", cell.grads["attention"], att.grad.numpy())]
                  + _tgcn_param_pairs(base, cell.base_tgcn))
    pyg_form = A3TGCN(fin, fout, P, seed=8, dtype=F64)             # same parameters, no recurrence
    assert relative_error(pyg_form.forward(x, g, H0), out) > 1e-3


# --------------------------------------------------------------------------- the definition, by hand
def test_a3tgcn_is_the_attention_weighted_sum_of_tgcn_steps_from_one_state():
    rng = np.random.default_rng(4)
    g, _, _ = random_graph(4)
    cell = A3TGCN(2, 3, periods=3, seed=4, dtype=F64)
    x, H = rng.standard_normal((g.num_nodes, 2, 3)), rng.standard_normal((g.num_nodes, 3))
    a = cell.params["attention"]
    p = np.exp(a - a.max()) / np.exp(a - a.max()).sum()
    tgcn = cell.base_tgcn
    want = sum(p[k] * tgcn.forward(np.ascontiguousarray(x[:, :, k]), g, H) for k in range(3))
    np.testing.assert_allclose(cell.forward(x, g, H), want, rtol=1e-13, atol=1e-14)
    assert np.all((a >= 0) & (a < 1))                          # PyG's init: U(0, 1)


def test_row_softmax_is_stable_and_sums_to_one():
    x = np.array([[1000.0, 999.0, -1000.0], [0.0, 0.0, 0.0]])
    p = ops.row_softmax(x)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(p[0, :2], [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))], rtol=1e-14)
    np.testing.assert_allclose(p[1], 1 / 3, rtol=1e-15)
    X = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(ops.periods_first(X)[3], X[:, :, 3])
    np.testing.assert_array_equal(ops.periods_last(ops.periods_first(X)), X)


def test_tgcn_state_never_reaches_two_hop_neighbours():
    """derivations/tgcn.md § 3: the graph acts on X only, so on the path 0 -> 1 -> 2 node 2's state after many
    steps depends on node 1's inputs (one hop) but never on node 0's (two hops); the gradient says the same."""
    g = Graph.from_edge_index(np.array([[0, 1], [1, 2]]), num_nodes=4)
    rng = np.random.default_rng(9)
    xs = [rng.standard_normal((4, 2)) for _ in range(6)]
    cell = TGCN(2, 3, seed=9, dtype=F64)
    rnn = Recurrent(cell)
    base = rnn.forward(xs, g)[-1]
    for node, reached in ((0, False), (1, True)):
        moved = [x.copy() for x in xs]
        for x in moved:
            x[node] += 1.0
        changed = np.abs(rnn.forward(moved, g)[-1][2] - base[2]).max()
        assert (changed > 1e-3) if reached else (changed == 0.0), (node, changed)
    rnn.forward(xs, g)
    G = np.zeros((4, 3))
    G[2] = 1.0
    dxs = rnn.backward([None] * 5 + [G])
    assert all(np.all(dx[0] == 0) for dx in dxs) and np.abs(dxs[0][1]).max() > 0


# --------------------------------------------------------------------------- the frame stack and modes
def test_eval_mode_keeps_one_frame_and_training_one_per_step():
    g, _, _ = random_graph(1)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((g.num_nodes, 2)) for _ in range(5)]
    cell = TGCN(2, 3, seed=1, dtype=F64)
    rnn = Recurrent(cell)
    train_outs = rnn.forward(xs, g)
    assert cell.saved_steps == 5
    cell.eval()
    eval_outs = rnn.forward(xs, g)
    assert cell.saved_steps == 1
    for a, b in zip(train_outs, eval_outs):
        np.testing.assert_array_equal(a, b)

    a3 = A3TGCN(2, 3, periods=4, seed=1, dtype=F64)
    windows = [rng.standard_normal((g.num_nodes, 2, 4)) for _ in range(3)]
    Recurrent(a3).forward(windows, g)
    assert a3.saved_steps == 3 and a3.base_tgcn.saved_steps == 4     # the base holds the last window
    a3.eval()
    out = a3.forward(windows[0], g)
    assert a3.saved_steps == 1 and a3.base_tgcn.saved_steps == 1
    with pytest.raises(BackwardBeforeForward, match="eval mode"):
        a3.backward(np.ones_like(out))


def test_needs_input_grad_false_skips_dx_only():
    g, _, _ = random_graph(2, weighted=True)
    rng = np.random.default_rng(2)
    for make, shape in ((lambda: TGCN(2, 3, seed=2, dtype=F64), (g.num_nodes, 2)),
                        (lambda: A3TGCN(2, 3, periods=3, seed=2, dtype=F64), (g.num_nodes, 2, 3))):
        x, H, G = (rng.standard_normal(shape), rng.standard_normal((g.num_nodes, 3)),
                   rng.standard_normal((g.num_nodes, 3)))
        grads = []
        for needs in (True, False):
            cell = make()
            cell.needs_input_grad = needs
            cell.forward(x, g, H)
            cell.zero_grad()
            dx, dH = cell.backward(G)
            assert (dx is None) == (not needs) and dH.shape == H.shape
            grads.append((dH, [gr.copy() for _, _, gr in cell.named_parameters()]))
        np.testing.assert_array_equal(grads[0][0], grads[1][0])
        for a, b in zip(grads[0][1], grads[1][1]):
            np.testing.assert_array_equal(a, b)


def test_same_seed_same_bits_and_float32_default():
    g, _, _ = random_graph(5)
    x = np.random.default_rng(5).standard_normal((g.num_nodes, 2, 3)).astype(np.float32)
    a, b = A3TGCN(2, 4, 3, seed=5), A3TGCN(2, 4, 3, seed=5)
    assert a.params["attention"].dtype == np.float32
    np.testing.assert_array_equal(a.forward(x, g), b.forward(x, g))
    c = A3TGCN(2, 4, 3, seed=6)
    assert not np.array_equal(c.params["attention"], a.params["attention"])


# --------------------------------------------------------------------------- the device (CUDA simulator or GPU)
def test_on_the_device_equals_the_cpu(monkeypatch):
    pytest.importorskip("numba.cuda")
    from gnn_scratch import device
    from gnn_scratch.kernels import cuda as ck
    from gnn_scratch.kernels import dense_cuda as dc
    try:
        ck.require_cuda()
    except RuntimeError as e:
        pytest.skip(f"no GPU and no simulator: {e}")
    if ck._simulator_enabled():           # tests/cuda_support.py's small grids: simulated threads are Python threads
        monkeypatch.setattr(dc, "_MAX_BLOCKS", 2)
        monkeypatch.setattr(ck, "_MAX_BLOCKS", 1)
        monkeypatch.setattr(ck, "_BLOCK_THREADS", 32)
    g, _, _ = random_graph(6, n=6, num_edges=10, weighted=True)
    rng = np.random.default_rng(6)
    # one window of the PyG form (the recurrent form runs the same ops; the simulator is slow): the window
    # transposes, the softmax, the products on reshaped device arrays and the base TGCN's two steps
    cell = A3TGCN(2, 3, periods=2, seed=6, dtype=F64)
    x, H, G = rng.standard_normal((6, 2, 2)), rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    want = [cell.forward(x, g, H)]
    cell.zero_grad()
    want += list(cell.backward(G))
    want_grads = {k: gr.copy() for k, _, gr in cell.named_parameters()}
    cell.to("cuda")
    got = [cell.forward(device.to_device(x), g.to("cuda"), device.to_device(H))]
    cell.zero_grad()
    got += list(cell.backward(device.to_device(G)))
    for w_, o in zip(want, got):
        np.testing.assert_allclose(host(o), w_, rtol=1e-10, atol=1e-12)
    for k, _, gr in cell.named_parameters():
        np.testing.assert_allclose(host(gr), want_grads[k], rtol=1e-10, atol=1e-12, err_msg=k)


# --------------------------------------------------------------------------- errors
def test_bad_input_raises_naming_the_argument():
    g, _, _ = random_graph(0)
    n = g.num_nodes
    rng = np.random.default_rng(0)
    cell = TGCN(2, 3, dtype=F64)
    x = rng.standard_normal((n, 2))
    with pytest.raises(ValueError, match="H must have shape"):
        cell.forward(x, g, np.zeros((n, 4)))
    with pytest.raises(TypeError, match="H must have"):
        cell.forward(x, g, np.zeros((n, 3), np.float32))
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="x"):
        cell.forward(bad, g)
    with pytest.raises(ValueError, match="x must have shape"):
        cell.forward(rng.standard_normal((n, 5)), g)
    with pytest.raises(TypeError, match="x must have the layer's dtype float64"):
        cell.forward(x.astype(np.float32), g)
    with pytest.raises(ValueError, match="needs the graph"):
        cell.forward(x)
    with pytest.raises(TypeError, match="improved must be a bool"):
        TGCN(2, 3, improved="yes")
    with pytest.raises(ValueError, match="out_channels must be a positive int"):
        TGCN(2, 0)
    with pytest.raises(BackwardBeforeForward):
        TGCN(2, 3).backward(np.zeros((n, 3), np.float32))

    a3 = A3TGCN(2, 3, periods=4, dtype=F64)
    window = rng.standard_normal((n, 2, 4))
    with pytest.raises(ValueError, match=r"x must have shape \(9, 2, 4\).*periods=4.*got \(9, 2, 3\)"):
        a3.forward(window[:, :, :3], g)
    with pytest.raises(ValueError, match="x must have shape"):
        a3.forward(window[:, :, 0], g)
    with pytest.raises(TypeError, match="x must have the layer's dtype float64"):
        a3.forward(window.astype(np.float32), g)
    with pytest.raises(ValueError, match="H must have shape"):
        a3.forward(window, g, np.zeros((n - 1, 3)))
    with pytest.raises(TypeError, match="H must have"):
        a3.forward(window, g, np.zeros((n, 3), np.float32))
    bad = window.copy()
    bad[1, 0, 3] = np.inf
    with pytest.raises(ValueError, match="x"):
        a3.forward(bad, g)
    with pytest.raises(ValueError, match="periods must be a positive int"):
        A3TGCN(2, 3, periods=0)
    with pytest.raises(TypeError, match="recurrent_periods must be a bool"):
        A3TGCN(2, 3, periods=2, recurrent_periods=1)
    out = a3.forward(window, g)
    with pytest.raises(ValueError, match="grad_out must have shape"):
        a3.backward(np.zeros((n, 4)))
    a3.backward(np.zeros_like(out))
    with pytest.raises(BackwardBeforeForward):
        a3.backward(np.zeros_like(out))


# --------------------------------------------------------------------------- the derivation's snippet runs
def test_derivation_snippets_run():
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "derivations" / "tgcn.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "tgcn.md has no Python block"
    for code in blocks:
        exec(compile(code, "tgcn.md", "exec"), {})
