"""Graph transformers' pieces beyond the sparse and dense ops: a scale, LayerNorm, TransformerConv's beta gate.

Each op allocates on its inputs' device and runs the registered kernels (family "transformer",
``kernels/transformer_{reference,cpu,cuda}.py``); the derivations are derivations/layer_norm.md
(LayerNorm) and derivations/transformer_conv.md (the gate, the scale of the scores).
"""
from ..device import empty, empty_like
from ..kernels.registry import run
from .checks import dense, one_float, same_shape, shape


def scale(x, a):
    """a * x element-wise (a new array): x any shape, float; a a Python number (cast to x's dtype)."""
    one_float("scale", x=dense("scale", "x", x))
    out = empty_like(x)
    run("scale", x.size, x, x.dtype.type(a), out)
    return out


def layer_norm(x, gamma, beta, eps):
    """(y, xhat, rstd): LayerNorm of each row of x (N, F) with gamma, beta (F,); xhat (N, F), rstd (N,) saved.

    mu, var = the row's mean and biased variance; rstd = 1/sqrt(var + eps); xhat = (x - mu) rstd;
    y = xhat gamma + beta.
    """
    shape("layer_norm", "x", dense("layer_norm", "x", x), "N", "F")
    shape("layer_norm", "gamma", gamma, x.shape[1])
    shape("layer_norm", "beta", beta, x.shape[1])
    one_float("layer_norm", x=x, gamma=gamma, beta=beta)
    y, xhat = empty_like(x), empty_like(x)
    rstd = empty((x.shape[0],), x.dtype, like=x)
    run("layer_norm", x.size, x, gamma, beta, x.dtype.type(eps), y, xhat, rstd)
    return y, xhat, rstd


def layer_norm_backward(G, xhat, rstd, gamma):
    """dL/dx (N, F) = rstd (g - mean_f g - xhat mean_f(g xhat)), g = G gamma (derivations/layer_norm.md)."""
    shape("layer_norm_backward", "G", dense("layer_norm_backward", "G", G), "N", "F")
    same_shape("layer_norm_backward", "G", G, xhat=xhat)
    shape("layer_norm_backward", "rstd", rstd, G.shape[0])
    shape("layer_norm_backward", "gamma", gamma, G.shape[1])
    one_float("layer_norm_backward", G=G, xhat=xhat, rstd=rstd, gamma=gamma)
    dx = empty_like(G)
    run("layer_norm_backward", G.size, G, xhat, rstd, gamma, dx)
    return dx


def beta_gate(out, xr, w):
    """(y, b): b = sigmoid([out, xr, out - xr] . w) per row (N,), y = b xr + (1 - b) out (N, D); w (3 D,)."""
    shape("beta_gate", "out", dense("beta_gate", "out", out), "N", "D")
    same_shape("beta_gate", "out", out, xr=xr)
    shape("beta_gate", "w", w, 3 * out.shape[1])
    one_float("beta_gate", out=out, xr=xr, w=w)
    y = empty_like(out)
    b = empty((out.shape[0],), out.dtype, like=out)
    run("beta_gate", out.size, out, xr, w, y, b)
    return y, b


def beta_gate_backward(G, out, xr, b, w):
    """(d_out, d_xr, dz): the gate's gradients; dz (N,) = dL/d(logit) for lin_beta's weight (derivations/transformer_conv.md)."""
    shape("beta_gate_backward", "G", dense("beta_gate_backward", "G", G), "N", "D")
    same_shape("beta_gate_backward", "G", G, out=out, xr=xr)
    shape("beta_gate_backward", "b", b, G.shape[0])
    shape("beta_gate_backward", "w", w, 3 * G.shape[1])
    one_float("beta_gate_backward", G=G, out=out, xr=xr, b=b, w=w)
    d_out, d_xr = empty_like(G), empty_like(G)
    dz = empty((G.shape[0],), G.dtype, like=G)
    run("beta_gate_backward", G.size, G, out, xr, b, w, d_out, d_xr, dz)
    return d_out, d_xr, dz
