"""LayerNorm, full multi-head attention within each graph, GTLayer and GPSLayer (derivations/layer_norm.md,
derivations/graph_transformer.md).

What is checked, and against what (float64, outputs and every gradient):
1. ``LayerNorm`` against ``torch.nn.LayerNorm`` (with and without the affine map);
2. ``MultiheadAttention`` against ``torch.nn.MultiheadAttention(batch_first=True)`` run on each graph
   of a ``GraphBatch`` alone (the block-diagonal structure is the only mask), heads 1 and 2, with
   and without biases; the dense fallback against the fused ``ops.flash_attention`` when it exists;
3. ``GPSLayer`` against PyG's ``GPSConv`` (GINConv local branch, batch norm; and no norm);
4. ``GTLayer`` against the paper's equations written directly in torch (dense, with the
   multiplicity of repeated edges) and run by autograd;
5. attention dropout (eval = identity, same seed = same bits), bad input.
The finite-difference checks are the registered cases "LayerNorm", "MultiheadAttention",
"GTLayer", "GPSLayer" of ``gnn_scratch/gradcheck/transformer.py`` (run by tests/test_gradcheck.py).
"""
import numpy as np
import pytest

from gnn_scratch import ops
from gnn_scratch.gradcheck import random_test_graph
from gnn_scratch.graph import Graph, GraphBatch
from gnn_scratch.nn import GINConv, GPSLayer, GTLayer, LayerNorm, Linear, MultiheadAttention, ReLU, Sequential
from gnn_scratch.nn.attention import dense_attention, dense_attention_backward


def rel(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300))


def assert_grad(got, want, scale, name=""):
    """rel error <= 1e-10; or, where the true gradient is 0 (a bias that a softmax or a batch norm
    cancels), both sides at round-off: below 1e-12 of ``scale``, the size of a related gradient."""
    if np.max(np.abs(want)) < 1e-12 * scale:
        assert np.max(np.abs(got)) < 1e-12 * scale, name
    else:
        assert rel(got, want) < 1e-10, name


def batch(seed=0, sizes=(6, 3, 8)):
    """Fixture graphs (isolated node, self-loop, repeated edge each) as one GraphBatch."""
    return GraphBatch.from_graphs([random_test_graph(seed + i, num_nodes=n) for i, n in enumerate(sizes)])


def T(a):
    import torch
    return torch.from_numpy(np.ascontiguousarray(a))


# ------------------------------------------------------------------------------------------ LayerNorm
@pytest.mark.oracle
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_equals_torch(affine):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    ours = LayerNorm(7, eps=1e-5, elementwise_affine=affine, dtype=np.float64)
    theirs = torch.nn.LayerNorm(7, eps=1e-5, elementwise_affine=affine).double()
    if affine:
        ours.params["gamma"][:] = 1 + 0.3 * rng.standard_normal(7)
        ours.params["beta"][:] = rng.standard_normal(7)
        with torch.no_grad():
            theirs.weight.copy_(T(ours.params["gamma"]))
            theirs.bias.copy_(T(ours.params["beta"]))
    X = 3 * rng.standard_normal((10, 7)) + 2
    X[4] = 0.5                                   # a constant row: variance 0, only eps in the root
    out = ours.forward(X)
    xt = T(X).requires_grad_(True)
    ref = theirs(xt)
    assert rel(out, ref.detach().numpy()) < 1e-12
    G = rng.standard_normal(out.shape)
    dX = ours.backward(G)
    ref.backward(T(G))
    assert rel(dX, xt.grad.numpy()) < 1e-10
    if affine:
        assert rel(ours.grads["gamma"], theirs.weight.grad.numpy()) < 1e-10
        assert rel(ours.grads["beta"], theirs.bias.grad.numpy()) < 1e-10
    else:
        assert ours.params == {} and set(ours.buffers) == {"unit_gamma", "zero_beta"}


def test_layer_norm_float32_rows_are_normalised_and_bad_input_is_named():
    ln = LayerNorm(5)
    x = (np.random.default_rng(1).standard_normal((4, 5)) * 100 + 1e3).astype(np.float32)
    y = ln.forward(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=1), 1, rtol=1e-3)
    with pytest.raises(ValueError, match="x"):
        ln.forward(np.zeros((4, 6), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        ln.forward(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="eps"):
        LayerNorm(5, eps=0.0)
    with pytest.raises(ValueError, match="normalized_shape"):
        LayerNorm((2, 5))


# ------------------------------------------------------------------------------------------ full attention
def _torch_mha(torch, ours):
    E, H = ours.embed_dim, ours.num_heads
    theirs = torch.nn.MultiheadAttention(E, H, bias=ours.bias, batch_first=True).double()
    with torch.no_grad():
        theirs.in_proj_weight.copy_(T(ours.params["in_proj_weight"]))
        theirs.out_proj.weight.copy_(T(ours.params["out_proj_weight"]))
        if ours.bias:
            theirs.in_proj_bias.copy_(T(ours.params["in_proj_bias"]))
            theirs.out_proj.bias.copy_(T(ours.params["out_proj_bias"]))
    return theirs


@pytest.mark.oracle
@pytest.mark.parametrize("heads,bias", [(1, True), (2, True), (2, False)])
def test_multihead_attention_equals_torch_per_graph(heads, bias):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    gb = batch(3)
    E = 6
    ours = MultiheadAttention(E, heads, bias=bias, seed=4, dtype=np.float64)
    if bias:
        ours.params["in_proj_bias"][:] = rng.standard_normal(3 * E)
        ours.params["out_proj_bias"][:] = rng.standard_normal(E)
    theirs = _torch_mha(torch, ours)
    X = rng.standard_normal((gb.num_nodes, E))
    out = ours.forward(X, gb)
    xt = T(X).requires_grad_(True)
    ref = torch.cat([theirs(xt[None, a:b], xt[None, a:b], xt[None, a:b], need_weights=False)[0][0]
                     for a, b in zip(gb.graph_ptr[:-1], gb.graph_ptr[1:])])
    assert rel(out, ref.detach().numpy()) < 1e-12
    G = rng.standard_normal(out.shape)
    dX = ours.backward(G)
    ref.backward(T(G))
    assert rel(dX, xt.grad.numpy()) < 1e-10
    assert rel(ours.grads["out_proj_weight"], theirs.out_proj.weight.grad.numpy()) < 1e-10
    gW, tW = ours.grads["in_proj_weight"], theirs.in_proj_weight.grad.numpy()
    assert rel(gW, tW) < 1e-10
    if bias:
        assert rel(ours.grads["out_proj_bias"], theirs.out_proj.bias.grad.numpy()) < 1e-10
        gb_, tb = ours.grads["in_proj_bias"], theirs.in_proj_bias.grad.numpy()
        assert rel(gb_[:E], tb[:E]) < 1e-10 and rel(gb_[2 * E:], tb[2 * E:]) < 1e-10
        # the key bias shifts every score of a row by the same amount: softmax cancels it, gradient 0
        assert np.max(np.abs(tb[E:2 * E])) < 1e-12 * np.max(np.abs(gW))
        assert_grad(gb_[E:2 * E], tb[E:2 * E], np.max(np.abs(gW)))


def test_multihead_attention_on_one_graph_ignores_its_edges():
    rng = np.random.default_rng(5)
    g1 = random_test_graph(6, num_nodes=7)
    g2 = Graph.from_edge_index(np.array([[0], [1]]), 7)
    mha = MultiheadAttention(4, 2, seed=7, dtype=np.float64)
    X = rng.standard_normal((7, 4))
    np.testing.assert_array_equal(mha.forward(X, g1), mha.forward(X, g2))
    np.testing.assert_array_equal(mha.forward(X, g1), mha.forward(X, None))


def test_dense_attention_matches_the_definition_and_the_fused_op():
    rng = np.random.default_rng(8)
    ptr = np.array([0, 4, 5, 11])
    Q, K, V = (rng.standard_normal((11, 2, 3)) for _ in range(3))
    O, L = dense_attention(Q, K, V, ptr)
    for a, b in zip(ptr[:-1], ptr[1:]):
        for h in range(2):
            S = Q[a:b, h] @ K[a:b, h].T / np.sqrt(3)
            P = np.exp(S) / np.exp(S).sum(axis=1, keepdims=True)
            np.testing.assert_allclose(O[a:b, h], P @ V[a:b, h], rtol=1e-12)
            np.testing.assert_allclose(L[a:b, h], np.log(np.exp(S).sum(axis=1)), rtol=1e-12)
    if not hasattr(ops, "flash_attention"):
        pytest.skip("ops.flash_attention is not there yet: the layer uses the dense fallback")
    O2, L2 = ops.flash_attention(Q, K, V, ptr, 1 / np.sqrt(3))
    np.testing.assert_allclose(O2, O, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(L2, L, rtol=1e-12, atol=1e-13)
    dO = rng.standard_normal(O.shape)
    for got, want in zip(ops.flash_attention_backward(dO, Q, K, V, O2, L2, ptr, 1 / np.sqrt(3)),
                         dense_attention_backward(dO, Q, K, V, O, L, ptr)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_attention_dropout_is_identity_in_eval_and_repeatable():
    gb = batch(9)
    X = np.random.default_rng(10).standard_normal((gb.num_nodes, 4)).astype(np.float32)
    a, b = MultiheadAttention(4, 2, dropout=0.4, seed=11), MultiheadAttention(4, 2, dropout=0.4, seed=11)
    c = MultiheadAttention(4, 2, dropout=0.0, seed=11)
    out = a.forward(X, gb)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, b.forward(X, gb))
    assert not np.allclose(out, c.forward(X, gb))
    np.testing.assert_array_equal(a.eval().forward(X, gb), c.eval().forward(X, gb))


# ------------------------------------------------------------------------------------------ GPS
def _gps_pair(torch, pyg, norm, seed):
    C, H = 6, 2
    rng = np.random.default_rng(seed)
    gin = GINConv(Sequential(lin1=Linear(C, C, seed=1, dtype=np.float64), act=ReLU(),
                             lin2=Linear(C, C, seed=2, dtype=np.float64)))
    ours = GPSLayer(C, gin, heads=H, norm=norm, seed=3, dtype=np.float64)
    for name, p, _ in ours.named_parameters():
        if name.endswith((".b", "bias", ".beta")):
            p[...] = 0.5 * rng.standard_normal(p.shape)
        elif name.endswith(".gamma"):
            p[...] = 1 + 0.3 * rng.standard_normal(p.shape)
    tgin = pyg.GINConv(torch.nn.Sequential(torch.nn.Linear(C, C), torch.nn.ReLU(), torch.nn.Linear(C, C)))
    theirs = pyg.GPSConv(C, tgin, heads=H, norm=norm).double()
    pairs = [(gin.nn.lin1, tgin.nn[0]), (gin.nn.lin2, tgin.nn[2]), (ours.mlp.lin1, theirs.mlp[0]),
             (ours.mlp.lin2, theirs.mlp[3])]
    with torch.no_grad():
        for o, t in pairs:
            t.weight.copy_(T(o.params["W"].T))
            t.bias.copy_(T(o.params["b"]))
        a = ours.attn
        theirs.attn.in_proj_weight.copy_(T(a.params["in_proj_weight"]))
        theirs.attn.in_proj_bias.copy_(T(a.params["in_proj_bias"]))
        theirs.attn.out_proj.weight.copy_(T(a.params["out_proj_weight"]))
        theirs.attn.out_proj.bias.copy_(T(a.params["out_proj_bias"]))
        norms = []
        if norm is not None:
            for k in (1, 2, 3):
                o, t = getattr(ours, f"norm{k}"), getattr(theirs, f"norm{k}").module
                t.weight.copy_(T(o.params["gamma"]))
                t.bias.copy_(T(o.params["beta"]))
                norms.append((o, t))
    return ours, theirs, pairs, norms


@pytest.mark.oracle
@pytest.mark.parametrize("norm", ["batch_norm", None])
def test_gps_layer_equals_torch_geometric_gpsconv(norm):
    torch = pytest.importorskip("torch")
    pyg = pytest.importorskip("torch_geometric.nn")
    gb = batch(12, sizes=(5, 3, 7, 4))
    ours, theirs, pairs, norms = _gps_pair(torch, pyg, norm, 13)
    rng = np.random.default_rng(14)
    X = rng.standard_normal((gb.num_nodes, 6))
    out = ours.forward(X, gb)
    xt = T(X).requires_grad_(True)
    ref = theirs(xt, T(gb.edge_index()).long(), T(gb.batch))
    assert rel(out, ref.detach().numpy()) < 1e-12
    G = rng.standard_normal(out.shape)
    ours.zero_grad()
    dX = ours.backward(G)
    ref.backward(T(G))
    assert rel(dX, xt.grad.numpy()) < 1e-10
    for o, t in pairs:      # a bias right before a batch norm (GIN's last, the MLP's last) has gradient 0
        assert rel(o.grads["W"], t.weight.grad.numpy().T) < 1e-10
        assert_grad(o.grads["b"], t.bias.grad.numpy(), np.max(np.abs(o.grads["W"])))
    a, ta = ours.attn, theirs.attn
    assert rel(a.grads["in_proj_weight"], ta.in_proj_weight.grad.numpy()) < 1e-10
    assert rel(a.grads["out_proj_weight"], ta.out_proj.weight.grad.numpy()) < 1e-10
    for o, t in norms:
        assert rel(o.grads["gamma"], t.weight.grad.numpy()) < 1e-10
        assert rel(o.grads["beta"], t.bias.grad.numpy()) < 1e-10
    if norm == "batch_norm":    # the zero case above was exercised, not skipped
        assert np.max(np.abs(theirs.mlp[3].bias.grad.numpy())) < 1e-12 * np.max(np.abs(ours.mlp.lin2.grads["W"]))


# ------------------------------------------------------------------------------------------ GT
def _gt_reference(torch, layer, X, graph):
    """Dwivedi & Bresson's equations in dense torch: attention over in-edges (a repeated edge counts twice)."""
    N, C, H = X.shape[0], layer.channels, layer.heads
    d = C // H
    P = {name: T(p).requires_grad_(True) for name, p, _ in layer.named_parameters()}
    x = T(X).requires_grad_(True)
    A = np.zeros((N, N))
    np.add.at(A, (graph.dst_of_edge(), graph.indices), 1.0)                       # A[i, j] = multiplicity of j -> i
    A = T(A)
    q = (x @ P["attn.lin_query.W"]).reshape(N, H, d).transpose(0, 1)
    k = (x @ P["attn.lin_key.W"]).reshape(N, H, d).transpose(0, 1)
    v = (x @ P["attn.lin_value.W"]).reshape(N, H, d).transpose(0, 1)
    S = q @ k.transpose(1, 2) / np.sqrt(d)                                         # (H, N, N)
    S = S - S.max(dim=2, keepdim=True).values.detach()
    W = A * torch.exp(S)
    Z = W.sum(dim=2, keepdim=True)
    att = (W / torch.where(Z > 0, Z, torch.ones_like(Z))) @ v                    # no in-edge: 0
    h = att.transpose(0, 1).reshape(N, C) @ P["O.W"] + P["O.b"]
    h = x + h

    def bn(t, k):
        mu, var = t.mean(0), t.var(0, unbiased=False)
        return (t - mu) / torch.sqrt(var + 1e-5) * P[f"norm{k}.gamma"] + P[f"norm{k}.beta"]
    h1 = bn(h, 1)
    f = torch.relu(h1 @ P["ffn1.W"] + P["ffn1.b"]) @ P["ffn2.W"] + P["ffn2.b"]
    return bn(h1 + f, 2), x, P


@pytest.mark.oracle
def test_gt_layer_equals_the_papers_equations_in_torch():
    torch = pytest.importorskip("torch")
    gb = batch(15)
    layer = GTLayer(6, heads=2, norm="batch_norm", seed=16, dtype=np.float64)
    rng = np.random.default_rng(17)
    for name, p, _ in layer.named_parameters():
        if name.endswith((".b", ".beta")):
            p[...] = 0.5 * rng.standard_normal(p.shape)
        elif name.endswith(".gamma"):
            p[...] = 1 + 0.3 * rng.standard_normal(p.shape)
    X = rng.standard_normal((gb.num_nodes, 6))
    out = layer.forward(X, gb)
    ref, xt, P = _gt_reference(torch, layer, X, gb)
    assert rel(out, ref.detach().numpy()) < 1e-12
    G = rng.standard_normal(out.shape)
    layer.zero_grad()
    dX = layer.backward(G)
    ref.backward(T(G))
    assert rel(dX, xt.grad.numpy()) < 1e-10
    scale = np.max(np.abs(layer.O.grads["W"]))   # O.b feeds BatchNorm: gradient 0, round-off on both sides
    for name, _, g in layer.named_parameters():
        assert_grad(g, P[name].grad.numpy(), scale, name)


def test_gt_and_gps_layers_run_in_float32_with_every_norm_and_refuse_bad_arguments():
    gb = batch(18)
    X = np.random.default_rng(19).standard_normal((gb.num_nodes, 4)).astype(np.float32)
    for norm in ("batch_norm", "layer_norm", None):
        gt = GTLayer(4, heads=2, dropout=0.1, norm=norm)
        gps = GPSLayer(4, GINConv(Sequential(lin=Linear(4, 4))), heads=2, dropout=0.1, norm=norm)
        for layer in (gt, gps):
            out = layer.forward(X, gb)
            assert out.shape == X.shape and out.dtype == np.float32 and np.all(np.isfinite(out))
            dX = layer.backward(np.ones_like(out))
            assert dX.shape == X.shape and dX.dtype == np.float32
    with pytest.raises(ValueError, match="divisible"):
        GTLayer(5, heads=2)
    with pytest.raises(ValueError, match="divisible"):
        GPSLayer(5, None, heads=2)
    with pytest.raises(ValueError, match="norm"):
        GTLayer(4, norm="group_norm")
    with pytest.raises(TypeError, match="conv"):
        GPSLayer(4, "gin")
    with pytest.raises(ValueError, match="square"):
        MultiheadAttention(4, 2).forward(X[:5], random_test_graph(0, num_nodes=5, num_src=8))
