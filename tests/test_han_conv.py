"""HANConv (Wang et al. 2019, PyG's HANConv): PyG, a NumPy definition, dropout, determinism, errors.

What is checked, and against what:
1. PyG's ``HANConv`` in float64 (outputs, semantic attention, the gradient of every x of every node
   type and of every parameter) on random heterogeneous graphs: four typed relations into two
   destination types (three into one), a same-type relation with self-loops and repeated edges,
   destinations with no in-edge, types with no incoming relation (None), a type that is used by
   nothing; and metapath-style square graphs;
2. a NumPy definition written from the paper's formulas (``numpy_han``), with the attention-dropout
   masks the layer drew rebuilt from its generator: dropout acts in training only, seeded, the same
   bits on every run;
3. the one-line errors of bad input.
The finite-difference checks are the registered case "HANConv" of ``gnn_scratch/gradcheck/han.py``
(run by tests/test_gradcheck.py, and here once directly).
"""
import types

import numpy as np
import pytest
import scipy.sparse as sp

from gnn_scratch import ops
from gnn_scratch.gradcheck import han as han_cases
from gnn_scratch.gradcheck.han import random_features, random_hetero_graphs, relation_graph
from gnn_scratch.nn import BackwardBeforeForward
from gnn_scratch.nn.conv.han_conv import HANConv, edge_type_key

F64 = np.float64


def rel_err(got, want):
    """max |got - want| / max |want| (0 when both are 0)."""
    got, want = np.asarray(got, F64), np.asarray(want, F64)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.size == 0:
        return 0.0
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300))


def fixture(seed=0, metapaths=False, heads=2, out_channels=4, dropout=0.0, dtype=F64, extra=("venue",)):
    """(conv, x_dict, graphs, edge_index) on ``random_hetero_graphs`` plus node types used by nothing."""
    num_nodes, graphs, edge_index = random_hetero_graphs(seed, metapaths=metapaths)
    num_nodes = {**num_nodes, **{nt: 5 for nt in extra}}
    in_channels = {nt: 3 + k % 3 for k, nt in enumerate(num_nodes)}
    conv = HANConv(in_channels, out_channels, (list(num_nodes), list(graphs)), heads=heads, dropout=dropout,
                   seed=seed + 7, dtype=dtype)
    x = {nt: v.astype(dtype) for nt, v in random_features(num_nodes, in_channels, seed + 8).items()}
    return conv, x, graphs, edge_index


def upstream(out, seed):
    rng = np.random.default_rng(seed)
    return {nt: rng.standard_normal(o.shape).astype(o.dtype) for nt, o in out.items() if o is not None}


def numpy_han(conv, x_dict, graphs, masks=None, parts=None):
    """HANConv straight from its definition, one relation at a time, in NumPy: (out_dict, beta_dict).

    ``masks`` {edge type: (E, H) keep mask in CSR order} applies attention dropout alpha * keep / (1 - p).
    ``parts``, a dict, receives each relation's (rows, cols, pre, alpha, Z_src, Z_dst, pre-ReLU output).
    """
    P, H, C = conv.params, conv.heads, conv.out_channels
    D = C // H
    Z = {nt: (x @ P[f"proj.{nt}.W"] + P[f"proj.{nt}.b"]).reshape(len(x), H, D) for nt, x in x_dict.items()}
    Ys = {nt: [] for nt in x_dict}
    for et, g in graphs.items():
        s, _, d = et
        k = edge_type_key(et)
        rows, cols = g.dst_of_edge(), g.indices
        a_src = np.einsum("nhd,hd->nh", Z[s], P[f"lin_src.{k}"])
        a_dst = np.einsum("nhd,hd->nh", Z[d], P[f"lin_dst.{k}"])
        e = a_dst[rows] + a_src[cols]
        e = np.where(e > 0, e, conv.negative_slope * e)
        m = np.full((g.num_dst, H), -np.inf)
        np.maximum.at(m, rows, e)
        p = np.exp(e - m[rows])
        total = np.zeros((g.num_dst, H))
        np.add.at(total, rows, p)
        alpha = p / total[rows]
        if masks is not None:
            alpha = alpha * masks[et] / (1.0 - conv.dropout)
        out = np.zeros((g.num_dst, H, D))
        np.add.at(out, rows, alpha[:, :, None] * Z[s][cols])
        Ys[d].append(np.maximum(out.reshape(g.num_dst, C), 0))
        if parts is not None:
            parts[et] = (rows, cols, a_dst[rows] + a_src[cols], alpha, Z[s], Z[d], out.reshape(g.num_dst, C))
    out_dict, betas = {}, {}
    for nt, ys in Ys.items():
        if not ys:
            out_dict[nt] = None
            continue
        Y = np.stack(ys)
        score = np.tanh(Y @ P["k_lin.W"] + P["k_lin.b"]).mean(axis=1) @ P["q"]
        beta = np.exp(score - score.max())
        beta /= beta.sum()
        out_dict[nt], betas[nt] = np.tensordot(beta, Y, axes=1), beta
    return out_dict, betas


def attention_grad_scales(conv, x_dict, graphs, G):
    """{param name: magnitude of the terms summed into dL/dlin_src, dL/dlin_dst} (float64), from the definition.

    dL/dlin_dst_r[h] = sum_i da_dst[i, h] Z_t[i, h] with da_dst[i] = sum_{e in row i} grad_pre[e] and
    grad_pre = alpha (g - s) slope: a sum that cancels (a softmax Jacobian's rows sum to 0, so it is 0
    wherever a row's scores sit on one side of the LeakyReLU kink). Its rounding error scales with
    sum_i sum_e alpha (|g| + |s|) slope |Z_t[i]|, not with the result: that is the scale returned
    (as tests/test_gat.py's ``attention_grad_scales``). dL/dY_r is re-derived here from the formulas
    of derivations/han.md § 3 to get g.
    """
    P, H, C = conv.params, conv.heads, conv.out_channels
    D, slope = C // H, conv.negative_slope
    parts = {}
    numpy_han(conv, x_dict, graphs, parts=parts)
    scales = {}
    for nt, Gn in G.items():
        ets = [et for et in graphs if et[2] == nt]
        Y = np.stack([np.maximum(parts[et][6], 0) for et in ets])          # (T, N, C)
        N = Y.shape[1]
        K = np.tanh(Y @ P["k_lin.W"] + P["k_lin.b"])
        score = K.mean(axis=1) @ P["q"]
        beta = np.exp(score - score.max())
        beta /= beta.sum()
        dbeta = np.einsum("nc,tnc->t", Gn, Y)
        dscore = beta * (dbeta - beta @ dbeta)
        dA = (1 - K ** 2) * (dscore[:, None, None] * P["q"] / N)
        dY = beta[:, None, None] * Gn + dA @ P["k_lin.W"].T
        for t, et in enumerate(ets):
            rows, cols, pre, alpha, Zs, Zd, out = parts[et]
            G3 = (dY[t] * (out > 0)).reshape(N, H, D)
            g = np.einsum("ehd,ehd->eh", G3[rows], Zs[cols])
            s_row = np.zeros((N, H))
            np.add.at(s_row, rows, alpha * g)
            term = alpha * (np.abs(g) + np.abs(s_row[rows])) * np.where(pre > 0, 1, slope)
            mag_dst, mag_src = np.zeros((N, H)), np.zeros((len(Zs), H))
            np.add.at(mag_dst, rows, term)
            np.add.at(mag_src, cols, term)
            k = edge_type_key(et)
            scales[f"lin_dst.{k}"] = np.einsum("nh,nhd->hd", mag_dst, np.abs(Zd)).max()
            scales[f"lin_src.{k}"] = np.einsum("nh,nhd->hd", mag_src, np.abs(Zs)).max()
    return scales


# ---------------------------------------------------------------------------------- PyG
def pyg_twin(conv):
    """PyG's HANConv with ``conv``'s parameters, float64."""
    torch = pytest.importorskip("torch")
    pyg = pytest.importorskip("torch_geometric.nn")
    P = conv.params
    H, C = conv.heads, conv.out_channels
    ref = pyg.HANConv(dict(conv.in_channels), C, (conv.node_types, conv.edge_types), heads=H,
                      negative_slope=conv.negative_slope, dropout=0.0).double()
    with torch.no_grad():
        for nt in conv.node_types:
            ref.proj[nt].weight.copy_(torch.from_numpy(P[f"proj.{nt}.W"].T))
            ref.proj[nt].bias.copy_(torch.from_numpy(P[f"proj.{nt}.b"]))
        for et in conv.edge_types:
            k = edge_type_key(et)
            ref.lin_src[k].copy_(torch.from_numpy(P[f"lin_src.{k}"][None]))
            ref.lin_dst[k].copy_(torch.from_numpy(P[f"lin_dst.{k}"][None]))
        ref.k_lin.weight.copy_(torch.from_numpy(P["k_lin.W"].T))
        ref.k_lin.bias.copy_(torch.from_numpy(P["k_lin.b"]))
        ref.q.copy_(torch.from_numpy(P["q"][None]))
    return torch, ref


def pyg_grads(torch, ref, conv):
    """PyG's parameter gradients under our names and shapes (zeros where PyG has None: an unused type)."""
    def g(t, shape):
        return np.zeros(shape) if t.grad is None else t.grad.numpy()
    out = {}
    C = conv.out_channels
    for nt in conv.node_types:
        out[f"proj.{nt}.W"] = g(ref.proj[nt].weight, (C, conv.in_channels[nt])).T
        out[f"proj.{nt}.b"] = g(ref.proj[nt].bias, (C,))
    for et in conv.edge_types:
        k = edge_type_key(et)
        out[f"lin_src.{k}"] = g(ref.lin_src[k], (1,) + conv.params[f"lin_src.{k}"].shape)[0]
        out[f"lin_dst.{k}"] = g(ref.lin_dst[k], (1,) + conv.params[f"lin_dst.{k}"].shape)[0]
    out["k_lin.W"] = g(ref.k_lin.weight, (C, C)).T
    out["k_lin.b"] = g(ref.k_lin.bias, (C,))
    out["q"] = g(ref.q, (1, C))[0]
    return out


@pytest.mark.oracle
@pytest.mark.parametrize("metapaths,heads,out_channels", [(False, 1, 4), (False, 2, 4), (False, 3, 6),
                                                          (True, 2, 4)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_torch_geometric_hanconv(metapaths, heads, out_channels, seed):
    conv, x, graphs, edge_index = fixture(seed, metapaths, heads, out_channels)
    # random non-zero parameters everywhere (PyG's init would leave nothing untested, but be sure)
    rng = np.random.default_rng(50 + seed)
    for p in conv.params.values():
        p[:] = rng.standard_normal(p.shape) * 0.7
    torch, ref = pyg_twin(conv)
    out = conv.forward(x, graphs)
    G = upstream(out, 60 + seed)
    dx = conv.backward(G)

    xt = {nt: torch.from_numpy(v.copy()).requires_grad_(True) for nt, v in x.items()}
    ei = {et: torch.from_numpy(e) for et, e in edge_index.items()}
    ref_out, ref_attn = ref(xt, ei, return_semantic_attention_weights=True)
    loss = sum((torch.from_numpy(G[nt]) * o).sum() for nt, o in ref_out.items() if o is not None)
    loss.backward()

    errors = {}
    assert [nt for nt, o in out.items() if o is None] == [nt for nt, o in ref_out.items() if o is None]
    assert any(o is None for o in out.values())                           # the None rule is exercised
    for nt, o in out.items():
        if o is not None:
            errors[f"out[{nt}]"] = rel_err(o, ref_out[nt].detach().numpy())
            errors[f"beta[{nt}]"] = rel_err(conv.semantic_attention[nt], ref_attn[nt].detach().numpy())
    for nt in x:
        want = np.zeros_like(x[nt]) if xt[nt].grad is None else xt[nt].grad.numpy()
        errors[f"dx[{nt}]"] = rel_err(dx[nt], want)
    scales = attention_grad_scales(conv, x, graphs, G)
    for name, want in pyg_grads(torch, ref, conv).items():
        # the attention vectors' gradients are sums that cancel: measured against the size of their terms
        scale = max(np.max(np.abs(want)), scales.get(name, 0.0), 1e-300)
        errors[name] = float(np.max(np.abs(conv.grads[name] - want)) / scale)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-10, (worst, errors[worst])
    # nothing compared is trivially zero except the unused type's
    assert all(np.any(conv.grads[f"lin_src.{edge_type_key(et)}"]) for et in conv.edge_types)


def test_equals_the_numpy_definition_float64_and_float32():
    for metapaths in (False, True):
        conv, x, graphs, _ = fixture(3, metapaths)
        out = conv.forward(x, graphs)
        want, betas = numpy_han(conv, x, graphs)
        for nt, o in out.items():
            assert (o is None) == (want[nt] is None)
            if o is not None:
                assert rel_err(o, want[nt]) < 1e-13
                assert rel_err(conv.semantic_attention[nt], betas[nt]) < 1e-13
    conv32, x32, graphs, _ = fixture(3, dtype=np.float32)
    out32 = conv32.forward(x32, graphs)
    conv64 = fixture(3)[0]
    want, _ = numpy_han(conv64, {k: v.astype(F64) for k, v in x32.items()}, graphs)
    for nt, o in out32.items():
        if o is not None:
            assert o.dtype == np.float32 and rel_err(o, want[nt]) < 1e-5


def test_semantic_attention_is_stored_per_destination_type_in_relation_order():
    conv, x, graphs, _ = fixture(4)
    conv.forward(x, graphs)
    assert set(conv.semantic_attention) == {"paper", "author"}
    assert conv.semantic_edge_types["paper"] == tuple(et for et in graphs if et[2] == "paper")
    assert conv.semantic_edge_types["author"] == tuple(et for et in graphs if et[2] == "author")
    for nt, beta in conv.semantic_attention.items():
        assert beta.shape == (len(conv.semantic_edge_types[nt]),)
        assert np.all(beta > 0) and abs(beta.sum() - 1) < 1e-14


def test_node_without_in_edges_gets_zero_and_relation_order_only_reorders_beta():
    conv, x, graphs, _ = fixture(5)
    out = conv.forward(x, graphs)
    # the last paper and the last author have no in-edge in any relation: softmax over nothing -> 0
    assert np.all(out["paper"][-1] == 0) and np.all(out["author"][-1] == 0)
    reordered = dict(reversed(list(graphs.items())))
    out2 = conv.forward(x, reordered)
    for nt in ("paper", "author"):
        np.testing.assert_allclose(out2[nt], out[nt], rtol=1e-13, atol=1e-15)
        assert conv.semantic_edge_types[nt] == tuple(reversed([et for et in graphs if et[2] == nt]))


def test_a_subset_of_relations_and_a_heterograph_object():
    conv, x, graphs, _ = fixture(6)
    some = {et: g for et, g in graphs.items() if et[2] == "paper"}
    out = conv.forward(x, some)
    assert out["author"] is None and out["paper"] is not None
    want, _ = numpy_han(conv, x, some)
    assert rel_err(out["paper"], want["paper"]) < 1e-13
    hetero = types.SimpleNamespace(graphs=graphs)            # what HeteroGraph exposes
    a, b = conv.forward(x, hetero), conv.forward(x, graphs)
    assert all((a[k] is None and b[k] is None) or np.array_equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------- dropout, determinism
def masks_drawn(conv, state, graphs):
    """The keep masks a training forward draws from a generator in ``state``: one key per relation, in order."""
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return {et: ops.keep_mask((g.num_edges, conv.heads), rng.integers(0, 1 << 64, dtype=np.uint64),
                              1.0 - conv.dropout, like=np.empty(1)).astype(F64)
            for et, g in graphs.items()}


def test_dropout_is_training_only_seeded_and_equals_the_definition_with_its_masks():
    conv, x, graphs, _ = fixture(7, dropout=0.5)
    plain = fixture(7, dropout=0.0)[0]
    assert all(np.array_equal(conv.params[k], plain.params[k]) for k in conv.params)   # dropout: no init change
    evaluated = conv.eval().forward(x, graphs)
    want = plain.forward(x, graphs)
    assert all(o is None or np.array_equal(o, want[nt]) for nt, o in evaluated.items())
    conv.train()
    state = conv.rng.bit_generator.state
    trained = conv.forward(x, graphs)
    masks = masks_drawn(conv, state, graphs)
    assert any(0 < m.mean() < 1 for m in masks.values())
    ref, _ = numpy_han(conv, x, graphs, masks)
    for nt, o in trained.items():
        if o is not None:
            assert rel_err(o, ref[nt]) < 1e-13
    assert not np.allclose(trained["paper"], evaluated["paper"])
    # a fresh key per forward: the next training forward differs; the same seed repeats the same bits
    assert not np.array_equal(conv.forward(x, graphs)["paper"], trained["paper"])
    again = fixture(7, dropout=0.5)[0].train()
    a, b = again.forward(x, graphs), fixture(7, dropout=0.5)[0].train().forward(x, graphs)
    assert all(o is None or np.array_equal(o, b[nt]) for nt, o in a.items())
    assert all(o is None or np.array_equal(o, trained[nt]) for nt, o in a.items())


def test_float32_default_and_bit_for_bit_repeatable_forward_and_backward():
    conv = HANConv(3, 4, (["a", "b"], [("a", "r", "b"), ("b", "s", "b")]))
    assert all(p.dtype == np.float32 for p in conv.params.values())
    results = []
    for _ in range(2):
        conv, x, graphs, _ = fixture(8, dtype=np.float32, dropout=0.3)
        conv.train()
        out = conv.forward(x, graphs)
        dx = conv.backward(upstream(out, 1))
        results.append((out, dx, {k: v.copy() for k, v in conv.grads.items()}))
    (o1, d1, g1), (o2, d2, g2) = results
    assert all(o1[k] is None or (o1[k].dtype == np.float32 and np.array_equal(o1[k], o2[k])) for k in o1)
    assert all(np.array_equal(d1[k], d2[k]) for k in d1)
    assert all(np.array_equal(g1[k], g2[k]) for k in g1)


# ---------------------------------------------------------------------------------- backward contract
def test_gradients_accumulate_missing_types_mean_zero_and_unreached_inputs_get_zeros():
    conv, x, graphs, _ = fixture(9)
    out = conv.forward(x, graphs)
    G = upstream(out, 2)
    conv.zero_grad()
    dx = conv.backward(G)
    once = {k: v.copy() for k, v in conv.grads.items()}
    conv.backward(G)
    assert all(np.allclose(conv.grads[k], 2 * once[k], rtol=1e-14, atol=0) for k in once)
    assert np.all(dx["venue"] == 0) and not np.any(once["proj.venue.W"])
    # no gradient for author == a zero gradient for author
    conv.zero_grad()
    dx_paper = conv.backward({"paper": G["paper"]})
    only = {k: v.copy() for k, v in conv.grads.items()}
    conv.zero_grad()
    dx_zero = conv.backward({"paper": G["paper"], "author": np.zeros_like(G["author"])})
    assert all(np.allclose(only[k], conv.grads[k], rtol=1e-14, atol=1e-300) for k in only)
    assert all(np.allclose(dx_paper[k], dx_zero[k], rtol=1e-14, atol=1e-300) for k in dx_paper)
    assert not np.any(only["lin_src.paper__written_by__author"])


def test_sparse_features_give_the_same_output_and_no_input_gradient():
    conv, x, graphs, _ = fixture(10)
    dense_out = conv.forward(x, graphs)
    G = upstream(dense_out, 3)
    conv.zero_grad()
    dense_dx = conv.backward(G)
    dense_grads = {k: v.copy() for k, v in conv.grads.items()}
    xs = dict(x, paper=sp.csr_matrix(x["paper"]))
    out = conv.forward(xs, graphs)
    conv.zero_grad()
    dx = conv.backward(G)
    assert dx["paper"] is None and np.allclose(dx["author"], dense_dx["author"], rtol=1e-13)
    assert all(np.allclose(out[k], dense_out[k], rtol=1e-13) for k in out if out[k] is not None)
    assert all(np.allclose(conv.grads[k], dense_grads[k], rtol=1e-12, atol=1e-14) for k in dense_grads)
    conv.needs_input_grad = False
    conv.forward(x, graphs)
    assert all(v is None for v in conv.backward(G).values())


def test_gradcheck_case_passes():
    rows = han_cases.han_rows(2, 0.4, False, 42)
    assert rows and all(r.passed for r in rows), [(r.parameter, r.error) for r in rows if not r.passed]
    assert {r.parameter for r in rows} >= {"input x[paper]", "input x[term]", "k_lin.W", "q"}


# ---------------------------------------------------------------------------------- errors
def test_constructor_errors():
    meta = (["a", "b"], [("a", "r", "b")])
    with pytest.raises(ValueError, match="out_channels must be divisible by heads"):
        HANConv(3, 5, meta, heads=2)
    with pytest.raises(ValueError, match=r"in_channels must have one entry per node type.*missing \['b'\]"):
        HANConv({"a": 3}, 4, meta)
    with pytest.raises(ValueError, match="source type 'c'"):
        HANConv(3, 4, (["a", "b"], [("c", "r", "b")]))
    with pytest.raises(TypeError, match="metadata must be a pair"):
        HANConv(3, 4, ["a", "b"])
    with pytest.raises(ValueError, match="dropout must be in"):
        HANConv(3, 4, meta, dropout=1.0)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        HANConv(3, 4, meta, dtype=np.int32)
    with pytest.raises(ValueError, match="host only"):
        HANConv(3, 4, meta).check_device_support()


def test_forward_and_backward_errors_name_the_argument():
    conv, x, graphs, _ = fixture(11)
    with pytest.raises(ValueError, match=r"x_dict has no features for node type 'author', the source type"):
        conv.forward({k: v for k, v in x.items() if k != "author"}, graphs)
    with pytest.raises(ValueError, match=r"x_dict\['paper'\] must have 9 rows, the destination nodes"):
        conv.forward(dict(x, paper=x["paper"][:8]), graphs)
    with pytest.raises(ValueError, match=r"x_dict\['author'\] must have shape \(N, 4\)"):
        conv.forward(dict(x, author=x["author"][:, :3]), graphs)
    with pytest.raises(ValueError, match=r"x_dict has node type 'nobody', which is not among"):
        conv.forward(dict(x, nobody=x["venue"]), graphs)
    bad = ("paper", "unknown", "paper")
    with pytest.raises(ValueError, match=r"graphs has edge type \('paper', 'unknown', 'paper'\)"):
        conv.forward(x, {**graphs, bad: graphs[("paper", "cites", "paper")]})
    with pytest.raises(TypeError, match=r"must be a gnn_scratch Graph"):
        conv.forward(x, {("paper", "cites", "paper"): np.zeros((2, 3))})
    with pytest.raises(ValueError, match="needs the graphs"):
        conv.forward(x)
    for value in (np.nan, np.inf):
        xb = dict(x, subject=x["subject"].copy())
        xb["subject"][2, 1] = value
        with pytest.raises(ValueError, match=r"x_dict\['subject'\] must be finite, got .* at row 2, column 1"):
            conv.forward(xb, graphs)
    with pytest.raises(TypeError, match=r"x_dict\['paper'\] must have the layer's dtype float64"):
        conv.forward(dict(x, paper=x["paper"].astype(np.float32)), graphs)
    # a relation graph whose sides disagree with the features
    wrong = relation_graph([0, 1], [0, 1], 6, 9)                 # 6 sources, but there are 7 authors
    with pytest.raises(ValueError, match=r"x_dict\['author'\] must have 6 rows, the source nodes"):
        conv.forward(x, {("author", "writes", "paper"): wrong})

    with pytest.raises(BackwardBeforeForward):
        fixture(11)[0].backward({})
    out = conv.forward(x, graphs)
    G = upstream(out, 0)
    with pytest.raises(ValueError, match=r"grad_out\['paper'\] must have shape \(9, 4\)"):
        conv.backward(dict(G, paper=G["paper"][:5]))
    with pytest.raises(TypeError, match=r"grad_out\['paper'\] must have dtype float64"):
        conv.backward(dict(G, paper=G["paper"].astype(np.float32)))
    with pytest.raises(ValueError, match=r"gradient for node type 'subject', which had no output \(None\)"):
        conv.backward(dict(G, subject=np.zeros((4, 4))))
    with pytest.raises(TypeError, match="grad_out must be a dict"):
        conv.backward(G["paper"])


def test_derivation_snippet_runs():
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "derivations" / "han.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "derivations/han.md", "exec"), {})


def test_runs_on_a_heterograph_and_checks_features_inside_a_model():
    hetero = pytest.importorskip("gnn_scratch.graph.hetero")
    from gnn_scratch.nn import Module
    conv, x, graphs, edge_index = fixture(12, extra=())
    hg = hetero.HeteroGraph({nt: len(v) for nt, v in x.items()}, edge_index, x_dict=x)
    out, want = conv.forward(hg.x_dict, hg), conv.forward(x, graphs)
    for nt, o in out.items():
        assert (o is None and want[nt] is None) or rel_err(o, want[nt]) < 1e-13

    class Model(Module):                      # the layer called by a model: its dict input is still scanned
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x_dict, graphs):
            return self.conv.forward(x_dict, graphs)["paper"]

    xb = dict(x, author=x["author"].copy())
    xb["author"][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"x_dict\['author'\] must be finite"):
        Model().forward(xb, graphs)
