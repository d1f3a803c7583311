"""Cora and CiteSeer with the public Planetoid split (Yang, Cohen & Salakhutdinov, 2016).

This is the split and preprocessing of the original GCN code (Kipf & Welling, ``gcn/utils.py``
``load_data``), the one behind the published GCN and GAT numbers. The files are the eight
``ind.<name>.<part>`` files of github.com/kimiyoung/planetoid ``data/``:

    allx (N_all, F) csr, ally (N_all, C)    all labelled-or-not non-test nodes, ids 0 .. N_all-1
    x (n_train, F), y (n_train, C)          the training nodes = the first n_train rows of allx
    tx (1000, F) csr, ty (1000, C)          the test nodes, row k belongs to node test.index[k]
    graph: dict node -> list of neighbours; test.index: one test node id per line

Node ids: 0 .. N_all-1 are the rows of allx; test ids run from min(test.index) = N_all to
max(test.index). CiteSeer has 15 ids in that range that are in no file (isolated nodes whose
features were lost); as in the GCN code they are kept as nodes with zero features and no label
(``y = -1`` here, a zero one-hot row there), and they are in no mask.

Split: train = nodes 0 .. n_train-1 (140 Cora, 120 CiteSeer), val = the next 500, test = the
1000 ids of test.index, all labelled.
"""
from __future__ import annotations

import http.client

import numpy as np
import scipy.sparse as sp

from . import paths
from .dataset import Dataset, index_to_mask, undirected_edge_index
from .download import download_verified
from .integrity import load_pickle_verified, read_bytes_verified

PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data"
PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
NUM_VAL = 500

# sha256 of each file as published (from the project's shared datasets README).
SHA256 = {
    "ind.cora.allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
    "ind.cora.ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
    "ind.cora.graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
    "ind.cora.test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
    "ind.cora.tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
    "ind.cora.ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
    "ind.cora.x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
    "ind.cora.y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
    "ind.citeseer.allx": "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
    "ind.citeseer.ally": "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
    "ind.citeseer.graph": "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
    "ind.citeseer.test.index": "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
    "ind.citeseer.tx": "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
    "ind.citeseer.ty": "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
    "ind.citeseer.x": "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
    "ind.citeseer.y": "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
}

NAMES = ("cora", "citeseer")


class DataNotFoundError(FileNotFoundError):
    """The dataset files are in none of the searched folders and could not be downloaded."""


def planetoid_files(name: str) -> list[str]:
    """The eight file names of dataset ``name``: ["ind.cora.x", ...]."""
    return [f"ind.{name}.{p}" for p in PARTS]


def _locate(name, root, download, base_url, checksums):
    """Folder holding all of ``name``'s files: searched (see ``paths``), else downloaded to the cache."""
    files = planetoid_files(name)
    folder, searched = paths.find_dir_with(files, "planetoid", root)
    if folder is not None:
        return folder
    where = "\n  ".join(str(d) for d in searched)
    help_ = (f"Set the environment variable {paths.ENV_DATA_ROOT} to a data root holding "
             f"planetoid/ind.{name}.* (or pass root=...), or allow download=True with network access.")
    if not download:
        raise DataNotFoundError(f"Planetoid files for {name!r} not found (download=False). Looked in:\n  "
                                f"{where}\n{help_}")
    cache = paths.cache_root() / "planetoid"
    missing = [f for f in files if not (cache / f).is_file()]
    try:
        download_verified(base_url, missing, checksums, cache)
    # OSError covers URLError, HTTP errors, timeouts and a read-only cache; HTTPException a truncated reply
    except (OSError, http.client.HTTPException) as e:
        raise DataNotFoundError(
            f"Planetoid files for {name!r} not found and the download from {base_url} into {cache} "
            f"failed ({e}). Looked in:\n  {where}\n{help_}") from e
    return cache


def _to_csr(obj, fname, n_cols=None):
    """A pickled sparse matrix -> a fresh, validated float32 csr_matrix."""
    if not sp.issparse(obj):
        raise ValueError(f"{fname} should hold a scipy.sparse matrix, got {type(obj).__name__}")
    # rebuild from the raw arrays: the unpickled object carries scipy-0.x internals in its __dict__
    shape = tuple(int(s) for s in getattr(obj, "_shape", obj.shape))
    m = sp.csr_matrix((np.asarray(obj.data, dtype=np.float32), np.asarray(obj.indices), np.asarray(obj.indptr)),
                      shape=shape)
    m.check_format(full_check=True)
    if n_cols is not None and m.shape[1] != n_cols:
        raise ValueError(f"{fname} has {m.shape[1]} feature columns, expected {n_cols}")
    return m


def _to_labels(onehot, fname, n_rows, n_classes=None):
    """(n_rows, C) one-hot array -> (n_rows,) int64 class ids, -1 for an all-zero row."""
    a = np.asarray(onehot)
    if a.ndim != 2 or a.shape[0] != n_rows or (n_classes is not None and a.shape[1] != n_classes):
        raise ValueError(f"{fname} should have shape ({n_rows}, {n_classes or 'C'}), got {a.shape}")
    if not np.isin(a, (0, 1)).all() or (a.sum(axis=1) > 1).any():
        raise ValueError(f"{fname} should be one-hot (0/1 with at most one 1 per row)")
    return np.where(a.any(axis=1), a.argmax(axis=1), -1).astype(np.int64)


def load_planetoid(name: str, root=None, download: bool = True, *, base_url: str = PLANETOID_URL,
                   checksums=None) -> Dataset:
    """Load Cora or CiteSeer with the public Planetoid split, built as in the original GCN code.

    name: "cora" or "citeseer" (case-insensitive).
    root: a data root (``<root>/planetoid/ind.cora.x``) or the planetoid folder itself; searched
        first, then $GNN_SCRATCH_DATA, then the user cache (see ``gnn_scratch.data.paths``).
    download: when the files are nowhere, fetch them from ``base_url`` into the cache.
    base_url: where ``ind.<name>.<part>`` are fetched from (default: kimiyoung/planetoid on GitHub).
    checksums: file name -> sha256 replacing the published table (for tests and private mirrors).

    Every file's sha256 is checked before it is read; pickles load with a restricted unpickler.
    Returns a Dataset with x (N, F) float32 csr (raw binary bag-of-words, not normalised; see
    ``row_normalize``), y (N,) int64 (-1 for CiteSeer's 15 featureless padding nodes), and the
    masks described in this module's docstring. Sizes: Cora 2708 nodes, 10556 directed edges,
    1433 features, 7 classes; CiteSeer 3327, 9104, 3703, 6.
    """
    if not isinstance(name, str) or name.lower() not in NAMES:
        raise ValueError(f"name must be one of {NAMES}, got {name!r}")
    name = name.lower()
    sums = dict(SHA256)
    if checksums is not None:
        sums.update(checksums)
    folder = _locate(name, root, download, base_url, sums)

    def load(part):
        fname = f"ind.{name}.{part}"
        return load_pickle_verified(folder / fname, sums[fname])

    allx = _to_csr(load("allx"), "allx")
    F = allx.shape[1]
    x, tx = _to_csr(load("x"), "x", F), _to_csr(load("tx"), "tx", F)
    n_all, n_train, n_test = allx.shape[0], x.shape[0], tx.shape[0]
    ally = load("ally")
    C = np.asarray(ally).shape[1] if np.ndim(ally) == 2 else None
    y_all = _to_labels(ally, "ally", n_all, C)
    y_train = _to_labels(load("y"), "y", n_train, C)
    y_test = _to_labels(load("ty"), "ty", n_test, C)
    graph = load("graph")
    text = read_bytes_verified(folder / f"ind.{name}.test.index", sums[f"ind.{name}.test.index"])
    test_index = np.array(text.split(), dtype=np.int64)

    # The GCN code takes x / y as the first rows of allx / ally; check rather than assume.
    if (x != allx[:n_train]).nnz or not np.array_equal(y_train, y_all[:n_train]):
        raise ValueError(f"ind.{name}.x / .y are not the first {n_train} rows of allx / ally")
    if n_train + NUM_VAL > n_all:
        raise ValueError(f"allx has {n_all} rows, too few for {n_train} train + {NUM_VAL} val nodes")
    if test_index.size != n_test or np.unique(test_index).size != n_test:
        raise ValueError(f"test.index must hold {n_test} distinct ids (one per row of tx), got "
                         f"{test_index.size} ({np.unique(test_index).size} distinct)")
    if test_index.min() != n_all:
        raise ValueError(f"test ids must start right after allx's {n_all} rows, got min {test_index.min()}")
    # Test ids span n_all .. max; ids in that range missing from test.index (CiteSeer: 15) are
    # padding nodes: zero features, no label, in no mask.
    N = int(test_index.max()) + 1

    # Row k of vstack(allx, tx) belongs to node node_of_row[k]; tx rows go to their test.index ids.
    node_of_row = np.concatenate([np.arange(n_all, dtype=np.int64), test_index])
    stacked = sp.vstack([allx, tx], format="coo")
    X = sp.csr_matrix((stacked.data.astype(np.float32), (node_of_row[stacked.row], stacked.col)), shape=(N, F))
    X.sort_indices()
    y = np.full(N, -1, dtype=np.int64)
    y[:n_all] = y_all
    y[test_index] = y_test

    if not isinstance(graph, dict):
        raise ValueError(f"ind.{name}.graph should hold a dict node -> neighbours, got {type(graph).__name__}")
    src = np.fromiter((u for u, nbrs in graph.items() for _ in nbrs), dtype=np.int64)
    dst = np.fromiter((v for nbrs in graph.values() for v in nbrs), dtype=np.int64)
    edge_index = undirected_edge_index(src, dst, N)

    train_idx = np.arange(n_train)
    val_idx = np.arange(n_train, n_train + NUM_VAL)
    labelled = y >= 0
    for split, idx in (("train", train_idx), ("val", val_idx), ("test", test_index)):
        if not labelled[idx].all():
            raise ValueError(f"{int((~labelled[idx]).sum())} {split} node(s) of {name} have no label")
    return Dataset(
        name=name, x=X, y=y, edge_index=edge_index,
        train_mask=index_to_mask(train_idx, N), val_mask=index_to_mask(val_idx, N),
        test_mask=index_to_mask(test_index, N), num_classes=int(C),
        meta={"source": str(folder), "padding_nodes": np.flatnonzero(~labelled & (np.arange(N) >= n_all))},
    )
