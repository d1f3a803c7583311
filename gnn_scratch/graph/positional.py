"""Positional encodings of the nodes of a graph: Laplacian eigenvectors and random-walk return probabilities.

Graph transformers attend over all node pairs of a graph and would see the nodes as a set; a
positional encoding (PE) gives each node coordinates that say where it sits in the graph. Both are
functions of the structure only, computed once per graph and cached on it (``Graph.cached``: the
graph's arrays are read-only, so the cache cannot go stale; the returned arrays are read-only too).

* **Laplacian PE** (Dwivedi, Joshi, Laurent, Bengio & Bresson, "Benchmarking Graph Neural Networks",
  2020, sec. on positional encodings; Dwivedi & Bresson, "A Generalization of Transformer Networks to
  Graphs", 2021): the eigenvectors of the k smallest non-trivial eigenvalues of the symmetric
  normalised Laplacian  L = I - D^-1/2 A D^-1/2.
* **Random-walk PE** (RWPE; Dwivedi, Luu, Laurent, Bengio & Bresson, "Graph Neural Networks with
  Learnable Structural and Positional Representations", ICLR 2022):
  p_i = [RW_ii, (RW^2)_ii, ..., (RW^k)_ii] with RW = A D^-1, the probability of being back at i after
  1..k steps of a uniform random walk. It needs no sign or basis choice.

What the Laplacian PE is, exactly (``laplacian_eigen`` / ``laplacian_pe``):

* **The graph is made undirected**: A = (A_in + A_in^T) / 2 with A_in[i, j] = number of edges j -> i
  (repeated edges count; weights only with ``use_weights=True``). A graph stored with both
  directions of every edge (every dataset here) gives back its own adjacency. Degrees d_i = sum_j A[i, j];
  a node of degree 0 gets D^-1/2 = 0 there, so its row of L is the unit row and it has eigenvalue 1
  (benchmarking-gnns clips the degree at 1: the same L).
* **The trivial eigenvectors.** L is positive semi-definite with spectrum in [0, 2]; its null space is
  spanned by D^1/2 1_C, one vector per connected component C that has an edge (an isolated node has
  eigenvalue 1, not 0, and so is no trivial eigenvector). A connected graph has one, D^1/2 1.
  ``trivial="components"`` (default) drops all c of them -- the count comes from the structure
  (``scipy.sparse.csgraph.connected_components``), not from a tolerance on eigenvalues -- and keeps
  the next k. ``trivial="first"`` drops only the first eigenvector, as benchmarking-gnns' and PyG's
  code do (``EigVec[:, 1:k+1]``): on a graph with c > 1 components the first c - 1 kept columns are
  then still null vectors (a rotation of the component indicators).
* **Fewer than k vectors** (a graph with fewer than k + c nodes): the missing columns are zeros, as
  benchmarking-gnns pads them (``F.pad(..., value=0)``); ``laplacian_eigen`` reports their eigenvalue as NaN.
* **Solver**: ``numpy.linalg.eigh`` on the dense L for graphs of at most ``dense_threshold`` nodes
  (default 1000: a dense 1000 x 1000 eigh takes ~0.2 s and 8 MB); above, ``scipy.sparse.linalg.eigsh``
  in shift-invert mode around sigma = -1e-3 (L - sigma I is positive definite, so its LU factorisation
  never meets the singular point 0) for the k + c smallest eigenpairs, from a fixed start vector
  (ARPACK's default start is random: a fixed one keeps the result repeatable).
* **Sign and basis: only the eigenspaces are defined.** An eigenvector is defined up to its sign, and
  the eigenvectors of a repeated eigenvalue only up to a rotation (an orthogonal transformation) of
  their eigenspace: a cycle's eigenvalues 1 - cos(2 pi j / n) come in pairs, a complete graph has one
  eigenvalue of multiplicity n - 1. What is well defined is the projector V V^T onto each whole
  eigenspace, not the columns (and if the k-th and (k+1)-th eigenvalues are equal, the k columns cut
  an eigenspace in two, so not even their span is defined). Here the columns are the ones ``eigh``
  gives, with a sign convention (the entry of largest magnitude -- the first one within 1e-8 of it --
  is made positive) so that a run is repeatable; a model must not rely on either. Training flips the
  signs at random (``random_sign_flip``, a fresh draw per graph per epoch) so the model learns to
  ignore them; the basis ambiguity of repeated eigenvalues is not addressed (as in benchmarking-gnns).

Batches: for a ``GraphBatch`` of several graphs the PE is computed **per member graph** and the
blocks concatenated (the block-diagonal Laplacian of the whole batch has an eigenvalue 0 per graph,
so its eigenvectors would mix graphs), and cached on the batch. A dataset whose member graphs
persist (``data.sbm``) computes each member's PE once, cached on the member, and concatenates.
"""
from __future__ import annotations

import numbers
from contextlib import nullcontext

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import eigsh

from ..threads import blas_threads
from .batch import GraphBatch
from .csr import Graph

DENSE_THRESHOLD = 1000     # graphs of at most this many nodes: dense numpy.linalg.eigh; above: scipy eigsh
SERIAL_BLAS = 500          # dense work on graphs up to this size runs on one BLAS thread (see _blas)
TRIVIAL = ("components", "first")
_SHIFT = -1e-3             # eigsh's shift-invert point: left of 0, so L - sigma I is positive definite
_SIGN_TIE = 1e-8           # relative tolerance of "the entry of largest magnitude" in the sign convention


def _check_graph(graph, who):
    if not isinstance(graph, Graph):
        raise TypeError(f"{who}: graph must be a gnn_scratch Graph, got {type(graph).__name__}")
    if graph.num_dst != graph.num_src:
        raise ValueError(f"{who}: graph must be square (a whole graph, not a bipartite block), got shape {graph.shape}")
    return graph.host


def _check_count(name, value, who, minimum=1):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{who}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _adjacency(graph, use_weights, symmetric):
    """(N, N) scipy CSR: A[i, j] = edges j -> i (counted, or summed weights); (A + A^T) / 2 when ``symmetric``."""
    w = graph.edge_weight if (use_weights and graph.edge_weight is not None) else np.ones(graph.num_edges)
    A = graph.to_scipy(np.asarray(w, dtype=np.float64))
    A.sum_duplicates()
    if symmetric:
        A = ((A + A.T) * 0.5).tocsr()
    return A


def _members(graph):
    """The member graphs of a batch of several graphs, else None (one graph: the graph itself)."""
    if isinstance(graph, GraphBatch) and graph.num_graphs > 1:
        return [graph.graph(b) for b in range(graph.num_graphs)]
    return None


def _blas(n):
    """One OpenBLAS thread for the dense algebra of a small graph: for a 120-node SBM graph a threaded eigh
    was ~30x slower on the shared 2-core machine (170 ms against 5 ms; ``threads.py`` says why)."""
    return blas_threads(1) if n <= SERIAL_BLAS else nullcontext()     # a large graph keeps the user's setting


def _read_only(*arrays):
    for a in arrays:
        a.flags.writeable = False
    return arrays if len(arrays) > 1 else arrays[0]


# ============================================================================================ Laplacian
def normalized_laplacian(graph, use_weights=False):
    """L = I - D^-1/2 A D^-1/2 of the undirected view A = (A_in + A_in^T) / 2 of ``graph``: (N, N) scipy CSR float64.

    Degree-0 nodes get D^-1/2 = 0 (their row of L is the unit row). See the module docstring.
    """
    graph = _check_graph(graph, "normalized_laplacian")
    A = _adjacency(graph, use_weights, symmetric=True)
    deg = np.asarray(A.sum(axis=1)).ravel()
    d_inv_sqrt = np.zeros_like(deg)
    np.power(deg, -0.5, out=d_inv_sqrt, where=deg > 0)
    Dm = sp.diags(d_inv_sqrt)
    return (sp.identity(graph.num_nodes, format="csr") - Dm @ A @ Dm).tocsr()


def num_trivial(graph, use_weights=False):
    """c: the number of connected components of ``graph`` (undirected view) that have an edge = dim null(L)."""
    graph = _check_graph(graph, "num_trivial")
    A = _adjacency(graph, use_weights, symmetric=True)
    _, comp = connected_components(A, directed=False)
    deg = np.asarray(A.sum(axis=1)).ravel()
    return int(np.unique(comp[deg > 0]).size)


def _sign_convention(V):
    """Flip each column of V (in place) so that its first entry within 1e-8 of the largest magnitude is positive."""
    if V.size == 0:
        return V
    mag = np.abs(V)
    first = np.argmax(mag >= mag.max(axis=0) * (1 - _SIGN_TIE), axis=0)
    s = np.sign(V[first, np.arange(V.shape[1])])
    s[s == 0] = 1
    V *= s
    return V


def _eigen_one(graph, k, trivial, dense_threshold, use_weights):
    n = graph.num_nodes
    L = normalized_laplacian(graph, use_weights)
    drop = num_trivial(graph, use_weights) if trivial == "components" else 1
    want = min(k + drop, n)
    if n <= dense_threshold or want >= n - 1:
        with _blas(n):
            w, V = np.linalg.eigh(L.toarray())
        w, V = w[:want], V[:, :want]
    else:
        v0 = np.random.default_rng(0).standard_normal(n)     # ARPACK's default start is random: fix it
        w, V = eigsh(L.tocsc(), k=want, sigma=_SHIFT, which="LM", v0=v0)
        order = np.argsort(w, kind="stable")
        w, V = w[order], V[:, order]
    w, V = w[drop:], np.ascontiguousarray(V[:, drop:])
    _sign_convention(V)
    vals = np.full(k, np.nan)
    vecs = np.zeros((n, k))
    vals[:w.size], vecs[:, :w.size] = w, V
    return vals, vecs


def laplacian_eigen(graph, k, trivial="components", dense_threshold=DENSE_THRESHOLD, use_weights=False):
    """(eigenvalues, eigenvectors): the k smallest non-trivial eigenpairs of L = I - D^-1/2 A D^-1/2, cached.

    graph: a square ``Graph`` (or ``GraphBatch``: per member graph, see below) with N nodes.
    k: number of eigenvectors, int >= 1. trivial: "components" (drop the null vectors D^1/2 1_C, one per
    connected component with an edge) or "first" (drop one, as benchmarking-gnns / PyG do).
    dense_threshold: graphs of at most this many nodes use dense ``numpy.linalg.eigh``, larger ones
    ``scipy.sparse.linalg.eigsh`` (shift-invert). use_weights: weight edges by ``edge_weight``
    (default: count them). Returns eigenvalues (k,) float64, ascending, NaN for a padded column, and
    eigenvectors (N, k) float64, unit columns, zeros for a padded column (a graph with fewer than
    k + c nodes). Both read-only, cached on the graph per (k, trivial, dense_threshold, use_weights).
    Columns are defined only up to sign and, for a repeated eigenvalue, up to a rotation of the
    eigenspace (module docstring). For a ``GraphBatch`` of B > 1 graphs: eigenvalues (B, k) (one row
    per graph) and eigenvectors (N, k), each graph's rows from its own Laplacian.
    Raises TypeError for a graph that is not a ``Graph``, ValueError for a non-square graph, k < 1,
    an unknown ``trivial`` or a negative ``dense_threshold``.
    """
    graph = _check_graph(graph, "laplacian_eigen")
    k = _check_count("k", k, "laplacian_eigen")
    dense_threshold = _check_count("dense_threshold", dense_threshold, "laplacian_eigen", minimum=0)
    if trivial not in TRIVIAL:
        raise ValueError(f"laplacian_eigen: trivial must be one of {TRIVIAL}, got {trivial!r}")
    use_weights = bool(use_weights)

    def build():
        members = _members(graph)
        if members is None:
            return _read_only(*_eigen_one(graph, k, trivial, dense_threshold, use_weights))
        parts = [laplacian_eigen(g, k, trivial, dense_threshold, use_weights) for g in members]
        return _read_only(np.stack([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return graph.cached(("laplacian_eigen", k, trivial, dense_threshold, use_weights), build)


def laplacian_pe(graph, k, trivial="components", dense_threshold=DENSE_THRESHOLD, use_weights=False,
                 dtype=np.float32):
    """Laplacian positional encoding (N, k) in ``dtype``: the eigenvectors of ``laplacian_eigen`` (same arguments).

    Cached on the graph (read-only); per member graph for a ``GraphBatch``. Flip signs in training
    with ``random_sign_flip``. Raises as ``laplacian_eigen``, and TypeError for a non-float dtype.
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"laplacian_pe: dtype must be a float dtype, got {dtype}")
    vecs = laplacian_eigen(graph, k, trivial, dense_threshold, use_weights)[1]
    if dtype == vecs.dtype:
        return vecs
    return graph.host.cached(("laplacian_pe", k, trivial, dense_threshold, bool(use_weights), dtype.str),
                             lambda: _read_only(vecs.astype(dtype)))


# ========================================================================================= random walks
RW_DENSE_THRESHOLD = 2000   # graphs of at most this many nodes: dense matrix powers (PyG's AddRandomWalkPE: 2000)


def _rw_one(graph, walk_length, use_weights):
    n = graph.num_nodes
    A = _adjacency(graph, use_weights, symmetric=False)           # A[i, j]: edges j -> i
    out_deg = np.asarray(A.sum(axis=0)).ravel()                   # total weight leaving each source j
    inv = np.zeros_like(out_deg)
    np.divide(1.0, out_deg, out=inv, where=out_deg > 0)           # a node with no out-edge: column of zeros
    RW = (A @ sp.diags(inv)).tocsr()                              # RW[i, j] = P(step j -> i), columns sum to 1 or 0
    pe = np.empty((n, walk_length))
    if n <= RW_DENSE_THRESHOLD:
        M = RW.toarray()
        P = M.copy()
        with _blas(n):
            for t in range(walk_length):
                if t:
                    P = P @ M
                pe[:, t] = np.diagonal(P)
    else:
        P = RW.copy()
        for t in range(walk_length):
            if t:
                P = (P @ RW).tocsr()
            pe[:, t] = P.diagonal()
    return pe


def random_walk_pe(graph, walk_length, use_weights=False, dtype=np.float32):
    """Random-walk positional encoding (N, walk_length): pe[i, t-1] = (RW^t)_ii, RW = A D^-1, cached on the graph.

    Dwivedi et al., ICLR 2022 (RWPE); PyG's ``AddRandomWalkPE``. A[i, j] = number of edges j -> i
    (summed ``edge_weight`` with ``use_weights=True``), D = diag of the out-degrees, so RW[i, j] is the
    probability that a walker at j steps to i and (RW^t)_ii is the probability of being back at i
    after t steps. (A D^-1 and D^-1 A^T-style row-stochastic forms are similar matrices: their powers
    have the same diagonal.) A node without out-edges has a zero column (the walk stops: PE 0 after
    it); a self-loop is a step that stays. Directed graphs are walked along their edges. Dense matrix
    powers up to 2000 nodes, sparse products above (they fill in: O(N^2) memory at worst).
    graph: a square ``Graph`` (a ``GraphBatch`` works as one graph: walks never leave their graph).
    Returns (N, walk_length) ``dtype``, read-only. Raises TypeError / ValueError for a bad graph,
    walk_length < 1, or a non-float dtype.
    """
    graph = _check_graph(graph, "random_walk_pe")
    walk_length = _check_count("walk_length", walk_length, "random_walk_pe")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"random_walk_pe: dtype must be a float dtype, got {dtype}")
    use_weights = bool(use_weights)

    def build():
        members = _members(graph)
        pe = (_rw_one(graph, walk_length, use_weights) if members is None       # per member: small dense powers
              else np.concatenate([_rw_one(g, walk_length, use_weights) for g in members]))
        return _read_only(pe.astype(dtype))
    return graph.cached(("random_walk_pe", walk_length, use_weights, dtype.str), build)


# ========================================================================================= sign flips
def random_sign_flip(pe, rng, graph_ptr=None):
    """``pe`` with the sign of each column flipped at random: a new (N, k) array (the input is not changed).

    The training-time augmentation of the Laplacian PE (Dwivedi et al. 2020): an eigenvector's sign is
    arbitrary, so each graph draws k fresh signs, each +1 or -1 with probability 1/2, every epoch (call
    this once per mini-batch with that epoch's generator). pe: (N, k) float. rng: a
    ``numpy.random.Generator`` or an int seed (same seed -> same signs). graph_ptr: (B + 1,) int, the
    row ranges of B graphs (``GraphBatch.graph_ptr``): each graph gets its own signs; None = one graph.
    Zero (padded) columns stay zero. Raises ValueError for a pe that is not 2-D or a graph_ptr that
    does not cover its rows, TypeError for an rng that is neither.
    """
    pe = np.asarray(pe)
    if pe.ndim != 2 or pe.dtype.kind != "f":
        raise ValueError(f"random_sign_flip: pe must be a 2-D float array (N, k), got {pe.dtype} {pe.shape}")
    if isinstance(rng, (numbers.Integral, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        rng = np.random.default_rng(int(rng))
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"random_sign_flip: rng must be a numpy Generator or an int seed, got {type(rng).__name__}")
    N, k = pe.shape
    if graph_ptr is None:
        graph_ptr = np.array([0, N])
    gp = np.asarray(graph_ptr)
    if gp.ndim != 1 or gp.size < 2 or gp.dtype.kind not in "iu" or gp[0] != 0 or gp[-1] != N \
            or np.any(np.diff(gp) < 0):
        raise ValueError(f"random_sign_flip: graph_ptr must be a non-decreasing int array from 0 to N = {N}, got {gp!r}")
    signs = 2.0 * rng.integers(0, 2, size=(gp.size - 1, k)) - 1.0              # (B, k) of +-1
    return pe * np.repeat(signs, np.diff(gp), axis=0).astype(pe.dtype)
