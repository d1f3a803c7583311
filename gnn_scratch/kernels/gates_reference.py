"""Gate non-linearities of recurrent cells in plain NumPy (the readable truth): sigmoid, tanh, the GRU state.

Contract of the family (shared by ``gates_cpu`` and ``gates_cuda``): arrays of one shape and one
float dtype per call, C-contiguous, outputs preallocated and overwritten. Each backward takes the
forward's *output* (sigma' = y (1 - y), tanh' = 1 - y^2), so a cell keeps outputs, never
pre-activations. derivations/recurrent.md derives every formula.

The sigmoid is written 1/2 (tanh(x/2) + 1): equal to 1 / (1 + e^-x) and free of overflow on both
sides (e^-x overflows float32 for x < -88).
"""
import numpy as np


def sigmoid(x, y):
    """y = sigma(x) = (tanh(x / 2) + 1) / 2."""
    half = x.dtype.type(0.5)
    y[...] = half * (np.tanh(half * x) + 1)


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
