"""Dense and element-wise operations on host or device arrays: one call site for the CPU and the GPU.

The layers call these functions where an operand may live on the GPU. Each looks at where its
operands are (``kernels.is_device_array``, or a ``DeviceCSR`` for sparse features):

* host arrays get exactly the NumPy expression the layer used before (``np.asarray(A @ B)``,
  ``out += G.sum(axis=0)``, ...), so the CPU path keeps its results bit for bit and its speed
  (the cost is one ``is_device_array`` test per call);
* device arrays get the numba.cuda kernels of ``kernels/dense_cuda.py`` (sparse products go to the
  SpMM kernels of ``kernels/cuda.py``), with outputs allocated on the device. Nothing is copied
  between host and device behind the caller's back: a host operand mixed with device ones is an
  error. ``to_device`` / ``to_host`` / ``to`` are the only copies.

The GPU modules are imported on first device use, so the CPU path never imports numba.cuda.

Shapes follow the layers: X (N, F_in) dense or sparse, W (F_in, F_out), b (F_out,), G (N, F_out).
"""
import numpy as np
import scipy.sparse as sp

from .kernels import is_device_array

from .device import (DEVICES, DeviceCSR, check_device, copy_, empty, empty_like, is_device, issparse,  # noqa: F401
                     item, synchronize, to, to_device, to_host, zero_, zeros, zeros_like)


def _cuda():
    from numba import cuda
    return cuda


def _dc():
    """The dense CUDA kernels, after checking that a GPU (or the simulator) is there."""
    from .kernels import cuda as ck
    from .kernels import dense_cuda
    ck.require_cuda()
    return dense_cuda


def _ck():
    from .kernels import cuda as ck
    ck.require_cuda()
    return ck


# ================================================================================ products and sums
def _put(result, out, accumulate):
    """The host tail of the out=/accumulate= convention."""
    if out is None:
        return result
    if accumulate:
        out += result
    else:
        out[...] = result
    return out


def matmul(A, B):
    """A @ B: A (N, K) dense or sparse, B (K, F) -> (N, F). Host: ``np.asarray(A @ B)``."""
    if not (is_device(A) or is_device(B)):
        return np.asarray(A @ B)
    out = empty((A.shape[0], B.shape[1]), B.dtype, like=B)
    if isinstance(A, DeviceCSR):
        _ck().spmm_sum(A.indptr, A.indices, A.data, B, out)
    else:
        _dc().matmul(A, B, out)
    return out


def matmul_tn(A, B, out=None, accumulate=False):
    """A^T @ B: A (K, M) dense or sparse, B (K, N) -> (M, N); into ``out`` (added with ``accumulate``).

    Host: ``np.asarray(A.T @ B)`` (then ``out += ...``). Device: the split-K tiled kernel, or for a
    DeviceCSR the transposed SpMM through t_perm.
    """
    if not (is_device(A) or is_device(B) or (out is not None and is_device(out))):
        return _put(np.asarray(A.T @ B), out, accumulate)
    M, N = A.shape[1], B.shape[1]
    if isinstance(A, DeviceCSR):
        res = empty((M, N), B.dtype, like=B)
        _ck().spmm_sum_perm(A.t_indptr, A.t_indices, A.t_perm, A.data, B, res)
        if out is None:
            return res
        if accumulate:
            _dc().add(out, res)
            return out
        _dc().add(zero_(out), res)
        return out
    if out is None:
        out = empty((M, N), B.dtype, like=B)
        accumulate = False
    _dc().matmul_tn(A, B, out, accumulate)
    return out


def matmul_nt(A, B):
    """A @ B^T: A (M, K), B (N, K) -> (M, N). Host: ``A @ B.T``."""
    if not (is_device(A) or is_device(B)):
        return A @ B.T
    out = empty((A.shape[0], B.shape[0]), A.dtype, like=A)
    _dc().matmul_nt(A, B, out)
    return out


def add_bias(Y, b):
    """Y += b on every row, in place; returns Y. Host: ``Y += b``."""
    if is_device(Y):
        _dc().add_bias(Y, b)
    elif (isinstance(Y, np.ndarray) and Y.ndim == 2 and Y.flags.c_contiguous and Y.dtype in (np.float32, np.float64)
          and isinstance(b, np.ndarray) and b.shape == (Y.shape[1],) and b.dtype == Y.dtype):
        from .nn import elementwise as ew    # one pass without NumPy's per-row broadcast cost; the same sums
        ew.call(ew.add_bias_rows, Y.size, Y, b)
    else:
        Y += b
    return Y


def col_sum(G, out=None, accumulate=False):
    """sum_n G[n]: (N, F) -> (F,); into ``out`` (added with ``accumulate``). Host: ``G.sum(axis=0)``."""
    if not is_device(G):
        return _put(G.sum(axis=0), out, accumulate)
    if out is None:
        out = empty((G.shape[1],), G.dtype, like=G)
        accumulate = False
    _dc().col_sum(G, out, accumulate)
    return out


def add_(acc, x):
    """acc += x in place; returns acc."""
    if is_device(acc):
        _dc().add(acc, x)
    else:
        acc += x
    return acc


def mul(a, b):
    """a * b element-wise (same shape). Host: ``a * b``."""
    if not (is_device(a) or is_device(b)):
        return a * b
    out = empty_like(a)
    _dc().mul(a, b, out)
    return out


# ============================================================================ GAT's per-head pieces
# Z is (N, H, F): H heads of F features (a contiguous (N, H F) array reshaped, for free).
def head_dot(Z, att, n_rows=None):
    """a[n, h] = <Z[n, h], att[h]> for the first ``n_rows`` rows (all by default): (n_rows, H).

    GAT's score halves a_src (all sources) and a_dst (the N_dst destinations). Host:
    ``np.einsum("nhf,hf->nh", Z[:n_rows], att)``.
    """
    n = Z.shape[0] if n_rows is None else n_rows
    if not (is_device(Z) or is_device(att)):
        return np.einsum("nhf,hf->nh", Z[:n], att)
    out = empty((n, Z.shape[1]), Z.dtype, like=Z)
    _dc().head_dot(Z, att, out)
    return out


def head_dot_backward_att(da, Z, out=None, accumulate=False):
    """datt[h, f] = sum_n da[n, h] Z[n, h, f] over the rows of da (the first len(da) rows of Z): (H, F).

    Into ``out`` (added with ``accumulate``). Host: ``np.einsum("nh,nhf->hf", da, Z[:len(da)])``;
    device: a column-sum tree, deterministic, no atomics.
    """
    if not (is_device(da) or is_device(Z) or (out is not None and is_device(out))):
        return _put(np.einsum("nh,nhf->hf", da, Z[:da.shape[0]]), out, accumulate)
    if out is None:
        out = empty(Z.shape[1:], Z.dtype, like=Z)
        accumulate = False
    _dc().head_dot_backward_att(da, Z, out, accumulate)
    return out


def head_dot_backward_Z_(dZ, da, att):
    """dZ[n, h, f] += da[n, h] att[h, f] for the rows of da, in place; returns dZ.

    Host: ``dZ[:len(da)] += da[:, :, None] * att``.
    """
    if is_device(dZ):
        _dc().head_dot_backward_Z(dZ, da, att)
    else:
        dZ[:da.shape[0]] += da[:, :, None] * att
    return dZ


def head_mean(Y):
    """The mean over heads: (N, H, F) -> (N, F). Host: ``Y.mean(axis=1)``."""
    if not is_device(Y):
        return Y.mean(axis=1)
    out = empty((Y.shape[0], Y.shape[2]), Y.dtype, like=Y)
    _dc().head_mean(Y, out)
    return out


def head_mean_backward(G, heads):
    """The gradient of ``head_mean``: each head receives G / H, (N, F) -> (N, H, F) (contiguous)."""
    N, F = G.shape
    if not is_device(G):
        return np.ascontiguousarray(np.broadcast_to((G / G.dtype.type(heads))[:, None, :], (N, heads, F)))
    out = empty((N, heads, F), G.dtype, like=G)
    _dc().head_mean_backward(G, out)
    return out


def attention_keep_mask(layer, shape, keep):
    """An attention-dropout keep mask (E, H) uint8 on the device, drawn by the counter hash of ``dropout``.

    The keys come from ``dropout_keys(layer)`` (a seed drawn once from ``layer.rng``, and the call
    number), so masks repeat for a model seed and change at every call;
    ``dense_cuda.dropout_uniform_host(E * H, key0, key1) < float32(keep)`` recomputes one on the host.
    """
    mask = _cuda().device_array(tuple(shape), dtype=np.uint8)
    key0, key1 = dropout_keys(layer)
    _dc().keep_mask(key0, key1, keep, mask)
    return mask


# =========================================================================== row L2 normalisation
def row_normalize(x, eps):
    """(y, norm): y[i] = x[i] / max(||x[i]||, eps), norm (N,) the row norms (SAGEConv's normalize).

    Device only: SAGEConv's host path keeps its own NumPy expressions.
    """
    y, norm = empty_like(x), empty((x.shape[0],), x.dtype, like=x)
    _dc().row_normalize(x, eps, y, norm)
    return y, norm


def row_normalize_backward(G, y, norm, eps):
    """dx = (G - y (y.G)) / ||x|| per row, or G / eps where ||x|| <= eps. Device only."""
    out = empty_like(G)
    _dc().row_normalize_backward(G, y, norm, eps, out)
    return out


# ==================================================================================== activations
def relu_forward(x):
    """(y, pos): y = max(x, 0), pos = x > 0 (the backward's cache). Host: ReLU's NumPy expressions."""
    if not is_device(x):
        pos = x > 0
        return np.where(pos, x, 0).astype(x.dtype, copy=False), pos
    y, pos = empty_like(x), empty(x.shape, np.bool_, like=x)
    _dc().relu(x, y, pos)
    return y, pos


def relu_backward(grad_out, pos):
    """grad_out * [x > 0]. Host: ``grad_out * pos``."""
    if not is_device(grad_out):
        return grad_out * pos
    out = empty_like(grad_out)
    _dc().relu_backward(grad_out, pos, out)
    return out


def leaky_relu_forward(x, negative_slope):
    """(y, pos): y = x if x > 0 else s x, pos = x > 0."""
    if not is_device(x):
        pos = x > 0
        return np.where(pos, x, negative_slope * x).astype(x.dtype, copy=False), pos
    y, pos = empty_like(x), empty(x.shape, np.bool_, like=x)
    _dc().leaky_relu(x, negative_slope, y, pos)
    return y, pos


def leaky_relu_backward(grad_out, pos, negative_slope):
    """grad_out * (1 if x > 0 else s)."""
    if not is_device(grad_out):
        return grad_out * np.where(pos, 1, negative_slope).astype(grad_out.dtype)
    out = empty_like(grad_out)
    _dc().leaky_relu_backward(grad_out, pos, negative_slope, out)
    return out


def elu_forward(x, alpha):
    """(y, pos): y = x if x > 0 else a (e^x - 1), pos = x > 0."""
    if not is_device(x):
        y = np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype, copy=False)
        return y, x > 0
    y, pos = empty_like(x), empty(x.shape, np.bool_, like=x)
    _dc().elu(x, alpha, y, pos)
    return y, pos


def elu_backward(grad_out, pos, y, alpha):
    """grad_out * (1 if x > 0 else y + a), y the forward output."""
    if not is_device(grad_out):
        return grad_out * np.where(pos, 1, y + alpha).astype(grad_out.dtype)
    out = empty_like(grad_out)
    _dc().elu_backward(grad_out, pos, y, alpha, out)
    return out


# ======================================================================================== dropout
_dropout_masks = "device"


def set_dropout_masks(source):
    """Where dropout masks of device arrays come from:

    * "device" (default): drawn on the GPU by ``dense_cuda.dropout``'s counter-based hash, keyed by a
      seed that the layer draws once from its own generator and by the call number -- the same
      model seed gives the same masks, on any GPU and under the simulator, with no host work;
    * "host": the layer's own NumPy generator draws them exactly as on the CPU (the very same masks,
      the same generator state afterwards), and each mask is copied to the device -- for comparing
      a GPU run with a CPU run; it costs one host-to-device copy of the mask per call.
    """
    global _dropout_masks
    if source not in ("device", "host"):
        raise ValueError(f"dropout masks come from 'device' or 'host', got {source!r}")
    _dropout_masks = source


def get_dropout_masks():
    return _dropout_masks


_M64 = (1 << 64) - 1


def _splitmix64(z):
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def dropout_keys(layer):
    """The (key0, key1) of the next device mask of ``layer``: splitmix64 of (seed, call number).

    The seed is drawn once from ``layer.rng`` on the first device call and kept, with the call
    counter, in ``layer.device_dropout_state``.
    """
    state = getattr(layer, "device_dropout_state", None)
    if state is None:
        state = layer.device_dropout_state = [int(layer.rng.integers(0, 1 << 32)), 0]
    z = _splitmix64((state[0] << 32) | (state[1] & 0xFFFFFFFF))
    state[1] += 1
    return z & 0xFFFFFFFF, z >> 32


def dropout_forward(x, layer):
    """Training-mode inverted dropout of a device array for the Dropout ``layer``: (y, cache).

    y = x * scale with scale = [u < keep] / keep (keep = 1 - layer.p). cache is the device ``scale``
    for a dense x, or "sparse" for a DeviceCSR, whose stored values alone are dropped (as on the
    CPU) and which has no gradient. Masks come from ``set_dropout_masks``' source.
    """
    keep = 1.0 - layer.p
    sparse = isinstance(x, DeviceCSR)
    data = x.data if sparse else x
    dc = _dc()
    y = empty_like(data)
    if _dropout_masks == "host":
        if sparse:
            ones = sp.csr_matrix((np.ones(x.nnz, dtype=x.dtype), x.host_indices, x.host_indptr), shape=x.shape)
            scale = to_device(layer.forward(ones).data)
        else:
            scale = to_device(layer.forward(np.ones(x.shape, dtype=x.dtype)))
        dc.mul(data, scale, y)
    else:
        scale = empty_like(data)
        key0, key1 = dropout_keys(layer)
        dc.dropout(data, key0, key1, keep, y, scale)
    if sparse:
        return x.with_data(y), "sparse"
    return y, scale


# ============================================================================ loss and accuracy
class CrossEntropyCache:
    """What the device cross-entropy's backward needs: Z, y, mask and the (sum, count) totals."""

    def __init__(self, Z, y, mask, totals):
        self.Z, self.y, self.mask, self.totals = Z, y, mask, totals


def _device_mask(mask, like):
    return empty((0,), np.bool_, like=like) if mask is None else mask


def cross_entropy(Z, y, mask=None):
    """Masked mean softmax cross-entropy: (loss, cache).

    Host Z: ``nn.SoftmaxCrossEntropy`` itself (loss a float; cache the loss object). Device Z:
    y (N,) int and mask (N,) bool must be device arrays too (moved once, by the caller); loss is a
    (1,) device array (``item`` reads it), the labels are not range-checked (``train.fit`` checks
    them on the host before moving them), and an empty mask gives NaN.
    """
    if not is_device(Z):
        from .nn.loss import SoftmaxCrossEntropy
        ce = SoftmaxCrossEntropy()
        return ce.forward(Z, y, mask), ce
    mask = _device_mask(mask, Z)
    rows = empty((Z.shape[0], 2), Z.dtype, like=Z)
    totals = empty((2,), Z.dtype, like=Z)
    loss = empty((1,), Z.dtype, like=Z)
    _dc().cross_entropy(Z, y, mask, rows, totals, loss)
    return loss, CrossEntropyCache(Z, y, mask, totals)


def cross_entropy_backward(cache):
    """dL/dZ from ``cross_entropy``'s cache: (softmax - onehot) / |M| on the masked rows, 0 elsewhere."""
    if not isinstance(cache, CrossEntropyCache):
        return cache.backward()
    dZ = empty_like(cache.Z)
    _dc().cross_entropy_backward(cache.Z, cache.y, cache.mask, cache.totals, dZ)
    return dZ


def accuracy(Z, y, mask=None):
    """Fraction of the masked nodes whose arg-max logit is their label (NaN for an empty mask).

    Host: ``nn.accuracy``. Device: counted on the GPU; the two counts are the only copy back.
    """
    if not is_device(Z):
        from .nn.loss import accuracy as host_accuracy
        return host_accuracy(Z, y, mask)
    rows = empty((Z.shape[0], 2), np.float64, like=Z)
    totals = empty((2,), np.float64, like=Z)
    _dc().accuracy_counts(Z, y, _device_mask(mask, Z), rows, totals)
    correct, count = totals.copy_to_host()
    return float(correct / count) if count else float("nan")


# ================================================================================== optimisers
def sgd_update(p, grad, state, lr, momentum=0.0, weight_decay=0.0):
    """One SGD step in place, as ``optim.SGD._update``; ``state`` holds the velocity "v" (created on p's device)."""
    if not is_device(p):
        d = grad + weight_decay * p if weight_decay else grad
        if momentum:
            v = state.setdefault("v", np.zeros_like(p))
            v *= momentum
            v += d
            d = v
        p -= (lr * d).astype(p.dtype, copy=False)
        return p
    if momentum and "v" not in state:
        state["v"] = zeros_like(p)
    _dc().sgd_update(p, grad, state.get("v", p), lr, momentum, weight_decay)
    return p


def adam_update(p, grad, state, t, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """One Adam step in place, as ``optim.Adam._update`` (t = step number from 1); ``state`` holds "m", "v"."""
    if not is_device(p):
        d = grad + weight_decay * p if weight_decay else grad
        b1, b2 = betas
        m = state.setdefault("m", np.zeros_like(p))
        v = state.setdefault("v", np.zeros_like(p))
        m *= b1
        m += (1 - b1) * d
        v *= b2
        v += (1 - b2) * d * d
        step = lr / (1 - b1 ** t)
        p -= (step * m / (np.sqrt(v / (1 - b2 ** t)) + eps)).astype(p.dtype, copy=False)
        return p
    if "m" not in state:
        state["m"], state["v"] = zeros_like(p), zeros_like(p)
    _dc().adam_update(p, grad, state["m"], state["v"], t, lr, betas, eps, weight_decay)
    return p
