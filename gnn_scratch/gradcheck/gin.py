"""Gradient-check cases of the graph-classification layers, float64, every parameter and the input:
the readouts (derivations/pooling.md), BatchNorm1d (derivations/batch_norm.md) and GINConv
(derivations/gin_conv.md), on a GraphBatch of random graphs with an isolated node, a self-loop, a
repeated edge and a one-node graph."""
import numpy as np

from .. import ops
from ..graph import Graph, GraphBatch
from ..nn import BatchNorm1d, GINConv, GlobalAddPool, GlobalMaxPool, GlobalMeanPool, Linear, ReLU, Sequential
from . import check_model_loss, check_module, random_test_graph
from .registry import case

F64 = np.float64
MARGIN = 1e-3   # distance kept from max ties and ReLU kinks, far beyond the 1e-6 finite-difference step


def fixture_batch():
    """Four graphs as one batch (22 nodes): the fixture (8 nodes: isolated node, self-loop, repeated edge),
    two smaller random graphs (each with the same three features) and a one-node graph without edges."""
    single = Graph.from_edge_index(np.zeros((2, 0), dtype=np.int64), num_nodes=1)
    return GraphBatch.from_graphs([random_test_graph(0), random_test_graph(1, 5, 7), single,
                                   random_test_graph(2, 8, 12)])


def max_tie_gap(batch, x):
    """Smallest gap, over graphs and features, between the largest and the second-largest node value."""
    gap = np.inf
    for xk in batch.unbatch(x):
        if xk.shape[0] > 1:
            top = np.sort(xk, axis=0)
            gap = min(gap, float(np.min(top[-1] - top[-2])))
    return gap


def input_away_from_ties(batch, F, seed):
    """A standard-normal x (N, F) whose per-graph maxima stay MARGIN away from ties."""
    for s in range(seed, seed + 200):
        x = np.random.default_rng(s).standard_normal((batch.num_nodes, F))
        if max_tie_gap(batch, x) > MARGIN:
            return x
    raise RuntimeError("no input away from max ties found in 200 draws")


@case("global pooling")
def global_pooling():
    b = fixture_batch()
    x = input_away_from_ties(b, 3, 0)
    return (check_module("GlobalAddPool", GlobalAddPool(), x, b)
            + check_module("GlobalMeanPool", GlobalMeanPool(), x, b)
            + check_module("GlobalMaxPool", GlobalMaxPool(), x, b))


def batch_norm(F, seed=0, **kwargs):
    """A BatchNorm1d in float64 with gamma, beta and running statistics drawn away from their initial 1, 0, 0, 1."""
    bn = BatchNorm1d(F, dtype=F64, **kwargs)
    rng = np.random.default_rng(seed)
    if bn.affine:
        bn.params["gamma"][:] = rng.uniform(0.5, 1.5, F)
        bn.params["beta"][:] = rng.uniform(-0.5, 0.5, F)
    if bn.track_running_stats:
        bn.buffers["running_mean"][:] = rng.uniform(-0.5, 0.5, F)
        bn.buffers["running_var"][:] = rng.uniform(0.5, 2.0, F)
    return bn


@case("BatchNorm1d")
def batch_norm_rows():
    x = 1.5 + 2.0 * np.random.default_rng(3).standard_normal((9, 4))     # mean and scale away from 0 and 1
    rows = []
    rows += check_module("BatchNorm1d train", batch_norm(4), x)
    rows += check_module("BatchNorm1d eval", batch_norm(4).eval(), x)
    rows += check_module("BatchNorm1d train, affine=False", batch_norm(4, affine=False), x)
    rows += check_module("BatchNorm1d eval, track_running_stats=False", batch_norm(4, track_running_stats=False).eval(), x)
    return rows


@case("BatchNorm1d + ReLU fused")
def batch_norm_relu_rows():
    """Sequential(BatchNorm1d, ReLU) runs as one fused op (ops.batch_norm_relu / batch_norm_relu_backward):
    its backward is the composition, checked here in both modes and without the affine transform."""
    x = 1.5 + 2.0 * np.random.default_rng(4).standard_normal((9, 4))
    rows = []
    modes = (("train", {}, True), ("eval", {}, False), ("train, affine=False", dict(affine=False), True))
    for label, kw, train in modes:
        seq = Sequential(bn=batch_norm(4, seed=1, **kw), act=ReLU())
        rows += check_module(f"BatchNorm1d + ReLU {label}", seq.train(train), x)
    return rows


def gin_mlp(F_in, F_hidden, F_out, seed):
    """PyG's GIN MLP: Linear - BatchNorm1d - ReLU - Linear, float64, biases drawn away from 0."""
    s = [int(q.generate_state(1)[0]) for q in np.random.SeedSequence(seed).spawn(3)]
    mlp = Sequential(lin1=Linear(F_in, F_hidden, seed=s[0], dtype=F64), bn=batch_norm(F_hidden, s[1]), act=ReLU(),
                     lin2=Linear(F_hidden, F_out, seed=s[2], dtype=F64))
    rng = np.random.default_rng(seed)
    mlp.lin1.params["b"][:] = rng.uniform(-0.5, 0.5, F_hidden)
    mlp.lin2.params["b"][:] = rng.uniform(-0.5, 0.5, F_out)
    return mlp


def pre_activation(conv, x, graph):
    """The ReLU's input inside conv's MLP: bn(lin1((1 + eps) x_dst + A x)), without touching the running statistics."""
    mlp = conv.nn
    z = mlp.lin1.params["b"] + ops.gin_aggregate(graph, x, conv.eps) @ mlp.lin1.params["W"]
    bn = mlp.bn
    use_batch = bn.training or not bn.track_running_stats
    mean, var = (z.mean(axis=0), z.var(axis=0)) if use_batch else (bn.buffers["running_mean"],
                                                                    bn.buffers["running_var"])
    return (z - mean) / np.sqrt(var + bn.eps) * bn.params["gamma"] + bn.params["beta"]


def input_away_from_kinks(conv, graph, F_in, seed):
    """A standard-normal x (N_src, F_in) whose pre-ReLU values inside conv stay MARGIN away from 0."""
    for s in range(seed, seed + 500):
        x = np.random.default_rng(s).standard_normal((graph.num_src, F_in))
        if np.min(np.abs(pre_activation(conv, x, graph))) > MARGIN:
            return x
    raise RuntimeError("no input away from ReLU kinks found in 500 draws")


def gin_rows(train_eps, eval_mode=False):
    rows = []
    mode = ", eval" if eval_mode else ""
    graphs = (("batch", fixture_batch()), ("bipartite", random_test_graph(1, 6, 14, num_src=9)))
    for label, g in graphs:
        conv = GINConv(gin_mlp(3, 5, 2, seed=7), eps=0.3, train_eps=train_eps)
        if eval_mode:
            conv.eval()
        x = input_away_from_kinks(conv, g, 3, 40)
        rows += check_module(f"GINConv train_eps={train_eps}{mode} [{label}]", conv, x, g)
    return rows


@case("GINConv")
def gin_conv():
    return gin_rows(False) + gin_rows(True)


@case("GINConv eval")
def gin_conv_eval():
    return gin_rows(True, eval_mode=True)


@case("GINConv + global_add_pool")
def gin_readout():
    """A GIN layer read out per graph, as in graph classification: the chain Sequential(conv, pool) on the batch."""
    b = fixture_batch()
    conv = GINConv(gin_mlp(3, 5, 2, seed=8), eps=-0.2, train_eps=True)
    x = input_away_from_kinks(conv, b, 3, 60)
    return check_module("GINConv -> GlobalAddPool", Sequential(conv=conv, pool=GlobalAddPool()), x, b)


@case("GIN model + loss")
def gin_model():
    """The GIN of Xu et al. (models/gin.py) in training mode through the cross-entropy of each graph's summed
    scores: every GINConv (eps trained), BatchNorm, readout and score layer, and the input (three paths
    reach x: its own readout, the first layer's root term and its neighbours)."""
    from ..models.gin import GIN
    from ..nn import SoftmaxCrossEntropy
    batch = fixture_batch()
    model = GIN(3, 2, hidden_channels=4, num_layers=3, dropout=0.0, train_eps=True, eps=0.1, seed=0, dtype=F64)
    x = np.random.default_rng(7).standard_normal((batch.num_nodes, 3))
    y = np.array([0, 1, 1, 0])
    return check_model_loss("GIN + loss", model, SoftmaxCrossEntropy(), x, batch, y, None)
