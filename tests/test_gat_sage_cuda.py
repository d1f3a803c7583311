"""GAT and GraphSAGE on the device: the per-head kernels, both layers, attention dropout, training, errors.

Runs under Numba's CUDA simulator (tests/conftest.py) or on a real GPU. The simulator runs every
GPU thread as a Python thread (a tiled matmul launch costs ~0.3 s there), so the graphs are small
(20 nodes, 6 features, 2-3 heads of 3-4 features) and the grids capped (``small_grids``). The CPU
layers are the reference: the same seed must give the same numbers to 1e-5 in float32 and 1e-10
in float64, dropout included -- feature and attention masks are the counter hash of
``kernels/rng.py`` under keys drawn from each layer's own generator, the same bits on both sides.
The fixture graph has an isolated node, a self-loop and a repeated edge; the bipartite block has
fewer destinations than sources and a destination without edges. SAGEConv runs every aggregator
but the LSTM on the device (max, and the projection of PyG's ``project=True``, included).
"""
import copy

import numpy as np
import pytest
import scipy.sparse as sp

from cuda_support import cuda, small_grids  # noqa: E402,F401  (skips without a GPU; the fixture, by name)

from gnn_scratch import device as placement  # noqa: E402
from gnn_scratch import ops  # noqa: E402
from gnn_scratch.data import csbm  # noqa: E402
from gnn_scratch.graph import Graph  # noqa: E402
from gnn_scratch.kernels import rng as krng  # noqa: E402
from gnn_scratch.models.gat import GAT  # noqa: E402
from gnn_scratch.models.sage import SAGE  # noqa: E402
from gnn_scratch.nn.conv.gat_conv import GATConv  # noqa: E402
from gnn_scratch.nn.conv.sage_conv import SAGEConv  # noqa: E402
from gnn_scratch.optim import Adam  # noqa: E402
from gnn_scratch.train import fit, run  # noqa: E402

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
N, F_IN = 20, 6
d = cuda.to_device


pytestmark = pytest.mark.usefixtures("small_grids")   # every test: small grids


def close(got, want, dtype, msg=""):
    np.testing.assert_allclose(placement.to_host(got), want, err_msg=msg, **TOL[np.dtype(dtype).type])


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
    got = gpu.forward(placement.to_device(x), graph.to("cuda"))
    assert placement.is_device(got) and got.shape == want.shape
    close(got, want, dtype, "forward")
    G = np.random.default_rng(9).standard_normal(want.shape).astype(dtype)
    want_dx, got_dx = cpu.backward(G), gpu.backward(d(G))
    if want_dx is None:
        assert got_dx is None
    else:
        close(got_dx, want_dx, dtype, "dX")
    for k in cpu.grads:
        assert placement.is_device(gpu.grads[k])
        close(gpu.grads[k], cpu.grads[k], dtype, f"d{k}")


# ======================================================================================== kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_head_kernels_and_row_normalize_match_numpy(dtype):
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((70, 3, 2)).astype(dtype)    # 70 rows: two chunks of the column-sum tree
    att, da = rng.standard_normal((3, 2)).astype(dtype), rng.standard_normal((66, 3)).astype(dtype)
    close(ops.head_dot(d(Z), d(att), 66), np.einsum("nhf,hf->nh", Z[:66], att), dtype, "head_dot")
    out = d(np.ones((3, 2), dtype))
    ops.head_dot_backward_att(d(da), d(Z), out=out, accumulate=True)
    close(out, 1 + np.einsum("nh,nhf->hf", da, Z[:66]), dtype, "datt")
    first = ops.head_dot_backward_att(d(da), d(Z))
    assert placement.to_host(first).tobytes() == placement.to_host(ops.head_dot_backward_att(d(da), d(Z))).tobytes()
    dZ = rng.standard_normal(Z.shape).astype(dtype)
    got = ops.head_dot_backward_Z_(d(dZ), d(da), d(att))
    dZ[:66] += da[:, :, None] * att
    close(got, dZ, dtype, "dZ")
    close(ops.head_mean(d(Z)), Z.mean(axis=1), dtype, "head mean")
    G = rng.standard_normal((70, 2)).astype(dtype)
    close(ops.head_mean_backward(d(G), 3), np.broadcast_to((G / dtype(3))[:, None, :], Z.shape), dtype, "G / H")
    x = rng.standard_normal((9, 4)).astype(dtype)
    x[2] = 0                                             # a zero row stays 0; its gradient is g / eps
    y, norm = ops.row_normalize(d(x), 1e-12)
    n = np.sqrt((x * x).sum(axis=1))
    close(y, x / np.maximum(n, 1e-12)[:, None], dtype, "normalize")
    g = rng.standard_normal(x.shape).astype(dtype)
    yh = placement.to_host(y)
    want = (g - yh * (yh * g).sum(axis=1, keepdims=True)) / np.maximum(n, 1e-12)[:, None]
    want[2] = g[2] / dtype(1e-12)
    close(ops.row_normalize_backward(d(g), y, norm, 1e-12), want, dtype, "normalize backward")


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


def test_gat_attention_mask_is_the_cpus_counter_hash_mask(monkeypatch):
    g, x = square(), features(np.float32, False)
    dg, dx = g.to("cuda"), placement.to_device(x)
    masks = {"cpu": [], "cuda": []}                   # every mask a layer draws, by where it was drawn
    keep_mask = GATConv._keep_mask

    def spy(self, E, like):
        mask = keep_mask(self, E, like)
        masks[placement.device_of(like)].append(placement.to_host(mask))
        return mask
    monkeypatch.setattr(GATConv, "_keep_mask", spy)
    cpu = GATConv(F_IN, 2, heads=2, dropout=0.4, seed=5)
    layer = GATConv(F_IN, 2, heads=2, dropout=0.4, seed=5).to("cuda")
    stream = copy.deepcopy(cpu.rng)                   # the keys the layers will draw: one per training forward
    keys = [stream.integers(0, 1 << 64, dtype=np.uint64) for _ in range(2)]
    E = layer.message_graph(g).num_edges
    G = np.random.default_rng(4).standard_normal((N, 4)).astype(np.float32)
    for call, key in enumerate(keys):
        want, got = cpu.forward(x, g), layer.forward(dx, dg)
        mask = masks["cuda"][call]
        assert mask.shape == (E, 2) and mask.dtype == np.uint8
        want_mask = krng.keep_mask_host(key, krng.keep_threshold(0.6), E * 2).reshape(E, 2).astype(np.uint8)
        assert np.array_equal(mask, want_mask), f"call {call}"
        assert np.array_equal(masks["cpu"][call], mask), f"call {call}: the CPU drew the same mask"
        close(got, want, np.float32, f"forward, call {call}")
        close(layer.backward(placement.to_device(G)), cpu.backward(G), np.float32, f"dX, call {call}")
        for k in cpu.grads:
            close(layer.grads[k], cpu.grads[k], np.float32, f"d{k}, call {call}")
    assert not np.array_equal(masks["cuda"][0], masks["cuda"][1]) and 0 < masks["cuda"][0].sum() < E * 2
    twin = GATConv(F_IN, 2, heads=2, dropout=0.4, seed=5).to("cuda")
    twin.forward(dx, dg)                              # the same seed: the same masks
    assert np.array_equal(masks["cuda"][-1], masks["cuda"][0])
    layer.eval()
    layer.forward(dx, dg)
    assert masks["cuda"][-1].shape == (0, 2)          # no dropout in evaluation
    alpha = layer.attention(dx, dg)                   # the coefficients themselves, computed on the device
    assert placement.is_device(alpha)
    cpu.eval()
    np.testing.assert_allclose(placement.to_host(alpha), cpu.attention(x, g), **TOL[np.float32])


# =========================================================================================== SAGE
SAGE_CASES = [  # dtype, layer options, F_out, sparse x, graph
    (np.float32, dict(aggr="mean"), 4, False, square),             # H W first (F_out <= F_in)
    (np.float32, dict(aggr="sum"), 8, False, bipartite),           # aggregate first, N_dst < N_src
    (np.float64, dict(aggr="mean", concat=True), 4, True, square),  # W = [W_self; W_neigh], sparse H
    (np.float32, dict(aggr="sum", root_weight=False, normalize=True), 3, False, square),
    # max: the pooling aggregator (project=True by default), and the plain max of the features
    (np.float32, dict(aggr="max"), 4, False, square),
    (np.float64, dict(aggr="max"), 3, False, bipartite),
    (np.float64, dict(aggr="max", project=False), 4, False, square),
    (np.float32, dict(aggr="max", project=False, root_weight=False), 3, False, bipartite),
    (np.float64, dict(aggr="max", agg_channels=5, normalize=True), 3, True, square),  # sparse H, dense messages
    # project=True with the linear aggregators: messages ReLU(H W_proj + b_proj)
    (np.float32, dict(aggr="mean", project=True), 8, False, bipartite),
    (np.float64, dict(aggr="sum", project=True, agg_channels=3, concat=True), 4, True, square),
]
SAGE_IDS = ["f32-mean", "f32-sum-bipartite", "f64-concat-sparse", "f32-normalize", "f32-max-pool",
            "f64-max-pool-bipartite", "f64-max", "f32-max-bipartite-no-root", "f64-max-pool-sparse-normalize",
            "f32-mean-project-bipartite", "f64-sum-project-concat-sparse"]


def sage_layer(f_out, dtype, **options):
    layer = SAGEConv(F_IN, f_out, seed=3, dtype=dtype, **options)
    layer.params["b"][:] = 0.1               # an isolated node's output is b: keep normalize off its eps branch
    if "b_proj" in layer.params:
        layer.params["b_proj"][:] = 0.05     # messages ReLU(H W_proj + b_proj): no pre-activation at exactly 0
    return layer


@pytest.mark.parametrize("dtype, options, f_out, sparse, graph", SAGE_CASES, ids=SAGE_IDS)
def test_sage_layer_on_the_device_equals_the_cpu(dtype, options, f_out, sparse, graph):
    compare_layers(lambda: sage_layer(f_out, dtype, **options), graph(), features(dtype, sparse), dtype)


@pytest.mark.parametrize("project", [False, True], ids=["max", "max-pool"])
def test_sage_max_on_the_device_takes_the_cpus_argmax(project):
    # the same winners (tie: the first edge in CSR order) on both sides: the max's gradient goes to the same rows
    x = np.round(features(np.float64, False, seed=3))  # small integers: many exact ties
    g = square()
    cpu, gpu = (sage_layer(4, np.float64, aggr="max", project=project) for _ in range(2))
    gpu.to("cuda")
    want, got = cpu.forward(x, g), gpu.forward(placement.to_device(x), g.to("cuda"))
    assert np.array_equal(placement.to_host(gpu._cache[5]), cpu._cache[5])    # the argmax (N_dst, F_msg)
    close(got, want, np.float64, "forward")
    G = np.random.default_rng(9).standard_normal(want.shape)
    close(gpu.backward(placement.to_device(G)), cpu.backward(G), np.float64, "dX")


def test_sage_max_without_projection_on_sparse_features_runs_like_the_cpu_or_is_refused_clearly():
    # the CPU takes the max over the dense rows of a sparse H; the device must do the same or say it cannot
    x = features(np.float32, True)
    cpu, gpu = (sage_layer(4, np.float32, aggr="max", project=False) for _ in range(2))
    want = cpu.forward(x, square())
    try:
        got = gpu.to("cuda").forward(placement.to_device(x), square().to("cuda"))
    except ValueError as e:
        assert "sparse" in str(e) and "\n" not in str(e), e
    else:
        close(got, want, np.float32, "forward")


# ======================================================================================= training
def small_data(seed=1):
    return csbm(num_nodes=N, num_classes=3, num_features=F_IN, avg_degree=3, train_per_class=3, num_val=5,
                num_test=6, seed=seed)


def test_gat_fit_on_the_device_equals_the_cpu():
    # dropout 0.5 on the features and the attention: the device draws the CPU's masks, epoch after epoch
    data = small_data()
    out = {}
    for device in ("cpu", "cuda"):
        model = GAT(F_IN, 3, hidden_channels=3, heads=2, dropout=0.5, seed=3).to(device)
        lines = []
        res = fit(model, data, Adam(model.parameters(), lr=0.05), epochs=2, log=lines.append, device=device)
        out[device] = (model, res, lines)
    (m0, r0, l0), (m1, r1, l1) = out["cpu"], out["cuda"]
    assert all(placement.is_device(p) for p, _ in m1.parameters())
    assert (r1.best_epoch, r1.val_acc, r1.test_acc) == (r0.best_epoch, r0.val_acc, r0.test_acc)
    for (n, p, _), (_, q, _) in zip(m0.named_parameters(), m1.named_parameters()):
        close(q, p, np.float32, n)
    for a, b in zip(l0, l1):                         # the same losses and accuracies to the printed digits
        assert a.split()[:9] == b.split()[:9], (a, b)


@pytest.mark.parametrize("hp", [dict(aggr="sum", dropout=0.0), dict(aggr="max", dropout=0.5),
                                dict(aggr="mean", dropout=0.5)], ids=["sum", "max-pool-dropout", "mean-dropout"])
def test_sage_run_on_the_device_equals_the_cpu(hp):
    data = small_data(seed=2)
    hp = dict(hidden_channels=4, epochs=2, patience=None, **hp)
    cpu, m0 = run("sage", data, seed=4, **hp)
    gpu, m1 = run("sage", data, seed=4, device="cuda", **hp)
    assert gpu["device"] == "cuda" and all(placement.is_device(p) for p, _ in m1.parameters())
    assert (gpu["test_acc"], gpu["val_acc"], gpu["best_epoch"]) == (cpu["test_acc"], cpu["val_acc"],
                                                                    cpu["best_epoch"])
    names = [n for n, _, _ in m0.named_parameters()]
    assert any("W_proj" in n for n in names) == (hp["aggr"] == "max")
    for (n, p, _), (_, q, _) in zip(m0.named_parameters(), m1.named_parameters()):
        close(q, p, np.float32, n)


# ========================================================================================= errors
def test_options_without_a_device_path_are_refused_clearly():
    cases = [
        (lambda: SAGEConv(F_IN, 4, aggr="lstm").to("cuda"), r"SAGEConv\(aggr='lstm'\) cannot run on the GPU yet"),
        (lambda: SAGE(F_IN, 3, aggr="lstm").to("cuda"), r"aggr='lstm'"),
        (lambda: GATConv(F_IN, 4, fused=False).to("cuda"), r"GATConv\(fused=False\) cannot run on the GPU; "
                                                           r"on the device use fused=True"),
        (lambda: GAT(F_IN, 3, fused=False).to("cuda"), r"use fused=True"),
        (lambda: run("sage", small_data(), device="cuda", aggr="lstm", epochs=1), r"aggr='lstm'"),
        (lambda: run("sage", small_data(), device="cuda", batch_size=4, epochs=1),
         r"mini-batch training \(batch_size, --batch-size\) runs on cpu, not 'cuda'"),
    ]
    for make, message in cases:
        with pytest.raises(ValueError, match=message):
            make()
    # what the device gained: the max aggregator and the projection move
    for layer in (SAGEConv(F_IN, 4, aggr="max"), SAGEConv(F_IN, 4, project=True), SAGE(F_IN, 3, aggr="max")):
        layer.to("cuda")
        assert all(placement.is_device(p) for p, _ in layer.parameters())


def test_gat_unfused_after_the_move_is_refused_at_the_forward():
    layer = GATConv(F_IN, 4).to("cuda")
    layer.fused = False                               # changed after the move: refused at the forward
    with pytest.raises(ValueError, match="use fused=True"):
        layer.forward(placement.to_device(features(np.float32, False)), square().to("cuda"))


@pytest.mark.parametrize("make", [lambda: GATConv(F_IN, 4), lambda: SAGEConv(F_IN, 4)], ids=["gat", "sage"])
def test_device_features_on_a_host_graph_are_refused_clearly(make):
    with pytest.raises(ValueError, match=r"host array .* move the graph with graph.to\('cuda'\)"):
        make().to("cuda").forward(placement.to_device(features(np.float32, False)), square())


def test_sparse_device_features_on_a_bipartite_block_are_refused_clearly():
    # the self term reads the first N_dst rows of H, which a DeviceCSR does not slice
    with pytest.raises(ValueError, match="needs dense device features there, or a square graph"):
        SAGEConv(F_IN, 4).to("cuda").forward(placement.to_device(features(np.float32, True)), bipartite().to("cuda"))
