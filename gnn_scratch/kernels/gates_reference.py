"""Gate non-linearities of recurrent cells in plain NumPy (the readable truth): sigmoid, tanh, the GRU and LSTM states.

Contract of the family (shared by ``gates_cpu`` and ``gates_cuda``): arrays of one shape and one
float dtype per call, C-contiguous, outputs preallocated and overwritten; the LSTM ops' peepholes and
biases are one row of F entries ((F,) or (1, F)) for (N, F) arrays. Each backward takes the
forward's *output* (sigma' = y (1 - y), tanh' = 1 - y^2), so a cell keeps outputs, never
pre-activations. derivations/recurrent.md derives every formula (the LSTM ops: derivations/gconv_lstm.md).

The sigmoid is evaluated as 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, with e = exp(-|x|):
equal to 1 / (1 + e^-x), with an exp that never overflows (e^-x overflows float32 for x < -88) and
relative accuracy in both tails (the form (tanh(x/2) + 1) / 2 loses it for x << 0: 1e-7 at x = -30).
"""
import numpy as np


def sigmoid(x, y):
    """y = sigma(x) = 1 / (1 + e^-x), from e = exp(-|x|) <= 1 on either side of 0."""
    e = np.exp(-np.abs(x))
    y[...] = np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def tanh(x, y):
    """y = tanh(x)."""
    y[...] = np.tanh(x)


def sigmoid_backward(g, y, out):
    """out = g * y * (1 - y), with y = sigma(x) the forward's output."""
    out[...] = g * y * (1 - y)


def tanh_backward(g, y, out):
    """out = g * (1 - y^2), with y = tanh(x) the forward's output."""
    out[...] = g * (1 - y * y)


def gru_state(Z, H, H_tilde, out):
    """out = Z * H + (1 - Z) * H_tilde: the GRU's new state (PyG Temporal's convention, Z keeps the old state)."""
    out[...] = Z * H + (1 - Z) * H_tilde


def gru_state_backward(G, Z, H, H_tilde, dA_z, dH, dA_h):
    """The GRU state's backward through the gate non-linearities, G = dL/dH_new:

    dA_z = G (H - H_tilde) Z (1 - Z)       (Z = sigma(A_z): through the sigmoid)
    dH   = G Z                             (the direct path of the old state)
    dA_h = G (1 - Z) (1 - H_tilde^2)       (H_tilde = tanh(A_h): through the tanh)
    """
    dA_z[...] = G * (H - H_tilde) * Z * (1 - Z)
    dH[...] = G * Z
    dA_h[...] = G * (1 - Z) * (1 - H_tilde * H_tilde)


# ------------------------------------------------------------------------------------ the LSTM (GConvLSTM)
# A, C, ... are (N, F); the peephole weights w and the gate biases b are one row each, (F,) or (1, F),
# added to every one of the N rows. derivations/gconv_lstm.md derives every formula.
def _row(v):
    return v.reshape(1, -1)


def lstm_gate(A, w, C, b, y):
    """y = sigma(A + w C + b): an input or forget gate with its peephole on the cell state C."""
    sigmoid(A + _row(w) * C + _row(b), y)


def lstm_state(I, F, A_c, b_c, C, A_o, w_o, b_o, T, C_new, O, H_new):
    """The LSTM's state update, the output gate (its peephole sees the *new* cell state) and the output:

    T = tanh(A_c + b_c),  C_new = F C + I T,  O = sigma(A_o + w_o C_new + b_o),  H_new = O tanh(C_new).
    """
    tanh(A_c + _row(b_c), T)
    C_new[...] = F * C + I * T
    sigmoid(A_o + _row(w_o) * C_new + _row(b_o), O)
    H_new[...] = O * np.tanh(C_new)


def lstm_state_backward(G_H, G_C, I, F, T, C, O, C_new, w_i, w_f, w_o, dA_i, dA_f, dA_c, dA_o, dC):
    """``lstm_state`` and the two ``lstm_gate``s backward, G_H = dL/dH_new, G_C = dL/dC_new from the next step:

    dA_o  = G_H tanh(C_new) O (1 - O)
    dC'   = G_C + G_H O (1 - tanh(C_new)^2) + w_o dA_o          (every path into C_new)
    dA_i  = dC' T I (1 - I);   dA_f = dC' C F (1 - F);   dA_c = dC' I (1 - T^2)
    dC    = dC' F + w_i dA_i + w_f dA_f                           (into the old cell state, peepholes included)
    """
    tc = np.tanh(C_new)
    dA_o[...] = G_H * tc * O * (1 - O)
    dCn = G_C + G_H * O * (1 - tc * tc) + _row(w_o) * dA_o
    dA_i[...] = dCn * T * I * (1 - I)
    dA_f[...] = dCn * C * F * (1 - F)
    dA_c[...] = dCn * I * (1 - T * T)
    dC[...] = dCn * F + _row(w_i) * dA_i + _row(w_f) * dA_f
