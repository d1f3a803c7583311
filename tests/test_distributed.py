"""Layer-wise inference in chunks: in memory (gnn_scratch.distributed.local) and on Dask (.inference).

The Dask tests start one LocalCluster of 2 worker processes (module fixture) and skip when
``distributed`` is not installed; the rest run without Dask.
"""
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

from gnn_scratch.data.bipartite import generate_bipartite
from gnn_scratch.distributed import (GeneratedFeatures, ImportanceNeighbourhood, chunk_bounds, gather_plan,
                                     layerwise_inference_local, load_embeddings)
from gnn_scratch.distributed.local import chunk_neighbourhood, join_reduce, plan_chunk, transform_chunk
from gnn_scratch.graph import Graph
from gnn_scratch.nn.conv.pinsage_conv import PinSAGEConv
from gnn_scratch.threads import blas_threads

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data():
    """A generated user-item graph: 1500 items (the nodes inference runs over), 2500 users."""
    return generate_bipartite(num_items=1500, num_users=2500, num_communities=12, mean_interactions=6,
                              num_test_pairs=0, seed=3)


@pytest.fixture(scope="module")
def neighbourhood(data):
    return ImportanceNeighbourhood(num_walks=16, walk_length=2, k=6, seed=5, hops=2, num_src=data.num_items)


def pinsage_layers(F_in):
    return [PinSAGEConv(F_in, 24, 20, seed=11), PinSAGEConv(20, 16, 12, seed=12)]


def square_block_with_empty_rows(N, seed=0):
    """An (N, N) weighted block where every 7th row is empty and rows repeat a source: the edge cases."""
    rng = np.random.default_rng(seed)
    deg = rng.integers(1, 6, N)
    deg[::7] = 0
    dst = np.repeat(np.arange(N), deg)
    src = rng.integers(0, N, dst.size)
    src[1::9] = src[::9][:src[1::9].size]          # some repeated (u, v) pairs
    w = rng.random(dst.size)
    return Graph.from_edge_index(np.stack([src, dst]), num_nodes=N, edge_weight=w)


# ------------------------------------------------------------------------------- no Dask needed
def test_chunk_bounds_and_errors():
    assert chunk_bounds(10, 4).tolist() == [0, 4, 8, 10]
    assert chunk_bounds(3, 5).tolist() == [0, 3]
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        chunk_bounds(10, 0)
    with pytest.raises(ValueError, match="num_nodes must be a positive int"):
        chunk_bounds(True, 3)


def test_generated_features_do_not_depend_on_the_chunks():
    f = GeneratedFeatures(10_000, 5, seed=2)
    whole = f.materialize()
    assert whole.shape == (10_000, 5) and whole.dtype == np.float32
    starts = np.array([0, 1, 4095, 4096, 4097, 8191, 9999, 10_000])
    parts = np.concatenate([f(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])])
    assert np.array_equal(parts, whole)
    assert not np.array_equal(GeneratedFeatures(10_000, 5, seed=3)(0, 10), whole[:10])
    with pytest.raises(ValueError, match=r"rows \[lo, hi\) must lie in \[0, 10000\]"):
        f(5, 10_001)


def test_neighbourhood_rows_do_not_depend_on_the_chunk(data, neighbourhood):
    """The premise of chunked joins: a node's importance neighbourhood is the same queried in any chunk."""
    N = data.num_items
    whole = chunk_neighbourhood(neighbourhood, data.graph, 0, N, N)
    assert whole.shape == (N, N) and whole.num_edges > 0
    for lo, hi in [(0, 1), (17, 400), (1499, 1500)]:
        part = chunk_neighbourhood(neighbourhood, data.graph, lo, hi, N)
        a, z = whole.indptr[lo], whole.indptr[hi]
        assert np.array_equal(part.indptr, whole.indptr[lo:hi + 1] - a)
        assert np.array_equal(part.indices, whole.indices[a:z])
        assert np.array_equal(part.edge_weight, whole.edge_weight[a:z])


def test_gather_plan_relabels_exactly():
    """Gathered rows + relabelled block aggregate to the global SpMM's rows, bit for bit, empty rows too."""
    N, chunk = 300, 64
    block = square_block_with_empty_rows(N)
    starts = chunk_bounds(N, chunk)
    m = np.random.default_rng(1).standard_normal((N, 7)).astype(np.float32)
    full = PinSAGEConv.aggregate(m, block)
    m_chunks = [m[a:b] for a, b in zip(starts[:-1], starts[1:])]
    for c in range(starts.size - 1):
        plan = plan_chunk(block, None, starts, c)
        lo, hi = starts[c], starts[c + 1]
        src = np.unique(block.indices[block.indptr[lo]:block.indptr[hi]])
        assert plan.needed.tolist() == np.unique(np.searchsorted(starts, src, side="right") - 1).tolist()
        assert plan.num_gathered == src.size
        M = np.concatenate([m_chunks[s][r] for s, r in zip(plan.needed, plan.rows)])
        assert np.array_equal(PinSAGEConv.aggregate(M, plan.block), full[lo:hi])
    # a chunk whose rows have no edge at all gathers nothing and aggregates to zeros
    lonely = Graph(np.zeros(4, dtype=np.int64), np.zeros(0, dtype=np.int32), num_src=N)
    plan = gather_plan(lonely, starts, 2)
    assert plan.needed.tolist() == [2] and plan.num_gathered == 0
    layer = PinSAGEConv(7, 5, 3, seed=0)
    h = np.random.default_rng(2).standard_normal((3, 7)).astype(np.float32)
    z = join_reduce(layer, h, plan, transform_chunk(layer, m_chunks[2]))
    with blas_threads(1):
        assert np.array_equal(z, layer.combine(h, np.zeros((3, 5), np.float32)))


def test_local_in_one_chunk_is_the_layers_forward(data, neighbourhood):
    """One chunk: layer-wise inference is layer.forward on the all-nodes block, bit for bit (same BLAS threads)."""
    N = data.num_items
    layers = pinsage_layers(data.x.shape[1])
    Z = layerwise_inference_local(layers, data.x, data.graph, neighbourhood, chunk_size=N)
    block = chunk_neighbourhood(neighbourhood, data.graph, 0, N, N)
    h = data.x
    with blas_threads(1):
        for layer in layers:
            h = layer.forward(h, block)
    assert Z.shape == (N, 12) and Z.dtype == np.float32
    assert np.array_equal(Z, h)
    # in row chunks the products have fewer rows: OpenBLAS may round differently, never by more than float32 noise
    Zc = layerwise_inference_local(layers, data.x, data.graph, neighbourhood, chunk_size=97)
    np.testing.assert_allclose(Zc, h, rtol=1e-5, atol=1e-6)


def test_local_rejects_bad_layers_and_blocks(data, neighbourhood):
    with pytest.raises(ValueError, match=r"model_layers\[0\] \(object\) lacks transform, aggregate, combine"):
        layerwise_inference_local([object()], data.x, data.graph, neighbourhood)
    with pytest.raises(ValueError, match="at least one layer"):
        layerwise_inference_local([], data.x, data.graph, neighbourhood)
    wide = ImportanceNeighbourhood(num_walks=2, k=2, hops=2)            # sources not cut to the items
    with pytest.raises(ValueError, match=r"must return a block Graph of shape \(1500, 1500\)"):
        layerwise_inference_local(pinsage_layers(32), data.x, data.graph, wide)
    with pytest.raises(ValueError, match="one per layer"):
        layerwise_inference_local(pinsage_layers(32), data.x, data.graph, [neighbourhood])


def test_single_machine_path_imports_no_dask():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from gnn_scratch.distributed import GeneratedFeatures, layerwise_inference_local
        from gnn_scratch.graph import Graph
        from gnn_scratch.nn.conv.pinsage_conv import PinSAGEConv
        g = Graph.from_edge_index(np.array([[0, 1, 2], [1, 2, 0]]), num_nodes=3, edge_weight=np.ones(3))
        z = layerwise_inference_local([PinSAGEConv(4, 3, 2)], GeneratedFeatures(3, 4), None, g, chunk_size=2)
        assert z.shape == (3, 2)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
        assert not loaded, loaded
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_missing_dask_is_named(monkeypatch):
    from gnn_scratch.distributed import inference
    monkeypatch.setitem(sys.modules, "distributed", None)      # import distributed -> ImportError
    with pytest.raises(ImportError, match=r"gnn_scratch\[distributed\]"):
        inference.layerwise_inference_dask(pinsage_layers(4), np.zeros((3, 4), np.float32), None,
                                           square_block_with_empty_rows(3), client=object())


# ------------------------------------------------------------------------------------ on Dask
@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])   # the builders below, sent to the workers
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  memory_limit="2GiB") as cluster, distributed.Client(cluster) as c:
        yield c


def test_dask_equals_local_bit_for_bit(client, data, neighbourhood):
    """Scattered x, the graph scattered, importance neighbourhoods on the workers, 2 PinSAGE layers."""
    from gnn_scratch.distributed import layerwise_inference_dask
    layers = pinsage_layers(data.x.shape[1])
    expect = layerwise_inference_local(layers, data.x, data.graph, neighbourhood, chunk_size=200)
    Z = layerwise_inference_dask(layers, data.x, data.graph, neighbourhood, client=client, chunk_size=200,
                                 progress=False)
    assert Z.shape == expect.shape and Z.chunks[0] == (200,) * 7 + (100,)
    got = Z.compute()
    assert got.dtype == np.float32 and np.array_equal(got, expect)
    assert len(client.scheduler_info(n_workers=-1)["workers"]) == 2
    # the chunks were computed on both workers
    assert len({w for ws in client.who_has().values() for w in ws}) == 2


def test_dask_from_generators_to_files(client, tmp_path):
    """x made on the workers, the graph built on a worker, per-layer neighbourhoods, results written per chunk."""
    from gnn_scratch.distributed import layerwise_inference_dask
    N = 1000
    x = GeneratedFeatures(N, 9, seed=4)
    nbs = [square_block_with_empty_rows(N, seed=1), square_block_with_empty_rows(N, seed=2)]
    layers = pinsage_layers(9)
    expect = layerwise_inference_local(layers, x, None, nbs, chunk_size=128)
    manifest = layerwise_inference_dask(layers, x, _Builder(N), nbs, client=client, chunk_size=128,
                                        out=tmp_path / "emb", progress=False)
    assert manifest["shape"] == [N, 12] and manifest["chunk_starts"] == chunk_bounds(N, 128).tolist()
    assert len(manifest["files"]) == 8 and os.path.exists(tmp_path / "emb" / "part-00007.npy")
    assert np.array_equal(load_embeddings(tmp_path / "emb"), expect)
    # and a different chunking is still close (only BLAS's per-product rounding differs)
    np.testing.assert_allclose(layerwise_inference_local(layers, x, None, nbs, chunk_size=1000), expect,
                               rtol=1e-5, atol=1e-6)


class _Builder:
    """A picklable graph builder (the graph is unused by precomputed blocks; it proves the builder ran there)."""

    def __init__(self, N):
        self.N = N

    def __call__(self):
        return Graph.from_edge_index(np.array([[0], [1]]), num_nodes=self.N)


def test_dask_worker_errors_reach_the_caller(client, data):
    from gnn_scratch.distributed import layerwise_inference_dask
    wide = ImportanceNeighbourhood(num_walks=2, k=2, hops=2)
    with pytest.raises(ValueError, match=r"must return a block Graph of shape \(200, 1500\)"):
        layerwise_inference_dask(pinsage_layers(32), data.x, data.graph, wide, client=client, chunk_size=200,
                                 progress=False)


def test_client_never_holds_a_layer(client, tmp_path):
    """With out=FOLDER the client's Python allocations peak far below one layer's states (tracemalloc).

    One layer's output is N x 64 float32 = 25.6 MB here, x and m as large; the client holds futures,
    chunk starts and the needed-chunk lists. tracemalloc counts NumPy's buffers too.
    """
    from gnn_scratch.distributed import layerwise_inference_dask
    N, F = 100_000, 64
    layers = [PinSAGEConv(F, 64, 64, seed=1), PinSAGEConv(64, 64, 64, seed=2)]
    nb = ImportanceNeighbourhood(num_walks=4, walk_length=2, k=4, seed=0, hops=1)
    layer_bytes = N * 64 * 4
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        manifest = layerwise_inference_dask(layers, GeneratedFeatures(N, F), _RingBuilder(N), nb, client=client,
                                            chunk_size=10_000, out=tmp_path / "big", progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert manifest["shape"] == [N, 64] and len(manifest["files"]) == 10
    assert peak < layer_bytes / 4, f"client peak {peak / 1e6:.1f} MB vs one layer {layer_bytes / 1e6:.1f} MB"
    first = np.load(tmp_path / "big" / manifest["files"][0])
    assert first.shape == (10_000, 64) and np.isfinite(first).all()


class _RingBuilder:
    """A ring with chords over N nodes, built on a worker."""

    def __init__(self, N):
        self.N = N

    def __call__(self):
        i = np.arange(self.N)
        src = np.concatenate([i, i, i])
        dst = np.concatenate([(i + 1) % self.N, (i + 7) % self.N, (i * 13 + 5) % self.N])
        return Graph.from_edge_index(np.stack([src, dst]), num_nodes=self.N)


def test_cli_embed_writes_what_the_local_path_computes(tmp_path, capsys):
    pytest.importorskip("distributed")
    from gnn_scratch.cli import main
    from gnn_scratch.distributed import BipartiteGraph
    from gnn_scratch.distributed.command import DIM, FEATURES, HIDDEN, NEIGHBOURHOOD
    assert main(["embed", "--out", str(tmp_path / "emb"), "--workers", "1", "--chunk-size", "700", "--seed", "2"]) == 0
    assert "wrote 2000 x 64 item embeddings (small) in 3 chunk file(s)" in capsys.readouterr().out
    builder = BipartiteGraph("small", seed=2)
    layers = [PinSAGEConv(FEATURES, HIDDEN, DIM, seed=2), PinSAGEConv(DIM, HIDDEN, DIM, seed=3)]
    expect = layerwise_inference_local(layers, GeneratedFeatures(2000, FEATURES, seed=2), builder(),
                                       ImportanceNeighbourhood(seed=2, num_src=2000, **NEIGHBOURHOOD), chunk_size=700)
    assert np.array_equal(load_embeddings(tmp_path / "emb"), expect)


def test_cli_embed_refuses_workers_with_a_scheduler(tmp_path, capsys):
    from gnn_scratch.cli import main
    assert main(["embed", "--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"]) == 2
    assert "--workers sizes a LocalCluster" in capsys.readouterr().err


def test_cli_embed_options_say_their_meaning_and_default():
    import argparse

    from gnn_scratch import cli
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["embed"]
    flags = set()
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        flags.update(action.option_strings)
        assert action.help and ("default" in action.help or action.required), action.option_strings
    assert {"--scheduler", "--workers", "--dataset", "--out", "--chunk-size"} <= flags
