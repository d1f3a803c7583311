"""PairNorm (Zhao & Akoglu, ICLR 2020): centre the node states, then rescale them (derivations/pair_norm.md)."""
import numpy as np

from ..device import to_host
from .checks import check_features, finite_real
from .module import Module


class PairNorm(Module):
    """PairNorm of Zhao & Akoglu (2020), with the meaning of PyG's ``PairNorm(scale, scale_individually, eps)``.

    On one graph of N nodes (all rows of x), with s = ``scale``:

        mu  = (1/N) sum_i x_i                    xc_i = x_i - mu
        scale_individually=False (PN):     y_i = s xc_i / sqrt(eps + (1/N) sum_k ||xc_k||^2)
        scale_individually=True  (PN-SI):  y_i = s xc_i / (eps + ||xc_i||)

    PN keeps the total pairwise squared distance (1/N^2) sum_{i,j} ||y_i - y_j||^2 = 2 s^2 (up to
    eps) whatever the layers below did, which is how it keeps deep GNNs from collapsing the states.

    Backward with G = dL/dy (derivations/pair_norm.md), P the centring (dx = dxc - mean_i dxc_i):
        PN:     sigma = sqrt(eps + (1/N) sum ||xc||^2);   dxc = (s / sigma) (G - (<G, xc>_F / (N sigma^2)) xc)
        PN-SI:  r_i = eps + ||xc_i||;   dxc_i = (s / r_i) (G_i - <G_i, xc_i> xc_i / (||xc_i|| r_i))
                (the second term is 0 where ||xc_i|| = 0: the norm's subgradient 0, as torch's)

    x: (N, F) float32 / float64, dense, host arrays (the layer is host-only: there is no
    centring or scalar-scaling op on the device yet; ``check_device_support`` says so before a
    model moves). ``graph`` is not used (the statistics run over all N rows). Raises ValueError
    for a scale or eps that is not a finite number (eps must be > 0 for PN-SI, >= 0 for PN) or an
    input that is not 2-D, finite and dense.
    """

    def __init__(self, scale=1.0, scale_individually=False, eps=1e-5):
        super().__init__()
        self.scale = finite_real("scale", scale)
        self.eps = finite_real("eps", eps)
        if self.eps < 0 or (scale_individually and self.eps == 0):
            raise ValueError(f"eps must be {'> 0' if scale_individually else '>= 0'}, got {eps!r}")
        self.scale_individually = bool(scale_individually)

    def check_device_support(self):
        raise ValueError("PairNorm has no device path yet (no centring op on the GPU): train it on the cpu")

    def forward(self, x, graph=None):
        x = check_features(x, name="x")
        if not isinstance(x, np.ndarray):
            raise TypeError(f"PairNorm takes a dense host array x (N, F), got {type(x).__name__}")
        xc = x - x.mean(axis=0, keepdims=True)
        s = x.dtype.type(self.scale)
        if self.scale_individually:
            norm = np.sqrt(np.sum(xc * xc, axis=1, keepdims=True))
            r = self.eps + norm
            y = s * xc / r
            self._cache = (xc, norm, r)
        else:
            sigma = np.sqrt(self.eps + np.mean(np.sum(xc * xc, axis=1)))
            y = s * xc / sigma
            self._cache = (xc, sigma, None)
        return y.astype(x.dtype, copy=False)

    def backward(self, grad_out):
        xc, a, r = self._saved()
        G = np.asarray(to_host(grad_out))
        s, N = self.scale, xc.shape[0]
        if self.scale_individually:
            norm = a
            gx = np.sum(G * xc, axis=1, keepdims=True)                        # <G_i, xc_i>
            coef = np.divide(gx, norm * r, out=np.zeros_like(gx), where=norm > 0)
            dxc = (s / r) * (G - coef * xc)
        else:
            sigma = a
            dxc = (s / sigma) * (G - (np.sum(G * xc) / (N * sigma * sigma)) * xc)
        return (dxc - dxc.mean(axis=0, keepdims=True)).astype(G.dtype, copy=False)   # through the centring
