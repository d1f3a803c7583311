"""The bilinear layer y[n, o] = x1[n]^T W[o] x2[n] + b[o] (torch's ``nn.Bilinear``): Deep Graph Infomax's
discriminator D(h_i, s) = h_i^T W s + b (derivations/dgi.md)."""
import numpy as np

from .. import ops
from ..threads import single_blas_pool
from .checks import check_features, float_dtype, positive_int
from .init import as_rng, glorot
from .module import Module


class Bilinear(Module):
    """y[n, o] = sum_{i, j} x1[n, i] W[o, i, j] x2[n, j] + b[o]   (torch.nn.Bilinear, same parameter layout).

    x1: (N, I) float; x2: (N, J) -- one row per row of x1 -- or (J,), one vector scored against every
    row of x1 (DGI's summary s, which the reference code expands to N rows); W: (O, I, J), b: (O,);
    y: (N, O). I = in1_features, J = in2_features, O = out_features.

    Initialisation as Deep Graph Infomax's discriminator: W Xavier-uniform with torch's fans of a
    3-D tensor (fan_in = I J, fan_out = O J), b = 0. (torch's own default draws both from
    U(+-1/sqrt(I)); load such weights through ``params`` if needed.)

    Forward and backward (derivations/dgi.md), with W2 = W viewed as (O I, J):
      one vector s:   V = (W2 s) as (O, I);   y = x1 V^T + b
                      dx1 = G V;   dV = G^T x1;   dW[o, i, :] += dV[o, i] s;   ds = W2^T vec(dV);   db = sum_n G[n]
      rows x2:        T[n] = (x2[n] W2^T) as (O, I);   y[n, o] = <x1[n], T[n, o]> + b   (``ops.bilinear_rows``)
                      dx1[n] = sum_o G[n, o] T[n, o];   dT[n, o] = G[n, o] x1[n];
                      dW2 += dT^T x2;   dx2 = dT W2;   db = sum_n G[n]
    ``backward(G)`` returns the pair (dx1, dx2), dx2 in x2's shape (summed over rows for one vector).
    Raises ValueError / TypeError for inputs of the wrong shape or dtype, naming the argument.
    """

    def __init__(self, in1_features, in2_features, out_features, bias=True, seed=0, dtype=np.float32):
        super().__init__()
        I, J = positive_int("in1_features", in1_features), positive_int("in2_features", in2_features)
        O = positive_int("out_features", out_features)
        dtype = float_dtype(dtype)
        self.in1_features, self.in2_features, self.out_features = I, J, O
        self.add_param("W", glorot(as_rng(seed), I * J, O * J, shape=(O, I, J), dtype=dtype))
        if bias:
            self.add_param("b", np.zeros(O, dtype=dtype))

    def _W2(self, W):
        return W.reshape(self.out_features * self.in1_features, self.in2_features)

    @single_blas_pool
    def forward(self, x1, x2):
        W = self.params["W"]
        O, I, J = W.shape
        x1 = check_features(x1, num_cols=I, dtype=W.dtype, name="x1")
        if getattr(x2, "ndim", None) == 1:
            if x2.shape[0] != J or x2.dtype != W.dtype:
                raise (ValueError if x2.shape[0] != J else TypeError)(
                    f"x2 must have shape ({J},) or (N, {J}) for in2_features={J} and dtype {W.dtype}, "
                    f"got {tuple(x2.shape)} {x2.dtype}")
            V = ops.matmul(self._W2(W), x2.reshape(J, 1)).reshape(O, I)            # V = W s, one row per output
            y = ops.matmul_nt(x1, V)                                                # y = x1 V^T
            self._cache = (x1, x2, V)
        else:
            x2 = check_features(x2, num_rows=x1.shape[0], num_cols=J, dtype=W.dtype, name="x2")
            T = ops.matmul_nt(x2, self._W2(W)).reshape(x1.shape[0], O, I)          # T[n, o] = W[o] x2[n]
            y = ops.bilinear_rows(x1, T)                                            # y[n, o] = <x1[n], T[n, o]>
            self._cache = (x1, x2, T)
        if "b" in self.params:
            ops.add_bias(y, self.params["b"])
        return y

    @single_blas_pool
    def backward(self, grad_out):
        x1, x2, VT = self._saved()
        W = self.params["W"]
        O, I, J = W.shape
        dW2 = self._W2(self.grads["W"])                                             # a view: += reaches grads["W"]
        if "b" in self.params:
            ops.col_sum(grad_out, out=self.grads["b"], accumulate=True)            # db += sum_n G[n]
        if x2.ndim == 1:
            V = VT
            dx1 = ops.matmul(grad_out, V)                                           # dx1 = G V
            dV = ops.matmul_tn(grad_out, x1).reshape(1, O * I)                      # dV = G^T x1
            ops.matmul_tn(dV, x2.reshape(1, J), out=dW2, accumulate=True)           # dW[o, i] += dV[o, i] s
            dx2 = ops.matmul_tn(self._W2(W), dV.reshape(O * I, 1)).reshape(J)       # ds = W2^T vec(dV)
            return dx1, dx2
        T = VT
        dx1, dT = ops.bilinear_rows_backward(grad_out, x1, T)                       # dx1[n] = sum_o G[n,o] T[n,o]
        dT = dT.reshape(x1.shape[0], O * I)
        ops.matmul_tn(dT, x2, out=dW2, accumulate=True)                             # dW2 += dT^T x2
        return dx1, ops.matmul(dT, self._W2(W))                                     # dx2 = dT W2
