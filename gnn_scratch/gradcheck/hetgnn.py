"""Gradient-check cases of HetGNN (derivations/hetgnn.md), in float64 through the real loss.

The fixture is a small heterogeneous graph (``hetero_fixture``): ``random_test_graph``'s edges made
undirected (so it keeps a self-loop and a repeated edge), one more isolated node, three node types
with one, two and three content pieces of different widths. Its RWR neighbours include a node with
no neighbour at all (every f2 left out of its attention), nodes without neighbours of some type,
and rows padded by repetition (a neighbour twice in one sequence). The triples repeat nodes across
roles (v = c, a node in several triples), so the scatter of dE is exercised. Every parameter (each
FC, both directions of every Bi-LSTM, u) and every piece input is compared with central differences.
Also a case for the Bi-LSTM alone on variable-length packed sequences (``SequenceLSTM`` inside).
"""
import numpy as np

from ..embed.hetgnn import GraphContextLoss, HetGNN, hetgnn_input, triple_loss_and_backward
from ..embed.hetgnn_sampling import rwr_neighbours
from ..graph import Graph
from ..nn.bilstm import BiLSTM
from ..nn.lstm import pack_neighbours
from . import Row, check_module, compare_rows, numerical_gradient, random_test_graph, relative_error, roundoff_floor
from .registry import case

F64 = np.float64
PIECE_DIMS = [[3], [2, 4], [3, 2, 5]]


def hetero_fixture(seed=0):
    """(graph, node_type, pieces, neighbours, triples) of the module doc: 11 nodes, 3 types, float64 pieces."""
    g = random_test_graph(seed, num_nodes=10, num_edges=12)          # node 9 isolated, 0 -> 0, 1 -> 2 twice
    src, dst = g.edge_index()
    N = 11                                                           # node 10: isolated as well
    graph = Graph.from_edge_index(np.stack([np.concatenate([src, dst]), np.concatenate([dst, src])]),
                                  num_nodes=N)
    node_type = np.array([0, 1, 2, 0, 1, 2, 1, 0, 2, 1, 0], dtype=np.int64)
    rng = np.random.default_rng(seed + 1)
    pieces = [[rng.standard_normal((int(np.sum(node_type == t)), F)) for F in dims]
              for t, dims in enumerate(PIECE_DIMS)]
    neighbours = rwr_neighbours(graph, node_type, [2, 3, 2], restart=0.3, walk_length=6, seed=seed)
    triples = np.array([[0, 1, 2], [3, 3, 7], [1, 4, 6], [5, 2, 8], [9, 0, 10], [4, 1, 1]], dtype=np.int64)
    return graph, node_type, pieces, neighbours, triples


def hetgnn_rows(seed=0):
    graph, node_type, pieces, neighbours, triples = hetero_fixture(seed)
    data = hetgnn_input(node_type, pieces, neighbours)
    model = HetGNN(PIECE_DIMS, dim=4, piece_channels=3, seed=seed + 2, dtype=F64)
    # larger weights than the init: embeddings of order 1, attention far from uniform, a loss whose
    # gradients stand well above the finite differences' round-off (the default init gives E ~ 0.1)
    for pname, p, _ in model.named_parameters():
        if pname.endswith(".W") or pname.endswith("W_x"):
            p *= 3.0
    model.params["u"][:] *= 20.0
    model.needs_input_grad = True
    loss_fn = GraphContextLoss()

    def loss():
        uniq, inv = np.unique(triples, return_inverse=True)
        inv = inv.reshape(triples.shape)
        E = model.forward(uniq, data)
        return loss_fn.forward(E[inv[:, 0]], E[inv[:, 1]], E[inv[:, 2]])

    model.zero_grad()
    value, dpieces = triple_loss_and_backward(model, data, triples, loss_fn)
    floor = roundoff_floor(value)                    # S = |L|: a mean of non-negative terms
    name = "HetGNN + graph-context loss"
    rows = compare_rows(name, loss, model, None, None, floor, check_input=False)
    for t, plist in enumerate(data.pieces):
        for i, p in enumerate(plist):
            err = relative_error(dpieces[t][i], numerical_gradient(loss, p), floor)
            rows.append(Row(name, f"pieces[{t}][{i}]", p.shape, err, err < 1e-6))
    return rows


@case("HetGNN + graph-context loss")
def hetgnn_case():
    return hetgnn_rows(0)


@case("HetGNN Bi-LSTM (mean over steps, both directions)")
def bilstm_case():
    g = random_test_graph(3)                          # lengths 0 .. max in-degree: packed, an empty sequence
    seqs = pack_neighbours(g, np.random.default_rng(4))
    x = np.random.default_rng(5).standard_normal((g.num_src, 3))
    return check_module("BiLSTM 3->2x4 (packed, an empty sequence)", BiLSTM(3, 4, seed=6, dtype=F64), x, seqs)
