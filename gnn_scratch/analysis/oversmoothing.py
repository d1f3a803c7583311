"""Over-smoothing measured on node states: Dirichlet energy, MAD and MADGap.

A deep message-passing network drives the states of connected nodes towards each other (Li, Han
& Wu 2018; Oono & Suzuki 2020); these three numbers say how far that has gone at a given layer.

* ``dirichlet_energy(H, graph)`` -- with d_i the number of edges entering i (self-loops excluded,
  repeated edges counted) and the sum over every stored edge j -> i with j != i (an undirected
  edge stored both ways counts twice, i.e. sum_i sum_{j in N(i)}):

      E(H) = (1/N) sum_{j->i} || h_i / sqrt(1 + d_i) - h_j / sqrt(1 + d_j) ||^2      (normalized=True)
      E(H) = (1/N) sum_{j->i} || h_i - h_j ||^2                                      (normalized=False)

  The first is Cai & Wang's (2020) energy tr(H^T Delta~ H) of the augmented normalised Laplacian
  (times 2/N), the second the plain one of Rusch, Bronstein & Mishra's survey (2023). Both are 0
  exactly when H is constant (normalised: proportional to sqrt(1 + d)) on every component.

* ``mad(H, mask)`` -- Mean Average Distance (Chen et al. 2020, "Measuring and Relieving the
  Over-smoothing Problem for Graph Neural Networks from the Topological View", Eqs. 1-3):
  D_ij = 1 - cos(h_i, h_j) (clipped to [0, 2], D_ii = 0); D^tgt = D * M; per row the mean of
  its *nonzero* entries, D_i = sum_j D^tgt_ij / #{j : D^tgt_ij > 0} (0 for a row with none);
  MAD = sum_i D_i / #{i : D_i > 0} (0 when no row has any). A zero vector has cosine similarity
  0 with everything, so distance 1 (scikit-learn's ``cosine_distances`` convention, which the
  paper's code inherits): MAD cannot see a collapse to 0 -- the energy does.

* ``mad_gap(H, graph)`` -- MAD^rmt - MAD^neb, where the neighbour mask holds the pairs at 1 to
  ``neighbor_hops`` (3) hops and the remote mask the pairs at ``remote_hops`` (8) hops or more,
  unreachable pairs (another component: infinitely many hops) included, as in the paper. Hops are
  shortest-path lengths with the edges taken undirected (``scipy.sparse.csgraph``).

Inputs: H (N, F) float, host or device (copied to the host in float64); ``graph`` a square
``Graph`` on N nodes. Errors: ValueError for a non-2-D H, a row count that is not the graph's,
a mask of the wrong shape, non-finite values, or hop thresholds out of order.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph

from ..device import to_host

ROW_BLOCK = 1024   # rows of the N x N distance matrix held at once by ``mad``


def _states(H, graph=None, name="H"):
    H = np.asarray(to_host(H), dtype=np.float64)
    if H.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of node states (N, F), got shape {H.shape}")
    if graph is not None:
        if graph.num_src != graph.num_dst:
            raise ValueError(f"graph must be square (one node set), got shape {graph.shape}")
        if H.shape[0] != graph.num_nodes:
            raise ValueError(f"{name} must have one row per node of the graph ({graph.num_nodes}), got {H.shape[0]}")
    if not np.isfinite(H).all():
        i, j = np.argwhere(~np.isfinite(H))[0]
        raise ValueError(f"{name} must be finite, got {H[i, j]} at row {i}, column {j}")
    return H


def dirichlet_energy(H, graph, normalized=True):
    """The Dirichlet energy of node states H on ``graph`` per node (see the module docstring): a float >= 0."""
    H = _states(H, graph)
    dst = graph.dst_of_edge().astype(np.int64)
    src = graph.indices.astype(np.int64)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    if normalized:
        d = np.bincount(dst, minlength=graph.num_nodes).astype(np.float64)
        H = H / np.sqrt(1.0 + d)[:, None]
    diff = H[dst] - H[src]
    return float(np.sum(diff * diff) / graph.num_nodes)


def cosine_distance_rows(H, rows):
    """D[rows] of D_ij = 1 - cos(h_i, h_j), clipped to [0, 2], D_ii = 0, zero rows at distance 1: (len(rows), N)."""
    norm = np.sqrt(np.sum(H * H, axis=1))
    U = np.divide(H, norm[:, None], out=np.zeros_like(H), where=norm[:, None] > 0)
    D = 1.0 - U[rows] @ U.T
    np.clip(D, 0.0, 2.0, out=D)
    D[np.arange(len(rows)), rows] = 0.0
    return D


def _mads(H, masks):
    """MAD of the rows of H (N, F) float64 under each of ``masks`` (None = all pairs), one distance pass."""
    N = H.shape[0]
    masks = [None if m is None else (sp.csr_matrix(m) if sp.issparse(m) else np.asarray(m)) for m in masks]
    for m in masks:
        if m is not None and tuple(m.shape) != (N, N):
            raise ValueError(f"mask must have shape ({N}, {N}) (one row and column per row of H), got {m.shape}")
    row_mean = np.zeros((len(masks), N))
    for start in range(0, N, ROW_BLOCK):
        rows = np.arange(start, min(start + ROW_BLOCK, N))
        D_all = cosine_distance_rows(H, rows)
        for k, m in enumerate(masks):
            D = D_all
            if m is not None:
                D = D_all * ((m[rows].toarray() if sp.issparse(m) else m[rows]) != 0)
            count = np.count_nonzero(D > 0, axis=1)
            row_mean[k, rows] = np.divide(D.sum(axis=1), count, out=np.zeros(len(rows)), where=count > 0)
    used = np.count_nonzero(row_mean > 0, axis=1)
    return [float(r.sum() / u) if u else 0.0 for r, u in zip(row_mean, used)]


def mad(H, mask=None):
    """Mean Average Distance of the rows of H over the pairs ``mask`` selects (all pairs when None): a float.

    mask: (N, N) array (nonzero = counted) or scipy.sparse matrix. See the module docstring.
    """
    return _mads(_states(H), [mask])[0]


def hop_masks(graph, neighbor_hops=3, remote_hops=8):
    """(neighbour, remote): (N, N) bool masks of the pairs at 1..``neighbor_hops`` hops and at >= ``remote_hops``.

    Unreachable pairs are remote. Computed once per graph and thresholds (breadth-first search from
    every node, O(N (N + E)); the two masks take 2 N^2 bytes) and cached on the graph.
    """
    neighbor_hops, remote_hops = int(neighbor_hops), int(remote_hops)
    if not 1 <= neighbor_hops < remote_hops:
        raise ValueError(f"hop thresholds must satisfy 1 <= neighbor_hops < remote_hops, got "
                         f"{neighbor_hops} and {remote_hops}")
    if graph.num_src != graph.num_dst:
        raise ValueError(f"graph must be square (one node set), got shape {graph.shape}")

    def build():
        hops = csgraph.shortest_path(graph.host.to_scipy(), method="D", directed=False, unweighted=True)
        return (hops >= 1) & (hops <= neighbor_hops), hops >= remote_hops
    return graph.host.cached(("hop_masks", neighbor_hops, remote_hops), build)


def mad_gap(H, graph, neighbor_hops=3, remote_hops=8):
    """MADGap = MAD over remote pairs (>= ``remote_hops`` hops) - MAD over neighbours (<= ``neighbor_hops``)."""
    H = _states(H, graph)
    neb, rmt = hop_masks(graph, neighbor_hops, remote_hops)
    mad_rmt, mad_neb = _mads(H, [rmt, neb])
    return mad_rmt - mad_neb


def relative_dirichlet_energy(H, graph):
    """E(H) / ((1/N) ||H||_F^2): the (normalised) energy per unit of squared state norm, a Rayleigh quotient.

    Scale-free: it tells states that are merely shrinking (E -> 0 with the norm, the ratio flat)
    from states that are becoming alike (the ratio -> 0). 0 for H = 0.
    """
    H = _states(H, graph)
    sq = float(np.sum(H * H)) / graph.num_nodes
    return dirichlet_energy(H, graph) / sq if sq > 0 else 0.0


def state_metrics(states, graph, gap=True):
    """Per state of ``states`` (a list of (N, F) arrays, one per layer): a dict with ``energy``
    (normalised), ``energy_plain``, ``energy_relative``, ``mad`` and, with ``gap``, ``mad_gap``."""
    out = []
    for H in states:
        H = _states(H, graph)
        row = dict(energy=dirichlet_energy(H, graph), energy_plain=dirichlet_energy(H, graph, normalized=False),
                   energy_relative=relative_dirichlet_energy(H, graph))
        if gap:
            neb, rmt = hop_masks(graph)
            row["mad"], mad_rmt, mad_neb = _mads(H, [None, rmt, neb])
            row["mad_gap"] = mad_rmt - mad_neb
        else:
            row["mad"] = _mads(H, [None])[0]
        out.append(row)
    return out
