"""The ``Dataset`` container shared by every loader, and the helpers that build its parts.

A dataset is one graph with node features, node labels and a train / validation / test split
given as boolean masks. Shapes (N nodes, F features, E directed edges):

    x:           (N, F) float32     scipy.sparse.csr_matrix (Planetoid) or dense ndarray (generated)
    y:           (N,) int64         class id in [0, num_classes), or -1 for a node without a label
    edge_index:  (2, E) int64       row 0 = source, row 1 = target (PyG's convention); every
                                    undirected edge appears both ways, no self-loops, no repeats
    train_mask, val_mask, test_mask: (N,) bool, pairwise disjoint, labelled nodes only
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp


@dataclass(eq=False)
class Dataset:
    """One node-classification graph: features, labels, edges and a fixed split (shapes above).

    The constructor checks shapes, dtypes, label range, mask disjointness and that every masked node
    has a label, so a loader bug surfaces here and not as a wrong accuracy later.
    """

    name: str
    x: object
    y: np.ndarray
    edge_index: np.ndarray
    train_mask: np.ndarray
    val_mask: np.ndarray
    test_mask: np.ndarray
    num_classes: int
    meta: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        x = self.x
        if sp.issparse(x):
            if x.format != "csr" or x.dtype != np.float32:
                raise TypeError(f"x must be a float32 csr_matrix when sparse, got {x.format} {x.dtype}")
        elif isinstance(x, np.ndarray):
            if x.dtype != np.float32:
                raise TypeError(f"x must be float32, got {x.dtype}")
        else:
            raise TypeError(f"x must be a numpy array or scipy.sparse csr_matrix, got {type(x).__name__}")
        if x.ndim != 2:
            raise ValueError(f"x must have shape (N, F), got {x.shape}")
        N = x.shape[0]
        if not isinstance(self.y, np.ndarray) or self.y.dtype != np.int64 or self.y.shape != (N,):
            raise ValueError(f"y must be an int64 array of shape ({N},), got "
                             f"{getattr(self.y, 'dtype', type(self.y).__name__)} {getattr(self.y, 'shape', '')}")
        if not isinstance(self.num_classes, (int, np.integer)) or self.num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {self.num_classes!r}")
        self.num_classes = int(self.num_classes)
        if self.y.size and (self.y.min() < -1 or self.y.max() >= self.num_classes):
            raise ValueError(f"y must lie in [-1, {self.num_classes}), got range [{self.y.min()}, {self.y.max()}]")
        ei = self.edge_index
        if not isinstance(ei, np.ndarray) or ei.dtype != np.int64 or ei.ndim != 2 or ei.shape[0] != 2:
            raise ValueError(f"edge_index must be an int64 array of shape (2, E), got "
                             f"{getattr(ei, 'dtype', type(ei).__name__)} {getattr(ei, 'shape', '')}")
        if ei.size and (ei.min() < 0 or ei.max() >= N):
            raise ValueError(f"edge_index holds node ids in [{ei.min()}, {ei.max()}], expected [0, {N})")
        for mname in ("train_mask", "val_mask", "test_mask"):
            m = getattr(self, mname)
            if not isinstance(m, np.ndarray) or m.dtype != np.bool_ or m.shape != (N,):
                raise ValueError(f"{mname} must be a bool array of shape ({N},), got "
                                 f"{getattr(m, 'dtype', type(m).__name__)} {getattr(m, 'shape', '')}")
            if np.any(self.y[m] < 0):
                raise ValueError(f"{mname} selects {int(np.sum(self.y[m] < 0))} node(s) without a label (y = -1)")
        tr, va, te = self.train_mask, self.val_mask, self.test_mask
        overlap = (tr & va) | (tr & te) | (va & te)
        if overlap.any():
            raise ValueError(f"train/val/test masks must be disjoint, node {int(np.flatnonzero(overlap)[0])} is in two")

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.x.shape[1])

    @property
    def num_edges(self) -> int:
        """Number of directed edges (each undirected edge counts twice)."""
        return int(self.edge_index.shape[1])

    @cached_property
    def graph(self):
        """The edges as a ``gnn_scratch.graph.Graph`` (CSR, rows = destinations), built once."""
        from gnn_scratch.graph import Graph  # imported here so loading data never needs the kernels

        return Graph.from_edge_index(self.edge_index, num_nodes=self.num_nodes)

    def __repr__(self):
        kind = "sparse" if sp.issparse(self.x) else "dense"
        return (f"Dataset({self.name!r}, num_nodes={self.num_nodes}, num_edges={self.num_edges}, "
                f"num_features={self.num_features} ({kind}), num_classes={self.num_classes}, "
                f"train/val/test={int(self.train_mask.sum())}/{int(self.val_mask.sum())}/{int(self.test_mask.sum())})")


def undirected_edge_index(src, dst, num_nodes):
    """Symmetrise a list of edges: (2, E) int64 with both directions, no self-loops, no repeats.

    src, dst: (M,) integer node ids in [0, num_nodes). The result is sorted by (source, target),
    so the same edge set always gives the same array.
    """
    src = np.asarray(src, dtype=np.int64).ravel()
    dst = np.asarray(dst, dtype=np.int64).ravel()
    if src.shape != dst.shape:
        raise ValueError(f"src and dst must have the same length, got {src.size} and {dst.size}")
    if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= num_nodes):
        raise ValueError(f"edge endpoints must lie in [0, {num_nodes}), got "
                         f"[{min(src.min(), dst.min())}, {max(src.max(), dst.max())}]")
    keep = src != dst
    a = np.concatenate([src[keep], dst[keep]])
    b = np.concatenate([dst[keep], src[keep]])
    # One int64 key per directed edge; sorting the keys orders edges by (source, target) and puts
    # repeats side by side. (A plain sort: np.unique is several times slower on millions of keys.)
    key = a * np.int64(num_nodes) + b
    key.sort()
    if key.size:
        key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    return np.stack([key // num_nodes, key % num_nodes])


def index_to_mask(index, num_nodes):
    """(K,) node ids -> (num_nodes,) bool mask."""
    mask = np.zeros(num_nodes, dtype=bool)
    mask[np.asarray(index, dtype=np.int64)] = True
    return mask


def row_normalize(x):
    """Divide each row of x by its sum (the GCN paper's feature preprocessing); zero rows stay zero.

    x: (N, F) dense ndarray or scipy.sparse matrix. Returns float32 of the same kind (sparse in ->
    csr_matrix out, dense in -> new ndarray out); the input is not modified.
    """
    if sp.issparse(x):
        x = sp.csr_matrix(x, dtype=np.float32, copy=True)
        s = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
        inv = np.divide(1.0, s, out=np.zeros_like(s), where=s != 0)
        # scale the stored entries row by row without building a diagonal matrix
        x.data = (x.data * np.repeat(inv, np.diff(x.indptr))).astype(np.float32)
        return x
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (N, F), got {x.shape}")
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x must be numeric, got dtype {x.dtype}")
    s = x.sum(axis=1, dtype=np.float64, keepdims=True)
    inv = np.divide(1.0, s, out=np.zeros_like(s), where=s != 0)
    return (x * inv).astype(np.float32)
