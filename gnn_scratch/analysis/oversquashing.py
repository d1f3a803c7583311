"""Over-squashing: how much a node's output can feel an input r hops away, and a task that needs it.

* ``sensitivity(model, x, graph, targets)`` -- S[t, j] = ||dh_i / dx_j||_F for i = targets[t] and every
  node j, the Frobenius norm of the (F_out, F_in) Jacobian block, computed with the model's own
  explicit backward (no autograd, no finite differences): one backward pass per output channel a
  with the upstream gradient e_i e_a^T returns dX[j, b] = dh_{i,a} / dx_{j,b} for every j, b at once.
  This is the quantity of Topping et al. (2022, "Understanding over-squashing and bottlenecks on
  graphs via curvature") and, summed instead of squared, Xu et al.'s (2018) influence score.
* ``hop_distances(graph, sources)`` -- breadth-first hop counts along the message direction.
* ``sensitivity_by_hop(S, D)`` -- the mean sensitivity of the nodes at each hop distance.
* ``NeighborsMatchNet`` / ``train_neighbors_match`` -- Alon & Yahav's (2021) Tree-NeighborsMatch
  model (encoder, r + 1 residual message-passing layers, the last one optionally fully adjacent
  "+FA", a linear read-out at the root) and its training loop (Adam, masked cross-entropy).

Everything here runs on the host (NumPy arrays and host graphs).
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph

from .. import ops
from ..data.neighbors_match import fully_adjacent_to_roots, tree_neighbors_match
from ..device import copy_, to_host
from ..graph.csr import Graph
from ..models.common import child_seeds
from ..nn import GATConv, GCNConv, GraphConv, Linear, ReLU, Sequential, SoftmaxCrossEntropy
from ..nn import conv as conv_layers
from ..nn.module import Module
from ..optim import Adam
from ..threads import blas_threads


# ============================================================================ sensitivity (Jacobian norms)
def _check_targets(targets, N):
    t = np.asarray(targets)
    if t.ndim == 0:
        t = t.reshape(1)
    if t.ndim != 1 or t.size == 0 or t.dtype.kind not in "iu":
        raise ValueError(f"targets must be a non-empty 1-D array of integer node ids, got shape {t.shape} "
                         f"and dtype {t.dtype}")
    if t.min() < 0 or t.max() >= N:
        bad = t[(t < 0) | (t >= N)][0]
        raise ValueError(f"targets must be node ids in [0, {N}), got {bad}")
    return t.astype(np.int64)


def sensitivity(model, x, graph, targets):
    """Jacobian norms S[t, j] = ||dh_i / dx_j||_F, i = targets[t], for every node j: (T, N) float64.

    model: a ``Module`` whose ``forward(x, graph)`` returns node states h (N, F_out) (h = h^(L), the
    model's output); x: (N, F_in) features (a scipy.sparse x is made dense: a sparse input has no
    gradient); graph: what the model takes; targets: (T,) node ids. ``dh_i/dx_j`` is the (F_out, F_in)
    block of the Jacobian and ||.||_F its Frobenius norm, sqrt(sum_{a,b} (dh_{i,a}/dx_{j,b})^2).

    How: one forward, then for every target i and output channel a one ``model.backward`` with the
    upstream gradient e_i e_a^T (a one-hot (N, F_out) array), whose returned dX holds the row
    dh_{i,a}/dx_{j,b} for all j, b; the squares are summed over a. T * F_out backward passes.

    State: the model runs in evaluation mode (dropout is the identity; the previous modes are
    restored); every layer with a ``needs_input_grad`` flag has it set True for the duration (the
    trainer turns it off on a first layer, which would end the chain with dX = None) and restored
    after; the gradients that the backward passes add into ``grads`` are undone -- every gradient
    array is copied before and written back after, so ``grads`` are left exactly as they were. The
    forward caches hold this call's forward afterwards.

    Raises ValueError for targets that are not node ids, TypeError if the model's backward returns
    no input gradient (a layer without one).
    """
    X = x.toarray() if sp.issparse(x) else np.asarray(to_host(x))
    dtype = model.param_dtype or X.dtype
    X = np.ascontiguousarray(X, dtype=dtype)
    t = _check_targets(targets, X.shape[0])

    modules = [m for _, m in model.modules()]
    modes = [m.training for m in modules]
    flags = [(m, "needs_input_grad" in vars(m), m.needs_input_grad) for m in modules if hasattr(m, "needs_input_grad")]
    saved_grads = [(g, np.array(to_host(g), copy=True)) for _, _, g in model.named_parameters()]
    try:
        model.eval()
        for m, _, _ in flags:
            m.needs_input_grad = True
        h = model.forward(X, graph)
        N, F_out = h.shape
        S = np.zeros((t.size, X.shape[0]), dtype=np.float64)
        G = np.zeros((N, F_out), dtype=h.dtype)
        for k, i in enumerate(t):
            for a in range(F_out):
                G[i, a] = 1
                dX = model.backward(G)
                G[i, a] = 0
                if dX is None:
                    raise TypeError(f"{type(model).__name__}.backward returned no input gradient: a layer of it "
                                    "does not compute dL/dx, so the Jacobian cannot be read off its backward")
                dX = np.asarray(to_host(dX), dtype=np.float64)
                S[k] += np.einsum("jb,jb->j", dX, dX)
        return np.sqrt(S)
    finally:
        for m, mode in zip(modules, modes):
            m.training = mode
        for m, had, old in flags:
            if had:
                m.needs_input_grad = old
            else:
                del m.needs_input_grad
        for g, before in saved_grads:
            copy_(g, before)


def hop_distances(graph, sources):
    """D[k, j] = the number of edges on a shortest directed path j -> sources[k]: (K, N) float64, inf if none.

    The breadth-first search starts at each ``sources[k]`` and walks the edges backwards (destination
    to source, scipy.sparse.csgraph on the destination-major adjacency), so D[k, j] is the number of
    message-passing layers after which x_j can first reach the state of node sources[k]; an
    L-layer model's h_i cannot depend on an x_j with D > L. For an undirected graph (every edge both
    ways) this is the ordinary hop distance. graph: a square ``Graph`` (a ``GraphBatch`` too);
    sources: (K,) node ids. Raises ValueError for a non-square graph or bad ids.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a Graph, got {type(graph).__name__}")
    host = graph.to("cpu")
    if host.num_dst != host.num_src:
        raise ValueError(f"hop_distances needs a square graph, got shape {host.shape}")
    s = _check_targets(sources, host.num_nodes)
    A = host.to_scipy(np.ones(host.num_edges))               # A[i, j] != 0 iff an edge j -> i
    return csgraph.shortest_path(A, method="D", directed=True, unweighted=True, indices=s).reshape(s.size, -1)


def sensitivity_by_hop(S, D, normalize=False, max_hop=None):
    """The mean of S over the (target, node) pairs at each hop distance: (hops, mean, count).

    S, D: (T, N) sensitivities and hop distances (``sensitivity``, ``hop_distances`` with the same
    targets as sources). With ``normalize``, each target's row is first divided by its sum over all
    nodes (the influence distribution of Xu et al., 2018, with Frobenius norms), so that models of
    different scale compare. Pairs at infinite distance are left out; ``max_hop`` cuts the range.
    hops: (H,) int64, the distances that occur; mean: (H,) float64; count: (H,) int64 pairs each.
    """
    S, D = np.asarray(S, dtype=np.float64), np.asarray(D, dtype=np.float64)
    if S.shape != D.shape or S.ndim != 2:
        raise ValueError(f"S and D must be (T, N) arrays of the same shape, got {S.shape} and {D.shape}")
    if normalize:
        total = S.sum(axis=1, keepdims=True)
        S = np.divide(S, total, out=np.zeros_like(S), where=total > 0)
    finite = np.isfinite(D)
    if max_hop is not None:
        finite &= D <= max_hop
    d = D[finite].astype(np.int64)
    hops = np.unique(d)
    count = np.bincount(d)[hops]
    mean = np.bincount(d, weights=S[finite])[hops] / count
    return hops, mean, count


# ============================================================================ Tree-NeighborsMatch
CONVS = ("gcn", "gat", "graphconv", "gin")


def has_gin():
    """Whether this library has ``GINConv`` yet (written alongside this module)."""
    return hasattr(conv_layers, "GINConv")


def make_conv(kind, width, seed, dtype):
    """One width -> width message-passing layer of ``kind`` (CONVS), the way Alon & Yahav configure it.

    gat: 4 heads of width/4, concatenated (their ``GATConv(in, out // heads, heads)``); gin: GINConv
    with a Linear-ReLU-Linear MLP (theirs adds batch norms); graphconv: GraphConv with sum aggregation.
    """
    if kind == "gcn":
        return GCNConv(width, width, seed=seed, dtype=dtype)
    if kind == "gat":
        if width % 4:
            raise ValueError(f"gat needs a width divisible by its 4 heads, got {width}")
        return GATConv(width, width // 4, heads=4, concat=True, seed=seed, dtype=dtype)
    if kind == "graphconv":
        return GraphConv(width, width, aggr="add", seed=seed, dtype=dtype)
    if kind == "gin":
        if not has_gin():
            raise ValueError("conv 'gin' needs gnn_scratch.nn.conv.GINConv, which this library does not have yet")
        s = child_seeds(seed, 2)
        mlp = Sequential(lin1=Linear(width, width, seed=s[0], dtype=dtype), act=ReLU(),
                         lin2=Linear(width, width, seed=s[1], dtype=dtype))
        return conv_layers.GINConv(mlp)
    raise ValueError(f"conv must be one of {', '.join(CONVS)}, got {kind!r}")


class NeighborsMatchNet(Module):
    """Alon & Yahav's (2021) Tree-NeighborsMatch model: h0 = x W_enc + b; h_l = h_{l-1} + ReLU(conv_l(h_{l-1}));
    logits = h_L W_out, read at the roots.

    x: (N, F_in) one-hot (key, label) features (``tree_neighbors_match``), a ``GraphBatch`` of trees;
    returns logits (N, num_classes) for every node (the loss is masked to the roots). Their model
    also has residual connections and ReLU; it adds layer norms, which this library does not have.
    With ``fully_adjacent`` the last layer runs on ``fully_adjacent_to_roots(graph)`` (every node ->
    its tree's root) instead of the tree ("+FA", their ``last_layer_fully_adjacent``).
    Backward: the chain rule in reverse, the residual adding its two paths' gradients.
    """

    def __init__(self, in_channels, num_classes, num_layers, conv="gcn", hidden_channels=32,
                 fully_adjacent=False, residual=True, seed=0, dtype=np.float32):
        super().__init__()
        if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)) or num_layers < 1:
            raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
        dtype = np.dtype(dtype)
        s = child_seeds(seed, num_layers + 2)
        self.num_layers, self.conv, self.fully_adjacent, self.residual = int(num_layers), conv, bool(fully_adjacent), bool(residual)
        self.encoder = Linear(in_channels, hidden_channels, seed=s[0], dtype=dtype)
        for layer in range(self.num_layers):
            setattr(self, f"conv{layer}", make_conv(conv, hidden_channels, s[1 + layer], dtype))
            setattr(self, f"act{layer}", ReLU())
        self.out = Linear(hidden_channels, num_classes, bias=False, seed=s[-1], dtype=dtype)

    def forward(self, x, graph=None):
        h = self.encoder.forward(x)
        for layer in range(self.num_layers):
            last = layer == self.num_layers - 1
            g = fully_adjacent_to_roots(graph) if (last and self.fully_adjacent) else graph
            m = getattr(self, f"act{layer}").forward(getattr(self, f"conv{layer}").forward(h, g))
            if self.residual:
                ops.add_(m, h)                    # m is this layer's fresh output: h_l = ReLU(.) + h_{l-1}
            h = m
        return self.out.forward(h)

    def backward(self, grad_out):
        G = self.out.backward(grad_out)
        for layer in reversed(range(self.num_layers)):
            dm = getattr(self, f"conv{layer}").backward(getattr(self, f"act{layer}").backward(G))
            if self.residual:
                ops.add_(dm, G)                   # dh_{l-1} = conv backward + the skip path's G
            G = dm
        return self.encoder.backward(G)


def _batch_graph(depth, batch_size, cache):
    if batch_size not in cache:
        cache[batch_size] = tree_neighbors_match(depth, batch_size, seed=0).graph    # structure only: every tree is the same
    return cache[batch_size]


def neighbors_match_accuracy(model, data, batch_size=512):
    """Accuracy at the roots of ``data`` (a ``NeighborsMatch``), in evaluation mode, by batches of trees."""
    model.eval()
    n, F = data.num_nodes_per_tree, data.x.shape[1]
    X = data.x.reshape(-1, n, F)
    Y = data.y.reshape(-1, n)
    cache, correct = {}, 0
    for lo in range(0, data.num_trees, batch_size):
        xb = X[lo:lo + batch_size]
        g = _batch_graph(data.depth, xb.shape[0], cache)
        Z = model.forward(xb.reshape(-1, F), g)
        pred = np.argmax(to_host(Z).reshape(xb.shape[0], n, -1)[:, 0], axis=1)
        correct += int(np.sum(pred == Y[lo:lo + batch_size, 0]))
    return correct / data.num_trees


def train_neighbors_match(depth, conv="gcn", fully_adjacent=False, num_trees=2000, hidden_channels=32,
                          epochs=100, batch_size=128, lr=1e-3, eval_every=5, seed=0, time_limit=None,
                          target_accuracy=1.0, log=None):
    """Train ``NeighborsMatchNet`` (depth + 1 layers) on ``num_trees`` trees of depth ``depth``; report train accuracy.

    Alon & Yahav report the *training* accuracy: over-squashing shows as a failure to fit. Adam
    (``lr``), the masked softmax cross-entropy at the roots, mini-batches of ``batch_size`` trees
    reshuffled every epoch (every tree has the same structure, so one batch graph serves all). The
    train accuracy is measured every ``eval_every`` epochs (and at the end) in evaluation mode; the
    best is reported, as their stopping rule on train accuracy does. Stops early at
    ``target_accuracy`` or after ``time_limit`` seconds.

    Returns a dict: train_acc (best), final_acc, epochs (run), seconds, curve [(epoch, acc)], model.
    """
    data = tree_neighbors_match(depth, num_trees, seed=seed)
    model = NeighborsMatchNet(data.x.shape[1], data.num_classes, depth + 1, conv=conv,
                              hidden_channels=hidden_channels, fully_adjacent=fully_adjacent, seed=seed + 1)
    opt = Adam(model.parameters(), lr=lr)
    loss_fn = SoftmaxCrossEntropy()
    rng = np.random.default_rng(seed + 2)
    n, F = data.num_nodes_per_tree, data.x.shape[1]
    X = data.x.reshape(-1, n, F)
    Y = data.y.reshape(-1, n)
    mask_tree = np.zeros(n, dtype=bool)
    mask_tree[0] = True
    cache, curve, best, epoch = {}, [], 0.0, 0
    start = time.perf_counter()
    with blas_threads(1):
        for epoch in range(1, epochs + 1):
            model.train()
            order = rng.permutation(data.num_trees)
            for lo in range(0, data.num_trees, batch_size):
                idx = order[lo:lo + batch_size]
                g = _batch_graph(depth, idx.size, cache)
                opt.zero_grad()
                Z = model.forward(X[idx].reshape(-1, F), g)
                loss_fn.forward(Z, Y[idx].reshape(-1), np.tile(mask_tree, idx.size))
                model.backward(loss_fn.backward())
                opt.step()
            done = time_limit is not None and time.perf_counter() - start > time_limit
            if epoch % eval_every == 0 or epoch == epochs or done:
                acc = neighbors_match_accuracy(model, data)
                curve.append((epoch, acc))
                best = max(best, acc)
                if log:
                    log(f"  r={depth} {conv}{'+FA' if fully_adjacent else ''} epoch {epoch}: train acc {acc:.3f}")
                if acc >= target_accuracy or done:
                    break
    return dict(train_acc=best, final_acc=curve[-1][1], epochs=epoch, seconds=time.perf_counter() - start,
                curve=curve, model=model, data=data)


__all__ = ["sensitivity", "hop_distances", "sensitivity_by_hop", "NeighborsMatchNet", "train_neighbors_match",
           "neighbors_match_accuracy", "make_conv", "has_gin", "CONVS"]
