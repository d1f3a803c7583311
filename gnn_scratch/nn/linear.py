"""Linear layer: Y = X W + b."""
import numpy as np

from .. import ops
from ..device import issparse
from ..threads import layer_blas_pool, single_blas_pool
from .checks import check_features, float_dtype, positive_int
from .init import as_rng, glorot
from .module import Module


class Linear(Module):
    """Y = X W + b.

    X: (N, F_in) float (dense, or scipy.sparse for a first layer), W: (F_in, F_out), b: (F_out,).
    Backward (derivations/linear.md):  dW = X^T G,  db = sum_n G[n],  dX = G W^T.
    For a sparse X the input gradient is not computed (``backward`` returns None): features are data.
    Nor with ``needs_input_grad = False``, which the trainer sets on a first layer (its input is data).
    """

    needs_input_grad = True

    def __init__(self, in_channels, out_channels, bias=True, seed=0, dtype=np.float32):
        super().__init__()
        in_channels, out_channels = positive_int("in_channels", in_channels), positive_int("out_channels", out_channels)
        dtype = float_dtype(dtype)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.add_param("W", glorot(as_rng(seed), in_channels, out_channels, dtype=dtype))
        if bias:
            self.add_param("b", np.zeros(out_channels, dtype=dtype))

    @layer_blas_pool
    def forward(self, x, graph=None):
        x = check_features(x, num_cols=self.in_channels, dtype=self.params["W"].dtype)   # (N, in_channels)
        self._cache = x
        y = ops.matmul(x, self.params["W"])
        if "b" in self.params:
            ops.add_bias(y, self.params["b"])
        return y

    @single_blas_pool
    def backward(self, grad_out):
        x = self._saved()
        ops.matmul_tn(x, grad_out, out=self.grads["W"], accumulate=True)      # dW += X^T G
        if "b" in self.params:
            ops.col_sum(grad_out, out=self.grads["b"], accumulate=True)        # db += sum_n G[n]
        if issparse(x) or not self.needs_input_grad:
            return None
        return ops.matmul_nt(grad_out, self.params["W"])                      # dX = G W^T
