"""The 1-dimensional Weisfeiler-Lehman test (colour refinement) and the WL subtree kernel.

Colour refinement (Weisfeiler & Lehman 1968; as a graph-isomorphism heuristic, e.g. Shervashidze et al.
2011, JMLR 12, "Weisfeiler-Lehman Graph Kernels", Alg. 1): every node starts with a colour (its tag,
or one colour for all), and each round replaces the colour of v by an id of the pair

    (c_t(v), sorted multiset {c_t(u) : u -> v is an edge})

The ids come from a ``ColorTable`` shared by every graph refined with it, keyed by the round as well,
so a colour means the same rooted subtree (unfolding tree of depth t) in every graph and every id
belongs to exactly one round. Refinement of several graphs is done on their disjoint union, which
gives each graph exactly the colours it would get alone (a colour only looks at its own graph).

* ``wl_colors``       -- the colours round by round, (T+1, N), stopping at stabilisation by default;
* ``wl_test``         -- does 1-WL tell two graphs apart? (colour histograms differ at some round);
* ``wl_graph_classes``-- the 1-WL equivalence classes of many graphs, round by round;
* ``wl_subtree_features`` / ``wl_subtree_kernel`` -- Shervashidze et al.'s WL subtree kernel:
  phi(G) = counts of every colour of rounds 0..h, k(G, G') = <phi(G), phi(G')>.

Graphs are given as a ``gnn_scratch.graph.Graph`` (or ``GraphBatch``), as a PyG ``edge_index``
(2, E) with ``num_nodes``, or as a pair ``(edge_index, num_nodes)``. Edges are directed: the
multiset of v collects the sources of the edges arriving at v (repeats counted), so an undirected
graph lists each edge both ways, as the project's loaders do.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class ColorTable:
    """signature -> colour id (0, 1, 2, ... in order of first sight), shared across graphs and rounds.

    ``iteration[c]`` is the round colour c belongs to; signatures carry their round, so ids of different
    rounds never coincide.
    """

    def __init__(self):
        self._ids = {}
        self._iteration = []

    def __len__(self):
        return len(self._ids)

    @property
    def iteration(self) -> np.ndarray:
        """(num_colours,) int64: the round of each colour id."""
        return np.asarray(self._iteration, dtype=np.int64)

    def ids(self, t, keys) -> np.ndarray:
        """Colour ids of the signatures ``keys`` of round ``t`` (new ones get the next free ids)."""
        table, it = self._ids, self._iteration
        out = np.empty(len(keys), dtype=np.int64)
        for k, key in enumerate(keys):
            full = (t, key)
            c = table.get(full)
            if c is None:
                c = table[full] = len(table)
                it.append(t)
            out[k] = c
        return out


# =============================================================================== graph input
def _edges(graph, num_nodes=None):
    """(src, dst, N) from a Graph, an edge_index (2, E) with num_nodes, or (edge_index, num_nodes)."""
    if hasattr(graph, "indptr") and hasattr(graph, "indices"):
        g = graph.to("cpu") if hasattr(graph, "to") else graph
        if g.num_dst != g.num_src:
            raise ValueError(f"graph must be square for colour refinement, got shape {g.shape}")
        indptr = np.asarray(g.indptr, dtype=np.int64)
        dst = np.repeat(np.arange(g.num_dst, dtype=np.int64), np.diff(indptr))
        return np.asarray(g.indices, dtype=np.int64), dst, int(g.num_dst)
    if isinstance(graph, tuple) and len(graph) == 2 and num_nodes is None:
        graph, num_nodes = graph
    ei = np.asarray(graph)
    if ei.ndim != 2 or ei.shape[0] != 2 or (ei.size and ei.dtype.kind not in "iu"):
        raise ValueError(f"edge_index must be an integer array of shape (2, E), got {ei.dtype} {ei.shape}")
    ei = ei.astype(np.int64)
    if num_nodes is None:
        num_nodes = int(ei.max()) + 1 if ei.size else 0
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, (int, np.integer)) or num_nodes < 1:
        raise ValueError(f"num_nodes must be an int >= 1, got {num_nodes!r}")
    if ei.size and (ei.min() < 0 or ei.max() >= num_nodes):
        raise ValueError(f"edge_index holds node ids in [{ei.min()}, {ei.max()}], expected [0, {num_nodes})")
    return ei[0], ei[1], int(num_nodes)


def _union(graphs):
    """Disjoint union of a list of graphs: (src, dst, N, graph_ptr (B+1,))."""
    srcs, dsts, ptr = [], [], [0]
    for g in graphs:
        s, d, n = _edges(g)
        srcs.append(s + ptr[-1])
        dsts.append(d + ptr[-1])
        ptr.append(ptr[-1] + n)
    if not srcs:
        raise ValueError("graphs must hold at least one graph")
    return np.concatenate(srcs), np.concatenate(dsts), ptr[-1], np.asarray(ptr, dtype=np.int64)


def _initial(initial, N):
    if initial is None:
        return np.zeros(N, dtype=np.int64)
    a = np.asarray(initial)
    if a.shape != (N,) or a.dtype.kind not in "iu":
        raise ValueError(f"initial must be an integer array of shape ({N},) (one colour per node), got "
                         f"{a.dtype} {a.shape}")
    return a.astype(np.int64)


# =============================================================================== refinement
def _refine(src, dst, N, initial, iterations, table):
    """Rows c_0 .. c_T of colour refinement on one (possibly disjoint-union) graph."""
    if iterations is not None and (isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer))
                                   or iterations < 0):
        raise ValueError(f"iterations must be None or an int >= 0, got {iterations!r}")
    table = ColorTable() if table is None else table
    c = table.ids(0, _initial(initial, N).tolist())
    rows = [c]
    # CSR by destination, fixed for every round
    order = np.argsort(dst, kind="stable")
    src_by_dst = src[order]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(dst, minlength=N))])
    bounds = list(zip(indptr[:-1].tolist(), indptr[1:].tolist()))
    n_colours = np.unique(c).size
    limit = iterations if iterations is not None else N          # a partition of N nodes refines < N times
    for t in range(1, limit + 1):
        nbr = c[src_by_dst]
        # sort each row's neighbour colours: by (destination, colour), destinations already grouped
        nbr = nbr[np.lexsort((nbr, np.repeat(np.arange(N), np.diff(indptr))))].tolist()
        prev = c.tolist()
        keys = [(prev[v], tuple(nbr[a:b])) for v, (a, b) in enumerate(bounds)]
        c_new = table.ids(t, keys)
        n_new = np.unique(c_new).size
        if iterations is None and n_new == n_colours:
            break                                                # the same partition: stable from here on
        rows.append(c_new)
        c, n_colours = c_new, n_new
    return np.stack(rows)


def wl_colors(graph, num_nodes=None, iterations=None, initial=None, table=None) -> np.ndarray:
    """1-WL colours of one graph, round by round: (T+1, N) int64, row t = colours after t rounds.

    graph: a Graph / GraphBatch, an edge_index (2, E) (then ``num_nodes``), or (edge_index, num_nodes).
    iterations: None = refine until the partition stops changing (the last row is the stable colouring;
        the round that would repeat its partition is not included); an int h = exactly h rounds.
    initial: (N,) int initial colours (node tags); None = one colour for all.
    table: a ``ColorTable`` to share with other calls, so that colours of different graphs compare.

    Raises ValueError for a malformed graph, initial colouring or iteration count.
    """
    src, dst, N = _edges(graph, num_nodes)
    return _refine(src, dst, N, initial, iterations, table)


def _histogram_classes(colors, graph_ptr):
    """(T+1, B) class ids: graphs a, b share class t iff their colour histograms of round t are equal."""
    B = graph_ptr.size - 1
    gid = np.repeat(np.arange(B), np.diff(graph_ptr))
    out = np.empty((colors.shape[0], B), dtype=np.int64)
    for t, row in enumerate(colors):
        # each graph's histogram as its sorted colour list: equal lists <=> equal histograms
        order = np.lexsort((row, gid))
        sig = {}
        srow = row[order].tolist()
        for k in range(B):
            key = tuple(srow[graph_ptr[k]:graph_ptr[k + 1]])
            out[t, k] = sig.setdefault(key, len(sig))
    return out


def wl_graph_classes(graphs, initial=None, iterations=None):
    """1-WL equivalence classes of many graphs: (T+1, B) int64, row t = class of each graph after t rounds.

    Two graphs share a class in the last row iff 1-WL cannot tell them apart (with ``iterations=None``,
    the refinement of their union runs to stabilisation, after which no histogram can change). Classes
    only split from row to row: a colour of round t+1 determines the colour of round t.
    initial: (N_total,) colours of the nodes of all graphs, in order; None = one colour for all.
    """
    src, dst, N, ptr = _union(graphs)
    colors = _refine(src, dst, N, initial, iterations, None)
    return _histogram_classes(colors, ptr)


def wl_test(g1, g2, initial1=None, initial2=None, iterations=None) -> bool:
    """True when 1-WL tells g1 and g2 apart: their colour histograms differ at some round.

    g1, g2: Graph, or (edge_index, num_nodes). initial1/2: optional (n_1,) / (n_2,) initial colours.
    The two graphs are refined together (one colour table) until their union is stable, so a False
    is final: no further round could separate them.
    """
    _, _, n1 = _edges(g1)
    _, _, n2 = _edges(g2)
    if (initial1 is None) != (initial2 is None):
        raise ValueError("give initial colours for both graphs or for neither")
    initial = None if initial1 is None else np.concatenate([_initial(initial1, n1), _initial(initial2, n2)])
    classes = wl_graph_classes([g1, g2], initial=initial, iterations=iterations)
    return bool(np.any(classes[:, 0] != classes[:, 1]))


# =============================================================================== WL subtree kernel
def wl_subtree_features(graphs, h, initial=None):
    """The WL subtree feature map of Shervashidze et al. (2011): phi(G) = counts of every colour of rounds 0..h.

    graphs: a list of graphs (see the module docstring); h: number of rounds (>= 0, exactly h are run).
    initial: (N_total,) initial colours of all nodes in order (the node tags); None = one colour for all.
    Returns (Phi (B, num_colours) scipy.sparse.csr_matrix float64, iteration (num_colours,) int64 = the
    round of each column). Columns of rounds <= h' give the feature map for any h' <= h.
    """
    src, dst, N, ptr = _union(graphs)
    table = ColorTable()
    colors = _refine(src, dst, N, initial, h, table)
    B = ptr.size - 1
    gid = np.repeat(np.arange(B), np.diff(ptr))
    rows = np.tile(gid, colors.shape[0])
    Phi = sp.csr_matrix((np.ones(rows.size), (rows, colors.ravel())), shape=(B, len(table)))
    Phi.sum_duplicates()
    return Phi, table.iteration


def wl_subtree_kernel(graphs, h, initial=None, normalize=False, features=None):
    """Kernel matrices of the WL subtree kernel for h' = 0..h: a list of (B, B) float64 arrays, K[h'] = Phi_h' Phi_h'^T.

    normalize: divide by sqrt(k(G,G) k(G',G')) (cosine normalisation, unit diagonal).
    features: (Phi, iteration) from ``wl_subtree_features`` to reuse instead of recomputing.
    Every K is symmetric positive semidefinite (a Gram matrix).
    """
    Phi, iteration = features if features is not None else wl_subtree_features(graphs, h, initial)
    out, K = [], np.zeros((Phi.shape[0],) * 2)
    for t in range(h + 1):
        cols = np.flatnonzero(iteration == t)
        P = Phi[:, cols]
        K = K + (P @ P.T).toarray()                       # rounds add: <phi_h, phi_h'> is a sum over rounds
        if normalize:
            d = np.sqrt(np.diag(K))
            Kn = K / np.outer(d, d)
            out.append((Kn + Kn.T) / 2)
        else:
            out.append(K.copy())
    return out
