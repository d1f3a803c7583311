"""Graph classification benchmarks of the TU Dortmund collection: MUTAG, PROTEINS, IMDB-BINARY.

Two file forms are read (layout of the project's shared ``tu/`` folder):

* ``"txt"`` -- the one-file form of the GIN authors' code (Xu et al. 2019, weihua916/powerful-gnns,
  ``dataset/<NAME>/<NAME>.txt``): first line = number of graphs; per graph a line ``n label``, then n
  lines ``tag degree nbr_1 ... nbr_degree [attributes]`` (neighbours 0-based within the graph).
  Available for all three datasets; the default, since the published GIN numbers use it.
* ``"raw"`` -- the TU form (Morris et al. 2020, www.chrsmrrs.com/graphkerneldatasets/<NAME>.zip):
  ``<NAME>_A.txt`` (``row, col`` per line, 1-based node ids over the whole collection, each undirected
  edge both ways), ``_graph_indicator.txt``, ``_graph_labels.txt``, ``_node_labels.txt``.
  Here for MUTAG and PROTEINS only (IMDB-BINARY's raw files have no published checksum in the table).

What the loader builds, as the GIN code does (``util.load_data``):
* graph labels are mapped to 0..C-1 in increasing order of the file's values (MUTAG raw -1/1 -> 0/1,
  PROTEINS raw 1/2 -> 0/1; the txt form already holds 0/1). The GIN code numbers labels in order of
  first appearance instead, a relabelling that changes no accuracy.
* node tags are mapped to 0..T-1 over the whole dataset in increasing order of the file's values;
  the node features are their one-hot rows (T columns). IMDB-BINARY has no tags: as in the GIN code
  (``degree_as_tag``) a node's tag is its degree, so the features are one-hot degree with one column
  per degree value occurring in the dataset.
* edges: every listed (neighbour -> node) pair, each undirected edge both ways; the loader checks that
  the listing is symmetric and has no repeats or self-loops (none of the three datasets has any).

Files are located like every other dataset (``paths.find_dir_with``: ``root``, then
$GNN_SCRATCH_DATA, then the user cache; ``<root>/tu/<NAME>/`` or ``<root>/<NAME>/`` or the folder
itself), and every file's sha256 is checked before it is parsed. With ``download=True`` and no local
copy, the raw form of MUTAG / PROTEINS is fetched from the TU site as a zip, and each extracted file
is checked against the table before it is moved into the cache (the zip itself has no published hash;
its contents do). The txt form is not downloaded (the GIN repository ships it inside one large zip of
all datasets): a missing txt file raises ``DataNotFoundError`` saying where it was looked for.

Splits: ``stratified_folds`` (our own, seeded; see its docstring) and, for IMDB-BINARY, the
``10fold_idx`` files the GIN authors ship (``load_tu_folds``).
"""
from __future__ import annotations

import hashlib
import http.client
import io
import os
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import paths
from .integrity import ChecksumError, read_bytes_verified
from .planetoid import DataNotFoundError

TU_URL = "https://www.chrsmrrs.com/graphkerneldatasets"

# public name -> folder / file stem in the collection
NAMES = {"mutag": "MUTAG", "proteins": "PROTEINS", "imdb-binary": "IMDBBINARY"}
# the TU site spells the zip with a dash
TU_ZIP_NAME = {"MUTAG": "MUTAG", "PROTEINS": "PROTEINS", "IMDBBINARY": "IMDB-BINARY"}
RAW_PARTS = ("A", "graph_indicator", "graph_labels", "node_labels")
FORMS = ("txt", "raw")
DEGREE_AS_TAG = {"IMDBBINARY"}
NUM_FOLDS_SHIPPED = 10

# sha256 of each file, keyed by its path under tu/ (from the project's shared datasets README).
SHA256 = {
    "IMDBBINARY/IMDBBINARY.txt": "1068c698677c07c04f3ad56fc4a175cb2161523c840abfdaf50e101ecc30504f",
    "MUTAG/MUTAG.txt": "8a12e2afea7974fcabc4fdae579fc5adc0698dd89092cf10831a91eaadcde47b",
    "MUTAG/MUTAG_A.txt": "d9656ca7493f3445d737c711710bb36fd432dddd1c0ea32e1d4713c86ebd28e2",
    "MUTAG/MUTAG_edge_labels.txt": "4669ce755075ff86c3240709345745886400908fa637a49310459b9c267b3e56",
    "MUTAG/MUTAG_graph_indicator.txt": "7d520a4d6c7961c0cdeabe076d8fe27e795b6d373485c9a2b744987e560a2056",
    "MUTAG/MUTAG_graph_labels.txt": "a1518ea39ba3426bd42f57396b9c4baffe68e9adc718caeeab0119c6591a5f2c",
    "MUTAG/MUTAG_node_labels.txt": "678f429965490e84dd27713017538c995fc05d1621beac910848b600015ee863",
    "PROTEINS/PROTEINS.txt": "0e47e30e20ff760f5b375d5e91c830a65be5b92d014223fde172d27cbd9f9263",
    "PROTEINS/PROTEINS_A.txt": "4c4b33e272fc95cac6d27ed6d5d12b9a852c8610e91fff59f8f0dbdd5a20df67",
    "PROTEINS/PROTEINS_graph_indicator.txt": "8d4ff1e852a5c28561e9bffb44cf9490bc552b13a3b6156dd12dc7f44e9afc4a",
    "PROTEINS/PROTEINS_graph_labels.txt": "c0ef9810c440775252872318d0c8adc385588e14bc4c47a2c34aa96ee3c7cdcd",
    "PROTEINS/PROTEINS_node_attributes.txt": "54eef829abb37e458a5fbf3a3c581e48e5810e220463c2cd951856b9ceb08f07",
    "PROTEINS/PROTEINS_node_labels.txt": "f758e8ad3d6e3c026b50833d75f6f90735b94eb3345e4243707f495ca8afea8d",
}
SHA256.update({f"IMDBBINARY/10fold_idx/{kind}_idx-{k}.txt": h for kind, hs in {
    "test": ["d5ced2565709e682b1dde28882960e8d9c03bead383f1cbb3ea6e346472c5903",
             "0c608b497f93881a54ef04786a5239af86c1989130a7bb9201693c8760414c86",
             "a1d71bce61e390604a46fef70a4b3b19ef3ca80ccda3061d2708c55be71ccc93",
             "e26189e39e2642552c61a4857308f5cacb895f13b2e68eb7fe9e20b9fd789729",
             "43b0282e3c3ab606702cd817d86b8623965b016b2bca587f934e62df92318015",
             "a4902e21539ff4ac6e66aa8cfd8907147dd765336ee2083ef8131cabee3ac1dc",
             "6abaa9eca41b26f5fab3382242b26d3e6a8f8e720083456d00633fe62a57cd4d",
             "cfe61c0d986b86ed01ca6dad850bb999e5d0098aec978fc36b19f8396e65e694",
             "048f900449aa3e3732feb493a8d6130d4f879fb4440c378d08fe19d7e1af3394",
             "73a67d1f3da3143c0f687cc143b584cf46b2708059d1ab87996f4a4fb37fe202"],
    "train": ["452542d11c1f3dbf406b9c150b16d4e038753ad803985f460bb8a0afb448fed7",
              "658f4dced498fcd4199c106c6d220d930f68faf12cb12c0aa59c12d4f8bdadf7",
              "c867934d10a72c07af5d4d3cccda154bdc2b025ce47c44b4e6ffce9b93df848c",
              "b698cd8e57172ef76386cab48860429355ca22a274cd34586b816e6b82d9eec3",
              "a08c2f2235997cdceed58df2938e7e2e7b73e262be15d6416dc840a689ff79f0",
              "19878731261b9c109e7eed68b4244065b5e38503a900961bb49396426c8fd3ae",
              "62ab7706f1a2c2406ef7ecaac99601ce1848326b5610546896d6a71a7a393f50",
              "4507c081570dcc3fe16b3c79ac38e21564bc51719447cf2805bdf06d05e1c48d",
              "0a9ead201dd5635eb0be9130d060cd944e59500c7f0c2c6541384ffbe883f564",
              "b8fa766d7e96a135c84a77cd2e23d84b0cc94ddf6bf742a9ee48c851496c408e"],
}.items() for k, h in enumerate(hs)})

# Published sizes: name -> (graphs, classes, class counts); checked after loading.
SIZES = {"MUTAG": (188, 2, (63, 125)), "PROTEINS": (1113, 2, (663, 450)), "IMDBBINARY": (1000, 2, (500, 500))}


def _folder_name(name) -> str:
    if not isinstance(name, str) or name.lower() not in NAMES:
        raise ValueError(f"name must be one of {tuple(NAMES)}, got {name!r}")
    return NAMES[name.lower()]


# =============================================================================== the dataset object
@dataclass(eq=False)
class TUDataset:
    """B graphs with node tags and a class label each (shapes: B graphs, N = total nodes, T tags).

    edge_index:  list of B int64 arrays (2, E_k), local node ids, row 0 = source, row 1 = target,
                 each undirected edge both ways, sorted by (source, target)
    num_nodes:   (B,) int64
    tags:        (N,) int64 in [0, num_tags): node v of graph k is tags[graph_ptr[k] + v]
    graph_ptr:   (B + 1,) int64, graph k owns tags[graph_ptr[k]:graph_ptr[k+1]]
    y:           (B,) int64 in [0, num_classes)
    tag_values:  (T,) the file's value for each tag column (the degree for IMDB-BINARY)
    label_values:(C,) the file's value for each class
    """

    name: str
    edge_index: list
    num_nodes: np.ndarray
    tags: np.ndarray
    y: np.ndarray
    tag_values: np.ndarray
    label_values: np.ndarray
    meta: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        B = len(self.edge_index)
        self.num_nodes = np.asarray(self.num_nodes, dtype=np.int64)
        if self.num_nodes.shape != (B,) or self.y.shape != (B,):
            raise ValueError(f"num_nodes and y must have one entry per graph ({B}), got "
                             f"{self.num_nodes.shape} and {self.y.shape}")
        self.graph_ptr = np.concatenate([[0], np.cumsum(self.num_nodes)]).astype(np.int64)
        if self.tags.shape != (int(self.graph_ptr[-1]),):
            raise ValueError(f"tags must have one entry per node ({self.graph_ptr[-1]}), got {self.tags.shape}")

    def __len__(self):
        return len(self.edge_index)

    @property
    def num_graphs(self) -> int:
        return len(self.edge_index)

    @property
    def num_classes(self) -> int:
        return int(self.label_values.size)

    @property
    def num_tags(self) -> int:
        """T, the width of the one-hot node features."""
        return int(self.tag_values.size)

    num_features = num_tags

    def graph_tags(self, k) -> np.ndarray:
        """(n_k,) tags of graph k."""
        return self.tags[self.graph_ptr[k]:self.graph_ptr[k + 1]]

    def _indices(self, index):
        B = self.num_graphs
        idx = np.arange(B) if index is None else np.asarray(index)
        if idx.dtype == np.bool_:
            if idx.shape != (B,):
                raise ValueError(f"a boolean index must have shape ({B},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        if idx.dtype.kind not in "iu" or idx.ndim != 1:
            raise ValueError(f"index must be a 1-D array of graph ids, got dtype {idx.dtype} shape {idx.shape}")
        if idx.size == 0:
            raise ValueError("index selects no graph")
        if idx.min() < -B or idx.max() >= B:
            raise IndexError(f"graph ids must lie in [0, {B}), got [{idx.min()}, {idx.max()}]")
        return idx.astype(np.int64) % B

    def features(self, index=None, dtype=np.float32) -> np.ndarray:
        """One-hot node tags (N_sel, T) of the graphs in ``index`` (all by default), stacked in that order."""
        if np.dtype(dtype).kind != "f":
            raise TypeError(f"dtype must be a float dtype (the features are one-hot floats), got {np.dtype(dtype)}")
        idx = self._indices(index)
        t = np.concatenate([self.graph_tags(k) for k in idx])
        x = np.zeros((t.size, self.num_tags), dtype=dtype)
        x[np.arange(t.size), t] = 1
        return x

    def batch(self, index=None, dtype=np.float32):
        """(GraphBatch, X (N_sel, T) one-hot tags, y (B_sel,) int64) for the graphs in ``index`` (in that order)."""
        from gnn_scratch.graph import GraphBatch  # loading data never needs the kernels

        idx = self._indices(index)
        g = GraphBatch.from_edge_indices([self.edge_index[k] for k in idx], [int(self.num_nodes[k]) for k in idx])
        return g, self.features(idx, dtype), self.y[idx].copy()

    def __repr__(self):
        counts = np.bincount(self.y, minlength=self.num_classes).tolist()
        return (f"TUDataset({self.name!r}, num_graphs={self.num_graphs}, num_nodes={int(self.graph_ptr[-1])}, "
                f"num_tags={self.num_tags}, num_classes={self.num_classes}, class_counts={counts}, "
                f"form={self.meta.get('form')!r})")


# =============================================================================== locating files
def tu_files(name, form) -> list[str]:
    """The files (paths under ``tu/``) that form ``form`` of dataset ``name`` needs."""
    folder = _folder_name(name)
    if form == "txt":
        return [f"{folder}/{folder}.txt"]
    if form == "raw":
        if folder not in TU_ZIP_NAME or f"{folder}/{folder}_A.txt" not in SHA256:
            raise ValueError(f"the raw TU form of {name!r} has no published checksums here; use form='txt'")
        return [f"{folder}/{folder}_{p}.txt" for p in RAW_PARTS]
    raise ValueError(f"form must be one of {FORMS}, got {form!r}")


def _find(rel_files, root):
    """Folder holding the files, searched as ``<r>/tu/<NAME>``, ``<r>/<NAME>``, ``<r>`` for each root."""
    folder = rel_files[0].split("/")[0]
    base = [f.split("/", 1)[1] for f in rel_files]
    for sub in (f"tu/{folder}", folder):
        found, searched = paths.find_dir_with(base, sub, root)
        if found is not None:
            return found, searched
    return None, searched


def _download_raw(name, dest: Path, base_url, checksums, timeout=60.0):
    """Fetch <NAME>.zip, extract the raw files, verify each, then move them into ``dest`` (all or nothing)."""
    folder_name = _folder_name(name)
    url = f"{base_url.rstrip('/')}/{TU_ZIP_NAME[folder_name]}.zip"
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        blob = resp.read()
    dest.mkdir(parents=True, exist_ok=True)
    staged = []
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            members = {Path(m).name: m for m in z.namelist()}
            for rel in tu_files(name, "raw"):
                fname = rel.split("/", 1)[1]
                if fname not in members:
                    raise DataNotFoundError(f"{url} has no member {fname}")
                data = z.read(members[fname])
                actual = hashlib.sha256(data).hexdigest()
                if actual != checksums[rel].lower():
                    raise ChecksumError(f"checksum mismatch for {fname} extracted from {url}: expected sha256 "
                                        f"{checksums[rel]}, got {actual}. Nothing was written to {dest}.")
                fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".part", dir=dest)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                staged.append((Path(tmp), dest / fname))
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in staged:
        os.replace(tmp, final)


def _locate(name, form, root, download, base_url, checksums):
    rel = tu_files(name, form)
    folder, searched = _find(rel, root)
    if folder is not None:
        return folder
    fname = _folder_name(name)
    where = "\n  ".join(str(d) for d in searched)
    help_ = (f"Set {paths.ENV_DATA_ROOT} to a data root holding tu/{fname}/ (or pass root=...)"
             + (", or allow download=True with network access." if form == "raw" else "."))
    if form == "txt" or not download:
        why = "download=False" if form == "raw" else "the one-file form is not downloaded"
        raise DataNotFoundError(f"TU files {rel} for {name!r} not found ({why}). Looked in:\n  {where}\n{help_}")
    cache = paths.cache_root() / "tu" / fname
    try:
        _download_raw(name, cache, base_url, checksums)
    except (OSError, http.client.HTTPException, zipfile.BadZipFile) as e:
        raise DataNotFoundError(f"TU files for {name!r} not found and the download from {base_url} into {cache} "
                                f"failed ({e}). Looked in:\n  {where}\n{help_}") from e
    return cache


# =============================================================================== parsing
def _ints(data: bytes, fname, per_line=None) -> np.ndarray:
    """All integers of a text file (commas count as spaces)."""
    try:
        a = np.array(data.replace(b",", b" ").split(), dtype=np.int64)
    except ValueError as e:
        raise ValueError(f"{fname}: expected integers only ({e})") from None
    if per_line is not None:
        if a.size % per_line:
            raise ValueError(f"{fname}: expected {per_line} integers per line, got {a.size} in all")
        a = a.reshape(-1, per_line)
    return a


def _parse_txt(data: bytes, fname):
    """One-file form -> (edge lists [(src, dst)], num_nodes, raw tags per node, raw labels)."""
    lines = data.decode("ascii").splitlines()
    pos = 0

    def next_row():
        nonlocal pos
        while pos < len(lines) and not lines[pos].strip():
            pos += 1
        if pos >= len(lines):
            raise ValueError(f"{fname}: the file ends early (line {pos + 1})")
        pos += 1
        return lines[pos - 1].split()

    B = int(next_row()[0])
    edges, sizes, tags, labels = [], [], [], []
    for k in range(B):
        head = next_row()
        if len(head) != 2:
            raise ValueError(f"{fname} line {pos}: expected 'n label' for graph {k}, got {' '.join(head)!r}")
        n, label = int(head[0]), int(head[1])
        src, dst, t = [], [], np.empty(n, dtype=np.int64)
        for v in range(n):
            row = next_row()
            deg = int(row[1])
            if len(row) < 2 + deg:
                raise ValueError(f"{fname} line {pos}: node {v} of graph {k} lists {len(row) - 2} neighbours, "
                                 f"its degree field says {deg}")
            t[v] = int(row[0])
            nbrs = [int(u) for u in row[2:2 + deg]]          # anything after them is a node attribute
            src.extend(nbrs)
            dst.extend([v] * deg)
        edges.append((np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64)))
        sizes.append(n)
        tags.append(t)
        labels.append(label)
    if any(line.strip() for line in lines[pos:]):
        raise ValueError(f"{fname}: text after the {B} graphs the first line announces (line {pos + 1})")
    return edges, np.array(sizes, dtype=np.int64), np.concatenate(tags), np.array(labels, dtype=np.int64)


def _parse_raw(blobs, folder):
    """TU raw form -> the same as ``_parse_txt``; node ids become local, graphs in graph-id order."""
    A = _ints(blobs["A"], f"{folder}_A.txt", per_line=2) - 1
    gi = _ints(blobs["graph_indicator"], f"{folder}_graph_indicator.txt")
    labels = _ints(blobs["graph_labels"], f"{folder}_graph_labels.txt")
    node_labels = _ints(blobs["node_labels"], f"{folder}_node_labels.txt")
    N, B = gi.size, labels.size
    if node_labels.size != N:
        raise ValueError(f"{folder}: {node_labels.size} node labels for {N} nodes in the graph indicator")
    if np.any(np.diff(gi) < 0) or gi[0] != 1 or gi[-1] != B or np.any(np.diff(gi) > 1):
        raise ValueError(f"{folder}_graph_indicator.txt must number the graphs 1..{B} in non-decreasing order")
    if A.size and (A.min() < 0 or A.max() >= N):
        raise ValueError(f"{folder}_A.txt holds node ids outside 1..{N}")
    sizes = np.bincount(gi - 1, minlength=B).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(sizes)])
    g_of_edge = gi[A[:, 0]] - 1
    if np.any(g_of_edge != gi[A[:, 1]] - 1):
        raise ValueError(f"{folder}_A.txt has an edge between two graphs")
    order = np.argsort(g_of_edge, kind="stable")
    A, g_of_edge = A[order], g_of_edge[order]
    cut = np.searchsorted(g_of_edge, np.arange(B + 1))
    edges = []
    for k in range(B):
        e = A[cut[k]:cut[k + 1]] - start[k]
        # the file's (row, col) is read as (source, target); the listing is symmetric, checked later
        edges.append((e[:, 0].copy(), e[:, 1].copy()))
    return edges, sizes, node_labels, labels


def _canonical_edges(src, dst, n, what):
    """(2, E) sorted by (source, target), after checking: symmetric, no repeats, no self-loops."""
    key = np.sort(src * n + dst)
    if key.size and np.any(key[1:] == key[:-1]):
        raise ValueError(f"{what} lists an edge twice")
    if np.any(src == dst):
        raise ValueError(f"{what} has a self-loop at node {int(src[src == dst][0])}")
    rev = np.sort(dst * n + src)
    if not np.array_equal(key, rev):
        raise ValueError(f"{what} is not symmetric: an edge is listed in one direction only")
    return np.stack([key // n, key % n])


def load_tu(name: str, root=None, form: str = "txt", download: bool = True, *, base_url: str = TU_URL,
            checksums=None) -> TUDataset:
    """Load MUTAG, PROTEINS or IMDB-BINARY for graph classification (see the module docstring).

    name: "mutag", "proteins" or "imdb-binary" (case-insensitive).
    root: a data root (``<root>/tu/MUTAG/...``) or the dataset folder; searched first, then
        $GNN_SCRATCH_DATA, then the user cache.
    form: "txt" (the GIN authors' one-file form, all three datasets) or "raw" (TU's files; MUTAG and
        PROTEINS). Both give the same graphs, labels and tags for MUTAG and PROTEINS.
    download: raw form only -- fetch the zip from ``base_url`` into the cache when the files are nowhere.
    checksums: path under tu/ -> sha256, replacing entries of the table (for tests and mirrors).

    Raises ValueError for an unknown name or form or a malformed file, ChecksumError when a file's
    sha256 differs from the table, DataNotFoundError when the files are in none of the folders.
    """
    folder_name = _folder_name(name)
    sums = dict(SHA256)
    if checksums is not None:
        sums.update(checksums)
    folder = _locate(name, form, root, download, base_url, sums)
    rel = tu_files(name, form)
    blobs = {r: read_bytes_verified(folder / r.split("/", 1)[1], sums[r]) for r in rel}
    if form == "txt":
        edges, sizes, raw_tags, raw_labels = _parse_txt(blobs[rel[0]], rel[0])
    else:
        edges, sizes, raw_tags, raw_labels = _parse_raw(
            {p: blobs[f"{folder_name}/{folder_name}_{p}.txt"] for p in RAW_PARTS}, folder_name)
    B = sizes.size
    if raw_labels.size != B:
        raise ValueError(f"{folder_name}: {raw_labels.size} graph labels for {B} graphs")
    edge_index = []
    for k, (src, dst) in enumerate(edges):
        n = int(sizes[k])
        if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n):
            raise ValueError(f"{folder_name} graph {k}: a neighbour id lies outside 0..{n - 1}")
        edge_index.append(_canonical_edges(src, dst, n, f"{folder_name} graph {k}"))
    if folder_name in DEGREE_AS_TAG:
        raw_tags = np.concatenate([np.bincount(ei[1], minlength=int(n)) for ei, n in zip(edge_index, sizes)])
    tag_values, tags = np.unique(raw_tags, return_inverse=True)
    label_values, y = np.unique(raw_labels, return_inverse=True)
    ds = TUDataset(name=name.lower(), edge_index=edge_index, num_nodes=sizes, tags=tags.astype(np.int64).ravel(),
                   y=y.astype(np.int64).ravel(), tag_values=tag_values, label_values=label_values,
                   meta={"form": form, "source": str(folder), "degree_as_tag": folder_name in DEGREE_AS_TAG})
    n_graphs, n_classes, counts = SIZES[folder_name]
    got = tuple(np.bincount(ds.y, minlength=ds.num_classes).tolist())
    if (ds.num_graphs, ds.num_classes, got) != (n_graphs, n_classes, counts):
        raise ValueError(f"{folder_name}: expected {n_graphs} graphs in {n_classes} classes {counts}, got "
                         f"{ds.num_graphs} in {ds.num_classes} classes {got}")
    return ds


# =============================================================================== splits
def stratified_folds(y, k: int = 10, seed: int = 0):
    """k stratified folds of the graphs: a list of k (train_idx, test_idx) pairs of sorted int64 arrays.

    Each class's members are shuffled by ``np.random.default_rng(seed)`` (classes in increasing order)
    and dealt to the folds in turn, the dealing continuing from class to class, so every fold's class
    counts are within one of count/k and fold sizes differ by at most one. The test sets partition
    0..len(y)-1; train = the rest. Deterministic for a seed, but NOT sklearn's ``StratifiedKFold``
    bit-for-bit (the GIN code's split): same guarantees, different assignment of graphs to folds.

    Raises ValueError when k < 2 or k exceeds the number of graphs.
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"y must be a 1-D integer array, got dtype {y.dtype} shape {y.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= y.size:
        raise ValueError(f"k must be an int in [2, {y.size}], got {k!r}")
    rng = np.random.default_rng(seed)
    fold = np.empty(y.size, dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        fold[members] = (offset + np.arange(members.size)) % k
        offset = (offset + members.size) % k
    every = np.arange(y.size)
    return [(every[fold != f], every[fold == f]) for f in range(k)]


def load_tu_folds(name: str = "imdb-binary", root=None, checksums=None):
    """The GIN authors' shipped 10-fold split: a list of 10 (train_idx, test_idx) int64 arrays (0-based).

    Only IMDB-BINARY ships one here (``tu/IMDBBINARY/10fold_idx/``). Checks each file's sha256 and that
    each fold's train and test sets partition the graphs. Note: the ten shipped *test* sets do not
    partition the graphs -- they overlap (fold 0 shares 14 graphs with fold 1) and together cover
    only 909 of the 1000 graphs -- so they are ten 900/100 splits rather than a 10-fold partition, and
    not stratified either (test class counts range from 45/55 to 55/45).
    """
    folder_name = _folder_name(name)
    rel = [f"{folder_name}/10fold_idx/{kind}_idx-{f}.txt" for f in range(NUM_FOLDS_SHIPPED)
           for kind in ("train", "test")]
    if rel[0] not in SHA256:
        raise ValueError(f"no shipped folds for {name!r}; use stratified_folds")
    sums = dict(SHA256)
    if checksums is not None:
        sums.update(checksums)
    folder, searched = _find(rel, root)
    if folder is None:
        where = "\n  ".join(str(d) for d in searched)
        raise DataNotFoundError(f"the 10fold_idx files of {name!r} were not found. Looked in:\n  {where}")
    B = SIZES[folder_name][0]
    folds = []
    for f in range(NUM_FOLDS_SHIPPED):
        tr, te = (np.sort(_ints(read_bytes_verified(folder / r.split("/", 1)[1], sums[r]), r))
                  for r in rel[2 * f:2 * f + 2])
        if te.size and (te.min() < 0 or te.max() >= B) or tr.size and (tr.min() < 0 or tr.max() >= B):
            raise ValueError(f"fold {f} of {name!r} holds graph ids outside 0..{B - 1}")
        if not np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(B)):
            raise ValueError(f"fold {f} of {name!r}: train and test do not partition the {B} graphs")
        folds.append((tr, te))
    return folds
