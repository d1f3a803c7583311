"""Deep Graph Infomax (Veličković et al. 2019) and its pieces: finite differences, the kernels, torch / PyG, errors,
training, and a one-seed Cora floor (derivations/dgi.md)."""
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from gnn_scratch import ops
from gnn_scratch.device import item, to_host
from gnn_scratch.embed.dgi import DGI, check_permutation, corruption, logreg_accuracies
from gnn_scratch.gradcheck import dgi as dgi_cases
from gnn_scratch.gradcheck import random_test_graph
from gnn_scratch.graph import Graph
from gnn_scratch.kernels import registry
from gnn_scratch.kernels.dgi_reference import CHUNK_ROWS, chunks
from gnn_scratch.nn import BackwardBeforeForward
from gnn_scratch.nn.activations import PReLU
from gnn_scratch.nn.bce import BCEWithLogitsLoss
from gnn_scratch.nn.bilinear import Bilinear

F64 = np.float64
REPO = Path(__file__).resolve().parents[1]


def _x(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape)


# --------------------------------------------------------------------------- finite differences
@pytest.mark.parametrize("name", ["PReLU", "Bilinear", "BCEWithLogitsLoss", "DGI loss"])
def test_gradcheck_rows_pass(name, backend):
    fn = {"PReLU": dgi_cases.prelu, "Bilinear": dgi_cases.bilinear, "BCEWithLogitsLoss": dgi_cases.bce_with_logits,
          "DGI loss": dgi_cases.dgi_loss}[name]
    rows = fn()
    expected = {"PReLU": 2 * 2, "Bilinear": 2 * 2 * 4, "BCEWithLogitsLoss": 1, "DGI loss": 2 * 6}[name]
    assert len(rows) == expected            # every parameter and every input, in every variant
    for r in rows:
        assert r.passed, f"{r.case} / {r.parameter}: relative error {r.error:.2e} with {backend} kernels"


# --------------------------------------------------------------------------- the kernels
def _prelu_backward(impl, G, x, a):
    dx, part, da = np.empty_like(x), np.empty((chunks(x.shape[0]), x.shape[1])), np.empty_like(a)
    fn = registry.resolve("prelu_backward", impl)
    if impl == "cuda":
        from numba import cuda
        d = [cuda.to_device(v) for v in (G, x, a, dx, part, da)]
        fn(*d)
        return d[3].copy_to_host(), d[5].copy_to_host()
    fn(G, x, a, dx, part, da)
    return dx, da


@pytest.mark.parametrize("impl", ["cpu", "cuda"])
@pytest.mark.parametrize("C", [1, 7])
def test_prelu_backward_over_many_chunks_equals_the_reference_and_the_definition(impl, C):
    if impl == "cuda":
        pytest.importorskip("numba.cuda")
    N = 2 * CHUNK_ROWS + 37                                     # three chunks, the last one partial
    G, x = _x(0, N, 7), _x(1, N, 7)
    a = np.random.default_rng(2).uniform(0.1, 0.4, C)
    dx_ref, da_ref = _prelu_backward("reference", G, x, a)
    dx, da = _prelu_backward(impl, G, x, a)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-14)
    np.testing.assert_allclose(da, da_ref, rtol=1e-12)
    terms = np.where(x > 0, 0.0, G * x)                        # the definition, written independently
    np.testing.assert_allclose(da_ref, terms.sum(axis=0) if C == 7 else [terms.sum()], rtol=1e-12)
    np.testing.assert_array_equal(dx_ref, np.where(x > 0, G, a * G))


def test_prelu_backward_is_the_same_bits_run_twice():
    G, x = _x(3, 700, 33).astype(np.float32), _x(4, 700, 33).astype(np.float32)
    a = np.array([0.25], np.float32)
    first = ops.prelu_backward(G, x, a)
    second = ops.prelu_backward(G, x, a)
    for u, v in zip(first, second):
        np.testing.assert_array_equal(u, v)


def test_bce_with_logits_never_overflows_in_float32():
    Z = np.array([[-200.0], [-90.0], [0.0], [90.0], [200.0]], np.float32)
    Y = np.array([[1.0], [0.0], [1.0], [1.0], [0.0]], np.float32)
    loss, cache = ops.bce_with_logits(Z, Y)
    dZ = ops.bce_with_logits_backward(cache)
    # -log sigma(-200) = 200, -log(1 - sigma(-90)) ~ 0, log 2, ~0, -log(1 - sigma(200)) = 200
    np.testing.assert_allclose(float(loss), (200 + np.log(2) + 200) / 5, rtol=1e-6)
    np.testing.assert_allclose(dZ[:, 0], np.array([-1, 0, -0.5, 0, 1]) / 5, atol=1e-7)
    assert np.isfinite(dZ).all()


def test_bilinear_rows_equals_einsum():
    x1, T, G = _x(5, 9, 4), _x(6, 9, 3, 4), _x(7, 9, 3)
    np.testing.assert_allclose(ops.bilinear_rows(x1, T), np.einsum("ni,noi->no", x1, T), rtol=1e-13)
    dx1, dT = ops.bilinear_rows_backward(G, x1, T)
    np.testing.assert_allclose(dx1, np.einsum("no,noi->ni", G, T), rtol=1e-13)
    np.testing.assert_allclose(dT, G[:, :, None] * x1[:, None, :], rtol=1e-14)


# --------------------------------------------------------------------------- layers: definitions
def test_prelu_forward_values_and_defaults():
    x = np.array([[-2.0, -0.5, 0.0, 1.5]])
    layer = PReLU(dtype=F64)
    assert layer.params["a"].shape == (1,) and layer.params["a"][0] == 0.25       # torch's nn.PReLU()
    np.testing.assert_array_equal(layer(x), [[-0.5, -0.125, 0.0, 1.5]])
    per = PReLU(4, init=0.1, dtype=F64)
    per.params["a"][:] = [1.0, 2.0, 3.0, 4.0]
    np.testing.assert_array_equal(per(x), [[-2.0, -1.0, 0.0, 1.5]])


def test_bilinear_one_vector_equals_the_same_vector_on_every_row():
    layer = Bilinear(5, 4, 2, seed=3, dtype=F64)
    layer.params["b"][:] = [0.5, -1.0]
    x1, s, G = _x(8, 6, 5), _x(9, 4), _x(10, 6, 2)
    want = np.einsum("ni,oij,j->no", x1, layer.params["W"], s) + layer.params["b"]
    y = layer(x1, s)
    np.testing.assert_allclose(y, want, rtol=1e-13)
    layer.zero_grad()
    dx1, ds = layer.backward(G)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    S = np.tile(s, (6, 1))
    np.testing.assert_allclose(layer(x1, S), want, rtol=1e-13)
    layer.zero_grad()
    dx1_rows, dS = layer.backward(G)
    np.testing.assert_allclose(dx1_rows, dx1, rtol=1e-13)
    np.testing.assert_allclose(dS.sum(axis=0), ds, rtol=1e-13)          # the broadcast vector sums its rows
    for k in grads:
        np.testing.assert_allclose(layer.grads[k], grads[k], rtol=1e-13, err_msg=k)


def test_dgi_initialisation_follows_the_reference():
    model = DGI(30, 16, seed=0)
    W, Wd = model.encoder.params["W"], model.discriminator.params["W"]
    assert W.dtype == np.float32 and W.shape == (30, 16) and Wd.shape == (1, 16, 16)
    assert np.abs(W).max() <= np.sqrt(6 / (30 + 16))                    # xavier_uniform_ on fc.weight
    assert np.abs(Wd).max() <= np.sqrt(6 / (16 * 16 + 16))              # xavier_uniform_ on Bilinear's 3-D weight
    assert np.abs(Wd).max() > 0.8 * np.sqrt(6 / (16 * 16 + 16))         # ... and spread over that range
    assert not model.encoder.params["b"].any() and not model.discriminator.params["b"].any()
    assert model.act.params["a"].tolist() == [0.25]


# --------------------------------------------------------------------------- the DGI loss, by hand
def dense_dgi_loss(model, x, g, perm):
    """The DGI loss written densely from the paper, independent of the batched implementation."""
    N = g.num_nodes
    A = g.to_scipy().toarray()                                  # A[i, j]: edges j -> i (rows = destinations)
    A = A - np.diag(np.diag(A)) + np.eye(N)                     # PyG's remaining self-loops: one of weight 1 each
    d = A.sum(axis=1)
    A_hat = A / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]
    W, b, a = model.encoder.params["W"], model.encoder.params["b"], model.act.params["a"][0]
    enc = lambda X: (lambda Z: np.where(Z > 0, Z, a * Z))(A_hat @ X @ W + b)   # noqa: E731
    H, Hc = enc(x), enc(x[perm])
    s = 1 / (1 + np.exp(-H.mean(axis=0)))
    Wd, bd = model.discriminator.params["W"][0], model.discriminator.params["b"][0]
    z = np.concatenate([H @ Wd @ s, Hc @ Wd @ s]) + bd
    y = np.concatenate([np.ones(N), np.zeros(N)])
    p = 1 / (1 + np.exp(-z))
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_dgi_loss_equals_its_dense_definition():
    g = random_test_graph(4)
    model = dgi_cases.random_dgi(6)
    x, perm = _x(8, 8, 5), np.random.default_rng(5).permutation(8)
    np.testing.assert_allclose(float(model(x, g, perm)), dense_dgi_loss(model, x, g, perm), rtol=1e-12)


def test_sparse_features_give_the_dense_loss_and_gradients_and_no_input_gradient():
    g = random_test_graph(1)
    x = _x(2, 8, 6)
    x[np.random.default_rng(3).random(x.shape) < 0.6] = 0
    perm = np.random.default_rng(4).permutation(8)
    model = dgi_cases.random_dgi(5, in_channels=6)
    model.zero_grad()
    loss = float(model(x, g, perm))
    dx = model.backward()
    grads = {k: g_.copy() for k, p, g_ in model.named_parameters()}
    model.zero_grad()
    loss_s = float(model(sp.csr_matrix(x), g, perm))
    assert model.backward() is None and dx.shape == x.shape
    assert loss_s == pytest.approx(loss, rel=1e-13)
    for k, _, g_ in model.named_parameters():
        np.testing.assert_allclose(g_, grads[k], rtol=1e-12, atol=1e-15, err_msg=k)


# --------------------------------------------------------------------------- oracles: torch and PyG
def _torch():
    return pytest.importorskip("torch")


@pytest.mark.oracle
@pytest.mark.parametrize("C", [1, 4])
def test_prelu_equals_torch(C):
    torch = _torch()
    layer = PReLU(C, dtype=F64)
    layer.params["a"][:] = np.random.default_rng(0).uniform(-0.3, 0.8, C)
    x, G = _x(1, 9, 4), _x(2, 9, 4)
    y = layer(x)
    layer.zero_grad()
    dx = layer.backward(G)
    ref = torch.nn.PReLU(C).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.params["a"]))
    xt = torch.from_numpy(x).requires_grad_()
    yt = ref(xt)
    yt.backward(torch.from_numpy(G))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(layer.grads["a"], ref.weight.grad.numpy(), rtol=1e-10)


@pytest.mark.oracle
@pytest.mark.parametrize("O", [1, 3])
@pytest.mark.parametrize("one_vector", [True, False])
def test_bilinear_equals_torch(O, one_vector):
    torch = _torch()
    layer = Bilinear(5, 4, O, seed=O, dtype=F64)
    layer.params["b"][:] = _x(3, O)
    x1 = _x(4, 7, 5)
    x2 = _x(5, 4) if one_vector else _x(5, 7, 4)
    y = layer(x1, x2)
    G = _x(6, *y.shape)
    layer.zero_grad()
    dx1, dx2 = layer.backward(G)
    ref = torch.nn.Bilinear(5, 4, O).double()
    with torch.no_grad():                                 # the same layout: W (O, I, J), b (O,)
        ref.weight.copy_(torch.from_numpy(layer.params["W"]))
        ref.bias.copy_(torch.from_numpy(layer.params["b"]))
    x1t, x2t = torch.from_numpy(x1).requires_grad_(), torch.from_numpy(x2).requires_grad_()
    yt = ref(x1t, x2t.expand(7, 4) if one_vector else x2t)      # DGI's c_x = c.expand_as(h)
    yt.backward(torch.from_numpy(G))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-14)
    for mine, theirs in ((dx1, x1t.grad), (dx2, x2t.grad), (layer.grads["W"], ref.weight.grad),
                         (layer.grads["b"], ref.bias.grad)):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.oracle
def test_bce_with_logits_equals_torch():
    torch = _torch()
    rng = np.random.default_rng(7)
    Z = rng.standard_normal((12, 1)) * 30
    Y = np.concatenate([np.ones((5, 1)), np.zeros((5, 1)), rng.random((2, 1))])
    L = BCEWithLogitsLoss()
    loss = float(L.forward(Z, Y))
    dZ = L.backward()
    Zt = torch.from_numpy(Z).requires_grad_()
    lt = torch.nn.BCEWithLogitsLoss()(Zt, torch.from_numpy(Y))
    lt.backward()
    assert loss == pytest.approx(lt.item(), rel=1e-12)
    np.testing.assert_allclose(dZ, Zt.grad.numpy(), rtol=1e-10, atol=1e-18)


def _graph_tensors(torch, g):
    ei = torch.from_numpy(g.edge_index())
    return ei, None if g.edge_weight is None else torch.from_numpy(g.edge_weight.copy())


def _ours(model, x, g, perm):
    """(loss, dx, {parameter: gradient}) of one forward and backward, all on the host."""
    model.zero_grad()
    loss = item(model(x, g, perm))
    dx = model.backward()
    return loss, dx, {name: np.array(to_host(grad)) for name, _, grad in model.named_parameters()}


@pytest.mark.oracle
@pytest.mark.parametrize("weighted", [False, True])
def test_dgi_loss_and_every_gradient_equal_a_torch_reimplementation_with_pyg_gcnconv(weighted):
    """The reference code's model (PetarV-/DGI: GCN + nn.PReLU(), AvgReadout + sigmoid, nn.Bilinear(n_h, n_h, 1),
    BCEWithLogitsLoss over [sc_1, sc_2] with labels [1, 0]) in torch, with PyG's GCNConv as the encoder."""
    torch = _torch()
    pyg = pytest.importorskip("torch_geometric.nn")
    g = random_test_graph(4)
    if weighted:
        g = Graph.from_edge_index(g.edge_index(), g.num_nodes, np.random.default_rng(9).uniform(0.5, 2.0, g.num_edges))
    model = dgi_cases.random_dgi(6)
    x, perm = _x(8, 8, 5), np.random.default_rng(5).permutation(8)
    loss, dx, grads = _ours(model, x, g, perm)

    conv = pyg.GCNConv(5, 6).double()
    prelu = torch.nn.PReLU().double()
    disc = torch.nn.Bilinear(6, 6, 1).double()
    with torch.no_grad():
        conv.lin.weight.copy_(torch.from_numpy(model.encoder.params["W"].T))       # PyG stores W^T
        conv.bias.copy_(torch.from_numpy(model.encoder.params["b"]))
        prelu.weight.copy_(torch.from_numpy(model.act.params["a"]))
        disc.weight.copy_(torch.from_numpy(model.discriminator.params["W"]))
        disc.bias.copy_(torch.from_numpy(model.discriminator.params["b"]))
    ei, ew = _graph_tensors(torch, g)
    xt = torch.from_numpy(x).requires_grad_()
    h_1 = prelu(conv(xt, ei, ew))
    h_2 = prelu(conv(xt[torch.from_numpy(perm)], ei, ew))
    c = torch.sigmoid(h_1.mean(0))
    logits = torch.cat([disc(h_1, c.expand_as(h_1)), disc(h_2, c.expand_as(h_2))])[:, 0]
    lbl = torch.cat([torch.ones(8), torch.zeros(8)]).double()
    lt = torch.nn.BCEWithLogitsLoss()(logits, lbl)
    lt.backward()

    assert loss == pytest.approx(lt.item(), rel=1e-10)
    theirs = {"encoder.W": conv.lin.weight.grad.T, "encoder.b": conv.bias.grad, "act.a": prelu.weight.grad,
              "discriminator.W": disc.weight.grad, "discriminator.b": disc.bias.grad}
    assert set(theirs) == set(grads)
    for k, v in theirs.items():
        np.testing.assert_allclose(grads[k], v.numpy(), rtol=1e-10, atol=1e-15, err_msg=k)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.oracle
def test_dgi_equals_pygs_deep_graph_infomax_without_the_bias():
    """PyG's ``DeepGraphInfomax`` scores z W s with no bias and sums the two branches' means:
    its loss is 2 x ours with b_d = 0 (up to its EPS = 1e-15 inside the logs), and so are the gradients."""
    torch = _torch()
    pyg = pytest.importorskip("torch_geometric.nn")
    g = random_test_graph(2)
    model = dgi_cases.random_dgi(3)
    model.discriminator.params["b"][:] = 0
    x, perm = _x(11, 8, 5), np.random.default_rng(12).permutation(8)
    loss, dx, grads = _ours(model, x, g, perm)

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.act = pyg.GCNConv(5, 6).double(), torch.nn.PReLU().double()

        def forward(self, x, edge_index):
            return self.act(self.conv(x, edge_index))

    ref = pyg.DeepGraphInfomax(6, encoder=Encoder(), summary=lambda z, *args: torch.sigmoid(z.mean(dim=0)),
                               corruption=lambda x, edge_index: (x[torch.from_numpy(perm)], edge_index)).double()
    with torch.no_grad():
        ref.encoder.conv.lin.weight.copy_(torch.from_numpy(model.encoder.params["W"].T))
        ref.encoder.conv.bias.copy_(torch.from_numpy(model.encoder.params["b"]))
        ref.encoder.act.weight.copy_(torch.from_numpy(model.act.params["a"]))
        ref.weight.copy_(torch.from_numpy(model.discriminator.params["W"][0]))
    xt = torch.from_numpy(x).requires_grad_()
    lt = ref.loss(*ref(xt, torch.from_numpy(g.edge_index())))
    lt.backward()
    assert 2 * loss == pytest.approx(lt.item(), rel=1e-10)
    for k, v in (("encoder.W", ref.encoder.conv.lin.weight.grad.T), ("encoder.b", ref.encoder.conv.bias.grad),
                 ("act.a", ref.encoder.act.weight.grad), ("discriminator.W", ref.weight.grad[None])):
        np.testing.assert_allclose(2 * grads[k], v.numpy(), rtol=1e-10, atol=1e-14, err_msg=k)
    np.testing.assert_allclose(2 * dx, xt.grad.numpy(), rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------- bad input
def test_errors_name_the_argument():
    g = random_test_graph(0)
    model = DGI(5, 4, dtype=F64)
    x = _x(0, 8, 5)
    with pytest.raises(ValueError, match=r"^perm must be a permutation of 0\.\.7 \(each node id exactly once\)$"):
        model(x, g, np.array([0, 1, 2, 3, 4, 5, 6, 6]))
    with pytest.raises(ValueError, match=r"^perm must have shape \(8,\) \(one entry per node\), got \(7,\)$"):
        model(x, g, np.arange(7))
    with pytest.raises(TypeError, match=r"^perm must be an integer array"):
        model(x, g, np.arange(8.0))
    with pytest.raises(ValueError, match=r"^perm must be a permutation"):
        check_permutation(np.array([1, 2, 3, 4, 5, 6, 7, 8]), 8)
    with pytest.raises(ValueError, match=r"^x must have shape \(8, 5\)"):
        model(_x(0, 7, 5), g, np.arange(8))
    with pytest.raises(TypeError, match=r"^x must have the layer's dtype float64, got float32$"):
        model(x.astype(np.float32), g, np.arange(8))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"^x must be finite, got nan at row 3, column 1$"):
        model(bad, g, np.arange(8))
    with pytest.raises(TypeError, match=r"^graph must be a gnn_scratch Graph"):
        model(x, "graph", np.arange(8))
    block = random_test_graph(1, 6, 14, num_src=8)
    with pytest.raises(ValueError, match=r"^graph must be square \(one node set\), got shape \(6, 8\)$"):
        model(x, block, np.arange(6))
    with pytest.raises(ValueError, match=r"^hidden_channels must be a positive int, got 0$"):
        DGI(5, 0)
    with pytest.raises(ValueError, match=r"^num_parameters must be a positive int, got 0$"):
        PReLU(0)
    with pytest.raises(ValueError, match=r"^init must be a finite number, got inf$"):
        PReLU(init=float("inf"))
    with pytest.raises(ValueError, match=r"^x must have shape \(N, 4\)"):
        PReLU(4, dtype=F64)(_x(0, 3, 5))
    with pytest.raises(TypeError, match=r"^ops\.prelu: x must be a dense array"):
        PReLU(dtype=F64)(sp.csr_matrix(_x(0, 3, 5)))
    layer = Bilinear(5, 4, 1, dtype=F64)
    with pytest.raises(ValueError, match=r"^x2 must have shape \(4,\) or \(N, 4\)"):
        layer(_x(0, 3, 5), _x(1, 5))
    with pytest.raises(ValueError, match=r"^x2 must have shape \(3, 4\)"):
        layer(_x(0, 3, 5), _x(1, 2, 4))
    with pytest.raises(ValueError, match=r"^x1 must have shape \(N, 5\)"):
        layer(_x(0, 3, 4), _x(1, 4))
    with pytest.raises(ValueError, match=r"^ops\.bce_with_logits: Y must have the shape of Z \(4, 1\), got \(4,\)$"):
        BCEWithLogitsLoss().forward(_x(0, 4, 1), np.ones(4))
    with pytest.raises(TypeError, match=r"^ops\.bce_with_logits: Y must have the dtype of Z \(float64\)"):
        BCEWithLogitsLoss().forward(_x(0, 4, 1), np.ones((4, 1), np.float32))
    with pytest.raises(ValueError, match=r"^ops\.prelu: a must have shape \(1,\) \(one shared slope\) or \(3,\)"):
        ops.prelu(_x(0, 2, 3), np.ones(2))


def test_backward_needs_the_loss_pass_and_upstream_gradients_are_checked():
    g = random_test_graph(0)
    model = DGI(5, 4, dtype=F64)
    x = _x(0, 8, 5)
    with pytest.raises(BackwardBeforeForward):
        model.backward()
    model(x, g, np.arange(8))
    model.embed(x, g)                     # the encoder's caches now hold another pass
    with pytest.raises(BackwardBeforeForward):
        model.backward()
    with pytest.raises(BackwardBeforeForward):
        PReLU().backward(np.ones((2, 3), np.float32))
    layer = Bilinear(3, 3, 1, dtype=F64)
    layer(_x(0, 4, 3), _x(1, 3))
    with pytest.raises(ValueError, match=r"^grad_out must have shape \(4, 1\)"):
        layer.backward(np.ones((4, 2)))


# --------------------------------------------------------------------------- the device (CUDA simulator or GPU)
def test_dgi_on_the_device_equals_the_cpu():
    """The same model on the device: loss, every gradient, the input gradient, a short fit and the embeddings
    (features stay host data; each step's [x; x[perm]] goes to the graph's device)."""
    pytest.importorskip("numba.cuda")
    from gnn_scratch.kernels.cuda import require_cuda
    try:
        require_cuda()
    except RuntimeError as e:
        pytest.skip(f"no GPU and no simulator: {e}")
    g = random_test_graph(4)
    x, perm = _x(8, 8, 5), np.random.default_rng(5).permutation(8)
    results = []
    for where in ("cpu", "cuda"):
        model = dgi_cases.random_dgi(6)
        graph = g if where == "cpu" else g.to("cuda")
        if where == "cuda":
            model.to("cuda")
        loss, dx, grads = _ours(model, x, graph, perm)
        fit = model.fit(x, graph, epochs=3, lr=0.01, seed=2)
        results.append((loss, dx, {k: to_host(v) for k, v in grads.items()}, fit.losses,
                        to_host(model.embed(x, graph))))
    (l_c, dx_c, g_c, f_c, h_c), (l_d, dx_d, g_d, f_d, h_d) = results
    assert l_d == pytest.approx(l_c, rel=1e-12)
    np.testing.assert_allclose(dx_d, dx_c, rtol=1e-10, atol=1e-15)
    for k in g_c:
        np.testing.assert_allclose(g_d[k], g_c[k], rtol=1e-10, atol=1e-15, err_msg=k)
    np.testing.assert_allclose(f_d, f_c, rtol=1e-10)
    np.testing.assert_allclose(h_d, h_c, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------- training
def _small_task(seed=0, N=60, F=12):
    """Two communities with community-dependent features: a graph DGI can learn something on."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], N // 2)
    src, dst = rng.integers(0, N, 400), rng.integers(0, N, 400)
    keep = (y[src] == y[dst]) | (rng.random(400) < 0.1)
    ei = np.stack([src[keep], dst[keep]])
    g = Graph.from_edge_index(np.concatenate([ei, ei[::-1]], axis=1), N)
    x = (rng.random((N, F)) < 0.2 + 0.4 * (np.arange(F) % 2 == y[:, None])).astype(np.float32)
    return x, g, y


def test_fit_lowers_the_loss_and_keeps_the_best_weights():
    x, g, _ = _small_task()
    model = DGI(x.shape[1], 16, seed=1)
    result = model.fit(x, g, epochs=40, patience=5, lr=0.01, seed=3)
    assert result.epochs <= 40 and len(result.losses) == result.epochs
    assert result.best_loss == min(result.losses) < result.losses[0] - 0.05
    if result.stopped_early:              # the reference stops when `patience` epochs did not improve
        assert result.epochs == result.best_epoch + 5 + 1
    # the kept weights are those that gave the best loss: replay that epoch's corruption
    rng = np.random.default_rng(3)
    perms = [corruption(g.num_nodes, rng) for _ in range(result.best_epoch + 1)]
    assert float(model(x, g, perms[-1])) == result.best_loss
    H = model.embed(x, g)
    assert H.shape == (g.num_nodes, 16) and H.dtype == np.float32


def test_same_seed_same_bits():
    x, g, _ = _small_task(1)
    runs = []
    for _ in range(2):
        model = DGI(x.shape[1], 8, seed=4)
        fit = model.fit(x, g, epochs=6, seed=5)
        runs.append((fit.losses, model.embed(x, g)))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_logreg_probe_separates_separable_embeddings_and_checks_its_input():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    Z = (np.eye(3)[y] * 4 + rng.standard_normal((90, 3)) * 0.1).astype(np.float32)
    accs = logreg_accuracies(Z, y, np.arange(30), np.arange(30, 90), runs=3, epochs=100)
    assert accs.shape == (3,) and (accs == 100.0).all()
    noise = logreg_accuracies(rng.standard_normal((90, 3)).astype(np.float32), y, np.arange(30), np.arange(30, 90),
                              runs=3, epochs=100)
    assert noise.mean() < 70
    with pytest.raises(ValueError, match=r"^y must be \(90,\) integer labels"):
        logreg_accuracies(Z, y.astype(float), np.arange(30), np.arange(30, 90))


def test_cora_one_seed_reaches_the_paper_range(data_root):
    """DGI seed 0 on Cora, evaluated with 10 probes (the full protocol is scripts/dgi_cora.py: 10 x 50)."""
    from gnn_scratch.data import get_dataset
    from gnn_scratch.data.dataset import row_normalize
    data = get_dataset("cora", root=data_root)
    x = row_normalize(data.x)
    model = DGI(x.shape[1], 512, seed=0)
    model.fit(x, data.graph, seed=0)
    Z = np.asarray(model.embed(x, data.graph))
    accs = logreg_accuracies(Z, data.y, np.flatnonzero(data.train_mask), np.flatnonzero(data.test_mask), runs=10)
    assert accs.mean() >= 80.5, accs             # untrained encoders reach ~70, raw features ~58


def test_derivation_snippets_run():
    text = (REPO / "derivations" / "dgi.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "dgi.md has no Python block"
    for code in blocks:
        exec(compile(code, "dgi.md", "exec"), {})
