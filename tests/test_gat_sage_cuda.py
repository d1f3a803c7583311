"""GAT and GraphSAGE on the device: the per-head kernels, both layers, attention dropout, training, errors.

Runs under Numba's CUDA simulator (tests/conftest.py) or on a real GPU. The simulator runs every
GPU thread as a Python thread (a tiled matmul launch costs ~0.3 s there), so the graphs are small
(20 nodes, 6 features, 2-3 heads of 3-4 features) and the grids capped (``small_grids``). The CPU
layers are the reference: the same seed, and for dropout the CPU's own masks
(``dense.set_dropout_masks("host")``), must give the same numbers to 1e-5 in float32 and 1e-10
in float64. The fixture graph has an isolated node, a self-loop and a repeated edge; the
bipartite block has fewer destinations than sources and a destination without edges.
"""
import numpy as np
import pytest
import scipy.sparse as sp

from cuda_support import cuda, small_grids  # noqa: E402,F401  (skips without a GPU; the fixture, by name)

from gnn_scratch import dense  # noqa: E402
from gnn_scratch.data import csbm  # noqa: E402
from gnn_scratch.graph import Graph  # noqa: E402
from gnn_scratch.kernels import dense_cuda as dc  # noqa: E402
from gnn_scratch.models.gat import GAT  # noqa: E402
from gnn_scratch.models.sage import SAGE  # noqa: E402
from gnn_scratch.nn.conv.gat_conv import GATConv  # noqa: E402
from gnn_scratch.nn.conv.sage_conv import SAGEConv  # noqa: E402
from gnn_scratch.optim import Adam  # noqa: E402
from gnn_scratch.train import fit, run  # noqa: E402

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
N, F_IN = 20, 6
d = cuda.to_device


pytestmark = pytest.mark.usefixtures("small_grids")   # every test: small grids, device masks back after


def close(got, want, dtype, msg=""):
    np.testing.assert_allclose(dense.to_host(got), want, err_msg=msg, **TOL[np.dtype(dtype).type])


def square():
    """20 nodes: node 19 isolated, a self-loop 3 -> 3, the edge 0 -> 1 twice, a ring and chords."""
    src = list(range(18)) + [0, 0, 3, 5, 7, 11, 2, 18]
    dst = list(range(1, 19)) + [1, 4, 3, 9, 2, 17, 13, 0]
    return Graph.from_edge_index(np.array([src, dst]), num_nodes=N)


def bipartite():
    """A block: 8 destinations (the first 8 of the 20 sources), destination 5 without edges."""
    indptr = [0, 2, 5, 6, 8, 9, 9, 12, 14]
    indices = [8, 1, 0, 12, 19, 2, 3, 15, 9, 6, 10, 18, 7, 0]
    return Graph.from_csr(indptr, indices, num_src=N)


def features(dtype, sparse, seed=0):
    x = np.random.default_rng(seed).standard_normal((N, F_IN)).astype(dtype)
    if sparse:
        x[np.random.default_rng(seed + 1).random(x.shape) < 0.5] = 0
        return sp.csr_matrix(x)
    return x


def compare_layers(make, graph, x, dtype):
    """One forward and backward of the CPU layer and of its device twin: outputs, dX and every gradient."""
    cpu, gpu = make(), make().to("cuda")
    want = cpu.forward(x, graph)
    got = gpu.forward(dense.to_device(x), graph.to("cuda"))
    assert dense.is_device(got) and got.shape == want.shape
    close(got, want, dtype, "forward")
    G = np.random.default_rng(9).standard_normal(want.shape).astype(dtype)
    want_dx, got_dx = cpu.backward(G), gpu.backward(d(G))
    if want_dx is None:
        assert got_dx is None
    else:
        close(got_dx, want_dx, dtype, "dX")
    for k in cpu.grads:
        assert dense.is_device(gpu.grads[k])
        close(gpu.grads[k], cpu.grads[k], dtype, f"d{k}")


# ======================================================================================== kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_head_kernels_and_row_normalize_match_numpy(dtype):
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((70, 3, 2)).astype(dtype)    # 70 rows: two chunks of the column-sum tree
    att, da = rng.standard_normal((3, 2)).astype(dtype), rng.standard_normal((66, 3)).astype(dtype)
    close(dense.head_dot(d(Z), d(att), 66), np.einsum("nhf,hf->nh", Z[:66], att), dtype, "head_dot")
    out = d(np.ones((3, 2), dtype))
    dense.head_dot_backward_att(d(da), d(Z), out=out, accumulate=True)
    close(out, 1 + np.einsum("nh,nhf->hf", da, Z[:66]), dtype, "datt")
    first = dense.head_dot_backward_att(d(da), d(Z))
    assert dense.to_host(first).tobytes() == dense.to_host(dense.head_dot_backward_att(d(da), d(Z))).tobytes()
    dZ = rng.standard_normal(Z.shape).astype(dtype)
    got = dense.head_dot_backward_Z_(d(dZ), d(da), d(att))
    dZ[:66] += da[:, :, None] * att
    close(got, dZ, dtype, "dZ")
    close(dense.head_mean(d(Z)), Z.mean(axis=1), dtype, "head mean")
    G = rng.standard_normal((70, 2)).astype(dtype)
    close(dense.head_mean_backward(d(G), 3), np.broadcast_to((G / dtype(3))[:, None, :], Z.shape), dtype, "G / H")
    x = rng.standard_normal((9, 4)).astype(dtype)
    x[2] = 0                                             # a zero row stays 0; its gradient is g / eps
    y, norm = dense.row_normalize(d(x), 1e-12)
    n = np.sqrt((x * x).sum(axis=1))
    close(y, x / np.maximum(n, 1e-12)[:, None], dtype, "normalize")
    g = rng.standard_normal(x.shape).astype(dtype)
    yh = dense.to_host(y)
    want = (g - yh * (yh * g).sum(axis=1, keepdims=True)) / np.maximum(n, 1e-12)[:, None]
    want[2] = g[2] / dtype(1e-12)
    close(dense.row_normalize_backward(d(g), y, norm, 1e-12), want, dtype, "normalize backward")


# ============================================================================================ GAT
GAT_CASES = [  # dtype, heads, concat, sparse x, graph
    (np.float32, 1, True, False, square),
    (np.float32, 3, True, True, square),
    (np.float32, 2, False, False, bipartite),
    (np.float64, 3, False, True, square),
    (np.float64, 2, True, False, bipartite),
]


@pytest.mark.parametrize("dtype, heads, concat, sparse, graph", GAT_CASES,
                         ids=["f32-1head", "f32-3heads-sparse", "f32-mean-bipartite", "f64-mean-sparse",
                              "f64-concat-bipartite"])
def test_gat_layer_on_the_device_equals_the_cpu(dtype, heads, concat, sparse, graph):
    compare_layers(lambda: GATConv(F_IN, 3, heads=heads, concat=concat, add_self_loops=graph is square, seed=2,
                                   dtype=dtype),
                   graph(), features(dtype, sparse), dtype)


def test_gat_attention_mask_is_the_counter_hash_of_the_layer_seed():
    g, x = square(), features(np.float32, False)
    dg, dx = g.to("cuda"), dense.to_device(x)
    layer = GATConv(F_IN, 2, heads=2, dropout=0.4, seed=5).to("cuda")
    outs, masks = [], []
    for _ in range(2):
        outs.append(dense.to_host(layer.forward(dx, dg)))
        masks.append(dense.to_host(layer._cache.keep))
    seed, calls = layer.device_dropout_state
    assert calls == 2
    E = layer.message_graph(g).num_edges
    for call, mask in enumerate(masks):              # dense.dropout_keys: splitmix64 of (seed, call number)
        z = dense._splitmix64((seed << 32) | call)
        u = dc.dropout_uniform_host(E * 2, z & 0xFFFFFFFF, z >> 32).reshape(E, 2)
        assert mask.shape == (E, 2) and mask.dtype == np.uint8
        assert np.array_equal(mask, (u < np.float32(0.6)).astype(np.uint8)), f"call {call}"
    assert not np.array_equal(masks[0], masks[1]) and 0 < masks[0].sum() < masks[0].size
    cpu = GATConv(F_IN, 2, heads=2, dropout=0.4, seed=5)  # the CPU layer, given the device's first mask
    cpu._keep_mask = lambda E: masks[0]
    np.testing.assert_allclose(outs[0], cpu.forward(x, g), **TOL[np.float32])
    twin = GATConv(F_IN, 2, heads=2, dropout=0.4, seed=5).to("cuda")
    twin.forward(dx, dg)                              # the same seed: the same masks
    assert np.array_equal(dense.to_host(twin._cache.keep), masks[0])
    layer.eval()
    layer.forward(dx, dg)
    assert layer._cache.keep.shape == (0, 2)          # no dropout in evaluation
    alpha = layer.attention(dx, dg)                   # the coefficients themselves, computed on the device
    assert dense.is_device(alpha)
    np.testing.assert_allclose(dense.to_host(alpha), cpu.attention(x, g), **TOL[np.float32])


# =========================================================================================== SAGE
SAGE_CASES = [  # dtype, layer options, F_out, sparse x, graph
    (np.float32, dict(aggr="mean"), 4, False, square),             # H W first (F_out <= F_in)
    (np.float32, dict(aggr="sum"), 8, False, bipartite),           # aggregate first, N_dst < N_src
    (np.float64, dict(aggr="mean", concat=True), 4, True, square),  # W = [W_self; W_neigh], sparse H
    (np.float32, dict(aggr="sum", root_weight=False, normalize=True), 3, False, square),
]


@pytest.mark.parametrize("dtype, options, f_out, sparse, graph", SAGE_CASES,
                         ids=["f32-mean", "f32-sum-bipartite", "f64-concat-sparse", "f32-normalize"])
def test_sage_layer_on_the_device_equals_the_cpu(dtype, options, f_out, sparse, graph):
    def make():
        layer = SAGEConv(F_IN, f_out, seed=3, dtype=dtype, **options)
        layer.params["b"][:] = 0.1               # an isolated node's output is b: keep normalize off its eps branch
        return layer
    compare_layers(make, graph(), features(dtype, sparse), dtype)


# ======================================================================================= training
def small_data(seed=1):
    return csbm(num_nodes=N, num_classes=3, num_features=F_IN, avg_degree=3, train_per_class=3, num_val=5,
                num_test=6, seed=seed)


def test_gat_fit_on_the_device_equals_the_cpu():
    dense.set_dropout_masks("host")                  # the CPU's own masks (features and attention) on the device
    data = small_data()
    out = {}
    for device in ("cpu", "cuda"):
        model = GAT(F_IN, 3, hidden_channels=3, heads=2, dropout=0.5, seed=3).to(device)
        lines = []
        res = fit(model, data, Adam(model.parameters(), lr=0.05), epochs=2, log=lines.append, device=device)
        out[device] = (model, res, lines)
    (m0, r0, l0), (m1, r1, l1) = out["cpu"], out["cuda"]
    assert all(dense.is_device(p) for p, _ in m1.parameters())
    assert (r1.best_epoch, r1.val_acc, r1.test_acc) == (r0.best_epoch, r0.val_acc, r0.test_acc)
    for (n, p, _), (_, q, _) in zip(m0.named_parameters(), m1.named_parameters()):
        close(q, p, np.float32, n)
    for a, b in zip(l0, l1):                         # the same losses and accuracies to the printed digits
        assert a.split()[:9] == b.split()[:9], (a, b)


def test_sage_run_on_the_device_equals_the_cpu():
    data = small_data(seed=2)
    hp = dict(hidden_channels=4, dropout=0.0, epochs=2, patience=None, aggr="sum")
    cpu, m0 = run("sage", data, seed=4, **hp)
    gpu, m1 = run("sage", data, seed=4, device="cuda", **hp)
    assert gpu["device"] == "cuda" and all(dense.is_device(p) for p, _ in m1.parameters())
    assert (gpu["test_acc"], gpu["val_acc"], gpu["best_epoch"]) == (cpu["test_acc"], cpu["val_acc"],
                                                                    cpu["best_epoch"])
    for (n, p, _), (_, q, _) in zip(m0.named_parameters(), m1.named_parameters()):
        close(q, p, np.float32, n)


# ========================================================================================= errors
def test_options_without_a_device_path_are_refused_clearly():
    cases = [
        (lambda: SAGEConv(F_IN, 4, aggr="max").to("cuda"), r"SAGEConv\(aggr='max'\) cannot run on the GPU yet"),
        (lambda: SAGEConv(F_IN, 4, aggr="lstm").to("cuda"), r"SAGEConv\(aggr='lstm'\) cannot run on the GPU yet"),
        (lambda: SAGEConv(F_IN, 4, project=True).to("cuda"), r"SAGEConv\(project=True\) cannot run on the GPU"),
        (lambda: SAGE(F_IN, 3, aggr="max").to("cuda"), r"aggr='max'"),
        (lambda: GATConv(F_IN, 4, fused=False).to("cuda"), r"GATConv\(fused=False\) cannot run on the GPU; "
                                                           r"on the device use fused=True"),
        (lambda: GAT(F_IN, 3, fused=False).to("cuda"), r"use fused=True"),
        (lambda: run("sage", small_data(), device="cuda", aggr="lstm", epochs=1), r"aggr='lstm'"),
        (lambda: run("sage", small_data(), device="cuda", batch_size=4, epochs=1),
         r"mini-batch training \(batch_size\) runs on the CPU"),
    ]
    for make, message in cases:
        with pytest.raises(ValueError, match=message):
            make()
    layer = GATConv(F_IN, 4).to("cuda")
    layer.fused = False                               # changed after the move: refused at the forward
    with pytest.raises(ValueError, match="use fused=True"):
        layer.forward(dense.to_device(features(np.float32, False)), square().to("cuda"))
    with pytest.raises(ValueError, match=r"the graph is not; move it with graph.to\('cuda'\)"):
        GATConv(F_IN, 4).to("cuda").forward(dense.to_device(features(np.float32, False)), square())
    with pytest.raises(ValueError, match="sparse features on a square graph only"):
        SAGEConv(F_IN, 4).to("cuda").forward(dense.to_device(features(np.float32, True)), bipartite().to("cuda"))
