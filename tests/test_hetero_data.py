"""ACM and DBLP in HeCo's versions (gnn_scratch/data/hetero.py): sizes, features, labels and splits, the
metapath graphs against HeCo's own metapath files, checksums before parsing, path resolution and the
verified download (from a file:// mirror), and a PyG AddMetaPaths oracle on the real relations."""
import shutil

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import shared_data_root
from gnn_scratch.data import ChecksumError, DataNotFoundError
from gnn_scratch.data.hetero import (SHA256, SPECS, HeteroDataset, load_acm, load_dblp, load_heco,
                                     read_heco_metapath)
from gnn_scratch.graph import Graph

LOADERS = {"acm": load_acm, "dblp": load_dblp}


@pytest.fixture(scope="module")
def hetero_root():
    root = shared_data_root()
    if not all((root / "hetero" / n / "labels.npy").is_file() for n in SPECS):
        pytest.skip(f"hetero/acm and hetero/dblp not found under {root} (set GNN_SCRATCH_DATA)")
    return root


@pytest.fixture(scope="module")
def datasets(hetero_root):
    return {n: f(root=hetero_root, download=False) for n, f in LOADERS.items()}


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No $GNN_SCRATCH_DATA, an empty cache under tmp_path: only what the test passes is found."""
    monkeypatch.delenv("GNN_SCRATCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "gnn_scratch" / "hetero"


EXPECTED = {
    "acm": dict(target="paper", classes=3, nodes={"paper": 4019, "author": 7167, "subject": 60},
                feats={"paper": (1902, True), "author": (1902, True), "subject": None},
                edges={("paper", "written_by", "author"): 13407, ("paper", "has_subject", "subject"): 4019}),
    "dblp": dict(target="author", classes=4, nodes={"author": 4057, "paper": 14328, "term": 7723, "conference": 20},
                 feats={"author": (334, True), "paper": (4231, True), "term": (50, False), "conference": None},
                 edges={("paper", "written_by", "author"): 19645, ("paper", "published_in", "conference"): 14328,
                        ("paper", "has_term", "term"): 85810}),
}


@pytest.mark.parametrize("name", ["acm", "dblp"])
def test_graph_types_features_and_relations(datasets, name):
    ds, exp = datasets[name], EXPECTED[name]
    g = ds.graph
    assert isinstance(ds, HeteroDataset) and ds.name == name and ds.target == exp["target"]
    assert dict(g.num_nodes) == exp["nodes"]
    inv = {(d, "rev_" + r, s): E for (s, r, d), E in exp["edges"].items()}
    assert dict(g.num_edges) == {**exp["edges"], **inv}
    for et in exp["edges"]:
        iet = (et[2], "rev_" + et[1], et[0])
        np.testing.assert_array_equal(g.to_edge_index_dict()[iet], g.to_edge_index_dict()[et][::-1])
        assert g.graphs[et].shape == (exp["nodes"][et[2]], exp["nodes"][et[0]])
    for t, f in exp["feats"].items():
        X = g.x_dict[t]
        if f is None:
            assert X is None
            continue
        assert X.shape == (exp["nodes"][t], f[0]) and X.dtype == np.float32 and sp.issparse(X) == f[1]
        assert (X.nnz if f[1] else np.count_nonzero(X)) > 0
    assert ds.x is g.x_dict[ds.target]


def test_feature_values_equal_the_files(datasets, hetero_root):
    ds = datasets["dblp"]
    t = np.load(hetero_root / "hetero/dblp/t_feat.npz", allow_pickle=False)   # a plain .npy
    np.testing.assert_array_equal(ds.graph.x_dict["term"], t.astype(np.float32))
    a = sp.load_npz(hetero_root / "hetero/acm/a_feat.npz").tocsr()
    np.testing.assert_array_equal(datasets["acm"].graph.x_dict["author"].toarray(), a.toarray().astype(np.float32))
    assert load_acm(hetero_root, download=False, dtype=np.float64).x.dtype == np.float64


@pytest.mark.parametrize("name", ["acm", "dblp"])
@pytest.mark.parametrize("split", [20, 40, 60])
def test_labels_and_splits(hetero_root, name, split):
    ds = LOADERS[name](root=hetero_root, split=split, download=False)
    C = EXPECTED[name]["classes"]
    assert ds.num_classes == C and ds.split == split
    assert ds.y.dtype == np.int64 and ds.y.shape == (EXPECTED[name]["nodes"][ds.target],)
    assert tuple(np.bincount(ds.y)) == SPECS[name].class_sizes
    for idx in (ds.train_idx, ds.val_idx, ds.test_idx):
        assert idx.dtype == np.int64
    assert ds.train_idx.size == split * C and ds.val_idx.size == 1000 and ds.test_idx.size == 1000
    assert np.all(np.bincount(ds.y[ds.train_idx], minlength=C) == split)
    allidx = np.concatenate([ds.train_idx, ds.val_idx, ds.test_idx])
    assert np.unique(allidx).size == allidx.size
    files = {s: np.load(hetero_root / f"hetero/{name}/{s}_{split}.npy") for s in ("train", "val", "test")}
    np.testing.assert_array_equal(ds.train_idx, files["train"])
    np.testing.assert_array_equal(ds.test_idx, files["test"])
    raw = np.load(hetero_root / f"hetero/{name}/labels.npy")
    np.testing.assert_array_equal(ds.y, raw)            # ACM's floats converted exactly


@pytest.mark.parametrize("split", [30, "20", 20.0, True, None])
def test_bad_split_raises(hetero_root, split):
    with pytest.raises(ValueError, match=r"split must be one of \(20, 40, 60\)"):
        load_acm(hetero_root, split=split, download=False)


def test_unknown_dataset_raises():
    with pytest.raises(ValueError, match="unknown heterogeneous dataset 'imdb'"):
        load_heco("imdb")


def test_metapaths_chain_and_names(datasets):
    assert list(datasets["acm"].metapaths) == ["PAP", "PSP"]
    assert list(datasets["dblp"].metapaths) == ["APA", "APCPA", "APTPA"]
    for ds in datasets.values():
        for name, path in ds.metapaths.items():
            assert path[0][0] == path[-1][2] == ds.target
            assert [et[0][0].upper() for et in path] + [path[-1][2][0].upper()] == list(name)
            assert all(a[2] == b[0] for a, b in zip(path, path[1:]))
            assert ds.graph.resolve_metapath(name) == tuple(path)   # the string form names the same path


# ------------------------------------------------------------------------------------ HeCo's metapath files
HECO_FILES = [("acm", "PAP", 57853), ("acm", "PSP", 4338213), ("dblp", "APA", 11113), ("dblp", "APCPA", 5000495)]


@pytest.mark.parametrize("name, metapath, nnz", HECO_FILES)
def test_metapath_graph_equals_heco_file(datasets, hetero_root, name, metapath, nnz):
    ds = datasets[name]
    ours = ds.metapath_graphs()[metapath]
    ref = read_heco_metapath(name, metapath, hetero_root, download=False)
    assert isinstance(ours, Graph) and ours.edge_weight is None
    assert ours.num_edges == ref.nnz == nnz
    # as sets of edges (both are symmetric, so the row convention cannot hide a difference)
    np.testing.assert_array_equal(ours.indptr, ref.indptr)
    np.testing.assert_array_equal(ours.indices, ref.indices)
    # self-loops: HeCo's files have every node on its own metapath, and so do we
    assert np.all(ref.diagonal() == 1)
    assert np.all(ours.to_scipy().diagonal() == 1)


def test_aptpa_counts_sampled_by_hand(datasets):
    """APTPA has no HeCo file: check sampled counts against walks enumerated from the edge lists."""
    ds = datasets["dblp"]
    W = ds.graph.metapath_graph("APTPA", keep_multiplicity=True)
    assert W.num_edges == 7043571 and W.edge_weight.dtype == np.float32
    eis = ds.graph.to_edge_index_dict()
    pa, pt = eis[("paper", "written_by", "author")], eis[("paper", "has_term", "term")]
    papers_of = lambda a: pa[0, pa[1] == a]
    terms_of = lambda p: pt[1, pt[0] == p]
    rng = np.random.default_rng(0)
    A = W.to_scipy().tocsr()
    for a in rng.choice(4057, 4, replace=False):
        counts = {}
        for p in papers_of(a):
            for t in terms_of(p):
                for p2 in pt[0, pt[1] == t]:
                    for b in pa[1, pa[0] == p2]:
                        counts[b] = counts.get(b, 0) + 1
        row = A[:, a].toarray().ravel()          # column a: the edges leaving author a
        assert {int(k): v for k, v in counts.items()} == {int(k): row[k] for k in np.flatnonzero(row)}
        assert counts.get(a, 0) > 0               # a self-loop


def test_metapath_graphs_cached_and_weighted(datasets):
    ds = datasets["acm"]
    a, b = ds.metapath_graphs(), ds.metapath_graphs()
    assert all(a[k] is b[k] for k in a)
    w = ds.metapath_graphs(keep_multiplicity=True)["PAP"]
    assert w.num_edges == a["PAP"].num_edges
    # a paper's self-loop counts its authors
    authors = np.bincount(ds.graph.to_edge_index_dict()[("paper", "written_by", "author")][0], minlength=4019)
    np.testing.assert_array_equal(w.to_scipy().diagonal(), authors)


def test_summary_and_repr(datasets):
    s = datasets["dblp"].summary()
    for part in ("author", "4057", "('paper', 'has_term', 'term')", "85810 edges", "APTPA", "80 train", "no features"):
        assert part in s
    assert "paper=4019" in repr(datasets["acm"]) and "PSP" in repr(datasets["acm"])


# ------------------------------------------------------------------------------------ files, checksums, download
def _mirror(src, dst, corrupt=None):
    """Copy the dataset folder src to dst, flipping one byte of ``corrupt``."""
    dst.mkdir(parents=True)
    for f in src.iterdir():
        shutil.copyfile(f, dst / f.name)
    if corrupt:
        b = bytearray((dst / corrupt).read_bytes())
        b[len(b) // 2] ^= 0x01
        (dst / corrupt).write_bytes(bytes(b))


@pytest.mark.parametrize("corrupt", ["labels.npy", "pa.txt", "p_feat.npz", "train_20.npy"])
def test_checksum_failure_raises(hetero_root, tmp_path, isolated, corrupt):
    _mirror(hetero_root / "hetero" / "acm", tmp_path / "acm", corrupt)
    with pytest.raises(ChecksumError, match=corrupt.replace(".", r"\.")):
        load_acm(root=tmp_path / "acm", download=False)


def test_root_may_be_the_data_root_or_the_folder(hetero_root, tmp_path, isolated):
    _mirror(hetero_root / "hetero" / "acm", tmp_path / "data" / "hetero" / "acm")
    a = load_acm(root=tmp_path / "data", download=False)
    b = load_acm(root=tmp_path / "data" / "hetero" / "acm", download=False)
    assert a.meta["source"] == b.meta["source"] == str(tmp_path / "data" / "hetero" / "acm")


def test_env_variable_is_searched(hetero_root, isolated, monkeypatch):
    monkeypatch.setenv("GNN_SCRATCH_DATA", str(hetero_root))
    assert load_dblp(download=False).meta["source"] == str(hetero_root / "hetero" / "dblp")


def test_missing_files_without_download(isolated, tmp_path):
    with pytest.raises(DataNotFoundError, match="acm files"):
        load_acm(root=tmp_path / "nowhere", download=False)


def test_download_from_mirror_verifies_and_caches(hetero_root, isolated):
    base = (hetero_root / "hetero").as_uri()
    ds = load_acm(split=40, base_url=base)
    assert ds.meta["source"] == str(isolated / "acm")
    assert (isolated / "acm" / "train_40.npy").is_file() and not (isolated / "acm" / "train_20.npy").exists()
    assert ds.train_idx.size == 120


def test_download_with_wrong_checksum_writes_nothing(hetero_root, isolated):
    base = (hetero_root / "hetero").as_uri()
    with pytest.raises(ChecksumError, match="checksum mismatch for labels.npy"):
        load_dblp(base_url=base, checksums={"labels.npy": "0" * 64})
    assert not (isolated / "dblp").exists() or list((isolated / "dblp").iterdir()) == []
    assert SHA256["dblp"]["labels.npy"] != "0" * 64       # the published table is untouched


def test_read_heco_metapath_has_no_aptpa(hetero_root):
    with pytest.raises(KeyError, match="HeCo ships no 'APTPA' file"):
        read_heco_metapath("dblp", "APTPA", hetero_root, download=False)


# ------------------------------------------------------------------------------------ PyG oracle
@pytest.mark.oracle
@pytest.mark.parametrize("name, metapath", [("acm", "PAP"), ("dblp", "APA")])
def test_metapath_equals_pyg_on_the_dataset(datasets, name, metapath):
    """PyG's AddMetaPaths on the same relations: the same pairs with the same counts (no relation here has
    a repeated edge, so PyG emits each pair once), self-loops included."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    import torch_geometric.transforms as T
    from torch_geometric.data import HeteroData
    ds = datasets[name]
    d = HeteroData()
    for t, n in ds.graph.num_nodes.items():
        d[t].num_nodes = n
    for et, ei in ds.graph.to_edge_index_dict().items():
        d[et].edge_index = torch.from_numpy(ei)
    path = ds.metapaths[metapath]
    out = T.AddMetaPaths([path], weighted=True)(d)[(ds.target, "metapath_0", ds.target)]
    ei, w = out.edge_index.numpy(), out.edge_weight.double().numpy()
    ours = ds.graph.metapath_graph(path, keep_multiplicity=True)
    assert ei.shape[1] == ours.num_edges
    R = sp.csr_matrix((w, (ei[1], ei[0])), shape=ours.shape)
    R.sort_indices()
    np.testing.assert_array_equal(R.indptr, ours.indptr)
    np.testing.assert_array_equal(R.indices, ours.indices)
    np.testing.assert_array_equal(R.data, ours.edge_weight)
