"""How many pairs of graphs do 1-WL and untrained message-passing models tell apart? (Xu et al. 2019, §3-5)

Xu et al. prove that a message-passing GNN separates no pair of graphs that 1-WL cannot separate,
that GIN (sum aggregation + MLP, injective on multisets) separates every pair 1-WL separates, and that
mean and max aggregators are strictly weaker. This module measures it on whole families of graphs,
with models whose weights are random (float64), so that the only thing tested is the architecture:

* ``wl``       -- 1-WL colour refinement run to stabilisation (``analysis.wl``);
* ``gin``      -- GINConv(MLP(Linear-act-Linear), eps) then act, per layer; readout: sum pooling of
                  every layer's output (and of the input), concatenated (Xu et al., eq. 4.2);
* ``sum``      -- GraphConv(aggr="add") (Morris et al. 2019's sum convolution) then act; sum readout;
* ``gcn``      -- GCNConv (Kipf & Welling: symmetric normalisation with self-loops) then act; sum readout;
* ``mean``     -- GraphConv(aggr="mean") then act; mean readout;
* ``max``      -- GraphConv(aggr="max") then act; max readout.

Every node starts with the same feature (the constant 1). All weights are Glorot-uniform and all biases
N(0, 1) (zero biases would make some units of a constant input exactly 0 everywhere); eps is
sqrt(2) - 1, an irrational-ish value so that (1 + eps) x_v cannot cancel against a neighbour sum.

The activation ``act`` is ELU by default. With ReLU the random MLPs are piecewise linear, and when all
the colours a layer sees fall on one linear piece the node map is affine there, so the sum over a
multiset collapses to (count, sum of inputs) and distinct multisets can coincide exactly: measured,
ReLU GIN / GraphConv(add) confuse 1..6 of the 494,495 pairs 1-WL separates among the connected graphs
on <= 7 nodes, depending on the seed and width; ELU (non-polynomial, analytic on its negative side)
separated all of them for every seed and width tried. So "random weights" give an injective GIN only
with a non-piecewise-linear activation (or trained / much wider MLPs); the theory asks for injectivity,
not for random ReLU weights.

"Told apart": embeddings e_a, e_b (rows of the readout) differ when max_f |e_a[f] - e_b[f]| / s_f > tol,
with s_f = max(1, max_g |e_g[f]|) the scale of feature f over the family. ``tol`` = 1e-10 by default:
float64 roundoff in these sums (at most a few hundred terms of magnitude <= s_f, a few layers deep)
stays below ~1e-13 relative (measured: the largest scaled distance of two graphs counted as equal is
< 1e-14), while the smallest genuine difference measured is ~1e-6, so the threshold sits four orders
from each. ``pair_table`` reports both numbers on every run, so the gap is measured, not assumed.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..graph import GraphBatch
from ..nn.activations import ELU, ReLU
from ..nn.conv.gcn_conv import GCNConv
from ..nn.conv.gin_conv import GINConv
from ..nn.conv.graph_conv import GraphConv
from ..nn.linear import Linear
from ..nn.sequential import Sequential
from .wl import wl_graph_classes

MODELS = ("gin", "sum", "gcn", "mean", "max")
READOUT = {"gin": "sum", "sum": "sum", "gcn": "sum", "mean": "mean", "max": "max"}
EPS = float(np.sqrt(2.0) - 1.0)
TOL = 1e-10


def _randomise_biases(module, rng):
    for layer in _walk(module):
        if "b" in layer.params:
            layer.params["b"][...] = rng.normal(size=layer.params["b"].shape)


def _walk(module):
    """The module and every sub-module (Sequential's layers, GINConv's nn)."""
    out = [module]
    if isinstance(module, Sequential):
        for layer in module.layers():
            out.extend(_walk(layer))
    if isinstance(module, GINConv):
        out.extend(_walk(module.nn))
    return out


ACTIVATIONS = {"relu": ReLU, "elu": ELU}


def build_layers(model, layers, hidden, seed=0, act="elu"):
    """The ``layers`` convolutions of ``model`` (see the module docstring), float64, seeded."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    rng = np.random.default_rng(seed)
    seeds = [int(s) for s in rng.integers(0, 2 ** 31, size=2 * layers)]
    convs, f_in = [], 1
    for k in range(layers):
        if model == "gin":
            mlp = Sequential(lin1=Linear(f_in, hidden, seed=seeds[2 * k], dtype=np.float64), act=ACTIVATIONS[act](),
                             lin2=Linear(hidden, hidden, seed=seeds[2 * k + 1], dtype=np.float64))
            conv = GINConv(mlp, eps=EPS, dtype=np.float64)
        elif model == "gcn":
            conv = GCNConv(f_in, hidden, seed=seeds[2 * k], dtype=np.float64)
        else:
            conv = GraphConv(f_in, hidden, aggr={"sum": "add"}.get(model, model), seed=seeds[2 * k],
                             dtype=np.float64)
        _randomise_biases(conv, rng)
        convs.append(conv)
        f_in = hidden
    return convs


def embed(model, graphs, layers=5, hidden=32, seed=0, act="elu"):
    """(B, (layers + 1) * ...) float64 graph embeddings of ``graphs`` (a list of (edge_index, num_nodes)).

    Row k = the readouts of the input and of every layer's output of graph k, concatenated.
    """
    batch = GraphBatch.from_edge_indices([ei for ei, _ in graphs], [int(n) for _, n in graphs])
    pool = {"sum": ops.global_add_pool, "mean": ops.global_mean_pool, "max": ops.global_max_pool}[READOUT[model]]
    x = np.ones((batch.num_nodes, 1), dtype=np.float64)
    outs = [pool(x, batch)]
    f = ACTIVATIONS[act]()
    for conv in build_layers(model, layers, hidden, seed, act):
        x = f.forward(conv.forward(x, batch))
        outs.append(pool(x, batch))
    return np.concatenate(outs, axis=1)


def scaled_distances(emb):
    """(B, B) max_f |e_a[f] - e_b[f]| / s_f, s_f = max(1, max_g |e_g[f]|)."""
    scale = np.maximum(1.0, np.abs(emb).max(axis=0))
    z = emb / scale
    B = z.shape[0]
    D = np.empty((B, B))
    for a in range(0, B, 64):                                   # blocks keep memory at 64 * B * F
        D[a:a + 64] = np.abs(z[a:a + 64, None, :] - z[None, :, :]).max(axis=2)
    return D


def wl_separated(graphs):
    """(B, B) bool: 1-WL (to stabilisation, constant initial colours) tells graphs a and b apart."""
    cls = wl_graph_classes(graphs)[-1]
    return cls[:, None] != cls[None, :]


def smallest_pair(mask, graphs):
    """Among pairs a < b with mask[a, b]: the one with the fewest nodes (n_a + n_b), then edges, then ids."""
    a, b = np.nonzero(np.triu(mask, 1))
    if a.size == 0:
        return None
    n = np.array([g[1] for g in graphs])
    m = np.array([g[0].shape[1] // 2 for g in graphs])
    k = np.lexsort((b, a, m[a] + m[b], n[a] + n[b]))[0]
    return int(a[k]), int(b[k])


def pair_table(graphs, models=MODELS, layers=5, hidden=32, seed=0, tol=TOL, act="elu"):
    """Count separated pairs per model on one family of graphs.

    Returns a dict: pairs (B(B-1)/2), wl (pairs 1-WL separates), and per model: separated, beyond_wl
    (separated but not by 1-WL: must be 0), missed (1-WL separates, the model does not),
    max_equal / min_different (the largest scaled distance of a pair counted as equal and the smallest
    of a pair counted as different), smallest_missed (a pair (a, b) of graph ids or None).
    """
    B = len(graphs)
    iu = np.triu_indices(B, 1)
    wl = wl_separated(graphs)
    out = {"pairs": iu[0].size, "wl": int(wl[iu].sum()), "models": {}}
    for model in models:
        D = scaled_distances(embed(model, graphs, layers, hidden, seed, act))
        sep = D > tol
        d = D[iu]
        same, diff = d[~sep[iu]], d[sep[iu]]
        out["models"][model] = dict(
            separated=int(sep[iu].sum()), beyond_wl=int((sep & ~wl)[iu].sum()), missed=int((wl & ~sep)[iu].sum()),
            max_equal=float(same.max()) if same.size else None, min_different=float(diff.min()) if diff.size else None,
            smallest_missed=smallest_pair(wl & ~sep, graphs))
    return out
