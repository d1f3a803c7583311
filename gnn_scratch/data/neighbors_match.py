"""Tree-NeighborsMatch of Alon & Yahav (2021), "On the Bottleneck of Graph Neural Networks and its
Practical Implications" (ICLR 2021), §4.1: a task whose only difficulty is over-squashing.

Each example is a complete binary tree of depth r (n = 2^(r+1) - 1 nodes, C = 2^r leaves). Every leaf
carries a key (the paper's "number of blue neighbours") and a class label; the root is the target
node and carries a query key (the paper's "number of green neighbours"). The root's label is the
label of the leaf whose key equals the query. The information the root needs sits r hops away, and
all C (key, label) pairs must pass through the root's two children: the receptive field grows as
2^r while the vectors stay of a fixed width.

What is drawn here (from one ``numpy.random.Generator`` seeded by ``seed``, so the same seed gives
the same arrays):
    keys:   a random permutation of 0 .. C-1 over the leaves (so a leaf's position says nothing);
    labels: an independent random permutation of 0 .. C-1 over the leaves (Alon & Yahav's code draws
            the labels as a permutation too: every class appears once per tree, C classes);
    query:  uniform in 0 .. C-1; y_root = labels[leaf with keys == query].
Alon & Yahav's code keeps the keys in leaf order and permutes only the labels; permuting the keys
as well removes the position shortcut and changes nothing else.

Numbering: breadth-first, the root is node 0 and node v has children 2v+1 and 2v+2, so the leaves
are nodes C-1 .. 2C-2 (leaf l is node C-1+l). Edges point from each child to its parent (towards
the target), as in Alon & Yahav's code; no self-loops are stored -- the layers add their own
(GCNConv, GATConv) or have a root weight (GraphConv, GINConv's (1+eps) x_i). Leaves therefore
receive no messages, and the root's output after L layers depends on the nodes within L hops below
it: r + 1 layers (the setting of the paper: r layers to bring a leaf to the root plus one) are enough.

Node features, one-hot (F = 2C + 2 columns): column 0 = "no key", columns 1 .. C = key k at 1 + k;
column C + 1 = "no label", columns C + 2 .. 2C + 1 = label c at C + 2 + c. Internal nodes have
"no key" and "no label"; the root has its query key and "no label"; a leaf has its key and label.
This is the one-hot twin of the paper's sum of a key embedding and a value embedding (index 0 =
none): a Linear layer on it is exactly that sum (plus a bias).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.batch import GraphBatch

MAX_DEPTH = 12          # 2^13 - 1 nodes and 4096 classes per tree: beyond this the one-hot features are absurd


def check_depth(depth):
    """``depth`` as an int in 1 .. MAX_DEPTH, or ValueError naming it."""
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)):
        raise ValueError(f"depth must be an integer in 1 .. {MAX_DEPTH}, got {depth!r}")
    if not 1 <= int(depth) <= MAX_DEPTH:
        raise ValueError(f"depth must be an integer in 1 .. {MAX_DEPTH}, got {depth}")
    return int(depth)


def tree_edge_index(depth):
    """The edges of one complete binary tree of depth r, child -> parent: (2, 2^(r+1) - 2) int64.

    Node v's children are 2v+1 and 2v+2; row 0 = source (child), row 1 = target (parent).
    """
    r = check_depth(depth)
    n = 2 ** (r + 1) - 1
    child = np.arange(1, n, dtype=np.int64)
    return np.stack([child, (child - 1) // 2])


def leaf_nodes(depth):
    """The node ids of the 2^r leaves, left to right: (C,) int64."""
    r = check_depth(depth)
    C = 2 ** r
    return np.arange(C - 1, 2 * C - 1, dtype=np.int64)


def fully_adjacent_to_roots(batch):
    """The "+FA" graph of a batch of trees: an edge from every non-root node to the root of its tree.

    Alon & Yahav's fully-adjacent last layer (their code's ``last_layer_fully_adjacent``) connects
    every node of a graph to the target node; connecting all pairs would change the other nodes'
    outputs but not the root's, the only one the task reads. The root is node 0 of each tree
    (``batch.graph_ptr[k]``); its self-loop is left to the layer (GCNConv / GATConv add one,
    GraphConv and GINConv have a root term), as on the tree edges.

    batch: a ``GraphBatch`` (only its ``graph_ptr`` is used). Returns a ``GraphBatch`` with the same
    ``graph_ptr`` and N - B edges. Cached on ``batch`` (it derives from the batch's structure alone).
    """
    if not isinstance(batch, GraphBatch):
        raise TypeError(f"batch must be a GraphBatch, got {type(batch).__name__}")

    def build():
        sizes = np.diff(batch.graph_ptr).tolist()
        star = [np.stack([np.arange(1, n, dtype=np.int64), np.zeros(n - 1, dtype=np.int64)]) for n in sizes]
        return GraphBatch.from_edge_indices(star, sizes)             # local ids: node j -> root 0, j >= 1
    return batch.cached(("fully_adjacent_to_roots",), build)


@dataclass(eq=False)
class NeighborsMatch:
    """B trees of depth r as one batch. Shapes (n = 2^(r+1) - 1 nodes per tree, C = 2^r, N = B n):

    graph:     GraphBatch of the B trees (child -> parent edges), graph_ptr[k] = k n is tree k's root
    x:         (N, 2C + 2) float32 one-hot (key, label) features (module docstring)
    y:         (N,) int64, the answer at the roots, -1 elsewhere
    root_mask: (N,) bool, True at the B roots (the loss and the accuracy are taken there)
    keys:      (B, C) int64, keys[k, l] = key of leaf l of tree k (a permutation of 0 .. C-1)
    labels:    (B, C) int64, labels[k, l] = label of leaf l (a permutation of 0 .. C-1)
    query:     (B,) int64, the root's key
    depth, num_classes (= C), num_nodes_per_tree (= n)
    """

    graph: GraphBatch
    x: np.ndarray
    y: np.ndarray
    root_mask: np.ndarray
    keys: np.ndarray
    labels: np.ndarray
    query: np.ndarray
    depth: int
    num_classes: int
    num_nodes_per_tree: int

    @property
    def num_trees(self):
        return int(self.query.size)

    @property
    def answer(self):
        """(B,) int64, the label each root must predict."""
        return self.y[self.root_mask]


def encode_features(keys, labels, query, depth, dtype=np.float32):
    """The one-hot (key, label) features of B trees: (B n, 2C + 2) (layout in the module docstring)."""
    r = check_depth(depth)
    C, n = 2 ** r, 2 ** (r + 1) - 1
    keys, labels, query = np.asarray(keys), np.asarray(labels), np.asarray(query)
    B = query.size
    if keys.shape != (B, C) or labels.shape != (B, C):
        raise ValueError(f"keys and labels must have shape ({B}, {C}), got {keys.shape} and {labels.shape}")
    x = np.zeros((B, n, 2 * C + 2), dtype=dtype)
    x[:, :, 0] = 1                                                # "no key" everywhere ...
    x[:, :, C + 1] = 1                                            # ... and "no label"
    leaves = leaf_nodes(r)
    t = np.arange(B)[:, None]
    x[t, leaves[None, :], 0] = 0
    x[t, leaves[None, :], 1 + keys] = 1
    x[t, leaves[None, :], C + 1] = 0
    x[t, leaves[None, :], C + 2 + labels] = 1
    x[np.arange(B), 0, 0] = 0
    x[np.arange(B), 0, 1 + query] = 1
    return x.reshape(B * n, 2 * C + 2)


def tree_neighbors_match(depth, num_trees, seed=0, dtype=np.float32):
    """``num_trees`` Tree-NeighborsMatch examples of depth ``depth`` as one batch (``NeighborsMatch``).

    depth: r in 1 .. MAX_DEPTH (the paper uses 2 .. 8); num_trees: B >= 1; seed: the generator's
    seed (same seed -> same arrays). Raises ValueError for a bad depth or num_trees.
    """
    r = check_depth(depth)
    if isinstance(num_trees, bool) or not isinstance(num_trees, (int, np.integer)) or num_trees < 1:
        raise ValueError(f"num_trees must be a positive integer, got {num_trees!r}")
    B, C, n = int(num_trees), 2 ** r, 2 ** (r + 1) - 1
    rng = np.random.default_rng(seed)
    keys = rng.permuted(np.tile(np.arange(C, dtype=np.int64), (B, 1)), axis=1)
    labels = rng.permuted(np.tile(np.arange(C, dtype=np.int64), (B, 1)), axis=1)
    query = rng.integers(0, C, size=B, dtype=np.int64)
    match = np.argmax(keys == query[:, None], axis=1)              # the leaf holding the query key
    answer = labels[np.arange(B), match]

    x = encode_features(keys, labels, query, r, dtype=dtype)
    root_mask = np.zeros(B * n, dtype=bool)
    root_mask[::n] = True
    y = np.full(B * n, -1, dtype=np.int64)
    y[root_mask] = answer
    ei = tree_edge_index(r)
    graph = GraphBatch.from_edge_indices([ei] * B, [n] * B)
    return NeighborsMatch(graph=graph, x=x, y=y, root_mask=root_mask, keys=keys, labels=labels, query=query,
                          depth=r, num_classes=C, num_nodes_per_tree=n)
