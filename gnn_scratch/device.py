"""Placement: the one module that knows where an array lives and moves arrays between host and GPU.

Every other part of gnn_scratch asks no "where?" question. Layers call ``ops``; ops allocate their
outputs with ``empty`` / ``zeros`` *like* an input (on that input's device) and call the op
registry, which asks ``device_of`` once per call which implementation runs. Models, optimisers and
the training loop move things with ``to`` and never test placement themselves.

Two places exist: ``"cpu"`` (NumPy arrays, scipy.sparse matrices) and ``"cuda"`` (numba device
arrays, and ``DeviceCSR`` for sparse features). Nothing is copied between them behind the caller's
back: ``to`` / ``to_device`` / ``to_host`` are the only copies. An object that knows how to move
itself (a ``Graph``, a ``Module``) has a ``.to(device)`` method, which ``to`` calls: this module
knows no graph.

numba.cuda is imported on first device use, so the CPU path never imports it.
"""
import ctypes
import math
import operator

import numpy as np
import scipy.sparse as sp

DEVICES = ("cpu", "cuda")


def check_device(device):
    """Return ``device`` if it is "cpu" or "cuda", else raise ValueError naming the choices."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    return device


def _cuda():
    """numba.cuda, after checking that a GPU (or the simulator) is there (RuntimeError otherwise)."""
    from .kernels.cuda import cuda, require_cuda
    require_cuda()
    return cuda


def is_device_array(a):
    """True for a dense array on a GPU: it exposes ``__cuda_array_interface__``, or is a Numba device
    array (which under the CUDA simulator has no such interface but must still go to the GPU kernels)."""
    if hasattr(a, "__cuda_array_interface__"):
        return True
    if type(a).__module__.startswith("numba"):
        from numba.cuda.cudadrv.devicearray import is_cuda_ndarray
        return is_cuda_ndarray(a)
    return False


def is_device(a):
    """True for a device array or a ``DeviceCSR``."""
    return isinstance(a, DeviceCSR) or is_device_array(a)


# Types that always live on the host: asked once per op argument, so the common case costs one set lookup.
_HOST_TYPES = frozenset({np.ndarray, int, float, bool, str, tuple, type(None), np.float32, np.float64, np.int64,
                         np.uint64, np.int32, np.bool_})


def device_of(*arrays):
    """"cuda" if any of ``arrays`` lives on the GPU, else "cpu" (None entries are ignored)."""
    for a in arrays:
        if type(a) not in _HOST_TYPES and is_device(a):
            return "cuda"
    return "cpu"


def issparse(a):
    """True for a scipy sparse matrix on the host or a ``DeviceCSR`` on the device."""
    return isinstance(a, DeviceCSR) or sp.issparse(a)


# ================================================================================ sparse features on the GPU
class DeviceCSR:
    """A scipy CSR matrix X (N, F) on the device: its three arrays, plus its transpose's structure.

    indptr (N+1,) int64, indices (nnz,) int32 column ids, data (nnz,) float, and the transpose as
    t_indptr (F+1,) int64, t_indices (nnz,) int32 row ids, t_perm (nnz,) int64 -- the CSR position
    of each transposed entry -- built once on the host by ``from_scipy``. Then
        X @ W   = spmm_sum(indptr, indices, data, W, out)
        X^T @ G = spmm_sum_perm(t_indptr, t_indices, t_perm, data, G, out)
    and dropout on X replaces ``data`` only (``with_data``): the transposed product reads the new
    values through t_perm, so the structure never changes. The host structure is kept too
    (``host_indptr``, ``host_indices``) to rebuild a scipy matrix.
    """

    ndim = 2
    format = "csr"    # as scipy's: how the kernels recognise sparse features without asking where they live

    def __init__(self, indptr, indices, data, t_indptr, t_indices, t_perm, shape, host_indptr, host_indices):
        self.indptr, self.indices, self.data = indptr, indices, data
        self.t_indptr, self.t_indices, self.t_perm = t_indptr, t_indices, t_perm
        self.shape = tuple(int(s) for s in shape)
        self.host_indptr, self.host_indices = host_indptr, host_indices

    @classmethod
    def from_scipy(cls, X):
        """Move a scipy sparse matrix (N, F) to the device; the transpose is built here, on the host."""
        X = sp.csr_matrix(X, copy=True)   # a copy: sorting must not rewrite the caller's matrix
        X.sort_indices()
        N, F = X.shape
        indptr = np.ascontiguousarray(X.indptr, dtype=np.int64)
        indices = np.ascontiguousarray(X.indices, dtype=np.int32)
        rows = np.repeat(np.arange(N, dtype=np.int32), np.diff(indptr))
        t_perm = np.argsort(indices, kind="stable").astype(np.int64)
        t_indptr = np.zeros(F + 1, dtype=np.int64)
        np.cumsum(np.bincount(indices, minlength=F), out=t_indptr[1:])
        cuda = _cuda()
        return cls(cuda.to_device(indptr), cuda.to_device(indices), cuda.to_device(np.ascontiguousarray(X.data)),
                   cuda.to_device(t_indptr), cuda.to_device(np.ascontiguousarray(rows[t_perm])),
                   cuda.to_device(t_perm), X.shape, indptr, indices)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def nnz(self):
        return int(self.data.shape[0])

    def __getitem__(self, index):
        raise ValueError("a DeviceCSR cannot be sliced on the GPU: a layer that reads the first N_dst rows of "
                         "its input (the self term on a bipartite block) needs dense device features there, "
                         "or a square graph")

    def with_data(self, data):
        """The same sparsity pattern with new stored values (nnz,) on the device."""
        return DeviceCSR(self.indptr, self.indices, data, self.t_indptr, self.t_indices, self.t_perm, self.shape,
                         self.host_indptr, self.host_indices)

    def to_scipy(self):
        """A host scipy.sparse.csr_matrix copy."""
        return sp.csr_matrix((self.data.copy_to_host(), self.host_indices, self.host_indptr), shape=self.shape)

    def __repr__(self):
        return f"DeviceCSR(shape={self.shape}, nnz={self.nnz}, dtype={self.dtype})"


# ================================================================================ moving
def _moves_itself(a):
    """An object with its own ``.to(device)`` (a Graph, a Module), not an array."""
    return hasattr(a, "to") and not hasattr(a, "dtype") and callable(a.to)


def to_device(a):
    """A device copy of ``a``: NumPy array -> numba device array, scipy sparse -> ``DeviceCSR``, an object
    with ``.to`` -> ``a.to("cuda")``; device arrays and None come back unchanged. RuntimeError without a GPU."""
    if a is None or is_device(a):
        return a
    if _moves_itself(a):
        return a.to("cuda")
    if sp.issparse(a):
        return DeviceCSR.from_scipy(a)
    return _cuda().to_device(np.ascontiguousarray(a))


def to_host(a):
    """A host copy of a device array (NumPy) or ``DeviceCSR`` (scipy CSR); an object with ``.to`` ->
    ``a.to("cpu")``; host arrays come back unchanged."""
    if isinstance(a, DeviceCSR):
        return a.to_scipy()
    if is_device_array(a):
        return a.copy_to_host()
    if a is not None and _moves_itself(a):
        return a.to("cpu")
    return a


def to(a, device):
    """``a`` on ``device`` ("cpu" or "cuda"): ``to_host`` or ``to_device``; a tuple moves element by element."""
    if isinstance(a, tuple):
        return tuple(to(v, device) for v in a)
    return to_device(a) if check_device(device) == "cuda" else to_host(a)


# ================================================================================ allocating
# Host arrays of at least this many bytes start on a cache-line boundary. NumPy's arrays start wherever
# malloc puts them (16-byte aligned: a large mmap'd chunk starts 16 bytes past a page), so a gathered row
# of 64 bytes (16 float32) often spans two cache lines and a row of 256 bytes five: on a graph beyond the
# caches every edge of an SpMM pays those extra DRAM lines.
CACHE_LINE = 64
ALIGN_MIN_BYTES = 1 << 16


def host_empty(shape, dtype):
    """``np.empty(shape, dtype)`` starting on a ``CACHE_LINE`` boundary when it holds ``ALIGN_MIN_BYTES`` or more
    (a C-contiguous view of a slightly larger uint8 buffer). Smaller arrays, and dtypes a byte buffer cannot
    be viewed as (object, sub-array), are NumPy's own; NumPy validates the shape (TypeError, ValueError)."""
    dtype = np.dtype(dtype)
    # the ops' own call (a tuple of non-negative Python ints, ~100 per GIN training step) needs no normalising
    if not (type(shape) is tuple and all(type(s) is int and s >= 0 for s in shape)):
        dims = [shape] if np.ndim(shape) == 0 else list(shape)
        if any(isinstance(s, (bool, np.bool_)) for s in dims):     # operator.index takes a bool; NumPy does not
            return np.empty(shape, dtype=dtype)                      # its TypeError
        shape = tuple(operator.index(s) for s in dims)
        if any(s < 0 for s in shape):
            return np.empty(shape, dtype=dtype)
    if dtype.hasobject or dtype.subdtype is not None:
        return np.empty(shape, dtype=dtype)
    nbytes = dtype.itemsize * math.prod(shape)    # Python ints: no silent wrap-around
    if nbytes < ALIGN_MIN_BYTES:
        return np.empty(shape, dtype=dtype)
    buf = np.empty(nbytes + CACHE_LINE, dtype=np.uint8)
    # the address through ctypes' buffer protocol, and the array as one constructor call: 2.5-4.5 us a call
    # against 7.7-8.6 with ``buf.ctypes.data`` and a slice viewed and reshaped (a GIN step makes ~110 of them)
    start = -ctypes.addressof(ctypes.c_char.from_buffer(buf)) % CACHE_LINE
    return np.ndarray(shape, dtype, buf, start)


def empty(shape, dtype, like=None):
    """Uninitialised array of ``shape`` on the device of ``like`` (the host when like is None or on the host);
    a large host array starts on a cache line (``host_empty``)."""
    if like is not None and is_device(like):
        return _cuda().device_array(tuple(shape), dtype=np.dtype(dtype))
    return host_empty(shape, dtype)


def empty_like(a):
    """Uninitialised C-contiguous array with a's shape and dtype, on a's device.

    Always row-major, whatever a's layout: the kernels write outputs as flat row-major buffers
    (NumPy's ``empty_like`` keeps a transposed input's column-major layout, and a kernel writing
    through a reshaped copy of such an output would leave the caller's array unwritten)."""
    return empty(a.shape, a.dtype, like=a) if is_device(a) else host_empty(a.shape, a.dtype)


def zeros(shape, dtype, like=None):
    """Zeros of ``shape`` on the device of ``like`` (on the GPU: one host-to-device copy, for state made once)."""
    if like is not None and is_device(like):
        return to_device(np.zeros(shape, dtype=dtype))
    return np.zeros(shape, dtype=dtype)


def zeros_like(a):
    """Zeros with the shape and dtype of ``a``, on a's device."""
    return zeros(a.shape, a.dtype, like=a) if is_device(a) else np.zeros_like(a)


def copy_(dst, src):
    """dst[...] = src in place; src may be on the host (a state dict) when dst is on the device."""
    if is_device_array(dst):
        src = to_host(src)
        dst.copy_to_device(np.ascontiguousarray(src, dtype=dst.dtype).reshape(dst.shape))
    else:
        dst[...] = src
    return dst


def item(x):
    """A Python float from a host scalar, a 0-d / 1-element array, or a 1-element device array (one copy)."""
    if is_device_array(x):
        return float(x.copy_to_host().reshape(-1)[0])
    return float(x)


def synchronize(*arrays):
    """Wait for the GPU when any of ``arrays`` lives there (for timings); a no-op on the host."""
    if device_of(*arrays) == "cuda":
        _cuda().synchronize()
