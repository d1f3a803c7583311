"""The hand computation of derivations/00_worked_example.md, checked against the library, and the docs' snippets run.

The literals below ARE the hand computation (copied from the markdown tables): the library must
reproduce them exactly -- every number is an integer or a half, so float64 holds it exactly.
"""
import re
from pathlib import Path

import numpy as np
import pytest

from gnn_scratch import ops
from gnn_scratch.graph import Graph

DERIVATIONS = Path(__file__).resolve().parents[1] / "derivations"

# --- the graph and features of the worked example ------------------------------------------------
EDGE_INDEX = np.array([[0, 1, 2, 1, 3, 2, 0],    # source j
                       [1, 0, 1, 2, 2, 3, 2]])   # target i
N = 5                                            # node 4 is isolated
H = np.array([[2, 4], [4, -2], [0, 2], [6, 0], [-2, 8]], dtype=np.float64)

# --- the hand computation (derivations/00_worked_example.md) -------------------------------------
# step 1: m_ij = 0.5 h_i + 2 h_j, one row per column k of edge_index
MESSAGES = [(6, 7), (9, -2), (2, 3), (8, -3), (12, 1), (3, 4), (4, 9)]
# step 2: m_i = sum of the messages arriving at i
AGGREGATED = [(9, -2), (8, 10), (24, 7), (3, 4), (0, 0)]
# step 3: h'_i = h_i + 0.5 m_i
UPDATED = [(6.5, 3), (8, 3), (12, 5.5), (7.5, 2), (-2, 8)]
# matrix form
IN_DEGREE = [1, 2, 3, 1, 0]
A_DENSE = [[0, 1, 0, 0, 0],
           [1, 0, 1, 0, 0],
           [1, 1, 0, 1, 0],
           [0, 0, 1, 0, 0],
           [0, 0, 0, 0, 0]]
AH = [(4, -2), (2, 6), (12, 2), (0, 2), (0, 0)]
HALF_DIN_H = [(1, 2), (4, -2), (0, 3), (3, 0), (0, 0)]
TWO_AH = [(8, -4), (4, 12), (24, 4), (0, 4), (0, 0)]
# the CSR the library builds
INDPTR = [0, 1, 3, 6, 7, 7]
INDICES = [1, 0, 2, 1, 3, 0, 2]
EDGE_ID = [1, 0, 2, 3, 4, 6, 5]


def graph():
    return Graph.from_edge_index(EDGE_INDEX, num_nodes=N)


def test_csr_layout_is_the_one_drawn_in_the_markdown():
    g = graph()
    assert g.num_nodes == N and g.num_edges == 7
    assert g.indptr.tolist() == INDPTR
    assert g.indices.tolist() == INDICES
    assert g.edge_id.tolist() == EDGE_ID
    assert g.in_degree().tolist() == IN_DEGREE
    assert g.to_scipy().toarray().tolist() == A_DENSE
    # without num_nodes the isolated node 4 (larger than every id in edge_index) would be lost
    assert Graph.from_edge_index(EDGE_INDEX).num_nodes == 4


def test_explicit_per_edge_loop_gives_the_hand_numbers():
    """Steps 1-3 as written: one message per edge_index column, summed at its target, then the update."""
    m = np.zeros_like(H)
    for k, (j, i) in enumerate(EDGE_INDEX.T):
        m_ij = 0.5 * H[i] + 2 * H[j]
        assert tuple(m_ij) == MESSAGES[k], f"message of edge {k}: {j} -> {i}"
        m[i] += m_ij
    assert m.tolist() == [list(r) for r in AGGREGATED]
    H_new = H + 0.5 * m
    assert H_new.tolist() == [list(r) for r in UPDATED]


def test_per_edge_loop_over_the_library_csr_gives_the_hand_numbers():
    """The same loop over the CSR the library built: row = destination, edge_id back to edge_index."""
    g = graph()
    m = np.zeros_like(H)
    for i in range(g.num_dst):
        for e in range(g.indptr[i], g.indptr[i + 1]):
            j = g.indices[e]
            m_ij = 0.5 * H[i] + 2 * H[j]
            assert tuple(m_ij) == MESSAGES[g.edge_id[e]]
            m[i] += m_ij
    assert m.tolist() == [list(r) for r in AGGREGATED]
    assert (H + 0.5 * m).tolist() == [list(r) for r in UPDATED]


def test_matrix_form_with_spmm_gives_the_hand_numbers(backend):
    """m = 0.5 D_in H + 2 A H with A H = ops.spmm(graph, ones, H) and D_in = graph.in_degree(), bit for bit."""
    g = graph()
    AH_lib = ops.spmm(g, ops.ones_on_edges(g, H.dtype), H)
    assert AH_lib.tolist() == [list(r) for r in AH]
    deg = g.in_degree()
    half_din_h = 0.5 * deg[:, None] * H
    assert half_din_h.tolist() == [list(r) for r in HALF_DIN_H]
    assert (2 * AH_lib).tolist() == [list(r) for r in TWO_AH]
    m = half_din_h + 2 * AH_lib
    assert m.tolist() == [list(r) for r in AGGREGATED]
    H_new = H + 0.5 * m
    assert H_new.tolist() == [list(r) for r in UPDATED]


def test_isolated_node_gets_no_message_and_keeps_its_features(backend):
    g = graph()
    assert g.in_degree()[4] == 0 and g.out_degree()[4] == 0
    m = 0.5 * g.in_degree()[:, None] * H + 2 * ops.spmm(g, ops.ones_on_edges(g, H.dtype), H)
    assert m[4].tolist() == [0, 0]
    assert (H + 0.5 * m)[4].tolist() == H[4].tolist()


def _fmt(v):
    """A vector as the markdown writes it: (6.5, 3), (-2, 8)."""
    return "(" + ", ".join(f"{x:g}" for x in v) + ")"


def test_markdown_tables_show_the_same_numbers():
    """Every hand-computed vector of this test appears in the markdown, in its table row."""
    text = (DERIVATIONS / "00_worked_example.md").read_text(encoding="utf-8")
    for k, (j, i) in enumerate(EDGE_INDEX.T):
        row = f"| {k} | {j} → {i} | {_fmt(H[i])} | {_fmt(H[j])} | {_fmt(0.5 * H[i])} | {_fmt(2 * H[j])} | {_fmt(MESSAGES[k])} |"
        assert row in text, f"step-1 row of edge {k} not found: {row}"
    for i in range(N):
        row = f"| {i} | {_fmt(H[i])} | {_fmt(0.5 * np.array(AGGREGATED[i]))} | {_fmt(UPDATED[i])} |"
        assert row in text, f"step-3 row of node {i} not found: {row}"
        row = f"| {i} | {_fmt(HALF_DIN_H[i])} | {_fmt(TWO_AH[i])} | {_fmt(AGGREGATED[i])} | {_fmt(UPDATED[i])} |"
        assert row in text, f"matrix-form row of node {i} not found: {row}"


# --- docs that run -------------------------------------------------------------------------------
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def python_blocks(path):
    return PYTHON_BLOCK.findall(path.read_text(encoding="utf-8"))


def test_python_block_regex():
    sample = "text\n```python\na = 1\n```\n```\nnot python\n```\n```python\nb = a + 1\n```\n"
    assert [b.strip() for b in PYTHON_BLOCK.findall(sample)] == ["a = 1", "b = a + 1"]


@pytest.mark.parametrize("name", ["00_worked_example.md", "README.md"])
def test_markdown_python_snippets_run(name):
    """The ```python blocks of a page, executed in order in one fresh namespace (a page reads as one session)."""
    path = DERIVATIONS / name
    blocks = python_blocks(path)
    if not blocks:
        pytest.skip(f"{name} has no python block")
    namespace = {"__name__": f"derivations.{path.stem}"}
    for n, code in enumerate(blocks):
        exec(compile(code, f"{path}:python-block-{n}", "exec"), namespace)
