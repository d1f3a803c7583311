"""SpectralConv (Bruna et al., 2014), the Table 3 models of Kipf & Welling (gnn_scratch.models.spectral) and the
two scripts: finite differences, dense definitions, errors, short training runs, a saved model, smoke runs."""
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from gnn_scratch.data import get_dataset
from gnn_scratch.gradcheck import random_test_graph
from gnn_scratch.gradcheck import spectral as cases
from gnn_scratch.graph import Graph
from gnn_scratch.io import load_model, save_model
from gnn_scratch.models import MODELS, build_model
from gnn_scratch.nn import BackwardBeforeForward, Linear
from gnn_scratch.nn.conv.cheb_conv import ChebConv, FirstOrderConv
from gnn_scratch.nn.conv.spectral_conv import MAX_NODES, SpectralConv, eigenbasis, spline_basis
from gnn_scratch.train import build_for, run

REPO = Path(__file__).resolve().parents[1]
F64 = np.float64
TABLE3 = ("cheb", "first_order", "single_param", "first_order_term", "mlp")


def graph8():
    """The gradcheck fixture made undirected: 8 nodes, an isolated node, a self-loop, a repeated edge."""
    return cases.undirected(random_test_graph(0))


def dense_laplacian(g, normalization):
    A = g.to_scipy().toarray()
    np.fill_diagonal(A, 0)                                          # loops removed, as PyG's get_laplacian
    deg = A.sum(axis=0)
    if normalization is None:
        return np.diag(deg) - A
    dis = np.divide(1, np.sqrt(deg), out=np.zeros_like(deg), where=deg > 0)
    return np.eye(len(deg)) - dis[:, None] * A * dis[None, :]


# --------------------------------------------------------------------------- finite differences
def test_gradcheck_rows_pass(backend):
    rows = cases.spectral()
    assert len(rows) == 2 * 4 * 2 * 3                # 2 normalisations x 4 (d, q) x 2 widths x (θ or α, b, x)
    for r in rows:
        assert r.passed, f"{r.case} / {r.parameter}: relative error {r.error:.2e} with {backend} kernels"


# --------------------------------------------------------------------------- SpectralConv
@pytest.mark.parametrize("normalization", ["sym", None])
def test_eigenbasis_diagonalises_the_laplacian(normalization):
    g = graph8()
    lam, U = eigenbasis(g, normalization)
    L = dense_laplacian(g, normalization)
    np.testing.assert_allclose(U @ np.diag(lam) @ U.T, L, atol=1e-12)
    np.testing.assert_allclose(U.T @ U, np.eye(8), atol=1e-12)
    assert np.all(np.diff(lam) >= 0)
    assert eigenbasis(g, normalization)[1] is U                     # computed once per graph


@pytest.mark.parametrize("normalization", ["sym", None])
@pytest.mark.parametrize("d, q", [(8, None), (3, None), (None, 6), (5, 4)])
def test_spectral_conv_equals_its_dense_definition(normalization, d, q):
    g = graph8()
    conv = SpectralConv(3, 2, num_eigenvectors=d, smooth_basis=q, normalization=normalization, seed=1, dtype=F64)
    conv.params["b"][:] = [0.5, -1.0]
    lam, U = eigenbasis(g, normalization)
    d = d or 8
    U = U[:, :d]
    theta = conv.params["theta"] if q is None else np.einsum(
        "kq,qio->kio", spline_basis(lam[:d], q, 0, 2.0 if normalization == "sym" else lam[-1]), conv.params["alpha"])
    x = np.random.default_rng(2).standard_normal((8, 3))
    want = np.stack([sum(U @ np.diag(theta[:, i, o]) @ U.T @ x[:, i] for i in range(3)) for o in range(2)], axis=1)
    np.testing.assert_allclose(conv.forward(x, g), want + conv.params["b"], rtol=1e-12, atol=1e-12)
    lam_d, th = conv.frequency_response(g)
    np.testing.assert_allclose(lam_d, lam[:d])
    np.testing.assert_allclose(th, theta)


def test_constant_multipliers_over_the_full_basis_are_a_linear_layer():
    g = graph8()
    conv = SpectralConv(4, 3, num_eigenvectors=8, seed=1, dtype=F64)
    lin = Linear(4, 3, seed=2, dtype=F64)
    conv.params["theta"][:] = lin.params["W"]
    x = np.random.default_rng(3).standard_normal((8, 4))
    np.testing.assert_allclose(conv(x, g), lin(x), rtol=1e-12, atol=1e-12)


def test_smooth_multipliers_are_a_function_of_the_eigenvalue():
    lam = np.array([0.0, 0.3, 0.3, 1.0, 1.7, 2.0])
    B = spline_basis(lam, 6, 0.0, 2.0)
    np.testing.assert_allclose(B.sum(axis=1), 1.0, rtol=1e-14)      # a partition of unity
    np.testing.assert_array_equal(B[1], B[2])                        # one eigenvalue, one multiplier
    assert B[0, 0] == 1.0 and B[-1, -1] == 1.0                       # clamped at both ends
    conv = SpectralConv(2, 2, smooth_basis=5, seed=0, dtype=F64)
    conv.params["alpha"][:] = 0.7                                    # constant coefficients: a constant multiplier
    _, theta = conv.frequency_response(graph8())
    np.testing.assert_allclose(theta, 0.7, rtol=1e-14)


def test_spectral_conv_contract_and_errors():
    g = graph8()
    conv = SpectralConv(3, 2, num_eigenvectors=4, dtype=F64)
    with pytest.raises(BackwardBeforeForward):
        conv.backward(np.zeros((8, 2)))
    x, G = np.random.default_rng(4).standard_normal((8, 3)), np.random.default_rng(5).standard_normal((8, 2))
    conv(x, g)
    conv.zero_grad()
    dx = conv.backward(G)
    once = {k: v.copy() for k, v in conv.grads.items()}
    conv.backward(G)
    for k in once:
        np.testing.assert_allclose(conv.grads[k], 2 * once[k], rtol=1e-14)
    conv.needs_input_grad = False
    assert dx.shape == x.shape and conv.backward(G) is None
    with pytest.raises(ValueError, match="needs num_eigenvectors"):
        SpectralConv(3, 2)
    with pytest.raises(ValueError, match=r"smooth_basis must be >= 4 \(cubic splines\), got 3"):
        SpectralConv(3, 2, smooth_basis=3)
    with pytest.raises(ValueError, match=r"normalization must be one of \('sym', None\)"):
        SpectralConv(3, 2, 4, normalization="rw")
    with pytest.raises(ValueError, match="num_eigenvectors=9 exceeds the graph's 8 nodes"):
        SpectralConv(3, 2, 9, dtype=F64)(x, g)
    with pytest.raises(ValueError, match=r"needs an undirected graph .* add each edge's reverse"):
        SpectralConv(3, 2, 4, dtype=F64)(x, random_test_graph(0))
    with pytest.raises(ValueError, match="needs dense x"):
        import scipy.sparse as sp
        conv(sp.csr_matrix(x), g)
    big = Graph.from_edge_index(np.array([[0, 1], [1, 0]]), num_nodes=MAX_NODES + 1)
    with pytest.raises(ValueError, match=r"dense teaching layer .* 5001 nodes, more than max_nodes=5000"):
        SpectralConv(1, 1, 4, dtype=F64)(np.zeros((MAX_NODES + 1, 1)), big)
    with pytest.raises(ValueError, match="no device path"):
        conv.check_device_support()


# --------------------------------------------------------------------------- the Table 3 models
@pytest.fixture(scope="module")
def karate():
    return get_dataset("karate")


@pytest.mark.parametrize("name", TABLE3)
def test_table3_models_carry_the_papers_defaults_and_train(name, karate, tmp_path):
    cls = MODELS[name]
    assert cls.devices == ("cpu", "cuda")
    assert cls.train_defaults == dict(lr=0.01, weight_decay=5e-4, epochs=200, patience=10)
    assert {k: cls.model_defaults[k] for k in ("hidden_channels", "dropout")} == dict(hidden_channels=16, dropout=0.5)
    model, opt, hp = build_for(name, karate, 0, {})
    assert [g["weight_decay"] for g in opt.groups] == [5e-4, 0.0]       # L2 on the first layer only
    assert {id(p) for p, _ in opt.groups[0]["params"]} == {id(p) for p, _ in model.conv1.parameters()}
    summary, trained = run(name, karate, epochs=3, hidden_channels=4)
    assert summary["hparams"]["epochs"] == 3 and summary["hparams"]["patience"] == 10
    path = save_model(tmp_path / name, trained)
    again, _ = load_model(path)
    x = np.random.default_rng(0).random((karate.graph.num_nodes, karate.num_features)).astype(np.float32)
    np.testing.assert_array_equal(again.eval().forward(x, karate.graph), trained.eval().forward(x, karate.graph))


def test_table3_models_are_built_from_the_right_layers():
    m = build_model("cheb", in_channels=5, out_channels=2, K=2)
    assert isinstance(m.conv1, ChebConv) and m.conv1.K == 3 and m.conv1.normalization == "sym"   # Kipf's K = degree
    assert build_model("cheb", in_channels=5, out_channels=2).conv2.params["W"].shape == (4, 16, 2)
    for name in ("first_order", "single_param", "first_order_term"):
        m = build_model(name, in_channels=5, out_channels=2)
        assert isinstance(m.conv1, FirstOrderConv) and m.conv1.variant == name
    assert isinstance(build_model("mlp", in_channels=5, out_channels=2).conv2, Linear)
    with pytest.raises(ValueError, match=r"K \(the Chebyshev degree\) must be an int >= 0, got -1"):
        build_model("cheb", in_channels=5, out_channels=2, K=-1)


# --------------------------------------------------------------------------- the scripts, smoke runs
def _script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kipf_table3_script_prints_a_markdown_table(capsys, tmp_path):
    t3 = _script("kipf_table3")
    assert t3.main(["--runs", "1", "--epochs", "2", "--datasets", "karate", "--protocol", "both",
                    "--json", str(tmp_path / "t.json")]) == 0
    out = capsys.readouterr().out
    assert out.count("\n| ") == 1 + 7 and "| Chebyshev filter, K = 3 | `cheb --K 3` |" in out
    assert "karate: ours, repo trainer | karate: ours, paper's stopping |" in out and "published" not in out
    assert (tmp_path / "t.json").exists()
    assert t3.PAPER["cora"][4] == 81.5 and t3.PAPER["citeseer"][6] == 46.5


def test_plot_spectrum_script_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    ps = _script("plot_spectrum")
    out = tmp_path / "s.png"
    assert ps.main(["--dataset", "karate", "--epochs", "2", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- the derivation's snippet runs
def test_derivation_snippets_run():
    text = (REPO / "derivations" / "spectral_conv.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "spectral_conv.md has no Python block"
    namespace = {"__name__": "derivations.spectral_conv"}
    for code in blocks:
        exec(compile(code, "spectral_conv.md", "exec"), namespace)
