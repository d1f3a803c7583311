"""HeteroGraph (gnn_scratch/graph/hetero.py): validation, edge_index dict round trips, inverse relations,
metapath graphs (checked against instances counted one by one), the homogeneous view, immutability, and
PyG oracles for ``to_homogeneous`` and ``AddMetaPaths``."""

import numpy as np
import pytest
import scipy.sparse as sp

from gnn_scratch.graph import Graph, GraphError
from gnn_scratch.graph.hetero import HeteroGraph

PA, PS = ("paper", "written_by", "author"), ("paper", "has_subject", "subject")
PP = ("paper", "cites", "paper")


def small(weights=False):
    """4 papers, 3 authors, 2 subjects. Paper 0 lists author 1 twice (a repeated edge); author 2 wrote
    nothing (isolated along PAP); paper 3 cites itself."""
    num_nodes = {"paper": 4, "author": 3, "subject": 2}
    ei = {PA: np.array([[0, 0, 1, 2, 3, 0], [0, 1, 1, 0, 1, 1]]),
          PS: np.array([[0, 1, 2, 3], [0, 0, 1, 1]]),
          PP: np.array([[1, 2, 3], [0, 0, 3]])}
    rng = np.random.default_rng(0)
    x = {"paper": rng.standard_normal((4, 5)).astype(np.float32),
         "author": sp.random(3, 6, density=0.5, format="coo", random_state=1, dtype=np.float64)}
    w = {PA: rng.random(6) + 0.5} if weights else None
    return HeteroGraph(num_nodes, ei, x, w)


def dense(g: Graph):
    """(N_dst, N_src) counts of edges j -> i, from the CSR arrays."""
    A = np.zeros(g.shape)
    np.add.at(A, (g.dst_of_edge(), g.indices), 1)
    return A


# ------------------------------------------------------------------------------------ construction
def test_types_counts_and_relations_as_csr():
    g = small()
    assert g.node_types == ["paper", "author", "subject"]
    assert g.edge_types == [PA, PS, PP]
    assert dict(g.num_nodes) == {"paper": 4, "author": 3, "subject": 2}
    assert dict(g.num_edges) == {PA: 6, PS: 4, PP: 3}
    r = g.graphs[PA]
    assert r.shape == (3, 4)            # rows = authors (destinations), num_src = papers
    ei = g.to_edge_index_dict()[PA]
    A = np.zeros((3, 4))
    for s, d in ei.T:
        A[d, s] += 1
    np.testing.assert_array_equal(dense(r), A)
    assert A[1, 0] == 2                 # the repeated edge is kept
    # edge_id maps each CSR edge to its edge_index column
    np.testing.assert_array_equal(ei[0, r.edge_id], r.indices)
    np.testing.assert_array_equal(ei[1, r.edge_id], r.dst_of_edge())
    assert g.relation("written_by") is r and g.relation(("paper", "author")) is r and g.relation(PA) is r


def test_relation_lookup_errors():
    g = HeteroGraph({"a": 2, "b": 2}, {("a", "to", "b"): [[0], [1]], ("b", "to", "a"): [[1], [0]]})
    with pytest.raises(KeyError, match="several relations match 'to'"):
        g.relation("to")
    with pytest.raises(KeyError, match="no relation match 'from'"):
        g.relation("from")
    assert g.relation(("b", "a")).shape == (2, 2)


def test_features_dense_sparse_and_missing():
    g = small()
    assert g.x_dict["subject"] is None
    Xa = g.x_dict["author"]
    assert sp.issparse(Xa) and Xa.format == "csr" and Xa.shape == (3, 6)
    Xp = g.x_dict["paper"]
    assert Xp.dtype == np.float32 and not Xp.flags.writeable
    with pytest.raises(ValueError):
        Xa.data[0] = 5.0


@pytest.mark.parametrize("build, exc, msg", [
    (lambda: HeteroGraph({"a": 2}, {("a", "r", "b"): [[0], [1]]}), GraphError,
     r"relation \('a', 'r', 'b'\) has the destination type 'b', which is not a node type"),
    (lambda: HeteroGraph({"a": 2}, {("c", "r", "a"): [[0], [1]]}), GraphError,
     r"has the source type 'c', which is not a node type"),
    (lambda: HeteroGraph({"a": 2, "b": 3}, {("a", "r", "b"): [[0, 1], [1, 3]]}), GraphError,
     r"edge_index_dict\[\('a', 'r', 'b'\)\] has target id 3 at column 1, out of range for the 3 nodes of type 'b'"),
    (lambda: HeteroGraph({"a": 2, "b": 3}, {("a", "r", "b"): [[0, 2], [1, 1]]}), GraphError,
     r"has source id 2 at column 1, out of range for the 2 nodes of type 'a'"),
    (lambda: HeteroGraph({"a": 2, "b": 3}, {("a", "r", "b"): [[0, -1], [1, 1]]}), GraphError,
     r"has source id -1 at column 1"),
    (lambda: HeteroGraph({"a": 2, "b": 0}, {}), GraphError, r"node type 'b' is empty"),
    (lambda: HeteroGraph({"a": 2.0}, {}), GraphError, r"num_nodes\['a'\] must be an int"),
    (lambda: HeteroGraph({}, {}), GraphError, r"num_nodes must be a non-empty dict"),
    (lambda: HeteroGraph({"a": 2}, {("a", "a"): [[0], [1]]}), GraphError, r"triples \(src_type, name, dst_type\)"),
    (lambda: HeteroGraph({"a": 2}, {("a", "r", "a"): [[0, 1, 1]]}), GraphError, r"must have shape \(2, E\)"),
    (lambda: HeteroGraph({"a": 2}, {("a", "r", "a"): [[0.5], [1]]}), GraphError, r"must hold integer node ids"),
    (lambda: HeteroGraph({"a": 2}, {}, {"a": np.zeros((3, 2))}), ValueError,
     r"x_dict\['a'\] must have shape \(2, F\) for node type 'a' with 2 nodes, got \(3, 2\)"),
    (lambda: HeteroGraph({"a": 2}, {}, {"a": np.array([[0.0, np.nan], [1, 1]])}), ValueError,
     r"x_dict\['a'\].*row 0, column 1"),
    (lambda: HeteroGraph({"a": 2}, {}, {"a": sp.csr_matrix(np.array([[0.0, np.inf], [1, 1]]))}), ValueError,
     r"x_dict\['a'\]"),
    (lambda: HeteroGraph({"a": 2}, {}, {"a": np.zeros((2, 2), dtype=np.int64)}), TypeError,
     r"x_dict\['a'\] must be float32 or float64"),
    (lambda: HeteroGraph({"a": 2}, {}, {"a": np.zeros(2)}), ValueError, r"x_dict\['a'\] must have shape"),
    (lambda: HeteroGraph({"a": 2}, {}, {"b": np.zeros((2, 2))}), GraphError, r"x_dict has the key 'b'"),
    (lambda: HeteroGraph({"a": 2}, {("a", "r", "a"): [[0], [1]]}, edge_weight_dict={("a", "r", "a"): [1.0, 2.0]}),
     GraphError, r"edge_weight_dict\[\('a', 'r', 'a'\)\] must have shape \(1,\)"),
    (lambda: HeteroGraph({"a": 2}, {("a", "r", "a"): [[0], [1]]}, edge_weight_dict={("a", "r", "a"): [np.nan]}),
     GraphError, r"must be finite"),
    (lambda: HeteroGraph({"a": 2}, {("a", "r", "a"): [[0], [1]]}, edge_weight_dict={("a", "s", "a"): [1.0]}),
     GraphError, r"edge_weight_dict has the key \('a', 's', 'a'\)"),
])
def test_validation_errors(build, exc, msg):
    with pytest.raises(exc, match=msg):
        build()


def test_relation_without_edges_is_allowed():
    g = HeteroGraph({"a": 2, "b": 1}, {("a", "r", "b"): np.zeros((2, 0), dtype=np.int64)})
    assert g.graphs[("a", "r", "b")].num_edges == 0
    assert g.metapath_graph([("a", "r", "b")]).num_edges == 0


# ------------------------------------------------------------------------------------ round trips, immutability
def test_edge_index_dict_round_trip_and_copies():
    g = small(weights=True)
    eis = g.to_edge_index_dict()
    assert list(eis) == g.edge_types and all(e.dtype == np.int64 for e in eis.values())
    h = HeteroGraph(dict(g.num_nodes), eis, dict(g.x_dict), dict(g.edge_weight_dict))
    for et in g.edge_types:
        np.testing.assert_array_equal(h.to_edge_index_dict()[et], eis[et])
        np.testing.assert_array_equal(h.graphs[et].indptr, g.graphs[et].indptr)
        np.testing.assert_array_equal(h.graphs[et].indices, g.graphs[et].indices)
    np.testing.assert_array_equal(h.edge_weight_dict[PA], g.edge_weight_dict[PA])
    eis[PA][0, 0] = 3                   # a fresh copy: the graph does not see this
    assert g.to_edge_index_dict()[PA][0, 0] == 0


def test_immutable_caller_arrays_are_copied_and_mappings_read_only():
    ei = np.array([[0, 1], [1, 0]])
    x = np.ones((2, 3))
    g = HeteroGraph({"a": 2}, {("a", "r", "a"): ei}, {"a": x})
    before = g.metapath_graph([("a", "r", "a")], keep_multiplicity=True)
    ei[0, 0], x[0, 0] = 1, 7.0          # the caller changes its arrays afterwards
    assert g.to_edge_index_dict()[("a", "r", "a")][0, 0] == 0 and g.x_dict["a"][0, 0] == 1.0
    assert g.metapath_graph([("a", "r", "a")], keep_multiplicity=True) is before
    with pytest.raises(TypeError):
        g.num_nodes["a"] = 5
    with pytest.raises(TypeError):
        g.graphs[("a", "r", "a")] = None
    for a in (g.graphs[("a", "r", "a")].indices, g.to_homogeneous().edge_index, g.x_dict["a"]):
        assert not a.flags.writeable


# ------------------------------------------------------------------------------------ inverse relations
def test_with_inverse_flips_every_relation_and_keeps_weights():
    g = small(weights=True)
    h = g.with_inverse()
    inv = [("author", "rev_written_by", "paper"), ("subject", "rev_has_subject", "paper"),
           ("paper", "rev_cites", "paper")]
    assert h.edge_types == g.edge_types + inv
    for et, iet in zip(g.edge_types, inv):
        np.testing.assert_array_equal(h.to_edge_index_dict()[iet], g.to_edge_index_dict()[et][::-1])
        np.testing.assert_array_equal(dense(h.graphs[iet]), dense(g.graphs[et]).T)
    np.testing.assert_array_equal(h.edge_weight_dict[inv[0]], g.edge_weight_dict[PA])
    assert ("subject", "rev_has_subject", "paper") not in g.edge_weight_dict
    assert h.with_inverse().edge_types == h.edge_types       # idempotent
    assert h.x_dict["paper"] is not None and h.num_nodes == g.num_nodes


def test_with_inverse_rejects_a_wrong_existing_inverse():
    g = HeteroGraph({"a": 2, "b": 2}, {("a", "r", "b"): [[0], [1]], ("b", "rev_r", "a"): [[0], [1]]})
    with pytest.raises(GraphError, match=r"\('b', 'rev_r', 'a'\) exists but is not the inverse"):
        g.with_inverse()


# ------------------------------------------------------------------------------------ metapaths
def count_instances(g: HeteroGraph, path):
    """(N_end, N_start) number of metapath instances, enumerated one walk at a time over edge_index columns."""
    eis = g.to_edge_index_dict()
    out = {}                                      # (start, end) -> count
    def walk(k, start, node):
        if k == len(path):
            out[(start, node)] = out.get((start, node), 0) + 1
            return
        ei = eis[path[k]]
        for col in np.flatnonzero(ei[0] == node):
            walk(k + 1, start, ei[1, col])
    for s in range(g.num_nodes[path[0][0]]):
        walk(0, s, s)
    C = np.zeros((g.num_nodes[path[-1][2]], g.num_nodes[path[0][0]]))
    for (s, e), c in out.items():
        C[e, s] = c
    return C


def graph_matrix(m: Graph):
    """(N_dst, N_src) weights (or 1 per edge) of a graph with no repeated edge."""
    A = np.zeros(m.shape)
    w = np.ones(m.num_edges) if m.edge_weight is None else m.edge_weight
    A[m.dst_of_edge(), m.indices] = w
    assert np.count_nonzero(A) == m.num_edges      # no repeated edge, no zero weight
    return A


@pytest.mark.parametrize("metapath", ["PAP", "PSP", "PSPAP", ["cites", PA, "rev_written_by"],
                                      ["rev_cites", "cites", PS, "rev_has_subject"]])
def test_metapath_counts_equal_enumerated_instances(metapath):
    g = small().with_inverse()
    path = g.resolve_metapath(metapath)
    C = count_instances(g, path)
    weighted = g.metapath_graph(path, keep_multiplicity=True)
    binary = g.metapath_graph(metapath, keep_multiplicity=False)
    np.testing.assert_array_equal(graph_matrix(weighted), C)
    np.testing.assert_array_equal(graph_matrix(binary), (C > 0).astype(float))
    assert weighted.edge_weight.dtype == np.float32 and binary.edge_weight is None
    # sources ascend within each destination row
    for i in range(binary.num_dst):
        row = binary.indices[binary.indptr[i]:binary.indptr[i + 1]]
        assert np.all(np.diff(row) > 0)


def test_pap_multiplicity_and_self_loops_by_hand():
    g = small().with_inverse()
    W = graph_matrix(g.metapath_graph("PAP", keep_multiplicity=True))
    # paper 0 wrote author 0 once and author 1 twice: 1*1 + 2*2 = 5 walks back to itself
    assert W[0, 0] == 5
    # papers 0 (author 1, twice) and 1 (author 1): 2 instances either way
    assert W[1, 0] == 2 and W[0, 1] == 2
    # every paper has an author, so every paper has a self-loop; PAP is symmetric
    assert np.all(np.diag(W) > 0)
    np.testing.assert_array_equal(W, W.T)


def test_metapath_cache_and_resolution():
    g = small().with_inverse()
    a = g.metapath_graph("PAP")
    assert g.metapath_graph([PA, ("author", "rev_written_by", "paper")]) is a
    assert g.metapath_graph(["written_by", "rev_written_by"]) is a
    assert g.metapath_graph("pap", keep_multiplicity=True) is not a
    with pytest.raises(ValueError, match="breaks"):
        g.metapath_graph([PA, PS])
    with pytest.raises(KeyError, match=r"several relations match \('paper', 'paper'\)"):
        g.metapath_graph("PPAP")          # cites and rev_cites
    with pytest.raises(KeyError, match="no node type start with 'X'"):
        g.metapath_graph("PXP")
    with pytest.raises(KeyError, match="several relations match"):
        HeteroGraph({"a": 1, "b": 1}, {("a", "r", "b"): [[0], [0]], ("a", "s", "b"): [[0], [0]],
                                       ("b", "t", "a"): [[0], [0]]}).metapath_graph("ABA")
    with pytest.raises(KeyError, match="several node types start with 'p'"):
        HeteroGraph({"paper": 1, "person": 1}, {}).metapath_graph("pp")


def test_metapath_non_square_and_float64_above_2_24():
    g = small().with_inverse()
    m = g.metapath_graph("PAPS", keep_multiplicity=True)
    assert m.shape == (2, 4)
    # 4097 * 4097 > 2**24 walks a -> b -> a
    ei = {("a", "r", "b"): np.zeros((2, 4097), dtype=np.int64), ("b", "s", "a"): np.zeros((2, 4097), dtype=np.int64)}
    w = HeteroGraph({"a": 1, "b": 1}, ei).metapath_graph("ABA", keep_multiplicity=True).edge_weight
    assert w.dtype == np.float64 and w[0] == 4097 ** 2


# ------------------------------------------------------------------------------------ homogeneous view
def random_hetero(seed, weights=False):
    rng = np.random.default_rng(seed)
    types = ["paper", "author", "field", "venue"]
    num_nodes = {t: int(rng.integers(1, 9)) for t in types}
    eis, ws = {}, {}
    for k in range(6):
        s, d = rng.choice(types), rng.choice(types)
        et = (str(s), f"r{k}", str(d))
        E = int(rng.integers(0, 15))
        eis[et] = np.stack([rng.integers(0, num_nodes[s], E), rng.integers(0, num_nodes[d], E)])
        if weights and k % 2:
            ws[et] = rng.random(E)
    return HeteroGraph(num_nodes, eis, edge_weight_dict=ws)


def test_to_homogeneous_offsets_and_codes():
    g = random_hetero(3, weights=True)
    h = g.to_homogeneous()
    eis = g.to_edge_index_dict()
    assert h.num_nodes == sum(g.num_nodes.values()) and h.num_edges == sum(g.num_edges.values())
    for k, t in enumerate(g.node_types):
        assert np.all(h.node_type[h.node_offset[t]:h.node_offset[t] + g.num_nodes[t]] == k)
    for k, et in enumerate(g.edge_types):
        cols = slice(h.edge_offset[et], h.edge_offset[et] + g.num_edges[et])
        assert np.all(h.edge_type[cols] == k)
        np.testing.assert_array_equal(h.edge_index[0, cols] - h.node_offset[et[0]], eis[et][0])
        np.testing.assert_array_equal(h.edge_index[1, cols] - h.node_offset[et[2]], eis[et][1])
        w = g.edge_weight_dict.get(et)
        np.testing.assert_array_equal(h.graph.edge_weight[np.argsort(h.graph.edge_id)][cols],
                                      np.ones(g.num_edges[et]) if w is None else w)
    # the CSR edges map back through edge_id
    np.testing.assert_array_equal(h.edge_index[0, h.graph.edge_id], h.graph.indices)
    np.testing.assert_array_equal(h.node_type[h.graph.indices],
                                  [g.node_types.index(g.edge_types[c][0]) for c in h.edge_type[h.graph.edge_id]])
    assert g.to_homogeneous() is h


def test_summary_lists_types_and_relations():
    s = small().summary()
    for part in ("paper", "4", "x 4 x 5 float32", "no features", "('paper', 'written_by', 'author')", "6 edges",
                 "sparse"):
        assert part in s
    assert "paper=4, author=3, subject=2" in repr(small())


# ------------------------------------------------------------------------------------ PyG oracles
def to_pyg(g: HeteroGraph):
    torch = pytest.importorskip("torch")
    from torch_geometric.data import HeteroData
    d = HeteroData()
    for t, n in g.num_nodes.items():
        d[t].num_nodes = n
    for et, ei in g.to_edge_index_dict().items():
        d[et].edge_index = torch.from_numpy(ei)
    return d


@pytest.mark.oracle
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_to_homogeneous_equals_pyg(seed):
    pytest.importorskip("torch_geometric")
    g = random_hetero(seed)
    ref = to_pyg(g).to_homogeneous()
    h = g.to_homogeneous()
    np.testing.assert_array_equal(h.node_type, ref.node_type.numpy())
    np.testing.assert_array_equal(h.edge_type, ref.edge_type.numpy())
    np.testing.assert_array_equal(h.edge_index, ref.edge_index.numpy())
    assert list(ref._node_type_names) == h.node_types        # what the codes index
    assert [tuple(e) for e in ref._edge_type_names] == h.edge_types


def to_pyg_coalesced(g: HeteroGraph):
    """``to_pyg`` with each relation's repeated edges merged: every (source, target) pair once, its multiplicity
    as ``edge_weight`` (float64) -- the same adjacency matrix. PyG's sparse product hands torch a CSR matrix
    whose columns must be distinct within a row; with repeated edges torch's (MKL) product is undefined: on an
    Intel Xeon it returned a wrong pattern and crashed (``torch.sparse.check_sparse_tensor_invariants`` names
    the broken invariant), where an AMD EPYC happened to get it right."""
    torch = pytest.importorskip("torch")
    d = to_pyg(g)
    for et, ei in g.to_edge_index_dict().items():
        pairs, counts = np.unique(ei.T, axis=0, return_counts=True)
        d[et].edge_index = torch.from_numpy(np.ascontiguousarray(pairs.T))
        d[et].edge_weight = torch.from_numpy(counts.astype(np.float64))
    return d


def pyg_metapath(g: HeteroGraph, path, weighted):
    import torch_geometric.transforms as T
    out = T.AddMetaPaths([list(path)], weighted=weighted)(to_pyg_coalesced(g))
    store = out[(path[0][0], "metapath_0", path[-1][2])]
    ei = store.edge_index.numpy()
    w = store.edge_weight.double().numpy() if weighted else np.ones(ei.shape[1])
    return ei, w


@pytest.mark.oracle
@pytest.mark.parametrize("seed, metapath", [(0, "PAP"), (1, "PAP"), (2, "AFA"), (3, "PVP"), (4, "PAFAP")])
def test_metapath_equals_pyg_add_metapaths(seed, metapath):
    """Our metapath adjacency is PyG's ``AddMetaPaths``'s: the path counts (weighted) or their pattern. PyG gets
    each relation coalesced (``to_pyg_coalesced``: multiplicities as edge weights, the same matrix); summed per
    pair, its counts are ours."""
    pytest.importorskip("torch_geometric")
    rng = np.random.default_rng(seed)
    num_nodes = {"paper": 9, "author": 6, "field": 3, "venue": 2}
    eis = {("paper", "written_by", "author"): np.stack([rng.integers(0, 9, 16), rng.integers(0, 6, 16)]),
           ("author", "works_in", "field"): np.stack([rng.integers(0, 6, 7), rng.integers(0, 3, 7)]),
           ("paper", "at", "venue"): np.stack([np.arange(9), rng.integers(0, 2, 9)])}
    g = HeteroGraph(num_nodes, eis).with_inverse()
    path = g.resolve_metapath(metapath)
    for weighted in (True, False):
        ei, w = pyg_metapath(g, path, weighted)
        ours = g.metapath_graph(path, keep_multiplicity=weighted)
        R = sp.coo_matrix((w, (ei[1], ei[0])), shape=ours.shape).toarray()   # duplicates summed
        A = graph_matrix(ours)
        if weighted:
            np.testing.assert_array_equal(A, R)
        else:   # same pairs; PyG may repeat a pair that we keep once
            np.testing.assert_array_equal(A > 0, R > 0)


@pytest.mark.oracle
def test_metapath_with_repeated_relation_edges_and_why_pyg_gets_them_coalesced():
    """A repeated relation edge (paper 0 lists author 1 twice): PyG's AddMetaPaths then hands torch a CSR matrix
    with a column repeated within a row, which torch's sparse product does not allow -- its invariant check
    refuses it; unchecked, the product is undefined (a wrong pattern and a crash on an Intel Xeon, right by
    luck on an AMD EPYC). Coalesced (the same matrix), PyG's counts are ours: each pair once with its total.
    Self-loops: both keep them."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    import torch_geometric.transforms as T
    g = small().with_inverse()
    path = g.resolve_metapath("PAP")
    with torch.sparse.check_sparse_tensor_invariants():
        with pytest.raises(RuntimeError, match="distinct"):
            T.AddMetaPaths([list(path)], weighted=True)(to_pyg(g))
    ei, w = pyg_metapath(g, path, weighted=True)
    pairs = {tuple(p) for p in ei.T}
    assert ei.shape[1] == len(pairs)
    ours = g.metapath_graph(path, keep_multiplicity=True)
    assert ours.num_edges == len(pairs)
    A = graph_matrix(ours)
    np.testing.assert_array_equal(A, sp.coo_matrix((w, (ei[1], ei[0])), shape=ours.shape).toarray())
    assert A.max() > 1                                # a pair reached along two paths: its count, not 1
    assert all((i, i) in pairs for i in range(4)) and np.all(np.diag(A) > 0)
