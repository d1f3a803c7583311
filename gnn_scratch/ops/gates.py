"""Gate non-linearities of recurrent cells and their backward (derivations/recurrent.md).

Every backward takes the forward's *output*: a cell keeps Z, R, H_tilde, not the pre-activations.
Each op allocates on its inputs' device; the registry picks the implementation.
"""
from ..device import empty_like
from ..kernels.registry import run
from .checks import dense, one_float, same_shape


def _floats(op, first, **arrays):
    """Check that every array is dense, of ``first``'s shape and of one float dtype."""
    name, a = first
    dense(op, name, a)
    for other, b in arrays.items():
        dense(op, other, b)
    same_shape(op, name, a, **arrays)
    return one_float(op, **{name: a}, **arrays)


def sigmoid(x):
    """sigma(x) = 1 / (1 + e^-x), computed as (tanh(x/2) + 1) / 2 (no overflow): x any shape -> same shape."""
    _floats("sigmoid", ("x", x))
    y = empty_like(x)
    run("sigmoid", x.size, x, y)
    return y


def tanh(x):
    """tanh(x), element-wise."""
    _floats("tanh", ("x", x))
    y = empty_like(x)
    run("tanh", x.size, x, y)
    return y


def sigmoid_backward(grad_out, y):
    """dL/dx = grad_out * y (1 - y), with y = sigma(x) the forward's output."""
    _floats("sigmoid_backward", ("grad_out", grad_out), y=y)
    out = empty_like(grad_out)
    run("sigmoid_backward", grad_out.size, grad_out, y, out)
    return out


def tanh_backward(grad_out, y):
    """dL/dx = grad_out * (1 - y^2), with y = tanh(x) the forward's output."""
    _floats("tanh_backward", ("grad_out", grad_out), y=y)
    out = empty_like(grad_out)
    run("tanh_backward", grad_out.size, grad_out, y, out)
    return out


def gru_state(Z, H, H_tilde):
    """H_new = Z * H + (1 - Z) * H_tilde: Z (N, F) the update gate, H the old state, H_tilde the candidate."""
    _floats("gru_state", ("Z", Z), H=H, H_tilde=H_tilde)
    out = empty_like(Z)
    run("gru_state", Z.size, Z, H, H_tilde, out)
    return out


def gru_state_backward(grad_out, Z, H, H_tilde):
    """(dA_z, dH, dA_h) from G = dL/dH_new, through Z = sigma(A_z) and H_tilde = tanh(A_h):

    dA_z = G (H - H_tilde) Z (1 - Z),   dH = G Z  (the direct path only),   dA_h = G (1 - Z)(1 - H_tilde^2).
    """
    _floats("gru_state_backward", ("grad_out", grad_out), Z=Z, H=H, H_tilde=H_tilde)
    dA_z, dH, dA_h = empty_like(grad_out), empty_like(grad_out), empty_like(grad_out)
    run("gru_state_backward", grad_out.size, grad_out, Z, H, H_tilde, dA_z, dH, dA_h)
    return dA_z, dH, dA_h
