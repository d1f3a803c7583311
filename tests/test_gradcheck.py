"""Every registered backward against central finite differences in float64, and the checker itself."""
import numpy as np
import pytest

from gnn_scratch.cli import main
from gnn_scratch.gradcheck import check_module, numerical_gradient, relative_error
from gnn_scratch.gradcheck.registry import all_cases
from gnn_scratch.nn import Linear

CASES = all_cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_match_finite_differences(name, backend):
    rows = CASES[name]()
    assert rows, f"case {name} checked nothing"
    for r in rows:
        assert r.error < 1e-6, f"{r.case} / {r.parameter}: relative error {r.error:.2e} with {backend} kernels"


def test_checker_catches_a_wrong_gradient():
    class BrokenLinear(Linear):
        def backward(self, grad_out):
            gx = super().backward(grad_out)
            self.grads["W"] *= 1.01  # a 1 % error must be caught
            return gx
    rows = check_module("broken", BrokenLinear(3, 2, dtype=np.float64), np.random.default_rng(0).random((4, 3)))
    by_name = {r.parameter: r for r in rows}
    assert not by_name["W"].passed and by_name["W"].error > 1e-3
    assert by_name["b"].passed and by_name["input"].passed


def test_numerical_gradient_of_a_known_function():
    x = np.array([1.0, -2.0, 3.0])
    g = numerical_gradient(lambda: float(np.sum(x ** 3)), x)
    np.testing.assert_allclose(g, 3 * x ** 2, rtol=1e-8)
    assert np.array_equal(x, [1.0, -2.0, 3.0])  # restored after perturbation
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda: 0.0, x.astype(np.float32))


def test_relative_error_metric():
    assert relative_error(np.ones(3), np.ones(3)) == 0.0
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.array([1.0]), np.array([-1.0])) == pytest.approx(1.0)


def test_gradcheck_command_prints_a_table_and_exits_zero(capsys):
    assert main(["gradcheck", "--only", "Linear"]) == 0
    out = capsys.readouterr().out
    assert "max rel err" in out and "pass" in out and "0 failed" in out
    assert main(["gradcheck", "--only", "no-such-case"]) == 2
