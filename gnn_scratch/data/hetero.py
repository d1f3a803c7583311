"""ACM and DBLP as heterogeneous graphs, in the versions HeCo prepared (Wang et al., "Self-supervised
Heterogeneous Graph Neural Network with Co-contrastive Learning", KDD 2021; liun-online/HeCo, data/acm
and data/dblp), with HeCo's splits of 20 / 40 / 60 labelled target nodes per class, 1000 validation
and 1000 test nodes.

ACM (target ``paper``, 3 classes):
    node types  paper 4019 (x: p_feat, 4019 x 1902 sparse), author 7167 (x: a_feat, 7167 x 1902 sparse),
                subject 60 (no features)
    relations   ('paper', 'written_by', 'author')  13407 edges  (pa.txt)
                ('paper', 'has_subject', 'subject') 4019 edges  (ps.txt)
                and their inverses ('author', 'rev_written_by', 'paper'), ('subject', 'rev_has_subject', 'paper')
    metapaths   PAP, PSP
DBLP (target ``author``, 4 classes):
    node types  author 4057 (x: a_feat, 4057 x 334 sparse), paper 14328 (x: p_feat, 14328 x 4231 sparse),
                term 7723 (x: t_feat, 7723 x 50 dense), conference 20 (no features)
    relations   ('paper', 'written_by', 'author')      19645 edges  (pa.txt)
                ('paper', 'published_in', 'conference') 14328 edges  (pc.txt)
                ('paper', 'has_term', 'term')           85810 edges  (pt.txt)
                and their ``rev_`` inverses
    metapaths   APA, APCPA, APTPA

Files are located like every other dataset (``files.read_verified``: the ``root`` argument, then
$GNN_SCRATCH_DATA, then the user cache, each as ``<root>/hetero/<name>/`` or the folder itself; with
``download=True`` and no local copy, fetched from HeCo's repository into the cache and checked before
they land). Every file's sha256 is checked on the very bytes that are parsed, and arrays load with
``allow_pickle=False``. Features become float32 (``dtype``): scipy CSR for the sparse ones (our
``Linear`` takes sparse input in a first layer), dense for DBLP's terms (``t_feat.npz`` is a plain
.npy array despite its name). ACM's labels are stored as floats and are converted only when integral.

HeCo also ships the metapath adjacencies (pap.npz, psp.npz, apa.npz, apcpa.npz); the loaders do not
need them (``HeteroGraph.metapath_graph`` builds every metapath from the relations, and equals them
edge for edge, self-loops included), but ``read_heco_metapath`` reads one, verified, for comparison.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..graph.hetero import HeteroGraph
from .files import read_verified

HECO_URL = "https://github.com/liun-online/HeCo/raw/HEAD/data"
SUBDIR = "hetero"
SPLITS = (20, 40, 60)
NUM_VAL = NUM_TEST = 1000

# sha256 of each file (from the project's shared datasets README).
SHA256 = {
    "acm": {
        "a_feat.npz": "e2f2ac8d357310149fc7badbf32ea0b171dec25aad6c37ec45de592666c65555",
        "labels.npy": "019284b3e6a58fc8ebd432fb99aaaf183ad41dbf56b8ca7af0b56dca9dd844b5",
        "p_feat.npz": "9e1019dfceaaabb19ee5b5f09de3147ffbaa818b43c3fc3f92bdfaf4ed5f02f4",
        "pa.txt": "e67385fc13c3b3b624d81de7eb6e4245d9aeafa063c5466c6fab0f151bcb84d6",
        "pap.npz": "3f25894497558f74356448f1a504c946efef9f23e7beb74d38bc9ecf95a4dbb6",
        "ps.txt": "3da7615ef5567c5f7f1ab9ec770c4b4b8b6a54790baa1cda3d4499329dfc22d5",
        "psp.npz": "cd25669b884825155487308c7d4adb42d99edbc843215438219ad551f86c8f3e",
        "test_20.npy": "eb90e38c882009c6439d749d160d39ed64f8813e9f672c02be54993914934afa",
        "test_40.npy": "f73d7e23459dd654a7567ee8bf123849f400096f8fac558dc37033d3fdc11aa6",
        "test_60.npy": "5181ccdeacc54b88ed53681ba9f2c789cc6d67a499f40a68ac6827a96932b976",
        "train_20.npy": "6bf4c1cef638f3ffe1826091b9be7fbff23a4935dfbde03c24b492d264d67684",
        "train_40.npy": "98239282e69e9775a9b13bc54598cc780eca31dcaeb81963efbbd4c6c3e51435",
        "train_60.npy": "5b86f56415b84d1faa8c8f864cd37272589ec4ffff1b0ca347d4c39ee38dcc02",
        "val_20.npy": "4280dccb661a50196502a39973a462919399fcfcd97b1d43581dfa9ca02d1b5d",
        "val_40.npy": "19fb1e72b76bc24da95423d1a83583a42fe5b62d69b2b197312f630ff5096202",
        "val_60.npy": "e234b6c1e19445ed6cc3694a273b943bbded8e847a9d0246f18d59f76fb8cd5d",
    },
    "dblp": {
        "a_feat.npz": "997876bf8d90d29fdb90bf4801a9909893a9ee5646a85aeca079ce167595ec41",
        "apa.npz": "db86d949728d422cf388741d3cd80280e0ab79ac27242b3d0a0a0635a476a3bb",
        "apcpa.npz": "25181174771506d9636daae4eb98fe048c61654cd1280cf35315c7c4adde0f56",
        "labels.npy": "817efdc3ebb9e96067b8770dad5894b06ecabde2ac95d4b17443985f0439fda7",
        "p_feat.npz": "99c3d1836c44cda016f790d1cdbcc76fed729e48b9e2a9332eac145960716d9f",
        "pa.txt": "94cf38a92733d21664f55907305773bb6fb90dd9d1579392517596488f061382",
        "pc.txt": "316182e11f19fddfc3a01ebd6541134a7c3931ee62262e638be607bb3f9768e4",
        "pt.txt": "78f3d6f9a528ed112a2d29bd2a672cdf13a03779a87ce89856e6a622eda280b8",
        "t_feat.npz": "462ea84b5eebfd4883910d0d15afff53e960ae8a80d7d62591f86a8d61fb5467",
        "test_20.npy": "a7fc6b67e477df8301915065b116fb7742d99f28323a2bf8bcb57663a2d5c490",
        "test_40.npy": "9af7116d1d11e656e4fc64dc11601353a3f37cad8fb9ffe8d71cf16d7e2a7ca6",
        "test_60.npy": "52122be025ae02256f82376bc62d1ba74083a4473a211e89a1389d67ca6e68bb",
        "train_20.npy": "85f0e91265931c8b1433ed7bd04e7e8f4c8c4246784d4443c147d6f24cccc709",
        "train_40.npy": "82cead2b36410b52729e2034c0e75de55779e718e4a35f7cc0a31b25526d8c2b",
        "train_60.npy": "47086d378beda443b1a2aa1bb2d681e5a6d2b3e819a3e9850e365ea1f8f9b819",
        "val_20.npy": "6c06b017a4c45c7cd9d01c67fb409336ddcd5c076edb9c90792cc2d027565d38",
        "val_40.npy": "b4c0b94ed81eeb28fe9bf6dd4a057de9093aa512caf4197165a2634568e7b2d5",
        "val_60.npy": "7ba309a9daec8bd5d92e217cecc6a22d8547b7b0193a8a30855fffd41636cec6",
    },
}


@dataclass(frozen=True)
class _Spec:
    """What a HeCo dataset holds: node types (count, feature file or None), relations (edge type, file,
    edge count), target type, class sizes, metapaths (name -> edge types), HeCo's metapath files."""

    nodes: dict
    relations: list
    target: str
    class_sizes: tuple
    metapaths: dict
    metapath_files: dict


def _inv(et):
    return (et[2], "rev_" + et[1], et[0])


_PA, _PS = ("paper", "written_by", "author"), ("paper", "has_subject", "subject")
_PC, _PT = ("paper", "published_in", "conference"), ("paper", "has_term", "term")

SPECS = {
    "acm": _Spec(
        nodes={"paper": (4019, "p_feat.npz"), "author": (7167, "a_feat.npz"), "subject": (60, None)},
        relations=[(_PA, "pa.txt", 13407), (_PS, "ps.txt", 4019)],
        target="paper", class_sizes=(1993, 965, 1061),
        metapaths={"PAP": [_PA, _inv(_PA)], "PSP": [_PS, _inv(_PS)]},
        metapath_files={"PAP": "pap.npz", "PSP": "psp.npz"}),
    "dblp": _Spec(
        nodes={"author": (4057, "a_feat.npz"), "paper": (14328, "p_feat.npz"), "term": (7723, "t_feat.npz"),
               "conference": (20, None)},
        relations=[(_PA, "pa.txt", 19645), (_PC, "pc.txt", 14328), (_PT, "pt.txt", 85810)],
        target="author", class_sizes=(1197, 745, 1109, 1006),
        metapaths={"APA": [_inv(_PA), _PA], "APCPA": [_inv(_PA), _PC, _inv(_PC), _PA],
                   "APTPA": [_inv(_PA), _PT, _inv(_PT), _PA]},
        metapath_files={"APA": "apa.npz", "APCPA": "apcpa.npz"}),
}
HETERO_DATASETS = tuple(SPECS)


@dataclass(eq=False)
class HeteroDataset:
    """A heterogeneous node-classification dataset: a ``HeteroGraph`` and labels on its target type.

    graph:       HeteroGraph with the inverse (``rev_``) relations
    target:      the labelled node type; y, train_idx, val_idx, test_idx index its nodes
    y:           (N_target,) int64 in [0, num_classes)
    train_idx, val_idx, test_idx: int64 ids of target nodes, disjoint; train has ``split`` per class
    metapaths:   dict name ("PAP") -> list of edge types, each one's dst_type the next one's src_type
    """

    name: str
    graph: HeteroGraph
    target: str
    y: np.ndarray
    num_classes: int
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    metapaths: dict
    split: int
    meta: dict = field(default_factory=dict, repr=False)

    @property
    def x(self):
        """Features of the target nodes (``graph.x_dict[target]``)."""
        return self.graph.x_dict[self.target]

    def metapath_graphs(self, keep_multiplicity=False) -> dict:
        """dict metapath name -> ``Graph`` over the target nodes (``HeteroGraph.metapath_graph``: self-loops
        kept; unweighted, or weighted by the number of instances with ``keep_multiplicity``). Built once
        per graph and cached there."""
        return {name: self.graph.metapath_graph(path, keep_multiplicity)
                for name, path in self.metapaths.items()}

    def summary(self) -> str:
        """Counts per node type and relation, the labels, the split and the metapaths, as lines of text."""
        counts = np.bincount(self.y, minlength=self.num_classes)
        lines = [f"{self.name}: target {self.target!r}, {self.num_classes} classes "
                 f"(sizes {', '.join(map(str, counts))}), split {self.split} per class: "
                 f"{self.train_idx.size} train / {self.val_idx.size} val / {self.test_idx.size} test",
                 self.graph.summary(), "metapaths:"]
        for name, path in self.metapaths.items():
            lines.append(f"  {name:<6} {path[0][0]} " + " ".join(f"-[{et[1]}]-> {et[2]}" for et in path))
        return "\n".join(lines)

    def __repr__(self):
        nodes = ", ".join(f"{t}={n}" for t, n in self.graph.num_nodes.items())
        return (f"HeteroDataset({self.name!r}, target={self.target!r}, nodes: {nodes}; "
                f"{len(self.graph.edge_types)} relations, {sum(self.graph.num_edges.values())} edges; "
                f"{self.num_classes} classes, split={self.split}: {self.train_idx.size}/{self.val_idx.size}/"
                f"{self.test_idx.size}; metapaths {', '.join(self.metapaths)})")


# =============================================================================== parsing
def _read(name, files, root, download, base_url, checksums):
    if name not in SPECS:
        raise ValueError(f"unknown heterogeneous dataset {name!r}; choose one of {', '.join(SPECS)}")
    table = SHA256[name]
    return read_verified(files, f"{SUBDIR}/{name}", root, download, f"{base_url.rstrip('/')}/{name}", table,
                         checksums, f"{name} files [{', '.join(files)}]")


def _load_npy(data, fname):
    arr = np.load(io.BytesIO(data), allow_pickle=False)
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{fname} must hold a single array, got an archive of {list(arr.keys())}")
    return arr


def _load_features(data, fname, n, dtype):
    """A HeCo feature file -> (n, F) ``dtype``: scipy CSR for a sparse .npz, dense for a plain .npy."""
    if data[:6] == b"\x93NUMPY":          # t_feat.npz: a .npy despite its name
        X = _load_npy(data, fname)
        if X.ndim != 2:
            raise ValueError(f"{fname} must be a 2-D array, got shape {X.shape}")
        X = X.astype(dtype)
    else:
        X = sp.load_npz(io.BytesIO(data)).tocsr().astype(dtype)   # load_npz never unpickles
    if X.shape[0] != n:
        raise ValueError(f"{fname} must have one row per node ({n}), got shape {X.shape}")
    return X


def _load_edges(data, fname, E, n_src, n_dst):
    """A ``src dst`` text file (0-based ids within each type) -> (2, E) int64, checked against the sizes."""
    tokens = data.split()
    if len(tokens) % 2:
        raise ValueError(f"{fname} must hold pairs of ids, got {len(tokens)} numbers")
    try:
        pairs = np.array(tokens).astype(np.int64).reshape(-1, 2)
    except ValueError:
        raise ValueError(f"{fname} holds a token that is not an integer") from None
    if pairs.shape[0] != E:
        raise ValueError(f"{fname} should hold {E} edges, got {pairs.shape[0]}")
    for col, n, side in ((0, n_src, "source"), (1, n_dst, "target")):
        if pairs.size and (pairs[:, col].min() < 0 or pairs[:, col].max() >= n):
            raise ValueError(f"{fname}: {side} ids in [{pairs[:, col].min()}, {pairs[:, col].max()}], "
                             f"expected [0, {n})")
    return np.ascontiguousarray(pairs.T)


def _load_labels(data, fname, n, num_classes):
    y = _load_npy(data, fname)
    if y.shape != (n,):
        raise ValueError(f"{fname} must have shape ({n},), got {y.shape}")
    if y.dtype.kind == "f":            # ACM stores its labels as floats
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError(f"{fname} holds labels that are not integers")
    elif y.dtype.kind not in "iu":
        raise ValueError(f"{fname} must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"{fname} must hold labels in [0, {num_classes}), got [{y.min()}, {y.max()}]")
    return y


def _load_index(data, fname, n):
    idx = _load_npy(data, fname)
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise ValueError(f"{fname} must be a 1-D integer array, got {idx.dtype} {idx.shape}")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"{fname} holds node ids in [{idx.min()}, {idx.max()}], expected [0, {n})")
    if np.unique(idx).size != idx.size:
        raise ValueError(f"{fname} holds repeated node ids")
    return idx


def load_heco(name, root=None, split=20, download=True, *, base_url=HECO_URL, checksums=None,
              dtype=np.float32) -> HeteroDataset:
    """ACM or DBLP as HeCo prepared them (see the module docstring for the node types, relations and
    metapaths); ``load_acm`` and ``load_dblp`` call this.

    root: a data root (``<root>/hetero/<name>/``) or the dataset folder itself; searched first, then
        $GNN_SCRATCH_DATA, then the user cache (``gnn_scratch.data.paths``).
    split: labelled target nodes per class in the training set, one of 20, 40, 60 (HeCo's splits; each
        with its own 1000 validation and 1000 test nodes).
    download: when the files are nowhere, fetch them from ``<base_url>/<name>/`` into the cache.
    checksums: file name -> sha256 replacing the published table (tests, private mirrors).
    dtype: float dtype of the features (float32; float64 for gradient and oracle checks).

    Raises ValueError for an unknown name or a split not in (20, 40, 60), ``DataNotFoundError`` (no file
    and no download), ``ChecksumError`` (bytes that are not the published file), and ValueError for
    contents other than the published ones (sizes, ids out of range, non-integral labels, a training
    set not balanced at ``split`` per class, overlapping splits).
    """
    if name not in SPECS:
        raise ValueError(f"unknown heterogeneous dataset {name!r}; choose one of {', '.join(SPECS)}")
    if isinstance(split, (bool, np.bool_)) or not isinstance(split, (int, np.integer)) or split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} (labelled nodes per class), got {split!r}")
    split = int(split)
    spec = SPECS[name]
    split_files = [f"{s}_{split}.npy" for s in ("train", "val", "test")]
    files = ([f for _, f in spec.nodes.values() if f] + [f for _, f, _ in spec.relations] + ["labels.npy"]
             + split_files)
    blobs, folder = _read(name, files, root, download, base_url, checksums)

    num_nodes = {t: n for t, (n, _) in spec.nodes.items()}
    x_dict = {t: _load_features(blobs[f], f, n, dtype) for t, (n, f) in spec.nodes.items() if f}
    edges = {et: _load_edges(blobs[f], f, E, num_nodes[et[0]], num_nodes[et[2]]) for et, f, E in spec.relations}
    graph = HeteroGraph(num_nodes, edges, x_dict).with_inverse()

    C, n_target = len(spec.class_sizes), num_nodes[spec.target]
    y = _load_labels(blobs["labels.npy"], "labels.npy", n_target, C)
    if tuple(np.bincount(y, minlength=C)) != spec.class_sizes:
        raise ValueError(f"labels.npy should have class sizes {spec.class_sizes}, "
                         f"got {tuple(np.bincount(y, minlength=C))}")
    train, val, test = (_load_index(blobs[f], f, n_target) for f in split_files)
    if not np.all(np.bincount(y[train], minlength=C) == split):
        raise ValueError(f"{split_files[0]} should hold {split} nodes of each class, "
                         f"got {np.bincount(y[train], minlength=C).tolist()}")
    if (val.size, test.size) != (NUM_VAL, NUM_TEST):
        raise ValueError(f"{split_files[1]} and {split_files[2]} should hold {NUM_VAL} and {NUM_TEST} nodes, "
                         f"got {val.size} and {test.size}")
    if np.intersect1d(train, val).size or np.intersect1d(train, test).size or np.intersect1d(val, test).size:
        raise ValueError(f"{', '.join(split_files)} overlap: training, validation and test nodes must be disjoint")
    return HeteroDataset(name=name, graph=graph, target=spec.target, y=y, num_classes=C, train_idx=train,
                         val_idx=val, test_idx=test, metapaths={k: list(v) for k, v in spec.metapaths.items()},
                         split=split, meta={"source": str(folder), "url": f"{base_url}/{name}"})


def load_acm(root=None, split=20, download=True, **kwargs) -> HeteroDataset:
    """ACM (HeCo's version): 4019 papers (target, 3 classes), 7167 authors, 60 subjects; metapaths PAP, PSP.

    See ``load_heco`` for the arguments and errors, and the module docstring for the relations.
    """
    return load_heco("acm", root, split, download, **kwargs)


def load_dblp(root=None, split=20, download=True, **kwargs) -> HeteroDataset:
    """DBLP (HeCo's version): 4057 authors (target, 4 classes), 14328 papers, 7723 terms, 20 conferences;
    metapaths APA, APCPA, APTPA.

    See ``load_heco`` for the arguments and errors, and the module docstring for the relations.
    """
    return load_heco("dblp", root, split, download, **kwargs)


def read_heco_metapath(name, metapath, root=None, download=True, *, base_url=HECO_URL, checksums=None):
    """HeCo's own metapath adjacency (ACM: "PAP", "PSP"; DBLP: "APA", "APCPA"), sha256-verified, as a
    (N, N) scipy CSR float64 0/1 matrix (HeCo stores booleans; symmetric, so rows = destinations too).

    For comparison with ``HeteroGraph.metapath_graph``; raises KeyError for a metapath HeCo does not ship.
    """
    if name not in SPECS:
        raise ValueError(f"unknown heterogeneous dataset {name!r}; choose one of {', '.join(SPECS)}")
    files = SPECS[name].metapath_files
    if metapath not in files:
        raise KeyError(f"HeCo ships no {metapath!r} file for {name} (it has {', '.join(files)})")
    fname = files[metapath]
    blobs, _ = _read(name, [fname], root, download, base_url, checksums)
    A = sp.load_npz(io.BytesIO(blobs[fname])).tocsr().astype(np.float64)
    A.eliminate_zeros()
    A.sort_indices()
    return A
