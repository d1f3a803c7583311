"""BlogCatalog and DeepWalk's karate.adjlist (gnn_scratch/data/blogcatalog.py): sizes, structure, the checksum
before parsing, path resolution and the verified download (from a local HTTP server)."""
import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from gnn_scratch.data import (ChecksumError, DataNotFoundError, karate_club, load_blogcatalog,
                              load_karate_adjlist)
from gnn_scratch.data.blogcatalog import SHA256, parse_adjlist


def _root():
    env = os.environ.get("GNN_SCRATCH_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="module")
def data_root():
    root = _root()
    if not (root / "blogcatalog" / "blogcatalog.mat").is_file():
        pytest.skip(f"blogcatalog/ not found under {root} (set GNN_SCRATCH_DATA)")
    return root


@pytest.fixture(scope="module")
def blog(data_root):
    return load_blogcatalog(root=data_root, download=False)


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("GNN_SCRATCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "gnn_scratch" / "blogcatalog"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(folder):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"
    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _copy(data_root, dest, name):
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(data_root / "blogcatalog" / name, dest / name)
    os.chmod(dest / name, 0o644)           # the shared copies are read-only
    return dest / name


# ---------------------------------------------------------------- contents
def test_blogcatalog_sizes_and_structure(blog, data_root):
    assert (blog.num_nodes, blog.num_edges, blog.num_labels) == (10312, 2 * 333_983, 39)
    ei = blog.edge_index
    assert ei.dtype == np.int64 and not np.any(ei[0] == ei[1])
    keys = ei[0] * blog.num_nodes + ei[1]
    assert np.all(np.diff(keys) > 0)                                            # sorted, no repeat
    assert np.array_equal(np.sort(ei[1] * blog.num_nodes + ei[0]), keys)        # symmetric
    Y = blog.labels
    assert Y.dtype == bool and Y.sum() == 14_476
    assert Y.sum(axis=1).min() == 1 and Y.sum(axis=1).max() == 11
    g = blog.graph
    assert g.num_nodes == 10312 and g.num_edges == 667_966 and blog.graph is g
    # against an independent reading of the file
    mat = scipy.io.loadmat(data_root / "blogcatalog" / "blogcatalog.mat")
    A = blog.adjacency(np.float64)
    assert (A != sp.csr_matrix(mat["network"])).nnz == 0
    assert np.array_equal(Y, mat["group"].toarray() > 0)
    assert blog.meta["source"].endswith("blogcatalog.mat")


def test_karate_adjlist_is_zacharys_club_with_factions(data_root):
    ds = load_karate_adjlist(root=data_root, download=False)
    ref = karate_club()
    assert np.array_equal(ds.edge_index, ref.edge_index) and np.array_equal(ds.y, ref.y)
    assert ds.num_edges == 156 and np.bincount(ds.y).tolist() == [17, 17]
    assert ds.y[0] == 0 and ds.y[33] == 1                  # Mr. Hi and the Officer lead the two factions


def test_parse_adjlist():
    ei = parse_adjlist("1 2 3\n\n2 1\n3 1 3\n", num_nodes=4)     # a self-loop, a repeat, an isolated node 4
    assert ei.tolist() == [[0, 0, 1, 2], [1, 2, 0, 0]]
    with pytest.raises(ValueError, match="line 2"):
        parse_adjlist("1 2\n2 x\n")
    with pytest.raises(ValueError, match="out of range"):
        parse_adjlist("1 5\n", num_nodes=3)
    with pytest.raises(ValueError, match="below 1"):
        parse_adjlist("0 1\n")


# ---------------------------------------------------------------- paths, checksums, download
def test_root_may_be_the_folder_and_env_var_is_searched(data_root, isolated_cache, monkeypatch):
    assert load_blogcatalog(root=data_root / "blogcatalog", download=False).num_nodes == 10312
    monkeypatch.setenv("GNN_SCRATCH_DATA", str(data_root))
    assert load_karate_adjlist(download=False).num_nodes == 34


def test_missing_file_offline_names_the_folders(tmp_path, isolated_cache):
    with pytest.raises(DataNotFoundError, match=r"blogcatalog\.mat not found \(download=False\)"):
        load_blogcatalog(root=tmp_path, download=False)


def test_checksum_is_checked_before_parsing(data_root, tmp_path, isolated_cache):
    f = _copy(data_root, tmp_path / "blogcatalog", "blogcatalog.mat")
    with open(f, "r+b") as fh:
        fh.seek(5000)
        b = fh.read(1)
        fh.seek(5000)
        fh.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(ChecksumError, match=SHA256["blogcatalog.mat"]):
        load_blogcatalog(root=tmp_path, download=False)


def test_karate_file_that_is_not_zacharys_is_refused(data_root, tmp_path, isolated_cache):
    f = _copy(data_root, tmp_path / "blogcatalog", "karate.adjlist")
    with open(f, "a") as fh:
        fh.write("5 34\n")                                # a 79th friendship
    import hashlib
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="not Zachary's karate club"):
        load_karate_adjlist(root=tmp_path, download=False, checksums={"karate.adjlist": sha})


def test_download_into_the_cache(data_root, isolated_cache, serve, blog):
    url = serve(data_root / "blogcatalog")
    ds = load_blogcatalog(base_url=url)
    assert Path(ds.meta["source"]).parent == isolated_cache
    assert np.array_equal(ds.edge_index, blog.edge_index) and np.array_equal(ds.labels, blog.labels)
    again = load_blogcatalog(download=False)              # from the cache, no server
    assert Path(again.meta["source"]).parent == isolated_cache


def test_corrupted_download_leaves_nothing(data_root, tmp_path, isolated_cache, serve):
    served = tmp_path / "served"
    f = _copy(data_root, served, "karate.adjlist")
    f.write_bytes(f.read_bytes().replace(b"34 9", b"34 8"))
    with pytest.raises(ChecksumError, match="karate.adjlist"):
        load_karate_adjlist(base_url=serve(served))
    assert not isolated_cache.exists() or list(isolated_cache.iterdir()) == []
