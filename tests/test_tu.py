"""Tests for gnn_scratch.data.tu (TU graph-classification datasets, folds) and gnn_scratch.data.graph6."""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gnn_scratch.data import ChecksumError, DataNotFoundError
from gnn_scratch.data.graph6 import Graph6Error, _decode_n, load_wl_graphs, parse_graph6, read_graph6, to_graph6
from gnn_scratch.data.tu import SHA256, load_tu, load_tu_folds, stratified_folds
from gnn_scratch.graph import GraphBatch



def shared_data_root():
    env = os.environ.get("GNN_SCRATCH_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "datasets"

EXPECTED = {  # name: (graphs, class counts, tags)
    "mutag": (188, (63, 125), 7),
    "proteins": (1113, (663, 450), 3),
    "imdb-binary": (1000, (500, 500), None),
}


@pytest.fixture(scope="module")
def root():
    r = shared_data_root()
    if not (r / "tu" / "MUTAG" / "MUTAG.txt").is_file():
        pytest.skip(f"shared TU files not found under {r} (set GNN_SCRATCH_DATA)")
    return r


@pytest.fixture(scope="module")
def tu(root):
    return {name: load_tu(name, root=root, download=False) for name in EXPECTED}


# ---------------------------------------------------------------- the loader
@pytest.mark.parametrize("name", list(EXPECTED))
def test_sizes_classes_tags(tu, name):
    ds = tu[name]
    n_graphs, counts, n_tags = EXPECTED[name]
    assert len(ds) == ds.num_graphs == n_graphs
    assert tuple(np.bincount(ds.y).tolist()) == counts and ds.num_classes == 2
    assert ds.tags.min() == 0 and ds.tags.max() == ds.num_tags - 1
    assert np.unique(ds.tags).size == ds.num_tags            # every tag column is used
    if n_tags is not None:
        assert ds.num_tags == n_tags
    for k in (0, len(ds) // 2, len(ds) - 1):
        ei, n = ds.edge_index[k], int(ds.num_nodes[k])
        assert ei.dtype == np.int64 and ei.shape[0] == 2 and ei.min() >= 0 and ei.max() < n
        fwd = set(map(tuple, ei.T.tolist()))
        assert fwd == {(b, a) for a, b in fwd} and len(fwd) == ei.shape[1]    # symmetric, no repeats
        assert not any(a == b for a, b in fwd)


def test_imdb_tags_are_degrees(tu):
    ds = tu["imdb-binary"]
    for k in (0, 10, 999):
        deg = np.bincount(ds.edge_index[k][1], minlength=int(ds.num_nodes[k]))
        assert np.array_equal(ds.tag_values[ds.graph_tags(k)], deg)
    assert np.all(np.diff(ds.tag_values) > 0)


@pytest.mark.parametrize("name", ["mutag", "proteins"])
def test_raw_and_txt_forms_agree(tu, root, name):
    txt, raw = tu[name], load_tu(name, root=root, form="raw", download=False)
    assert np.array_equal(txt.num_nodes, raw.num_nodes)
    assert np.array_equal(txt.y, raw.y)
    assert np.array_equal(txt.tags, raw.tags) and np.array_equal(txt.tag_values, raw.tag_values)
    for a, b in zip(txt.edge_index, raw.edge_index):
        # the edge multisets, order aside (both are sorted by the loader, compare as multisets anyway)
        assert sorted(map(tuple, a.T.tolist())) == sorted(map(tuple, b.T.tolist()))
    # the raw files' own label values: MUTAG -1/1, PROTEINS 1/2, both mapped to 0/1 in order
    assert raw.label_values.tolist() == ({"mutag": [-1, 1], "proteins": [1, 2]}[name])


def test_batch_and_features(tu):
    ds = tu["mutag"]
    idx = np.array([3, 0, 187])
    g, X, y = ds.batch(idx)
    assert isinstance(g, GraphBatch) and g.num_graphs == 3
    assert np.array_equal(np.diff(g.graph_ptr), ds.num_nodes[idx])
    assert X.shape == (int(ds.num_nodes[idx].sum()), ds.num_tags) and X.dtype == np.float32
    assert np.array_equal(X.sum(axis=1), np.ones(X.shape[0]))
    assert np.array_equal(X.argmax(axis=1), np.concatenate([ds.graph_tags(k) for k in idx]))
    assert np.array_equal(y, ds.y[idx])
    assert g.num_edges == sum(ds.edge_index[k].shape[1] for k in idx)
    g1 = g.graph(1)                                  # graph 0 of the dataset, rebuilt from the batch
    dst = np.repeat(np.arange(g1.num_nodes), np.diff(g1.indptr))
    assert sorted(zip(g1.indices.tolist(), dst.tolist())) == sorted(map(tuple, ds.edge_index[0].T.tolist()))
    with pytest.raises(IndexError, match="graph ids"):
        ds.batch([188])


def test_checksum_failure_is_clear(root, tmp_path):
    dest = tmp_path / "tu" / "MUTAG"
    dest.mkdir(parents=True)
    shutil.copy(root / "tu" / "MUTAG" / "MUTAG.txt", dest / "MUTAG.txt")
    data = bytearray((dest / "MUTAG.txt").read_bytes())
    data[-2] = ord("0") if data[-2] != ord("0") else ord("1")
    (dest / "MUTAG.txt").chmod(0o644)
    (dest / "MUTAG.txt").write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"MUTAG\.txt.*expected sha256"):
        load_tu("mutag", root=tmp_path, download=False)


def test_missing_files_and_bad_arguments(tmp_path, monkeypatch):
    monkeypatch.delenv("GNN_SCRATCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(DataNotFoundError, match="not found"):
        load_tu("mutag", root=tmp_path / "nowhere", download=False)
    with pytest.raises(ValueError, match="name must be one of"):
        load_tu("enzymes")
    with pytest.raises(ValueError, match="form must be one of"):
        load_tu("mutag", root=tmp_path, form="json")
    with pytest.raises(ValueError, match="no published checksums"):
        load_tu("imdb-binary", root=tmp_path, form="raw")


def test_raw_download_from_a_zip(root, tmp_path, monkeypatch):
    """The download path, offline: a zip of the shared raw files served over file://, verified file by file."""
    monkeypatch.delenv("GNN_SCRATCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    site = tmp_path / "site"
    site.mkdir()
    with zipfile.ZipFile(site / "MUTAG.zip", "w") as z:
        for f in ("A", "graph_indicator", "graph_labels", "node_labels"):
            z.write(root / "tu" / "MUTAG" / f"MUTAG_{f}.txt", f"MUTAG/MUTAG_{f}.txt")
    ds = load_tu("mutag", root=tmp_path / "empty", form="raw", base_url=site.as_uri())
    assert len(ds) == 188 and (tmp_path / "xdg" / "gnn_scratch" / "tu" / "MUTAG" / "MUTAG_A.txt").is_file()
    # a corrupt member: nothing lands in the cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg2"))
    bad = {"MUTAG/MUTAG_A.txt": "0" * 64}
    with pytest.raises(ChecksumError, match="MUTAG_A.txt"):
        load_tu("mutag", root=tmp_path / "empty", form="raw", base_url=site.as_uri(), checksums=bad)
    assert not any((tmp_path / "xdg2").rglob("*.txt"))


# ---------------------------------------------------------------- folds
@pytest.mark.parametrize("name", list(EXPECTED))
def test_stratified_folds(tu, name):
    y = tu[name].y
    folds = stratified_folds(y, k=10, seed=0)
    assert len(folds) == 10
    tests = np.concatenate([te for _, te in folds])
    assert np.array_equal(np.sort(tests), np.arange(y.size))           # test sets partition the graphs
    for tr, te in folds:
        assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(y.size))
        assert abs(te.size - y.size / 10) < 1
        for c, count in enumerate(np.bincount(y)):
            assert abs(np.sum(y[te] == c) - count / 10) < 1             # stratified: within one of the share
    again = stratified_folds(y, k=10, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    other = stratified_folds(y, k=10, seed=1)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other))


def test_stratified_folds_bad_input():
    with pytest.raises(ValueError, match="k must be"):
        stratified_folds(np.array([0, 1, 0]), k=4)
    with pytest.raises(ValueError, match="y must be"):
        stratified_folds(np.array([0.5, 1.0]), k=2)


def test_shipped_imdb_folds(tu, root):
    folds = load_tu_folds("imdb-binary", root=root)
    assert len(folds) == 10
    for tr, te in folds:
        assert tr.size == 900 and te.size == 100
        assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(1000))
    # as shipped, the ten test sets overlap (documented in load_tu_folds)
    assert np.unique(np.concatenate([te for _, te in folds])).size < 1000
    with pytest.raises(ValueError, match="no shipped folds"):
        load_tu_folds("mutag", root=root)


# ---------------------------------------------------------------- graph6
def test_graph6_known_examples():
    # formats.txt's example: the graph on 5 nodes with edges 0-2 0-4 1-3 3-4 is "DQc"
    ei, n = parse_graph6(b"DQc")
    assert n == 5
    assert {tuple(e) for e in ei.T.tolist() if e[0] < e[1]} == {(0, 2), (0, 4), (1, 3), (3, 4)}
    assert to_graph6(ei, n) == b"DQc"
    assert parse_graph6(b">>graph6<<DQc")[1] == 5
    # the node-count encodings of formats.txt: 30 -> ']', 12345 -> '~' 'B' 'x' '?'... (N(12345) = 126 66 63 120)
    assert _decode_n(bytes([93]), 1) == (30, 1)
    assert _decode_n(bytes([126, 66, 63, 120]), 1) == (12345, 4)
    assert _decode_n(bytes([126, 126, 63, 90, 90, 90, 90, 90]), 1) == (460175067, 8)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 62, 63, 64, 130])
def test_graph6_round_trip(n):
    rng = np.random.default_rng(n)
    pairs = [(i, j) for j in range(n) for i in range(j) if rng.random() < 0.3]
    ei = np.array(pairs, dtype=np.int64).T.reshape(2, -1)
    ei = np.concatenate([ei, ei[::-1]], axis=1)
    b = to_graph6(ei, n)
    ei2, n2 = parse_graph6(b)
    assert n2 == n and {tuple(e) for e in ei2.T.tolist()} == {tuple(e) for e in ei.T.tolist()}
    if n >= 63:
        assert b[0] == 126


def test_graph6_errors():
    with pytest.raises(Graph6Error, match="sparse6"):
        parse_graph6(b":Fa@x^")
    with pytest.raises(Graph6Error, match="adjacency"):
        parse_graph6(b"DQ")
    with pytest.raises(Graph6Error, match="outside the graph6 range"):
        parse_graph6(b"D Q")
    with pytest.raises(Graph6Error, match="padding"):
        parse_graph6(b"Bp")          # n = 3 needs 3 bits; 'p' - 63 = 110001 sets the last padding bit
    with pytest.raises(Graph6Error, match="self-loop"):
        to_graph6(np.array([[0], [0]]), 2)


@pytest.fixture(scope="module")
def wl_root():
    r = shared_data_root()
    if not (r / "wl" / "graph7c.g6").is_file():
        pytest.skip(f"shared wl/ files not found under {r}")
    return r


def test_wl_families(wl_root):
    counts = {2: 1, 3: 2, 4: 6, 5: 21, 6: 112, 7: 853}       # connected graphs on k nodes (OEIS A001349)
    for k, c in counts.items():
        graphs = load_wl_graphs(f"graph{k}c", root=wl_root)
        assert len(graphs) == c and all(n == k for _, n in graphs)
        for ei, n in graphs:                                  # connected: a BFS from 0 reaches every node
            seen, frontier = {0}, [0]
            while frontier:
                nxt = set(ei[1][np.isin(ei[0], frontier)].tolist()) - seen
                seen |= nxt
                frontier = list(nxt)
            assert len(seen) == n
        assert len({to_graph6(ei, n) for ei, n in graphs}) == c   # distinct lines (the file's canonical forms)
    sr = load_wl_graphs("sr251256", root=wl_root)
    assert len(sr) == 15
    for ei, n in sr:
        assert n == 25 and np.all(np.bincount(ei[1], minlength=25) == 12)
        A = np.zeros((25, 25), dtype=np.int64)
        A[ei[0], ei[1]] = 1
        common = A @ A                       # (25, 12, 5, 6): adjacent pairs share 5 neighbours, others 6
        off = ~np.eye(25, dtype=bool)
        assert np.all(common[(A == 1) & off] == 5) and np.all(common[(A == 0) & off] == 6)


def test_graph6_matches_networkx(wl_root):
    nx = pytest.importorskip("networkx")
    lines = (wl_root / "wl" / "graph6c.g6").read_bytes().splitlines() + \
        (wl_root / "wl" / "sr251256.g6").read_bytes().splitlines()
    for line in lines:
        G = nx.from_graph6_bytes(line)
        ei, n = parse_graph6(line)
        assert n == G.number_of_nodes()
        assert {tuple(e) for e in ei.T.tolist()} == {e for a, b in G.edges() for e in ((a, b), (b, a))}


def test_wl_checksum(wl_root, tmp_path):
    (tmp_path / "wl").mkdir()
    data = (wl_root / "wl" / "graph4c.g6").read_bytes().replace(b"C~", b"C}")
    (tmp_path / "wl" / "graph4c.g6").write_bytes(data)
    with pytest.raises(ChecksumError, match="graph4c"):
        load_wl_graphs("graph4c", root=tmp_path)
    assert len(read_graph6(tmp_path / "wl" / "graph4c.g6")) == 6      # no checksum asked: parsed as is


def test_features_refuse_an_integer_dtype(data_root):
    from gnn_scratch.data.tu import load_tu
    ds = load_tu("mutag", root=data_root)
    with pytest.raises(TypeError, match=r"^dtype must be a float dtype \(the features are one-hot floats\), got int32$"):
        ds.batch(dtype=np.int32)
    assert ds.batch(dtype=np.float64)[1].dtype == np.float64
