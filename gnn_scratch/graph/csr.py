"""A directed graph stored as CSR with one row per *destination* node.

Messages flow source -> target (PyG's ``edge_index`` convention: row 0 = source, row 1 = target).
Row ``i`` of the CSR lists the edges that arrive at node ``i``, so aggregation is a row-parallel
gather that never needs atomics. The transpose (one row per *source* node) is built once, on first
use, together with the permutation ``t_perm`` that maps each transposed edge back to its CSR edge;
every backward pass reuses it.

Shapes (E = number of edges, N_dst / N_src = number of destination / source nodes):
    indptr:      (N_dst + 1,) int64    row pointers
    indices:     (E,) int32            source node of each edge, grouped by destination
    edge_weight: (E,) float or None    weight of each edge, in CSR order
    edge_id:     (E,) int64            column of ``edge_index`` each CSR edge came from

A graph is square (N_dst == N_src) unless built as a bipartite block (GraphSAGE sampling), where
destinations are the first N_dst of the N_src source nodes.
"""
from __future__ import annotations

import copy

import numbers

import numpy as np
import scipy.sparse as sp

from ..device import check_device, to, to_device

INDEX_DTYPE = np.int32
INDPTR_DTYPE = np.int64


class GraphError(ValueError):
    """Raised for a graph that is malformed: bad shapes, dtypes, node ids or weights."""


def _as_index_array(a, name, what="integer node ids"):
    try:
        a = np.asarray(a)
    except ValueError:            # a ragged nested list
        raise GraphError(f"{name} must be an array of {what}, got a ragged sequence") from None
    if a.dtype.kind not in "iu":
        if a.dtype.kind != "f" or a.size and not np.all(np.mod(a, 1) == 0):
            raise GraphError(f"{name} must hold {what}, got dtype {a.dtype}")
        if a.size == 0:
            a = a.astype(np.int64)
        else:
            raise GraphError(f"{name} must have an integer dtype, got {a.dtype}")
    return a


def _count(name, v, minimum=1):
    """``v`` as an int >= ``minimum`` (a node count), or GraphError naming ``name``."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise GraphError(f"{name} must be an int >= {minimum}, got {v!r}")
    if v < minimum:
        if minimum == 1 and v == 0:
            raise GraphError(f"the graph is empty: {name} must be at least 1, got 0")
        raise GraphError(f"{name} must be an int >= {minimum}, got {v!r}")
    return int(v)


def _check_weight(edge_weight, E, name="edge_weight"):
    if edge_weight is None:
        return None
    try:
        w = np.asarray(edge_weight)
    except ValueError:
        raise GraphError(f"{name} must be a float array of shape ({E},), got a ragged sequence") from None
    if w.dtype.kind != "f":
        raise GraphError(f"{name} must be a float array, got dtype {w.dtype}")
    if w.shape != (E,):
        raise GraphError(f"{name} must have shape ({E},) to match the {E} edges, got {w.shape}")
    bad = ~np.isfinite(w)
    if bad.any():
        e = int(np.flatnonzero(bad)[0])
        raise GraphError(f"{name} must be finite, got {w[e]} at edge {e}")
    return w


class Graph:
    """CSR graph, rows = destination nodes. Build with ``from_edge_index``, ``from_scipy`` or ``from_csr``."""

    def __init__(self, indptr, indices, edge_weight=None, num_src=None, edge_id=None, _validated=False):
        if not _validated:
            indptr = _as_index_array(indptr, "indptr", "integer row offsets")
            if num_src is not None:
                num_src = _count("num_src", num_src)
        indptr = np.ascontiguousarray(indptr, dtype=INDPTR_DTYPE)
        indices = np.ascontiguousarray(indices)
        if not _validated:
            indices = _as_index_array(indices, "indices")
            if indptr.ndim != 1 or indptr.size < 1:
                raise GraphError(f"indptr must be a 1-D array of length N_dst + 1 >= 1, got shape {indptr.shape}")
            if indptr[0] != 0:
                raise GraphError(f"indptr[0] must be 0, got {indptr[0]}")
            if np.any(np.diff(indptr) < 0):
                raise GraphError("indptr must be a non-decreasing sequence")
            if indices.ndim != 1 or indices.size != indptr[-1]:
                raise GraphError(
                    f"indices must be 1-D with indptr[-1] = {indptr[-1]} entries, got shape {indices.shape}")
        n_dst = indptr.size - 1
        if num_src is None:
            num_src = n_dst
        if n_dst == 0 or num_src == 0:
            raise GraphError("the graph is empty: it must have at least one node")
        if not _validated and indices.size:
            lo, hi = int(indices.min()), int(indices.max())
            if lo < 0:
                raise GraphError(f"indices contains a negative node id ({lo})")
            if hi >= num_src:
                raise GraphError(f"indices contains node id {hi}, out of range for {num_src} source nodes")
        self.indptr = indptr
        self.indices = np.ascontiguousarray(indices, dtype=INDEX_DTYPE)
        E = self.indices.size
        self.edge_weight = _check_weight(edge_weight, E) if not _validated else edge_weight
        self.num_dst = int(n_dst)
        self.num_src = int(num_src)
        self.edge_id = (np.arange(E, dtype=np.int64) if edge_id is None
                        else np.ascontiguousarray(edge_id, dtype=np.int64))
        if not _validated:   # the caller's arrays: copied, so that changing them cannot leave a cache stale
            self.indptr, self.indices = self.indptr.copy(), self.indices.copy()
            if self.edge_weight is not None:
                self.edge_weight = np.array(self.edge_weight, copy=True)
        for a in (self.indptr, self.indices, self.edge_weight, self.edge_id):
            if isinstance(a, np.ndarray):
                a.flags.writeable = False    # what the caches derive from cannot change under them
        self._transpose = None
        self._cache = {}
        self.host = self     # the host graph this one came from (itself on the host; see ``to``)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_edge_index(cls, edge_index, num_nodes=None, edge_weight=None):
        """Build from a PyG ``edge_index`` (2, E): row 0 = source, row 1 = target.

        Repeated edges are kept (each is its own message, as in PyG). Within a destination row the
        edges keep their ``edge_index`` order; ``edge_id`` records where each came from.
        """
        ei = _as_index_array(edge_index, "edge_index")
        if ei.ndim != 2 or ei.shape[0] != 2:
            raise GraphError(f"edge_index must have shape (2, E), got {ei.shape}")
        E = ei.shape[1]
        if E and ei.min() < 0:
            col = int(np.argmin(ei.min(axis=0)))
            raise GraphError(f"edge_index contains a negative node id ({int(ei[:, col].min())}) at column {col}")
        max_id = int(ei.max()) if E else -1
        if num_nodes is None:
            num_nodes = max_id + 1
        num_nodes = _count("num_nodes", num_nodes)
        if max_id >= num_nodes:
            col = int(np.argmax(ei.max(axis=0)))
            raise GraphError(
                f"edge_index contains node id {max_id} at column {col}, out of range for num_nodes={num_nodes}")
        w = _check_weight(edge_weight, E)
        src, dst = ei[0].astype(np.int64), ei[1].astype(np.int64)
        order = np.argsort(dst, kind="stable")
        indptr = np.zeros(num_nodes + 1, dtype=INDPTR_DTYPE)
        np.cumsum(np.bincount(dst, minlength=num_nodes), out=indptr[1:])
        return cls(indptr, src[order], None if w is None else w[order], num_nodes, edge_id=order,
                   _validated=True)

    @classmethod
    def from_scipy(cls, A):
        """Build from a scipy.sparse matrix with ``A[i, j]`` = weight of edge j -> i (row = destination)."""
        if not sp.issparse(A):
            raise GraphError(f"A must be a scipy.sparse matrix, got {type(A).__name__}")
        if A.ndim != 2:
            raise GraphError(f"A must be 2-D, got shape {A.shape}")
        if A.dtype.kind != "f":
            raise GraphError(f"A must hold float edge weights, got dtype {A.dtype}")
        A = sp.csr_matrix(A, copy=True)  # a copy: sorting must not rewrite the caller's matrix
        A.sort_indices()
        if not np.isfinite(A.data).all():
            e = int(np.flatnonzero(~np.isfinite(A.data))[0])
            row = int(np.searchsorted(A.indptr, e, side="right")) - 1
            raise GraphError(f"A must be finite, got {A.data[e]} at row {row}, column {A.indices[e]}")
        return cls(A.indptr, A.indices, np.asarray(A.data), num_src=A.shape[1])

    @classmethod
    def from_csr(cls, indptr, indices, edge_weight=None, num_src=None):
        """Build from raw CSR arrays (rows = destinations); validated."""
        return cls(indptr, indices, edge_weight, num_src=num_src)

    # ------------------------------------------------------------------ basic facts
    @property
    def num_nodes(self):
        """Number of destination nodes (== source nodes for a square graph)."""
        return self.num_dst

    @property
    def num_edges(self):
        return int(self.indices.size)

    @property
    def shape(self):
        return (self.num_dst, self.num_src)

    def __repr__(self):
        w = "weighted" if self.edge_weight is not None else "unweighted"
        return f"Graph(num_dst={self.num_dst}, num_src={self.num_src}, num_edges={self.num_edges}, {w})"

    def in_degree(self):
        """Number of incoming edges of each destination node (repeated edges counted): (N_dst,) int64."""
        return np.diff(self.indptr)

    def out_degree(self):
        """Number of outgoing edges of each source node: (N_src,) int64."""
        return np.bincount(self.indices, minlength=self.num_src).astype(np.int64)

    def dst_of_edge(self):
        """Destination node of each CSR edge: (E,) int32 (the CSR row each edge sits in)."""
        return np.repeat(np.arange(self.num_dst, dtype=INDEX_DTYPE), np.diff(self.indptr))

    def edge_index(self):
        """The edges as a PyG ``edge_index`` (2, E) int64, in CSR order."""
        return np.stack([self.indices.astype(np.int64), self.dst_of_edge().astype(np.int64)])

    def to_scipy(self, edge_weight=None):
        """The (N_dst, N_src) sparse matrix A[i, j] = sum of weights of edges j -> i."""
        w = edge_weight if edge_weight is not None else self.edge_weight
        if w is None:
            w = np.ones(self.num_edges)
        # copies: scipy sorts and merges indices in place (A > 0, sum_duplicates), which must not
        # rewrite this graph's arrays
        return sp.csr_matrix((np.array(w), self.indices.copy(), self.indptr.copy()), shape=self.shape)

    # ------------------------------------------------------------------ transpose
    @property
    def t_indptr(self):
        return self._transposed()[0]

    @property
    def t_indices(self):
        return self._transposed()[1]

    @property
    def t_perm(self):
        return self._transposed()[2]

    def _transposed(self):
        """CSC view: rows = source nodes. Built once; (t_indptr, t_indices = destinations, t_perm)."""
        if self._transpose is None:
            t_perm = np.argsort(self.indices, kind="stable").astype(np.int64)
            t_indices = self.dst_of_edge()[t_perm]
            t_indptr = np.zeros(self.num_src + 1, dtype=INDPTR_DTYPE)
            np.cumsum(np.bincount(self.indices, minlength=self.num_src), out=t_indptr[1:])
            self._transpose = (t_indptr, np.ascontiguousarray(t_indices, dtype=INDEX_DTYPE), t_perm)
        return self._transpose

    # ------------------------------------------------------------------ derived graphs
    def with_self_loops(self, fill_value=1.0):
        """A graph where every node has exactly one self-loop (PyG's ``add_remaining_self_loops``).

        Existing self-loops are removed and one loop per node is added. With edge weights, a node
        that had a self-loop keeps that loop's weight (the last one in edge order if it had several);
        the others get ``fill_value``. An unweighted graph is a graph of weight-1 edges: with the default
        fill_value 1 it stays unweighted, with another one it gets float64 weights (1 on its edges and on
        the loops it had, ``fill_value`` on the new ones). Repeated non-loop edges are kept. Requires a
        square graph (GraphError) and a finite real ``fill_value`` (TypeError / ValueError).
        The new loop of node i comes last in row i; ``edge_id`` of a new loop is -1.
        """
        if self.num_dst != self.num_src:
            raise GraphError(f"self-loops need a square graph, got shape {self.shape}")
        if isinstance(fill_value, (bool, np.bool_)) or not isinstance(fill_value, (numbers.Real, np.integer,
                                                                                   np.floating)):
            raise TypeError(f"fill_value must be a finite real number, got {fill_value!r}")
        if not np.isfinite(fill_value):
            raise ValueError(f"fill_value must be a finite real number, got {fill_value!r}")
        if self.edge_weight is None and fill_value != 1:      # the loops' weight has to be stored: all-ones first
            return Graph(self.indptr, self.indices, np.ones(self.num_edges), self.num_src, edge_id=self.edge_id,
                         _validated=True).with_self_loops(fill_value)
        N = self.num_dst
        dst = self.dst_of_edge()
        keep = self.indices != dst
        loop_w = None
        if self.edge_weight is not None:
            loop_w = np.full(N, fill_value, dtype=self.edge_weight.dtype)
            is_loop = ~keep
            loop_w[dst[is_loop]] = self.edge_weight[is_loop]  # later writes win: last loop in edge order
        kept_per_row = np.bincount(dst[keep], minlength=N)
        indptr = np.zeros(N + 1, dtype=INDPTR_DTYPE)
        np.cumsum(kept_per_row + 1, out=indptr[1:])
        E_new = int(indptr[-1])
        # a kept edge moves down by one slot for each earlier row's new loop
        pos_keep = np.arange(keep.sum()) + dst[keep]
        pos_loop = indptr[1:] - 1
        indices = np.empty(E_new, dtype=INDEX_DTYPE)
        indices[pos_keep] = self.indices[keep]
        indices[pos_loop] = np.arange(N, dtype=INDEX_DTYPE)
        edge_id = np.empty(E_new, dtype=np.int64)
        edge_id[pos_keep] = self.edge_id[keep]
        edge_id[pos_loop] = -1
        weight = None
        if self.edge_weight is not None:
            weight = np.empty(E_new, dtype=self.edge_weight.dtype)
            weight[pos_keep] = self.edge_weight[keep]
            weight[pos_loop] = loop_w
        return Graph(indptr, indices, weight, N, edge_id=edge_id, _validated=True)

    # ------------------------------------------------------------------ placement
    device = "cpu"   # where indptr, indices, edge_weight and the transpose live; a device copy says "cuda"

    def to(self, device):
        """This graph with its arrays on ``device`` ("cuda" or "cpu"); the device copy is made once and cached.

        The device graph has the same class, sizes and extra attributes, and indptr, indices,
        edge_weight and the transpose (t_indptr, t_indices, t_perm -- built on the host first) as
        device arrays; ``edge_id`` stays on the host. ``graph.host`` is the host graph it came
        from: structural work (normalisation, self-loops, degrees) runs there, once, and reaches
        the device graph through ``derived``. ``to("cpu")`` of a device graph returns that host graph.
        Raises RuntimeError without a GPU (or the simulator), ValueError for an unknown device.
        """
        if check_device(device) == self.device:
            return self
        if device == "cpu":
            return self.host

        def move():
            t = self._transposed()
            g = copy.copy(self)
            g.indptr, g.indices = to_device(self.indptr), to_device(self.indices)
            g.edge_weight = to_device(self.edge_weight)
            g._transpose = tuple(to_device(a) for a in t)
            g._cache = {}
            g.device, g.host = device, self
            return g
        return self.cached(("to", device), move)

    def cached(self, key, build):
        """Return ``build()`` computed once per graph and ``key`` (normalisation coefficients and the like)."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def derived(self, key, build):
        """``build(host_graph)``, computed once on the host graph and held, once moved, on this graph's device.

        For whatever derives from the structure (GCN's normalised graph and weights, a graph with
        self-loops, weights in transpose order): the host computes it once per graph, and a device
        graph caches its own device copy, so no caller asks where the graph lives.
        """
        return self.cached(("derived",) + (key if isinstance(key, tuple) else (key,)),
                           lambda: to(build(self.host), self.device))

    def check_features(self, X, name="x", side="src", num_cols=None, dtype=None, finite=True):
        """``X`` checked as features with one row per source (``side="src"``) or destination node; returned.

        Raises TypeError unless X is an array (NumPy, scipy.sparse, or a device array) of a float32 or
        float64 dtype (exactly ``dtype`` when given), ValueError unless it has shape (N, ``num_cols``)
        for the graph's N nodes on that side, and ValueError naming the row and column of the first
        NaN / Inf of a host array. A scipy sparse matrix of any format comes back as CSR (converted
        once, here). One line each, naming ``name`` and what was expected.
        """
        n = self.num_src if side == "src" else self.num_dst
        nodes = "nodes" if self.num_src == self.num_dst else ("source nodes" if side == "src" else "destination nodes")
        return check_feature_array(X, name, n, num_cols, dtype, f"a graph with {n} {nodes}", finite)


# ------------------------------------------------------------------------------------ features
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# Entries from which the finite-scan's sum runs as blocks of _SCAN_BLOCK entries over the threads
# (``threads.row_blocks``; NumPy's reduction releases the GIL): 4M float32 = 16 MB, ~1 ms on one core.
_SCAN_SPLIT = 1 << 22
_SCAN_BLOCK = 1 << 20


def _all_sums_finite(flat):
    """True when the sum of every block of ``flat`` is finite (so every entry is)."""
    from ..threads import row_blocks
    n_blocks = -(-flat.size // _SCAN_BLOCK)
    finite = np.zeros(n_blocks, dtype=np.bool_)

    def scan(lo, hi):
        with np.errstate(all="ignore"):   # per thread: an overflowing finite sum is not an error here
            finite[lo // _SCAN_BLOCK] = np.isfinite(np.add.reduce(flat[lo:hi]))
    row_blocks(scan, flat.size, _SCAN_BLOCK)
    return bool(finite.all())


def first_non_finite(values):
    """Index (a tuple) of the first NaN / Inf of the host array ``values``, or None when every entry is finite.

    One pass that allocates nothing in the common case: a sum is finite only if every term is (NaN and
    Inf propagate); only when it is not (a non-finite entry, or a finite overflow) is the exact test run.
    """
    if values.size == 0 or values.dtype.kind != "f":
        return None
    with np.errstate(all="ignore"):
        if values.size >= _SCAN_SPLIT and values.flags.c_contiguous:
            if _all_sums_finite(values.reshape(-1)):
                return None
        elif np.isfinite(np.add.reduce(values, axis=None)):
            return None
    bad = np.argwhere(~np.isfinite(values))
    return tuple(int(i) for i in bad[0]) if bad.size else None


def check_feature_array(X, name="x", num_rows=None, num_cols=None, dtype=None, context=None, finite=True):
    """The one check of a feature matrix (Graph.check_features and every layer's input); returns X.

    X must expose ``shape``, ``ndim`` and ``dtype`` (NumPy, scipy.sparse, a device array or ``DeviceCSR``),
    else TypeError. Shape (``num_rows``, ``num_cols``), either None meaning any: else ValueError. dtype
    float32 / float64, and exactly ``dtype`` when given: else TypeError. A host array (NumPy or scipy,
    whose stored values are checked) must be finite: else ValueError naming the row and column. A
    scipy sparse matrix is returned as CSR. ``context`` says where the expected shape comes from
    ("a graph with 12 nodes"). Metadata only, except the one pass over a host array's values, which
    ``finite=False`` skips (the values were checked where they entered: ``nn.checks.check_features``).
    """
    rows = "N" if num_rows is None else num_rows
    cols = "F" if num_cols is None else num_cols
    where = [context] if context else []
    if num_cols is not None:
        where.append(f"in_channels={num_cols}")
    expected = f"({rows}, {cols})" + (f" for {' and '.join(where)}" if where else "")
    if not all(hasattr(X, a) for a in ("shape", "ndim", "dtype")):
        raise TypeError(f"{name} must be an array of shape {expected}, got {type(X).__name__}")
    shape = tuple(X.shape)
    if (len(shape) != 2 or (num_rows is not None and shape[0] != num_rows)
            or (num_cols is not None and shape[1] != num_cols)):
        raise ValueError(f"{name} must have shape {expected}, got {shape}")
    if dtype is not None and X.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have the layer's dtype {np.dtype(dtype)}, got {X.dtype}")
    if X.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {X.dtype}")
    if sp.issparse(X):
        X = X if X.format == "csr" else X.tocsr()
    if finite:
        check_finite(X, name)
    return X


def check_finite(X, name="x"):
    """Raise ValueError naming where the first NaN / Inf of ``X`` is -- a host NumPy array (row and column
    when 2-D, else its index) or a scipy CSR matrix (its stored values) -- ; anything else is not read."""
    if sp.issparse(X):
        k = first_non_finite(X.data)
        if k is not None:
            r = int(np.searchsorted(X.indptr, k[0], side="right")) - 1
            raise ValueError(f"{name} must be finite, got {X.data[k[0]]} at row {r}, column {X.indices[k[0]]}")
    elif isinstance(X, np.ndarray):
        k = first_non_finite(X)
        if k is not None:
            where = f"at row {k[0]}, column {k[1]}" if len(k) == 2 else f"at index {k}"
            raise ValueError(f"{name} must be finite, got {X[k]} {where}")
