"""Generated graph tasks of the original GNN paper: subgraph matching and clique detection, seeded.

Scarselli et al., "The Graph Neural Network Model", IEEE TNN 20(1), 2009, §V-A ("Subgraph
matching") describe the data this module draws: connected random graphs in which every pair of
nodes is joined with probability δ, a small connected graph S planted in each of them, integer node
labels in [0, 10] with Gaussian noise of standard deviation 0.25 added, and the target of a node
= 1 when it belongs to a copy of S (found by exhaustive search), else 0; 600 graphs split equally
into training, validation and test sets. The clique task (the companion paper, Scarselli et al.,
"Computational Capabilities of Graph Neural Networks", IEEE TNN 20(1), 2009) plants a 5-clique
instead, and the target of a node is 1 when it belongs to a 5-clique.

Both return one node-classification ``Dataset`` whose graph is the block-diagonal ``GraphBatch`` of
all the graphs (``dataset.graph``; ``meta["graph_ptr"]`` says where each graph starts), with the
train / val / test masks selecting the nodes of whole graphs: no edge joins two graphs, so training
on the batch is inductive -- the validation and test graphs are never seen in training.

    x          (N, 1) float32   the noisy label l_n (subgraph matching), or the constant 1 (clique)
    y          (N,) int64       1 if the node belongs to a copy of S / a 5-clique, else 0
    edge_index (2, E) int64     both directions of every undirected edge, no self-loops, no repeats
    meta       graph_ptr (B+1,), planted (N,) bool (the planted copy itself), the generator's arguments,
               and for subgraph matching the pattern S: subgraph_edges (2, E_S), subgraph_labels (k,)

Random graphs (``random_connected_graph``): every pair joined with probability δ (Erdős–Rényi
G(n, δ)); then, while there is more than one component, one edge joins a random node of the next
component to a random node of those already joined (the paper asks for connected graphs without
saying how). Planting a pattern adds its edges among k distinct random nodes and keeps the edges
already there (a copy of S is a subgraph, not necessarily an induced one).
"""
from __future__ import annotations

import numbers

import numpy as np

from .dataset import Dataset, index_to_mask, undirected_edge_index


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_prob(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


# ----------------------------------------------------------------------------------- random graphs
def random_connected_graph(rng, n, edge_prob):
    """A connected undirected graph on n nodes: (n, n) bool adjacency, symmetric, no self-loops.

    G(n, edge_prob), then the components joined in a chain of random edges (module docstring).
    """
    upper = np.triu(rng.random((n, n)) < edge_prob, k=1)
    adj = upper | upper.T
    comps = _components(adj)
    joined = list(comps[0])
    for comp in comps[1:]:
        a, b = int(rng.choice(comp)), int(rng.choice(joined))
        adj[a, b] = adj[b, a] = True
        joined += comp
    return adj


def _components(adj):
    """The connected components of a symmetric adjacency, each a list of nodes, by smallest node."""
    n, seen, comps = adj.shape[0], np.zeros(adj.shape[0], bool), []
    for s in range(n):
        if seen[s]:
            continue
        seen[s], stack, comp = True, [s], []
        while stack:
            v = stack.pop()
            comp.append(v)
            for w in np.flatnonzero(adj[v] & ~seen):
                seen[w] = True
                stack.append(int(w))
        comps.append(sorted(comp))
    return comps


def plant(rng, adj, pattern):
    """Add the edges of ``pattern`` ((k, k) bool) among k distinct random nodes of ``adj`` (in place).

    Returns the (k,) node ids the pattern's nodes 0..k-1 went to.
    """
    k = pattern.shape[0]
    nodes = rng.choice(adj.shape[0], size=k, replace=False)
    sub = adj[np.ix_(nodes, nodes)] | pattern
    adj[np.ix_(nodes, nodes)] = sub
    return nodes


# ----------------------------------------------------------------------------------- exact targets
def subgraph_copy_nodes(adj, labels, pattern, pattern_labels):
    """(n,) bool: the nodes of ``adj`` that belong to some copy of the labelled pattern.

    A copy is an injective map φ from the pattern's nodes to the graph's with labels[φ(v)] =
    pattern_labels[v] for every v and an edge φ(a)–φ(b) for every pattern edge a–b (a subgraph
    monomorphism; extra edges among the images are allowed). Exhaustive backtracking in a
    breadth-first order of the (connected) pattern, so each new node must touch an image already
    placed: fast for the paper's sizes (n <= 20, k <= 9).
    """
    n, k = adj.shape[0], pattern.shape[0]
    order = _bfs_order(pattern)
    earlier = [[order.index(w) for w in np.flatnonzero(pattern[v]) if order.index(w) < i]
               for i, v in enumerate(order)]
    candidates = [np.flatnonzero(labels == pattern_labels[v]) for v in order]
    member = np.zeros(n, dtype=bool)
    image = [-1] * k

    def extend(i, used):
        if i == k:
            member[image] = True
            return
        for c in candidates[i]:
            if c in used or not all(adj[c, image[j]] for j in earlier[i]):
                continue
            image[i] = int(c)
            extend(i + 1, used | {int(c)})
        image[i] = -1

    extend(0, frozenset())
    return member


def _bfs_order(pattern):
    k = pattern.shape[0]
    order, seen = [], np.zeros(k, bool)
    for s in range(k):
        if seen[s]:
            continue
        seen[s], queue = True, [s]
        while queue:
            v = queue.pop(0)
            order.append(v)
            for w in np.flatnonzero(pattern[v] & ~seen):
                seen[w] = True
                queue.append(int(w))
    return order


def clique_nodes(adj, size):
    """(n,) bool: the nodes that belong to a clique of ``size`` nodes (to a maximal clique of >= size).

    Bron–Kerbosch with pivoting over the maximal cliques: every clique of ``size`` lies in a maximal
    clique of at least that size, and every node of such a maximal clique is in one of ``size``.
    """
    n = adj.shape[0]
    nbrs = [set(np.flatnonzero(adj[v]).tolist()) for v in range(n)]
    member = np.zeros(n, dtype=bool)

    def expand(R, P, X):
        if not P and not X:
            if len(R) >= size:
                member[list(R)] = True
            return
        pivot = max(P | X, key=lambda u: len(nbrs[u] & P))
        for v in list(P - nbrs[pivot]):
            expand(R | {v}, P & nbrs[v], X & nbrs[v])
            P = P - {v}
            X = X | {v}

    expand(set(), set(range(n)), set())
    return member


# ----------------------------------------------------------------------------------- the two tasks
def _assemble(name, graphs, xs, ys, planted, splits, meta):
    """One Dataset of the block-diagonal union of ``graphs`` (adjacencies), graph-level split into masks."""
    from ..graph import Graph, GraphBatch   # here, so importing the data package never needs the graph kernels

    sizes = np.array([a.shape[0] for a in graphs], dtype=np.int64)
    graph_ptr = np.concatenate([[0], np.cumsum(sizes)])
    edge_lists, members = [], []
    for k, adj in enumerate(graphs):
        src, dst = np.nonzero(np.triu(adj, k=1))
        ei = undirected_edge_index(src, dst, adj.shape[0])
        members.append(Graph.from_edge_index(ei, num_nodes=adj.shape[0]))
        edge_lists.append(ei + graph_ptr[k])
    N = int(graph_ptr[-1])
    B = len(graphs)
    n_train, n_val = splits
    graph_of_node = np.repeat(np.arange(B), sizes)
    masks = [index_to_mask(np.flatnonzero(sel[graph_of_node]), N) for sel in
             (np.arange(B) < n_train, (np.arange(B) >= n_train) & (np.arange(B) < n_train + n_val),
              np.arange(B) >= n_train + n_val)]
    ds = Dataset(name=name, x=np.concatenate(xs).astype(np.float32)[:, None], y=np.concatenate(ys).astype(np.int64),
                 edge_index=np.concatenate(edge_lists, axis=1).astype(np.int64), train_mask=masks[0],
                 val_mask=masks[1], test_mask=masks[2], num_classes=2,
                 meta=dict(meta, graph_ptr=graph_ptr, planted=np.concatenate(planted), num_graphs=B))
    ds.graph = GraphBatch.from_graphs(members)       # the batch itself (graph_ptr, unbatch), not a flat Graph
    return ds


def _split_sizes(num_graphs, split):
    fracs = np.asarray(split, dtype=np.float64)
    if fracs.shape != (3,) or np.any(fracs < 0) or not np.isclose(fracs.sum(), 1.0):
        raise ValueError(f"split must be three fractions (train, val, test) summing to 1, got {split!r}")
    n_train, n_val = int(round(fracs[0] * num_graphs)), int(round(fracs[1] * num_graphs))
    if n_train < 1 or n_val < 1 or num_graphs - n_train - n_val < 1:
        raise ValueError(f"split {split!r} of {num_graphs} graphs leaves an empty train, val or test set")
    return n_train, n_val


def _check_sizes(min_nodes, max_nodes, k, what):
    min_nodes, max_nodes = _check_int("min_nodes", min_nodes, 1), _check_int("max_nodes", max_nodes, 1)
    if max_nodes < min_nodes:
        raise ValueError(f"max_nodes={max_nodes} must be >= min_nodes={min_nodes}")
    if min_nodes < k:
        raise ValueError(f"min_nodes={min_nodes} must be >= the {what} size {k} (it is planted in every graph)")
    return min_nodes, max_nodes


def subgraph_matching(num_graphs=600, min_nodes=6, max_nodes=20, subgraph_nodes=5, edge_prob=0.2, num_labels=11,
                      noise_std=0.25, split=(1 / 3, 1 / 3, 1 / 3), seed=0) -> Dataset:
    """The subgraph-matching task of Scarselli et al. (2009, §V-A), seeded: same arguments -> same dataset.

    One pattern S per dataset: a connected random graph (``random_connected_graph``) of
    ``subgraph_nodes`` nodes with edge probability ``edge_prob`` and integer labels uniform in
    [0, num_labels). Each of the ``num_graphs`` graphs: n uniform in [min_nodes, max_nodes], a
    connected G(n, edge_prob), integer labels uniform in [0, num_labels), and a copy of S planted
    on k random nodes (their labels set to S's, S's edges added). Target y = 1 for every node of
    every copy of S (``subgraph_copy_nodes``: the planted one and any the random draw made), else 0.
    Features x = the integer label + N(0, noise_std²) noise. The first split[0] of the graphs train,
    the next split[1] validate, the rest test. Paper: δ = 0.2, labels in [0, 10], σ = 0.25,
    600 graphs in three equal sets, |S| in {3, 5, 7, 9}, |G| in {6, 10, 14, 18}.
    """
    B = _check_int("num_graphs", num_graphs, 3)
    k = _check_int("subgraph_nodes", subgraph_nodes, 1)
    min_nodes, max_nodes = _check_sizes(min_nodes, max_nodes, k, "subgraph")
    p = _check_prob("edge_prob", edge_prob)
    C = _check_int("num_labels", num_labels, 1)
    if isinstance(noise_std, bool) or not isinstance(noise_std, numbers.Real) or not noise_std >= 0:
        raise ValueError(f"noise_std must be a number >= 0, got {noise_std!r}")
    splits = _split_sizes(B, split)
    rng = np.random.default_rng(seed)
    pattern = random_connected_graph(rng, k, p)
    pattern_labels = rng.integers(0, C, k)
    graphs, xs, ys, planted = [], [], [], []
    for _ in range(B):
        n = int(rng.integers(min_nodes, max_nodes + 1))
        adj = random_connected_graph(rng, n, p)
        labels = rng.integers(0, C, n)
        nodes = plant(rng, adj, pattern)
        labels[nodes] = pattern_labels
        graphs.append(adj)
        ys.append(subgraph_copy_nodes(adj, labels, pattern, pattern_labels))
        planted.append(index_to_mask(nodes, n))
        xs.append(labels + noise_std * rng.standard_normal(n))
    src, dst = np.nonzero(np.triu(pattern, k=1))
    meta = dict(generator="subgraph_matching", num_graphs=B, min_nodes=min_nodes, max_nodes=max_nodes,
                subgraph_nodes=k, edge_prob=p, num_labels=C, noise_std=float(noise_std), seed=seed,
                subgraph_edges=np.stack([src, dst]), subgraph_labels=pattern_labels)
    return _assemble("subgraph_matching", graphs, xs, ys, planted, splits, meta)


def clique_detection(num_graphs=600, min_nodes=10, max_nodes=20, clique_size=5, edge_prob=0.2,
                     split=(1 / 3, 1 / 3, 1 / 3), seed=0) -> Dataset:
    """Clique detection: connected random graphs with a planted clique, seeded (same arguments -> same dataset).

    Each graph: n uniform in [min_nodes, max_nodes], a connected G(n, edge_prob), and a clique of
    ``clique_size`` nodes planted on random nodes. Target y = 1 for every node of every clique of
    that size (``clique_nodes``: the planted one and any the random draw made), else 0. Every node
    has the same label x = 1: the task is structure only. Split as ``subgraph_matching``.
    """
    B = _check_int("num_graphs", num_graphs, 3)
    k = _check_int("clique_size", clique_size, 2)
    min_nodes, max_nodes = _check_sizes(min_nodes, max_nodes, k, "clique")
    p = _check_prob("edge_prob", edge_prob)
    splits = _split_sizes(B, split)
    rng = np.random.default_rng(seed)
    clique = ~np.eye(k, dtype=bool)
    graphs, xs, ys, planted = [], [], [], []
    for _ in range(B):
        n = int(rng.integers(min_nodes, max_nodes + 1))
        adj = random_connected_graph(rng, n, p)
        nodes = plant(rng, adj, clique)
        graphs.append(adj)
        ys.append(clique_nodes(adj, k))
        planted.append(index_to_mask(nodes, n))
        xs.append(np.ones(n))
    meta = dict(generator="clique_detection", num_graphs=B, min_nodes=min_nodes, max_nodes=max_nodes,
                clique_size=k, edge_prob=p, seed=seed)
    return _assemble("clique", graphs, xs, ys, planted, splits, meta)


__all__ = ["subgraph_matching", "clique_detection", "random_connected_graph", "plant", "subgraph_copy_nodes",
           "clique_nodes"]
