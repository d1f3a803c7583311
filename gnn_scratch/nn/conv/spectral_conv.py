"""Spectral networks of Bruna et al. (2014): filters as free (or smooth) multipliers in the Laplacian's eigenbasis.

Derived in derivations/spectral_conv.md. A dense O(N²)-memory, O(N³)-set-up teaching layer: it forms
the N x N eigenvector matrix U of the graph Laplacian, so it refuses graphs above ``MAX_NODES`` nodes.
"""
import numpy as np
import scipy.interpolate
import scipy.linalg

from ... import ops
from ...device import issparse
from ...threads import single_blas_pool
from ..checks import check_features, check_graph, float_dtype, positive_int
from ..init import as_rng, glorot
from ..module import Module
from .cheb_conv import laplacian

MAX_NODES = 5000          # U alone is N² float64: 200 MB at 5,000 nodes, and eigh costs O(N³)
SPECTRAL_NORMALIZATIONS = ("sym", None)


def eigenbasis(graph, normalization="sym", max_nodes=MAX_NODES):
    """(eigenvalues (N,) ascending, U (N, N) orthonormal columns) of the Laplacian, float64, cached on the graph.

    L is ChebConv's (``cheb_conv.laplacian``: PyG's ``get_laplacian``); ``scipy.linalg.eigh`` of the
    dense L, once per graph and normalisation (``Graph.derived``). L must be symmetric: the graph
    undirected (every edge j -> i matched by i -> j of the same weight). Raises ValueError above
    ``max_nodes`` nodes, for a directed graph, and for a normalisation other than "sym" or None
    ("rw"'s I - D^-1 A is not symmetric: its eigenvectors are not orthogonal).
    """
    if normalization not in SPECTRAL_NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {SPECTRAL_NORMALIZATIONS} (a symmetric Laplacian), "
                         f"got {normalization!r}")
    if graph.num_dst > max_nodes:
        raise ValueError(f"SpectralConv is a dense teaching layer (O(N²) memory, O(N³) eigendecomposition): the "
                         f"graph has {graph.num_dst} nodes, more than max_nodes={max_nodes}; use ChebConv")

    def build(host):
        g, val = laplacian(host, normalization)
        L = g.to_scipy(val).toarray()
        asym = float(np.max(np.abs(L - L.T)))
        if asym > 1e-12 * max(float(np.max(np.abs(L))), 1.0):
            i, j = np.unravel_index(int(np.argmax(np.abs(L - L.T))), L.shape)
            raise ValueError(f"SpectralConv needs an undirected graph (a symmetric Laplacian): L[{i}, {j}] = "
                             f"{L[i, j]:g} but L[{j}, {i}] = {L[j, i]:g}; add each edge's reverse")
        lam, U = scipy.linalg.eigh((L + L.T) / 2)
        return lam, U
    return graph.derived(("spectral_eigh", normalization), build)


def spline_basis(eigenvalues, num_basis, lo, hi):
    """B (d, q): q cubic B-splines over [lo, hi] (uniform clamped knots) evaluated at the eigenvalues.

    Each row sums to 1 (a partition of unity), and B[k] depends on λ_k only: θ = B α is a smooth
    function of the frequency, the same for eigenvectors of one eigenvalue (Bruna et al.'s smooth
    multipliers, with the fixed interpolation kernel a cubic spline). Needs q >= 4.
    """
    interior = np.linspace(lo, hi, num_basis - 2)[1:-1]
    t = np.concatenate([[lo] * 4, interior, [hi] * 4])
    x = np.clip(np.asarray(eigenvalues, dtype=np.float64), lo, hi)
    return scipy.interpolate.BSpline.design_matrix(x, t, 3).toarray()


class SpectralConv(Module):
    """out[:, o] = Σ_i U diag(θ[:, i, o]) Uᵀ x[:, i] + b: free spectral multipliers (Bruna et al., 2014).

    U (N, d): the eigenvectors of the d smallest eigenvalues of the graph Laplacian (``eigenbasis``:
    ChebConv's "sym" or None Laplacian of an undirected graph), d = ``num_eigenvectors`` (all N when
    None, allowed only with smooth multipliers: free ones need d to size θ). θ (d, F_in, F_out) holds
    one multiplier per frequency and channel pair. With ``smooth_basis=q``, θ = B α, α (q, F_in, F_out)
    the parameters and B (d, q) the fixed cubic-spline basis over the eigenvalues (``spline_basis`` on
    [0, 2] for "sym", [0, λ_max] for None): Bruna's smooth multipliers, q parameters per filter
    whatever N. Per frequency k the layer is a linear map of the spectral coefficients:
        X^ = Uᵀ X (d, F_in);  Y^[k] = X^[k] θ[k] (d, F_out);  out = U Y^ + b.
    Backward (derivations/spectral_conv.md), G^ = Uᵀ G:
        dθ[k] = X^[k]ᵀ G^[k] (outer products);  dα[q] = Σ_k B[k, q] dθ[k]
        dX = U dX^ with dX^[k] = θ[k] G^[k];  db = Σ_n G[n]

    A dense O(N²) teaching layer: U is formed (``MAX_NODES`` = 5,000 at most; eigh once per graph) and
    every forward costs O(N d F); it has no device path. x must be dense (N, F_in).
    """

    needs_input_grad = True

    def __init__(self, in_channels, out_channels, num_eigenvectors=None, smooth_basis=None, normalization="sym",
                 bias=True, seed=0, dtype=np.float32):
        super().__init__()
        F_in, F_out = positive_int("in_channels", in_channels), positive_int("out_channels", out_channels)
        if normalization not in SPECTRAL_NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {SPECTRAL_NORMALIZATIONS} (a symmetric Laplacian), "
                             f"got {normalization!r}")
        d = None if num_eigenvectors is None else positive_int("num_eigenvectors", num_eigenvectors)
        q = None if smooth_basis is None else positive_int("smooth_basis", smooth_basis)
        if q is None and d is None:
            raise ValueError("SpectralConv with free multipliers needs num_eigenvectors (θ has one row per "
                             "eigenvector); or give smooth_basis for smooth multipliers")
        if q is not None and q < 4:
            raise ValueError(f"smooth_basis must be >= 4 (cubic splines), got {q}")
        dtype = float_dtype(dtype)
        self.in_channels, self.out_channels = F_in, F_out
        self.num_eigenvectors, self.smooth_basis, self.normalization = d, q, normalization
        rng = as_rng(seed)
        # each frequency (or spline coefficient) starts as an independent Glorot-initialised F_in x F_out map
        name, rows = ("theta", d) if q is None else ("alpha", q)
        self.add_param(name, np.stack([glorot(rng, F_in, F_out, dtype=dtype) for _ in range(rows)]))
        if bias:
            self.add_param("b", np.zeros(F_out, dtype=dtype))

    def __repr__(self):
        kind = "free" if self.smooth_basis is None else f"smooth_basis={self.smooth_basis}"
        return f"SpectralConv({self.in_channels}, {self.out_channels}, d={self.num_eigenvectors}, {kind})"

    def check_device_support(self):
        raise ValueError("SpectralConv is a dense host-only teaching layer (eigenvectors from scipy): it has no "
                         "device path; use ChebConv on the GPU")

    def spectrum(self, graph):
        """(eigenvalues (d,), U (N, d) in the layer's dtype, B (d, q) or None) of ``graph``, cached on it."""
        lam, U = eigenbasis(graph, self.normalization)
        d = lam.size if self.num_eigenvectors is None else self.num_eigenvectors
        if d > lam.size:
            raise ValueError(f"num_eigenvectors={d} exceeds the graph's {lam.size} nodes")
        dt = self.param_dtype
        U_d = graph.host.cached(("spectral_U", self.normalization, d, dt.str),
                                lambda: np.ascontiguousarray(U[:, :d], dtype=dt))
        B = None
        if self.smooth_basis is not None:
            hi = 2.0 if self.normalization == "sym" else float(lam[-1])
            B = graph.host.cached(("spectral_B", self.normalization, d, self.smooth_basis, dt.str),
                                  lambda: spline_basis(lam[:d], self.smooth_basis, 0.0, hi).astype(dt))
        return lam[:d], U_d, B

    def multipliers(self, B):
        """θ (d, F_in, F_out): the free parameter, or B α."""
        if B is None:
            return self.params["theta"]
        return np.einsum("kq,qio->kio", B, self.params["alpha"])

    @single_blas_pool
    def forward(self, x, graph=None):
        check_graph(self, graph)
        if issparse(x):
            raise ValueError("SpectralConv needs dense x (it projects x on the dense eigenvectors)")
        X = check_features(x, num_cols=self.in_channels, dtype=self.param_dtype, graph=graph)
        _, U, B = self.spectrum(graph)
        theta = self.multipliers(B)
        X_hat = ops.matmul_tn(U, X)                                   # X^ = Uᵀ X            (d, F_in)
        Y_hat = np.einsum("ki,kio->ko", X_hat, theta)                 # Y^[k] = X^[k] θ[k]   (d, F_out)
        out = ops.matmul(U, Y_hat)                                    # out = U Y^           (N, F_out)
        if "b" in self.params:
            ops.add_bias(out, self.params["b"])
        self._cache = (U, B, theta, X_hat)
        return out

    @single_blas_pool
    def backward(self, grad_out):
        U, B, theta, X_hat = self._saved()
        if "b" in self.params:
            ops.col_sum(grad_out, out=self.grads["b"], accumulate=True)          # db += Σ_n G[n]
        G_hat = ops.matmul_tn(U, grad_out)                                       # G^ = Uᵀ G   (d, F_out)
        if B is None:
            self.grads["theta"] += np.einsum("ki,ko->kio", X_hat, G_hat)         # dθ[k] += X^[k]ᵀ G^[k]
        else:
            self.grads["alpha"] += np.einsum("kq,ki,ko->qio", B, X_hat, G_hat)   # dα[q] += Σ_k B[k,q] dθ[k]
        if not self.needs_input_grad:
            return None
        dX_hat = np.einsum("kio,ko->ki", theta, G_hat)                           # dX^[k] = θ[k] G^[k]
        return ops.matmul(U, dX_hat)                                             # dX = U dX^

    def frequency_response(self, graph):
        """(eigenvalues (d,), θ (d, F_in, F_out)): the multiplier each eigenvector gets, per channel pair."""
        lam, _, B = self.spectrum(graph)
        return lam, np.array(self.multipliers(B))
