"""Tests for gnn_scratch.data: Planetoid loading (sizes, split, checksums, restricted unpickling,
download), the CSBM generator, the karate club, row normalisation and the dispatcher."""
from __future__ import annotations

import functools
import hashlib
import http.server
import os
import pickle
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from gnn_scratch.data import (ChecksumError, DataNotFoundError, Dataset, csbm, get_dataset, karate_club,
                              load_planetoid, row_normalize)
from gnn_scratch.data.planetoid import SHA256, planetoid_files

SIZES = {  # name: (nodes, directed edges, features, classes, train nodes, padding nodes)
    "cora": (2708, 10556, 1433, 7, 140, 0),
    "citeseer": (3327, 9104, 3703, 6, 120, 15),
}


# ---------------------------------------------------------------- fixtures
def _shared_root():
    env = os.environ.get("GNN_SCRATCH_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="module")
def data_root():
    root = _shared_root()
    if not (root / "planetoid" / "ind.cora.x").is_file():
        pytest.skip(f"shared Planetoid files not found under {root} (set GNN_SCRATCH_DATA)")
    return root


@pytest.fixture(scope="module")
def planetoid(data_root):
    return {name: load_planetoid(name, root=data_root, download=False) for name in SIZES}


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """No data root in the environment, and a cache in an empty temp folder."""
    monkeypatch.delenv("GNN_SCRATCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "gnn_scratch" / "planetoid"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """serve(folder) -> base URL of an HTTP server on 127.0.0.1 serving that folder; stopped after the test."""
    servers = []

    def start(folder):
        handler = functools.partial(_QuietHandler, directory=str(folder))
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _copy_cora(data_root, dest):
    dest.mkdir(parents=True, exist_ok=True)
    for f in planetoid_files("cora"):
        shutil.copy(data_root / "planetoid" / f, dest / f)
        os.chmod(dest / f, 0o644)  # the shared copies are read-only
    return dest


def _assert_canonical_edges(ei, N):
    assert ei.dtype == np.int64 and ei.ndim == 2 and ei.shape[0] == 2
    assert ei.min() >= 0 and ei.max() < N
    assert not np.any(ei[0] == ei[1]), "self-loop"
    keys = ei[0] * N + ei[1]
    assert np.unique(keys).size == keys.size, "repeated edge"
    assert np.array_equal(np.sort(keys), np.sort(ei[1] * N + ei[0])), "edge_index is not symmetric"


def _assert_split(ds):
    tr, va, te = ds.train_mask, ds.val_mask, ds.test_mask
    assert not (tr & va).any() and not (tr & te).any() and not (va & te).any()
    for m in (tr, va, te):
        assert m.dtype == bool and m.shape == (ds.num_nodes,)
        assert (ds.y[m] >= 0).all() and (ds.y[m] < ds.num_classes).all()


# ---------------------------------------------------------------- Planetoid contents
@pytest.mark.parametrize("name", list(SIZES))
def test_planetoid_sizes_and_split(planetoid, data_root, name):
    ds = planetoid[name]
    N, E, F, C, n_train, n_pad = SIZES[name]
    assert (ds.num_nodes, ds.num_edges, ds.num_features, ds.num_classes) == (N, E, F, C)
    assert sp.isspmatrix_csr(ds.x) and ds.x.dtype == np.float32 and ds.x.shape == (N, F)
    assert np.all(ds.x.data == 1.0)  # raw binary bag-of-words
    assert 0.005 < ds.x.nnz / (N * F) < 0.02  # about 1 % dense
    assert ds.y.dtype == np.int64 and ds.y.shape == (N,)
    _assert_canonical_edges(ds.edge_index, N)
    _assert_split(ds)
    # public split: train = first n_train ids, val = next 500, test = exactly the ids of test.index
    assert np.array_equal(np.flatnonzero(ds.train_mask), np.arange(n_train))
    assert np.array_equal(np.flatnonzero(ds.val_mask), np.arange(n_train, n_train + 500))
    test_ids = np.loadtxt(data_root / "planetoid" / f"ind.{name}.test.index", dtype=np.int64)
    assert np.array_equal(np.flatnonzero(ds.test_mask), np.sort(test_ids))
    assert ds.test_mask.sum() == 1000
    # every class is present in training; labels outside the padding are all in range
    assert np.array_equal(np.unique(ds.y[ds.train_mask]), np.arange(C))
    unlabelled = np.flatnonzero(ds.y < 0)
    assert unlabelled.size == n_pad
    if n_pad:  # CiteSeer's isolated test-range ids missing from tx: zero features, no label, no mask
        assert np.array_equal(unlabelled, ds.meta["padding_nodes"])
        assert ds.x[unlabelled].nnz == 0
        assert not (ds.train_mask | ds.val_mask | ds.test_mask)[unlabelled].any()
        assert unlabelled.min() > test_ids.min() and unlabelled.max() < test_ids.max()


def test_planetoid_test_rows_follow_test_index(planetoid, data_root):
    # Row k of tx belongs to node test.index[k] (the GCN code's reordering).
    from gnn_scratch.data.integrity import load_pickle_verified
    folder = data_root / "planetoid"
    tx = load_pickle_verified(folder / "ind.cora.tx", SHA256["ind.cora.tx"])
    ty = load_pickle_verified(folder / "ind.cora.ty", SHA256["ind.cora.ty"])
    test_ids = np.loadtxt(folder / "ind.cora.test.index", dtype=np.int64)
    ds = planetoid["cora"]
    for k in (0, 1, 500, 999):
        assert (ds.x[test_ids[k]] != sp.csr_matrix(tx[k], dtype=np.float32)).nnz == 0
        assert ds.y[test_ids[k]] == np.argmax(ty[k])


def test_planetoid_graph_property_is_cached(planetoid):
    ds = planetoid["cora"]
    g = ds.graph
    assert g is ds.graph
    assert g.num_nodes == 2708 and g.num_edges == 10556
    assert np.array_equal(np.sort(g.in_degree()), np.sort(np.bincount(ds.edge_index[1], minlength=2708)))


def test_cora_matches_independent_npz(planetoid, data_root):
    """The npz of Shchur et al. is a second reading of Cora with its own node order: compare
    order-free statistics. Its adjacency stores each *citation* once (5429 directed entries, some
    pairs cite each other); symmetrised and without self-loops it has the same 10556 edges."""
    path = data_root / "npz" / "cora.npz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with np.load(path, allow_pickle=False) as z:
        A = sp.csr_matrix((z["adj_data"], z["adj_indices"], z["adj_indptr"]), shape=tuple(z["adj_shape"]))
        attr_nnz = z["attr_data"].size
        labels = z["labels"]
    ds = planetoid["cora"]
    assert A.shape == (2708, 2708) and ds.num_nodes == 2708
    S = ((A + A.T) > 0).astype(np.int64).tocsr()
    S.setdiag(0)
    S.eliminate_zeros()
    assert S.nnz == ds.num_edges == 10556
    deg_npz = np.diff(S.indptr)
    deg_ours = np.bincount(ds.edge_index[0], minlength=ds.num_nodes)
    assert np.array_equal(np.bincount(deg_npz), np.bincount(deg_ours))  # same degree histogram
    assert attr_nnz == ds.x.nnz == 49216
    assert np.array_equal(np.sort(np.bincount(labels)), np.sort(np.bincount(ds.y)))  # class sizes


# ---------------------------------------------------------------- search order
def test_root_may_point_at_planetoid_folder(data_root, isolated_cache):
    ds = load_planetoid("cora", root=data_root / "planetoid", download=False)
    assert ds.num_nodes == 2708


def test_env_var_root(data_root, isolated_cache, monkeypatch):
    monkeypatch.setenv("GNN_SCRATCH_DATA", str(data_root))
    ds = get_dataset("cora", download=False)
    assert ds.num_edges == 10556 and Path(ds.meta["source"]) == data_root / "planetoid"


def test_missing_files_offline_error(tmp_path, isolated_cache):
    with pytest.raises(DataNotFoundError, match="GNN_SCRATCH_DATA") as ei:
        load_planetoid("cora", root=tmp_path / "nowhere", download=False)
    assert str(tmp_path / "nowhere") in str(ei.value) and str(isolated_cache) in str(ei.value)
    # a download that cannot connect (nothing listens on port 1) gives the same kind of error
    with pytest.raises(DataNotFoundError, match="download"):
        load_planetoid("cora", base_url="http://127.0.0.1:1/data")
    assert not isolated_cache.exists() or not any(isolated_cache.iterdir())


# ---------------------------------------------------------------- integrity
def test_checksum_mismatch_names_file_and_hashes(data_root, tmp_path, isolated_cache):
    folder = _copy_cora(data_root, tmp_path / "planetoid")
    with open(folder / "ind.cora.ally", "ab") as f:
        f.write(b"\0")
    actual = hashlib.sha256((folder / "ind.cora.ally").read_bytes()).hexdigest()
    with pytest.raises(ChecksumError) as ei:
        load_planetoid("cora", root=tmp_path, download=False)
    msg = str(ei.value)
    assert "ind.cora.ally" in msg and SHA256["ind.cora.ally"] in msg and actual in msg


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_forbidden_global_is_refused(data_root, tmp_path, isolated_cache):
    folder = _copy_cora(data_root, tmp_path / "planetoid")
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Evil(marker), protocol=2)
    (folder / "ind.cora.x").write_bytes(payload)
    hook = {"ind.cora.x": hashlib.sha256(payload).hexdigest()}  # the checksum passes, the unpickler must not
    with pytest.raises(pickle.UnpicklingError, match=r"refused to load global '(posix|os|nt)\.system'"):
        load_planetoid("cora", root=tmp_path, download=False, checksums=hook)
    assert not marker.exists()


def test_restricted_unpickler_refuses_builtins_eval():
    import io
    from gnn_scratch.data.integrity import RestrictedUnpickler
    payload = pickle.dumps(eval, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=r"refused to load global '(__builtin__|builtins)\.eval'"):
        RestrictedUnpickler(io.BytesIO(payload), encoding="latin1").load()


# ---------------------------------------------------------------- download
def test_download_from_local_server(data_root, isolated_cache, serve, planetoid):
    url = serve(data_root / "planetoid")
    ds = load_planetoid("cora", base_url=url)
    assert Path(ds.meta["source"]) == isolated_cache
    assert sorted(p.name for p in isolated_cache.iterdir()) == sorted(planetoid_files("cora"))
    ref = planetoid["cora"]
    assert np.array_equal(ds.edge_index, ref.edge_index) and np.array_equal(ds.y, ref.y)
    assert (ds.x != ref.x).nnz == 0
    # second load comes from the cache, with no server
    again = load_planetoid("cora", download=False)
    assert np.array_equal(again.edge_index, ref.edge_index)


def test_corrupted_download_leaves_nothing(data_root, tmp_path, isolated_cache, serve):
    served = _copy_cora(data_root, tmp_path / "served")
    with open(served / "ind.cora.graph", "r+b") as f:  # a late file: the earlier ones must go too
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xFF]))
    url = serve(served)
    with pytest.raises(ChecksumError, match=r"ind\.cora\.graph.*" + SHA256["ind.cora.graph"]):
        load_planetoid("cora", base_url=url)
    assert list(isolated_cache.iterdir()) == []  # no good files, no bad file, no temp files


# ---------------------------------------------------------------- CSBM
def test_csbm_shapes_split_and_determinism():
    a = csbm(num_nodes=600, num_classes=3, num_features=16, avg_degree=6, train_per_class=10,
             num_val=100, num_test=200, seed=5)
    b = csbm(num_nodes=600, num_classes=3, num_features=16, avg_degree=6, train_per_class=10,
             num_val=100, num_test=200, seed=5)
    c = csbm(num_nodes=600, num_classes=3, num_features=16, avg_degree=6, train_per_class=10,
             num_val=100, num_test=200, seed=6)
    for f in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert not np.array_equal(a.edge_index, c.edge_index) or not np.array_equal(a.x, c.x)
    assert isinstance(a.x, np.ndarray) and a.x.dtype == np.float32 and a.x.shape == (600, 16)
    assert np.array_equal(np.bincount(a.y), [200, 200, 200])  # balanced
    _assert_canonical_edges(a.edge_index, 600)
    _assert_split(a)
    assert np.array_equal(np.bincount(a.y[a.train_mask]), [10, 10, 10])
    assert (a.val_mask.sum(), a.test_mask.sum()) == (100, 200)


@pytest.mark.parametrize("h", [0.1, 0.5, 0.9])
def test_csbm_measured_homophily_and_degree(h):
    ds = csbm(num_nodes=20000, num_classes=4, num_features=8, avg_degree=10, homophily=h, seed=1)
    ei = ds.edge_index
    measured = np.mean(ds.y[ei[0]] == ds.y[ei[1]])
    assert abs(measured - h) < 0.01
    assert 9.8 < ds.num_edges / ds.num_nodes <= 10.0  # a few repeats removed
    # inter-class edges spread evenly over the other classes
    if h < 1:
        inter = ds.y[ei[0]] != ds.y[ei[1]]
        pair = ds.y[ei[0]][inter] * 4 + ds.y[ei[1]][inter]
        counts = np.bincount(pair, minlength=16).reshape(4, 4)[~np.eye(4, dtype=bool)]
        assert counts.min() > 0.9 * counts.mean()


def test_csbm_features_carry_class_signal():
    ds = csbm(num_nodes=8000, num_classes=4, num_features=512, feature_signal=3.0, seed=2)
    mu = ds.meta["class_means"]
    # ||mu_c|| = 3 * sqrt(chi2_512 / 512): about 3 +- 0.1
    assert np.allclose(np.linalg.norm(mu, axis=1), 3.0, atol=0.4)
    means = np.stack([ds.x[ds.y == c].mean(axis=0) for c in range(4)])
    assert np.abs(means - mu).max() < 0.12  # per-entry sampling error sd = 1/sqrt(2000) ~ 0.022
    resid = ds.x - mu[ds.y]
    assert abs(resid.std() - 1.0) < 0.01 and abs(resid.mean()) < 0.01  # unit Gaussian noise
    flat = csbm(num_nodes=8000, num_classes=4, num_features=32, feature_signal=0.0, seed=2)
    assert np.all(flat.meta["class_means"] == 0)


def test_csbm_builds_100k_nodes_and_a_million_edges():
    """The benchmark-sized CSBM graph (its speed is not asserted here: timings belong in benchmarks)."""
    ds = csbm(num_nodes=100_000, avg_degree=10, seed=0)
    assert ds.num_nodes == 100_000 and ds.num_edges > 990_000


@pytest.mark.parametrize("kwargs, match", [
    (dict(homophily=1.5), "homophily"),
    (dict(homophily=-0.1), "homophily"),
    (dict(homophily=float("nan")), "homophily"),
    (dict(num_nodes=0), "num_nodes"),
    (dict(num_nodes=2.5), "num_nodes"),
    (dict(num_classes=1), "num_classes"),
    (dict(num_features=0), "num_features"),
    (dict(avg_degree=0), "avg_degree"),
    (dict(train_per_class=0), "train_per_class"),
    (dict(num_nodes=100, train_per_class=30), "train_per_class"),
    (dict(num_nodes=1000, num_val=500, num_test=500), "split does not fit"),
    (dict(feature_signal=-1), "feature_signal"),
])
def test_csbm_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        csbm(**kwargs)


# ---------------------------------------------------------------- karate
def test_karate_club():
    ds = karate_club()
    assert (ds.num_nodes, ds.num_edges, ds.num_classes) == (34, 156, 2)
    _assert_canonical_edges(ds.edge_index, 34)
    deg = np.bincount(ds.edge_index[0], minlength=34)
    # Zachary's published degree sequence
    assert deg.tolist() == [16, 9, 10, 6, 3, 4, 4, 4, 5, 2, 3, 1, 2, 5, 2, 2, 2, 2, 2, 3, 2, 2, 2, 5, 3, 3, 2, 4,
                            3, 4, 4, 6, 12, 17]
    assert np.array_equal(np.bincount(ds.y), [17, 17]) and ds.y[0] == 0 and ds.y[33] == 1
    _assert_split(ds)
    assert np.array_equal(np.flatnonzero(ds.train_mask), [0, 33])
    assert ds.val_mask.sum() == 8 and ds.test_mask.sum() == 24
    assert np.array_equal(ds.x, np.eye(34, dtype=np.float32))


def test_karate_matches_networkx_if_available():
    nx = pytest.importorskip("networkx")
    G = nx.karate_club_graph()
    ds = karate_club()
    expected = {(a, b) for a, b in G.edges()} | {(b, a) for a, b in G.edges()}
    assert set(map(tuple, ds.edge_index.T.tolist())) == expected
    assert all((G.nodes[i]["club"] == "Mr. Hi") == (ds.y[i] == 0) for i in range(34))


# ---------------------------------------------------------------- row_normalize, Dataset, get_dataset
def test_row_normalize_dense_and_sparse():
    x = np.array([[1, 3, 0], [0, 0, 0], [2, 2, 4]], dtype=np.float64)
    want = np.array([[0.25, 0.75, 0], [0, 0, 0], [0.25, 0.25, 0.5]], dtype=np.float32)
    d = row_normalize(x)
    assert isinstance(d, np.ndarray) and d.dtype == np.float32 and np.allclose(d, want)
    assert x[0, 1] == 3  # input untouched
    s_in = sp.csr_matrix(x)
    s = row_normalize(s_in)
    assert sp.isspmatrix_csr(s) and s.dtype == np.float32 and np.allclose(s.toarray(), want)
    assert s_in[0, 1] == 3
    with pytest.raises(ValueError, match="x must have shape"):
        row_normalize(np.ones(3))


def test_row_normalize_planetoid_rows_sum_to_one(planetoid):
    ds = planetoid["citeseer"]
    sums = np.asarray(row_normalize(ds.x).sum(axis=1)).ravel()
    empty = np.asarray(ds.x.sum(axis=1)).ravel() == 0
    assert empty.sum() >= 15  # the padding nodes at least
    assert np.allclose(sums[~empty], 1.0, atol=1e-5) and np.all(sums[empty] == 0)


def test_dataset_validates_its_parts():
    good = dict(name="t", x=np.zeros((3, 2), np.float32), y=np.array([0, 1, -1]),
                edge_index=np.array([[0, 1], [1, 0]]), train_mask=np.array([True, False, False]),
                val_mask=np.array([False, True, False]), test_mask=np.zeros(3, bool), num_classes=2)
    Dataset(**good)
    with pytest.raises(ValueError, match="disjoint"):
        Dataset(**{**good, "val_mask": np.array([True, False, False])})
    with pytest.raises(ValueError, match="without a label"):
        Dataset(**{**good, "test_mask": np.array([False, False, True])})
    with pytest.raises(ValueError, match="edge_index holds node ids"):
        Dataset(**{**good, "edge_index": np.array([[0], [3]])})
    with pytest.raises(TypeError, match="float32"):
        Dataset(**{**good, "x": np.zeros((3, 2))})


def test_get_dataset_dispatch(planetoid, data_root):
    assert get_dataset("karate").num_nodes == 34
    assert get_dataset("csbm", num_nodes=400, num_val=50, num_test=100).num_nodes == 400
    assert get_dataset("CiteSeer", root=data_root, download=False).num_nodes == 3327
    with pytest.raises(ValueError, match="cora, citeseer, csbm, karate"):
        get_dataset("pubmed")
