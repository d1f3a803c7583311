"""BlogCatalog (multi-label node classification) and the karate club's adjacency list, as DeepWalk ships them.

Both files come from the ``example_graphs/`` folder of the DeepWalk repository (phanein/deepwalk),
the copy the DeepWalk, LINE and node2vec evaluations were run on:

* ``blogcatalog.mat`` -- a MATLAB v5 file (``scipy.io.loadmat``) with ``network``: the 10312 x 10312
  symmetric 0/1 sparse adjacency of the bloggers' friendship graph (333,983 undirected edges, no
  self-loop), and ``group``: the 10312 x 39 sparse 0/1 matrix of the interest groups each blogger
  joined (every node has 1 to 11 of them; the multi-label targets of the node2vec paper's Table 2).
* ``karate.adjlist`` -- Zachary's karate club as one line per node, ``u v_1 v_2 ...``, 1-based,
  each undirected edge listed from both ends.

Files are located like every other dataset (``paths.find_dir_with``: the ``root`` argument, then
$GNN_SCRATCH_DATA, then the user cache; ``<root>/blogcatalog/`` or ``<root>`` itself). Each file's
sha256 is checked on the bytes that are then parsed (``integrity.read_bytes_verified``: read once,
hashed, parsed from memory), so nothing unverified reaches ``loadmat``. With ``download=True`` and
no local copy, the file is fetched from the DeepWalk repository into the cache and checked before
it is renamed into place (``download.download_verified``: all or nothing).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.io
import scipy.sparse as sp

from .dataset import Dataset, undirected_edge_index
from .files import read_verified
from .karate import EDGES as KARATE_EDGES, NUM_NODES as KARATE_NUM_NODES, karate_club

BLOGCATALOG_URL = "https://github.com/phanein/deepwalk/raw/master/example_graphs"
SUBDIR = "blogcatalog"

# sha256 of each file (from the project's shared datasets README).
SHA256 = {
    "blogcatalog.mat": "d4f4fb89ce1ccd4b7e2a183386c000773cc9362cc61f1be5b246a6d9c259da8f",
    "karate.adjlist": "f4ff0d1d42fa2e475515993f82e2f38decec36708f74b7635694a85418ab984f",
}

# Published sizes, checked after parsing: nodes, undirected edges, labels.
NUM_NODES, NUM_UNDIRECTED_EDGES, NUM_LABELS = 10312, 333_983, 39


@dataclass(eq=False)
class MultiLabelGraph:
    """One graph whose nodes carry any number of labels (N nodes, E directed edges, C labels).

    edge_index: (2, E) int64, row 0 = source, row 1 = target; every undirected edge both ways, no
                self-loop, no repeat, sorted by (source, target)
    labels:     (N, C) bool, labels[v, c] = node v has label c
    """

    name: str
    edge_index: np.ndarray
    labels: np.ndarray
    meta: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        ei, Y = self.edge_index, self.labels
        if not isinstance(Y, np.ndarray) or Y.dtype != np.bool_ or Y.ndim != 2:
            raise ValueError(f"labels must be a (N, C) bool array, got {getattr(Y, 'dtype', type(Y).__name__)} "
                             f"{getattr(Y, 'shape', '')}")
        if not isinstance(ei, np.ndarray) or ei.dtype != np.int64 or ei.ndim != 2 or ei.shape[0] != 2:
            raise ValueError(f"edge_index must be an int64 array of shape (2, E), got "
                             f"{getattr(ei, 'dtype', type(ei).__name__)} {getattr(ei, 'shape', '')}")
        if ei.size and (ei.min() < 0 or ei.max() >= Y.shape[0]):
            raise ValueError(f"edge_index holds node ids in [{ei.min()}, {ei.max()}], expected [0, {Y.shape[0]})")

    @property
    def num_nodes(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_labels(self) -> int:
        return int(self.labels.shape[1])

    @property
    def num_edges(self) -> int:
        """Number of directed edges (each undirected edge counts twice)."""
        return int(self.edge_index.shape[1])

    @cached_property
    def graph(self):
        """The edges as a ``gnn_scratch.graph.Graph`` (CSR, rows = destinations, unweighted), built once."""
        from gnn_scratch.graph import Graph  # loading data never needs the kernels

        return Graph.from_edge_index(self.edge_index, num_nodes=self.num_nodes)

    def adjacency(self, dtype=np.float32):
        """(N, N) scipy.sparse csr 0/1 adjacency, symmetric: A[i, j] = 1 for an edge j -> i."""
        N = self.num_nodes
        A = sp.csr_matrix((np.ones(self.num_edges, dtype=dtype), (self.edge_index[1], self.edge_index[0])),
                          shape=(N, N))
        A.sort_indices()
        return A

    def __repr__(self):
        return (f"MultiLabelGraph({self.name!r}, num_nodes={self.num_nodes}, num_edges={self.num_edges}, "
                f"num_labels={self.num_labels}, labels_per_node={self.labels.sum(1).min()}.."
                f"{self.labels.sum(1).max()})")


# =============================================================================== reading files
def _verified_bytes(fname, root, download, base_url, checksums):
    """(the bytes of ``fname``, sha256-verified, and its path): ``files.read_verified``."""
    blobs, folder = read_verified([fname], SUBDIR, root, download, base_url, SHA256, checksums, fname)
    return blobs[fname], folder / fname


# =============================================================================== BlogCatalog
def _sparse01(m, key, shape=None):
    """A loadmat sparse matrix -> csr with every stored value equal to 1 (explicit zeros dropped)."""
    if not sp.issparse(m):
        raise ValueError(f"blogcatalog.mat['{key}'] must be a sparse matrix, got {type(m).__name__}")
    m = sp.csr_matrix(m)
    m.eliminate_zeros()
    if shape is not None and m.shape != shape:
        raise ValueError(f"blogcatalog.mat['{key}'] must have shape {shape}, got {m.shape}")
    if m.nnz and not np.all(m.data == 1):
        raise ValueError(f"blogcatalog.mat['{key}'] must be a 0/1 matrix, got values {np.unique(m.data)[:5]}")
    return m


def load_blogcatalog(root=None, download: bool = True, *, base_url: str = BLOGCATALOG_URL,
                     checksums=None) -> MultiLabelGraph:
    """BlogCatalog (Tang & Liu 2009, as shipped with DeepWalk): 10312 nodes, 333,983 undirected edges, 39 labels.

    root: a data root (``<root>/blogcatalog/blogcatalog.mat``) or the folder itself; searched first,
        then $GNN_SCRATCH_DATA, then the user cache (``gnn_scratch.data.paths``).
    download: when the file is nowhere, fetch ``<base_url>/blogcatalog.mat`` into the cache.
    checksums: file name -> sha256 replacing the published table (tests, private mirrors).

    Returns a ``MultiLabelGraph`` with edge_index (2, 667966) int64 (both directions) and labels
    (10312, 39) bool. Raises ``DataNotFoundError`` (no file and no download), ``ChecksumError``
    (the bytes are not the published file), ValueError (a key missing, a non-symmetric or
    weighted network, a self-loop, labels not 0/1, or sizes other than the published ones).
    """
    data, path = _verified_bytes("blogcatalog.mat", root, download, base_url, checksums)
    mat = scipy.io.loadmat(io.BytesIO(data))
    for key in ("network", "group"):
        if key not in mat:
            raise ValueError(f"{path} has no '{key}' matrix (keys: {sorted(k for k in mat if not k.startswith('__'))})")
    A = _sparse01(mat["network"], "network")
    N = A.shape[0]
    if A.shape != (N, N):
        raise ValueError(f"blogcatalog.mat['network'] must be square, got {A.shape}")
    if (A != A.T).nnz:
        raise ValueError("blogcatalog.mat['network'] must be symmetric (an undirected graph)")
    if A.diagonal().any():
        raise ValueError(f"blogcatalog.mat['network'] has {int(np.count_nonzero(A.diagonal()))} self-loop(s)")
    G = _sparse01(mat["group"], "group")
    if G.shape[0] != N:
        raise ValueError(f"blogcatalog.mat['group'] must have one row per node ({N}), got {G.shape}")
    coo = A.tocoo()
    edge_index = undirected_edge_index(coo.row, coo.col, N)
    got = (N, edge_index.shape[1] // 2, G.shape[1])
    if got != (NUM_NODES, NUM_UNDIRECTED_EDGES, NUM_LABELS):
        raise ValueError(f"BlogCatalog should have (nodes, undirected edges, labels) = "
                         f"{(NUM_NODES, NUM_UNDIRECTED_EDGES, NUM_LABELS)}, got {got}")
    return MultiLabelGraph(name="blogcatalog", edge_index=edge_index, labels=G.toarray().astype(bool),
                           meta={"source": str(path)})


# =============================================================================== karate.adjlist
def parse_adjlist(text: str, num_nodes=None, one_based=True):
    """An adjacency list (``u v_1 v_2 ...`` per line) -> (2, E) int64 edge_index, symmetrised, no repeats.

    Blank lines are skipped; ``one_based`` subtracts 1 from every id. ``num_nodes`` defaults to
    the largest id + 1. Raises ValueError naming the line on a non-integer token or an id out of range.
    """
    src, dst = [], []
    for k, line in enumerate(text.splitlines(), 1):
        tok = line.split()
        if not tok:
            continue
        try:
            ids = [int(t) - (1 if one_based else 0) for t in tok]
        except ValueError:
            raise ValueError(f"adjacency list line {k} holds a token that is not an integer: {line!r}") from None
        if min(ids) < 0:
            raise ValueError(f"adjacency list line {k} holds an id below {1 if one_based else 0}: {line!r}")
        src += [ids[0]] * (len(ids) - 1)
        dst += ids[1:]
    n = (max(max(src, default=-1), max(dst, default=-1)) + 1) if num_nodes is None else int(num_nodes)
    if src and max(max(src), max(dst)) >= n:
        raise ValueError(f"adjacency list holds node ids up to {max(max(src), max(dst))}, out of range for {n} nodes")
    return undirected_edge_index(np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64), n)


def load_karate_adjlist(root=None, download: bool = True, *, base_url: str = BLOGCATALOG_URL, checksums=None,
                        num_val=8, seed=0) -> Dataset:
    """Zachary's karate club read from DeepWalk's ``karate.adjlist``, labelled with the two factions.

    The edges come from the file (checked to be exactly ``data.karate.EDGES``, Zachary's 78
    friendships); labels, identity features and the split are those of ``karate_club(num_val,
    seed)``: y = 0 for Mr. Hi's faction, 1 for the Officer's. Raises ``DataNotFoundError``,
    ``ChecksumError``, or ValueError when the file's graph is not Zachary's.
    """
    data, path = _verified_bytes("karate.adjlist", root, download, base_url, checksums)
    edge_index = parse_adjlist(data.decode("ascii"), num_nodes=KARATE_NUM_NODES)
    e = np.array(KARATE_EDGES, dtype=np.int64).T
    if not np.array_equal(edge_index, undirected_edge_index(e[0], e[1], KARATE_NUM_NODES)):
        raise ValueError(f"{path} is not Zachary's karate club: its {edge_index.shape[1] // 2} undirected edges "
                         f"differ from the {len(KARATE_EDGES)} of data.karate.EDGES")
    ref = karate_club(num_val=num_val, seed=seed)
    return Dataset(name="karate", x=ref.x, y=ref.y, edge_index=edge_index, train_mask=ref.train_mask,
                   val_mask=ref.val_mask, test_mask=ref.test_mask, num_classes=2, meta={"source": str(path)})
