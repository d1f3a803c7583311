"""Gradient-check cases of GraphSAGE: SAGEConv (4 aggregators x self term x normalisation, square and
bipartite graphs), the packed LSTM, the SAGE model on sampled blocks, the unsupervised loss and the probe."""
import numpy as np

from ..models.sage import SAGE
from ..nn import ReLU, Sequential, SoftmaxCrossEntropy
from ..nn.lstm import LSTM, pack_neighbours
from ..nn.conv.sage_conv import SAGEConv
from ..sampling import sample_blocks
from ..unsupervised import LogisticRegressionProbe, UnsupervisedLoss
from . import check_function, check_model_loss, check_module, random_test_graph
from .registry import case

F64 = np.float64
MARGIN = 1e-3  # distance kept from ReLU kinks and max ties, far beyond the 1e-6 finite-difference step

SELF_TERMS = {"root_weight": dict(root_weight=True), "concat": dict(concat=True),
              "no self term": dict(root_weight=False)}


def _graphs():
    """The square fixture (8 nodes) and a bipartite block (6 destinations among 9 sources)."""
    return (("square", random_test_graph(0), 3, 2),       # F_out < F_in: the transform-first order
            ("bipartite", random_test_graph(1, 6, 14, num_src=9), 2, 3))  # F_out > F_in: aggregate first


def _max_tie_gap(graph, M):
    """Smallest gap, over rows and features, between the largest and the runner-up value of distinct sources."""
    gap = np.inf
    for i in range(graph.num_dst):
        src = np.unique(graph.indices[graph.indptr[i]:graph.indptr[i + 1]])  # a repeated edge is no tie
        if src.size > 1:
            top = np.sort(M[src], axis=0)
            gap = min(gap, float(np.min(top[-1] - top[-2])))
    return gap


def _input_away_from_kinks(conv, graph, F_in, seed):
    """A standard-normal H (N_src, F_in) whose ReLU pre-activations and max ties stay MARGIN away."""
    for s in range(seed, seed + 200):
        H = np.random.default_rng(s).standard_normal((graph.num_src, F_in))
        M = H
        if conv.project:
            pre = H @ conv.params["W_proj"] + conv.params["b_proj"]
            if np.min(np.abs(pre)) < MARGIN:
                continue
            M = np.maximum(pre, 0)
        if conv.aggr != "max" or _max_tie_gap(graph, M) > MARGIN:
            return H
    raise RuntimeError("no input away from kinks found in 200 draws")


def _conv_rows(aggr, extra=None):
    rows = []
    for label, g, F_in, F_out in _graphs():
        for self_name, self_kw in SELF_TERMS.items():
            for normalize in (False, True):
                kw = dict(self_kw, normalize=normalize, **(extra or {}))
                conv = SAGEConv(F_in, F_out, aggr=aggr, seed=11, dtype=F64, **kw)
                # nonzero biases: the check then covers their paths fully, and no output row is exactly
                # 0 (an isolated node without self term outputs b), where normalisation is not differentiable
                conv.params["b"][:] = np.random.default_rng(2).uniform(-0.5, 0.5, F_out)
                if conv.project:
                    conv.params["b_proj"][:] = np.random.default_rng(3).uniform(-0.5, 0.5, conv.agg_channels)
                name = f"SAGEConv {aggr}{' ' + str(extra) if extra else ''} [{label}, {self_name}" \
                       f"{', normalize' if normalize else ''}]"
                rows += check_module(name, conv, _input_away_from_kinks(conv, g, F_in, 20), g)
    return rows


@case("SAGEConv mean")
def sage_mean():
    return _conv_rows("mean") + _conv_rows("mean", dict(project=True))


@case("SAGEConv sum")
def sage_sum():
    return _conv_rows("sum")


@case("SAGEConv + ReLU fused")
def sage_conv_relu():
    """Sequential(SAGEConv, ReLU) -- as the SAGE model runs its hidden layers -- is SAGEConv.forward(relu=True): in
    evaluation mode, mean aggregation at the narrower width with a bias, the self term, the bias and the ReLU in
    one op (ops.mean_aggregate_bias) and the backward's mask rebuilt from the output; otherwise the ReLU op after
    the layer. Both orders, a bipartite block too, every self term, both modes; inputs whose ReLU inputs stay
    MARGIN from 0."""
    rows = []
    graphs = _graphs() + (("bipartite, transform first", random_test_graph(1, 6, 14, num_src=9), 3, 2),)
    for label, g, F_in, F_out in graphs:
        for self_name, self_kw in SELF_TERMS.items():
            for train in (True, False):
                conv = SAGEConv(F_in, F_out, aggr="mean", seed=13, dtype=F64, **self_kw)
                conv.params["b"][:] = np.random.default_rng(4).uniform(-0.5, 0.5, F_out)   # some outputs cut
                seq = Sequential(conv=conv, act=ReLU()).train(train)
                for s in range(30, 230):
                    H = np.random.default_rng(s).standard_normal((g.num_src, F_in))
                    if np.min(np.abs(conv.forward(H, g))) > MARGIN:
                        break
                else:
                    raise RuntimeError("no input away from the ReLU's kink found in 200 draws")
                rows += check_module(f"SAGEConv mean + ReLU [{label}, {self_name}, {'train' if train else 'eval'}]",
                                     seq, H, g)
    return rows


@case("SAGEConv max (pooling)")
def sage_max():
    return _conv_rows("max") + _conv_rows("max", dict(project=False))


@case("SAGEConv lstm")
def sage_lstm():
    return _conv_rows("lstm", dict(agg_channels=3))


@case("LSTM over packed neighbours")
def lstm_packed():
    rows = []
    for label, g, _, _ in _graphs():
        seqs = pack_neighbours(g, np.random.default_rng(5))
        x = np.random.default_rng(6).standard_normal((g.num_src, 3))
        rows += check_module(f"LSTM 3->4 [{label}]", LSTM(3, 4, seed=7, dtype=F64), x, seqs)
    return rows


@case("SAGE + loss")
def sage_model():
    rows = []
    g = random_test_graph(4, 10, 24)
    rng = np.random.default_rng(8)
    y, mask = rng.integers(0, 3, 10), rng.random(10) < 0.6
    mask[0] = True
    x = rng.standard_normal((10, 4))
    model = SAGE(4, 3, hidden_channels=5, dropout=0.5, seed=9, dtype="float64").train()
    rows += check_model_loss("SAGE mean + loss (full graph, train mode)", model, SoftmaxCrossEntropy(), x, g, y,
                             mask)
    mb = sample_blocks(g, np.array([0, 2, 5, 7]), [2, 3], seed=1)
    yb = rng.integers(0, 3, mb.seeds.size)
    model = SAGE(4, 3, hidden_channels=5, dropout=0.5, aggr="lstm", agg_channels=3, seed=10,
                 dtype="float64").train()
    rows += check_model_loss("SAGE lstm + loss (sampled blocks, train mode)", model, SoftmaxCrossEntropy(),
                             x[mb.input_nodes], mb.blocks, yb, None)
    return rows


@case("unsupervised loss")
def unsupervised_loss():
    rng = np.random.default_rng(12)
    Z = rng.standard_normal((9, 4))
    u, v = np.array([0, 1, 2, 2, 5]), np.array([3, 1, 4, 7, 8])  # (1, 1): a pair of a node with itself
    neg = rng.integers(0, 9, (5, 3))

    def forward(Z):
        return UnsupervisedLoss().forward(Z, u, v, neg)

    def backward(G, Z):
        L = UnsupervisedLoss()
        L.forward(Z, u, v, neg)
        return {"Z": G * L.backward()}
    return check_function("unsupervised loss (walk pairs + negatives)", forward, backward, {"Z": Z})


@case("logistic-regression probe")
def probe():
    rng = np.random.default_rng(13)
    Z, y = rng.standard_normal((7, 4)), rng.integers(0, 3, 7)
    W, b = rng.standard_normal((4, 3)), rng.standard_normal(3)
    p = LogisticRegressionProbe(3, l2=0.1)

    def backward(G, W, b, Z):
        _, dW, db, dZ = p.loss_and_grads(W, b, Z, y)
        return {"W": G * dW, "b": G * db, "Z": G * dZ}
    return check_function("logistic-regression probe", lambda W, b, Z: p.loss_and_grads(W, b, Z, y)[0], backward,
                          {"W": W, "b": b, "Z": Z})
