"""The recurrent-cell contract, backpropagation through time (full and truncated) and GConvGRU.

GConvGRU is checked three ways: central differences through time (gradcheck/recurrent.py), PyG
Temporal's GConvGRU in float64 over a sequence carrying the state (the oracle), and its behaviour on
bad input. The truncation is checked against the chunk-wise definition and shown to differ from the
full gradient (so the test could fail).
"""
import numpy as np
import pytest

from gnn_scratch.gradcheck import random_test_graph, relative_error
from gnn_scratch.gradcheck import recurrent as rec_cases
from gnn_scratch.graph import Graph
from gnn_scratch.nn import BackwardBeforeForward
from gnn_scratch.nn.recurrent import GConvGRU, Recurrent

F64 = np.float64


def _seq(seed, T=4, n=8, f=3):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, f)) for _ in range(T)]


def test_gradcheck_rows_pass(backend):
    rows = rec_cases.gconv_gru()
    bad = [r for r in rows if not r.passed]
    assert rows and not bad, bad


def _full_and_truncated(bptt):
    g = random_test_graph(1)
    xs, rng = _seq(2, T=6), np.random.default_rng(3)
    Gs = [rng.standard_normal((8, 4)) for _ in xs]
    grads = []
    for b in (None, bptt):
        rnn = Recurrent(GConvGRU(3, 4, K=2, seed=4, dtype=F64), bptt=b)
        rnn.forward(xs, g)
        rnn.zero_grad()
        dxs = rnn.backward(Gs)
        grads.append(({n: gr.copy() for n, _, gr in rnn.named_parameters()}, dxs))
    return grads


def test_truncated_bptt_differs_from_full_and_stops_at_chunk_boundaries():
    (full, dx_full), (trunc, dx_trunc) = _full_and_truncated(bptt=2)
    # the parameter gradients differ: dependencies longer than the chunk are dropped
    assert max(relative_error(full[k], trunc[k]) for k in full) > 1e-3
    # the last chunk (steps 4, 5) sees no later loss under either rule: its input gradients agree
    for t in (4, 5):
        np.testing.assert_allclose(dx_trunc[t], dx_full[t], rtol=1e-12, atol=1e-14)
    # an earlier step's input gradient loses the losses of later chunks
    assert relative_error(dx_full[1], dx_trunc[1]) > 1e-3


def test_bptt_longer_than_the_sequence_is_full_bptt():
    (full, dx_full), (trunc, dx_trunc) = _full_and_truncated(bptt=6)
    for k in full:
        np.testing.assert_array_equal(full[k], trunc[k])


def test_state_and_gradients_only_at_the_end():
    """A model reading only the final state passes None for the other steps."""
    g = random_test_graph(0)
    xs = _seq(5)
    rnn = Recurrent(GConvGRU(3, 4, K=2, seed=1, dtype=F64))
    outs = rnn.forward(xs, g)
    np.testing.assert_array_equal(rnn.final_state, outs[-1])
    G = np.random.default_rng(0).standard_normal((8, 4))
    rnn.zero_grad()
    d_none = rnn.backward([None, None, None, G])
    grads_none = {n: gr.copy() for n, _, gr in rnn.named_parameters()}
    rnn.forward(xs, g)
    rnn.zero_grad()
    d_zero = rnn.backward([np.zeros((8, 4))] * 3 + [G])
    for n, _, gr in rnn.named_parameters():
        np.testing.assert_allclose(gr, grads_none[n], rtol=1e-13, atol=1e-15)
    for a, b in zip(d_none, d_zero):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_cell_frames_follow_training_and_eval():
    g, xs = random_test_graph(0), _seq(6)
    cell = GConvGRU(3, 4, K=2, dtype=F64)
    H = None
    for x in xs:
        H = cell(x, g) if H is None else cell.forward(x, g, H)
    assert cell.saved_steps == 4
    cell.eval()
    for x in xs:
        H = cell.forward(x, g, H)
    assert cell.saved_steps == 1                  # inference holds one step, not T
    cell.reset()
    with pytest.raises(BackwardBeforeForward):
        cell.backward(np.zeros((8, 4)))


def test_more_backward_steps_than_forward_steps_raises():
    g = random_test_graph(0)
    cell = GConvGRU(3, 4, K=2, dtype=F64)
    cell.forward(_seq(0)[0], g)
    cell.backward(np.ones((8, 4)))
    with pytest.raises(BackwardBeforeForward, match="more times than forward"):
        cell.backward(np.ones((8, 4)))


def test_needs_input_grad_false_skips_dx_and_keeps_the_rest():
    g, xs = random_test_graph(0), _seq(7)
    G = [np.random.default_rng(1).standard_normal((8, 4))] * 4
    results = []
    for needs in (True, False):
        cell = GConvGRU(3, 4, K=3, seed=2, dtype=F64)
        cell.needs_input_grad = needs
        rnn = Recurrent(cell)
        rnn.forward(xs, g)
        dxs = rnn.backward(G)
        results.append(({n: gr.copy() for n, _, gr in rnn.named_parameters()}, dxs, rnn.state_grad))
    (p1, dx1, s1), (p2, dx2, s2) = results
    assert all(d is None for d in dx2) and all(d is not None for d in dx1)
    for n in p1:
        np.testing.assert_allclose(p1[n], p2[n], rtol=1e-13)
    np.testing.assert_allclose(s1, s2, rtol=1e-13)


@pytest.mark.parametrize("bad, err, match", [
    (np.zeros((8, 5)), ValueError, "H"),
    (np.zeros((7, 4)), ValueError, "H"),
    (np.zeros((8, 4), np.float32), TypeError, "H"),
])
def test_bad_state_is_named(bad, err, match):
    cell = GConvGRU(3, 4, K=2, dtype=F64)
    with pytest.raises(err, match=match):
        cell.forward(_seq(0)[0], random_test_graph(0), bad)


def test_nan_in_a_sequence_step_is_named():
    xs = _seq(0)
    xs[2][3, 1] = np.nan
    with pytest.raises(ValueError, match=r"xs\[2\]"):
        Recurrent(GConvGRU(3, 4, K=2, dtype=F64)).forward(xs, random_test_graph(0))


def test_bad_sequences_and_arguments():
    g = random_test_graph(0)
    rnn = Recurrent(GConvGRU(3, 4, K=2, dtype=F64))
    with pytest.raises(ValueError, match="at least one time step"):
        rnn.forward([], g)
    with pytest.raises(ValueError, match="1 state"):
        rnn.forward(_seq(0), g, np.zeros((8, 4)), np.zeros((8, 4)))
    rnn.forward(_seq(0), g)
    with pytest.raises(ValueError, match="one gradient per step"):
        rnn.backward([None])
    with pytest.raises(TypeError, match="RecurrentCell"):
        Recurrent(object())
    with pytest.raises(ValueError, match="bptt"):
        Recurrent(GConvGRU(3, 4, K=2), bptt=0)
    with pytest.raises(ValueError, match="square"):
        GConvGRU(3, 4, K=2, dtype=F64).forward(np.zeros((5, 3)), Graph.from_csr([0, 1, 1], [4], num_src=5))


def test_float32_runs_and_matches_float64():
    g, xs = random_test_graph(0), _seq(3)
    out = {}
    for dt in (np.float32, np.float64):
        rnn = Recurrent(GConvGRU(3, 4, K=2, seed=5, dtype=dt))
        out[dt] = rnn.forward([x.astype(dt) for x in xs], g)[-1]
    assert out[np.float32].dtype == np.float32
    np.testing.assert_allclose(out[np.float32], out[np.float64], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------ the oracle
@pytest.mark.oracle
@pytest.mark.parametrize("K, normalization, weighted", [(1, "sym", False), (2, "sym", True), (3, "rw", False),
                                                        (3, None, True)])
def test_gconv_gru_equals_pyg_temporal(K, normalization, weighted, pyg_temporal):
    import torch

    g0 = random_test_graph(3)
    w = np.random.default_rng(0).uniform(0.5, 2.0, g0.num_edges) if weighted else None
    g = Graph.from_csr(g0.indptr, g0.indices, w, num_src=g0.num_src)
    lam = 3.0 if normalization is None else None
    ours = GConvGRU(3, 4, K=K, normalization=normalization, seed=K, dtype=F64)
    theirs = pyg_temporal["GConvGRU"](3, 4, K, normalization=normalization).double()
    convs = [f"conv_{s}_{gate}" for gate in "zrh" for s in "xh"]
    with torch.no_grad():
        for name in convs:
            o, t = getattr(ours, name), getattr(theirs, name)
            for k in range(K):
                t.lins[k].weight.copy_(torch.from_numpy(o.params["W"][k].T))
            t.bias.copy_(torch.from_numpy(o.params["b"]))
    rng = np.random.default_rng(K)
    xs, H0 = _seq(K, T=4), rng.standard_normal((8, 4))
    Gs = [rng.standard_normal((8, 4)) for _ in xs]

    rnn = Recurrent(ours)
    outs = rnn.forward(xs, g, H0, lambda_max=lam)
    dxs = rnn.backward(Gs)

    ei = torch.from_numpy(g.edge_index())
    ew = None if w is None else torch.from_numpy(np.array(g.edge_weight))
    xt = [torch.tensor(x, requires_grad=True) for x in xs]
    H = H0t = torch.tensor(H0, requires_grad=True)
    loss = 0
    lam_t = None if lam is None else torch.tensor(lam, dtype=torch.float64)
    for t, x in enumerate(xt):
        H = theirs(x, ei, ew, H, lambda_max=lam_t)
        assert relative_error(outs[t], H.detach().numpy()) < 1e-10
        loss = loss + (H * torch.from_numpy(Gs[t])).sum()
    loss.backward()
    for t in range(len(xs)):
        assert relative_error(dxs[t], xt[t].grad.numpy()) < 1e-10
    assert relative_error(rnn.state_grad, H0t.grad.numpy()) < 1e-10
    for name in convs:
        o, t = getattr(ours, name), getattr(theirs, name)
        for k in range(K):
            assert relative_error(o.grads["W"][k], t.lins[k].weight.grad.numpy().T) < 1e-10, (name, k)
        assert relative_error(o.grads["b"], t.bias.grad.numpy()) < 1e-10, name


def test_derivation_snippet_runs():
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "derivations" / "recurrent.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "recurrent.md", "exec"), {})
