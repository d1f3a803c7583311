"""Deep Graph Infomax's pieces, each beside its backward: PReLU with learned slopes, bilinear row scores, binary
cross-entropy with logits (derivations/dgi.md). Veličković et al., "Deep Graph Infomax", ICLR 2019.

Each op checks what a kernel cannot, allocates on its inputs' device and runs the registered kernel
(family ``dgi``: ``kernels/dgi_{reference,cpu,cuda}.py``).

    prelu(x, a)                         y = x if x > 0 else a x            x (N, F), a (1,) or (F,)
    prelu_backward(G, x, a)             dx = G [x > 0] + a G [x <= 0];  da = sum over rows (and, for one
                                        shared slope, channels) of G x [x <= 0]
    bilinear_rows(x1, T)                y[n, o] = <x1[n], T[n, o]>         x1 (N, I), T (N, O, I)
    bilinear_rows_backward(G, x1, T)    dx1[n] = sum_o G[n, o] T[n, o];  dT[n, o] = G[n, o] x1[n]
    bce_with_logits(Z, Y)               L = mean(max(z, 0) - z y + log(1 + e^-|z|))   (0-d, Z's dtype)
    bce_with_logits_backward(cache)     dZ = (sigma(Z) - Y) / Z.size
"""
from ..device import empty, empty_like
from ..kernels.dgi_reference import chunks
from ..kernels.registry import run
from .checks import dense, one_float, same_shape, shape


def _slopes(op, x, a):
    shape(op, "x", dense(op, "x", x), "N", "F")
    shape(op, "a", dense(op, "a", a), "C")
    if a.shape[0] not in (1, x.shape[1]):
        raise ValueError(f"ops.{op}: a must have shape (1,) (one shared slope) or ({x.shape[1]},) (one per channel "
                         f"of x), got {tuple(a.shape)}")


def prelu(x, a):
    """y = x where x > 0, a x elsewhere: x (N, F) float, a (1,) shared or (F,) per channel, one dtype."""
    _slopes("prelu", x, a)
    one_float("prelu", x=x, a=a)
    y = empty_like(x)
    run("prelu", x.size, x, a, y)
    return y


def prelu_backward(grad_out, x, a):
    """(dx, da) of ``prelu`` at its input x: dx (N, F), da of a's shape (summed in a fixed order)."""
    _slopes("prelu_backward", x, a)
    same_shape("prelu_backward", "x", x, grad_out=dense("prelu_backward", "grad_out", grad_out))
    one_float("prelu_backward", grad_out=grad_out, x=x, a=a)
    dx, da = empty_like(x), empty_like(a)
    part = empty((chunks(x.shape[0]), x.shape[1]), x.dtype, like=x)     # partial sums per fixed chunk of rows
    run("prelu_backward", x.size, grad_out, x, a, dx, part, da)
    return dx, da


def bilinear_rows(x1, T):
    """y[n, o] = <x1[n], T[n, o]>: x1 (N, I), T (N, O, I) -> (N, O)."""
    shape("bilinear_rows", "x1", dense("bilinear_rows", "x1", x1), "N", "I")
    shape("bilinear_rows", "T", dense("bilinear_rows", "T", T), x1.shape[0], "O", x1.shape[1])
    one_float("bilinear_rows", x1=x1, T=T)
    y = empty(T.shape[:2], x1.dtype, like=x1)
    run("bilinear_rows", T.size, x1, T, y)
    return y


def bilinear_rows_backward(grad_out, x1, T):
    """(dx1, dT) of ``bilinear_rows``: dx1 (N, I), dT (N, O, I)."""
    shape("bilinear_rows_backward", "x1", dense("bilinear_rows_backward", "x1", x1), "N", "I")
    shape("bilinear_rows_backward", "T", dense("bilinear_rows_backward", "T", T), x1.shape[0], "O", x1.shape[1])
    shape("bilinear_rows_backward", "grad_out", dense("bilinear_rows_backward", "grad_out", grad_out), *T.shape[:2])
    one_float("bilinear_rows_backward", grad_out=grad_out, x1=x1, T=T)
    dx1, dT = empty_like(x1), empty_like(T)
    run("bilinear_rows_backward", T.size, grad_out, x1, T, dx1, dT)
    return dx1, dT


def bce_with_logits(Z, Y):
    """(loss, cache): L = (1/M) sum_m [max(z_m, 0) - z_m y_m + log(1 + e^-|z_m|)], a 0-d array of Z's dtype.

    The mean binary cross-entropy of sigma(Z) against targets Y (torch's ``BCEWithLogitsLoss``), in a form
    whose exponential never overflows. Z, Y of one shape (any; M = Z.size entries) and one float dtype --
    never broadcast. Targets are probabilities (0 / 1 labels, or anything in between).
    """
    dense("bce_with_logits", "Z", Z)
    same_shape("bce_with_logits", "Z", Z, Y=dense("bce_with_logits", "Y", Y))
    one_float("bce_with_logits", Z=Z, Y=Y)
    rows = empty_like(Z)
    loss = empty((1,), Z.dtype, like=Z)
    run("bce_with_logits", Z.size, Z, Y, rows, loss)
    return loss.reshape(()), (Z, Y)


def bce_with_logits_backward(cache):
    """dL/dZ = (sigma(Z) - Y) / Z.size, from ``bce_with_logits``'s cache."""
    Z, Y = cache
    dZ = empty_like(Z)
    run("bce_with_logits_backward", Z.size, Z, Y, dZ)
    return dZ
