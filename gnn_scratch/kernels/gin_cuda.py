"""GIN's aggregation on the GPU (numba.cuda): the same name, argument order and semantics as ``gin_reference``.

Launch: ``cuda._row_launch``'s row-owner layout -- a warp (up to a block, for wide features) per
destination row, features across lanes, the row's edges in CSR order, then the root term. Every
output element is written by one thread: no atomics, deterministic. ``eps`` is read from device
memory, so a trained eps never travels to the host.
"""
from .cuda import _check, _check_csr, _check_float, _device, _jit, _launch, _row_launch, cuda, require_cuda


@_jit
def _gin_aggregate_kernel(indptr, indices, X, eps, out):
    n_root = min(out.shape[0], X.shape[0])
    scale = out.dtype.type(1) + eps[0]
    for i in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, out.shape[0],
                   cuda.gridDim.x * cuda.blockDim.y):
        lo, hi = indptr[i], indptr[i + 1]
        for f in range(cuda.threadIdx.x, out.shape[1], cuda.blockDim.x):
            acc = out.dtype.type(0)
            for e in range(lo, hi):
                acc += X[indices[e], f]
            if i < n_root:
                acc += scale * X[i, f]
            out[i, f] = acc


def gin_aggregate(indptr, indices, X, eps, out):
    """out[i] = sum_{e in row i} X[indices[e]] + (1 + eps[0]) X[i] (root term for i < N_X only).

    indptr (N_rows+1,) int, indices (E,) int, X (N_X, F), eps (1,), out (N_rows, F); floats of one
    dtype; out overwritten. O(E F + N F). Launch: a warp per row, features across lanes; no atomics.
    """
    require_cuda()
    indptr, indices, X, eps, out = _device(indptr=indptr, indices=indices, X=X, eps=eps, out=out)
    n_rows, _ = _check_csr(indptr, indices)
    _check("X", X, (None, None))
    _check("eps", eps, (1,))
    _check("out", out, (n_rows, X.shape[1]))
    _check_float(("X", X), ("eps", eps), ("out", out))
    _launch(_gin_aggregate_kernel, _row_launch(n_rows, X.shape[1]), indptr, indices, X, eps, out)
