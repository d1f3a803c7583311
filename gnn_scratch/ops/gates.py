"""Gate non-linearities of recurrent cells and their backward (derivations/recurrent.md; the LSTM ops:
derivations/gconv_lstm.md).

Every backward takes the forward's *output*: a cell keeps Z, R, H_tilde, not the pre-activations.
Each op allocates on its inputs' device; the registry picks the implementation.
"""
from ..device import empty_like
from ..kernels.registry import run
from .checks import dense, one_float, same_shape, shape


def _floats(op, first, **arrays):
    """Check that every array is dense, of ``first``'s shape and of one float dtype."""
    name, a = first
    dense(op, name, a)
    for other, b in arrays.items():
        dense(op, other, b)
    same_shape(op, name, a, **arrays)
    return one_float(op, **{name: a}, **arrays)


def sigmoid(x):
    """sigma(x) = 1 / (1 + e^-x), from e = exp(-|x|) (no overflow, accurate in both tails): x any shape -> same shape."""
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


# ------------------------------------------------------------------------------------ the LSTM (GConvLSTM)
def _row_vectors(op, n_cols, **vectors):
    """Each vector one row of ``n_cols`` entries: shape (n_cols,) or (1, n_cols) (PyG Temporal's (1, F))."""
    for name, v in vectors.items():
        dense(op, name, v)
        if tuple(getattr(v, "shape", ())) not in ((n_cols,), (1, n_cols)):
            raise ValueError(f"ops.{op}: {name} must have shape ({n_cols},) or (1, {n_cols}), got "
                             f"{tuple(v.shape) if hasattr(v, 'shape') else type(v).__name__}")


def _rows(op, first, vectors, **arrays):
    """(N, F) arrays of one shape and float dtype, plus one-row ``vectors`` of F entries in the same dtype."""
    name, a = first
    shape(op, name, dense(op, name, a), "N", "F")
    _floats(op, first, **arrays)
    _row_vectors(op, a.shape[1], **vectors)
    one_float(op, **{name: a}, **vectors)


def lstm_gate(A, w, C, b):
    """sigma(A + w C + b): an LSTM input or forget gate with its peephole. A, C (N, F); w, b (1, F) or (F,),
    added to every row (derivations/gconv_lstm.md)."""
    _rows("lstm_gate", ("A", A), dict(w=w, b=b), C=C)
    y = empty_like(A)
    run("lstm_gate", A.size, A, w, C, b, y)
    return y


def lstm_state(I, F, A_c, b_c, C, A_o, w_o, b_o):
    """(T, C_new, O, H_new) of one LSTM step from its gates I, F, the pre-activations A_c, A_o and the old C:

    T = tanh(A_c + b_c),  C_new = F C + I T,  O = sigma(A_o + w_o C_new + b_o),  H_new = O tanh(C_new)

    (the output gate's peephole sees the new cell state, as in PyG Temporal's GConvLSTM). (N, F) arrays;
    b_c, w_o, b_o one row each, (1, F) or (F,). One pass on the CPU and GPU.
    """
    _rows("lstm_state", ("I", I), dict(b_c=b_c, w_o=w_o, b_o=b_o), F=F, A_c=A_c, C=C, A_o=A_o)
    T, C_new, O, H_new = empty_like(I), empty_like(I), empty_like(I), empty_like(I)
    run("lstm_state", I.size, I, F, A_c, b_c, C, A_o, w_o, b_o, T, C_new, O, H_new)
    return T, C_new, O, H_new


def lstm_state_backward(G_H, G_C, I, F, T, C, O, C_new, w_i, w_f, w_o):
    """(dA_i, dA_f, dA_c, dA_o, dC) of one LSTM step, G_H = dL/dH_new, G_C = dL/dC_new (from the next step):

    dA_o = G_H tanh(C_new) O (1 - O);   dC' = G_C + G_H O (1 - tanh^2 C_new) + w_o dA_o
    dA_i = dC' T I (1 - I);   dA_f = dC' C F (1 - F);   dA_c = dC' I (1 - T^2);   dC = dC' F + w_i dA_i + w_f dA_f

    The pre-activations' gradients pass on to the gates' convolutions; dC is the old cell state's whole gradient.
    """
    _rows("lstm_state_backward", ("G_H", G_H), dict(w_i=w_i, w_f=w_f, w_o=w_o), G_C=G_C, I=I, F=F, T=T, C=C, O=O,
          C_new=C_new)
    dA_i, dA_f, dA_c, dA_o, dC = (empty_like(G_H) for _ in range(5))
    run("lstm_state_backward", G_H.size, G_H, G_C, I, F, T, C, O, C_new, w_i, w_f, w_o, dA_i, dA_f, dA_c, dA_o, dC)
    return dA_i, dA_f, dA_c, dA_o, dC
