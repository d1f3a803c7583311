"""Parameters as views of one flat buffer, so that an optimiser updates them all with one kernel call.

A training step on a small batch (GIN on 32 graphs: ~40 parameter arrays of at most 64 x 64) spends
more time calling the optimiser's kernel once per parameter, and zeroing each gradient, than in the
arithmetic. ``flatten_parameters(module)`` moves the tree's parameters into views of one contiguous
1-D array, and its gradients into views of another, in ``named_parameters`` order; the values do
not change. An optimiser built on the pairs afterwards (``optim.Optimizer``) sees that they tile
one buffer and updates the buffer in one call -- Adam's and SGD's updates are element-wise, so the
bits are those of the per-parameter calls.

Nothing else changes: ``params`` / ``grads`` still hold arrays of the same shapes and dtypes,
``zero_grad`` / ``load_state_dict`` write in place, and ``Module.to`` replaces the views by device
copies (an optimiser built after that takes the per-parameter path).
"""
import numpy as np


def flatten_parameters(module):
    """Re-home ``module``'s host parameters and gradients into two flat buffers (in place); True when done.

    Leaves the tree as it is (False) when it has no parameters, when a parameter or gradient is
    not a plain host ``numpy.ndarray`` (a device array, a row-sparse gradient), when dtypes differ,
    or when one array appears twice (shared weights). Returns True without copying when the tree
    is already flat.
    """
    owners = [(m, k) for _, m in module.modules() for k in m.params]
    if not owners:
        return False
    params = [m.params[k] for m, k in owners]
    grads = [m.grads[k] for m, k in owners]
    if any(type(a) is not np.ndarray for a in params + grads):
        return False
    dtype = params[0].dtype
    if any(a.dtype != dtype for a in params + grads) or len({id(a) for a in params + grads}) != 2 * len(params):
        return False
    if flat_span(params) is not None and flat_span(grads) is not None:
        return True
    total = sum(p.size for p in params)
    P, G = np.empty(total, dtype=dtype), np.empty(total, dtype=dtype)
    off = 0
    for (m, k), p, g in zip(owners, params, grads):
        n = p.size
        P[off:off + n] = p.reshape(-1)
        G[off:off + n] = g.reshape(-1)
        m.params[k] = P[off:off + n].reshape(p.shape)
        m.grads[k] = G[off:off + n].reshape(g.shape)
        off += n
    return True


def _address(a):
    return a.__array_interface__["data"][0]


def flat_span(arrays):
    """The 1-D view of one buffer that ``arrays`` tile, back to back in this order; None when they do not.

    Each array must be a C-contiguous host ``numpy.ndarray`` viewing the same 1-D owner, of its
    dtype, the next one starting where the previous one ends. (A list that tiles a buffer holds
    each element once, so an element-wise update of the span is the per-array updates.)
    """
    if not arrays or any(type(a) is not np.ndarray for a in arrays):
        return None
    base = arrays[0].base
    if type(base) is not np.ndarray or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    at = _address(arrays[0])
    start, rem = divmod(at - _address(base), base.itemsize)
    if rem or start < 0:
        return None
    for a in arrays:
        if a.base is not base or a.dtype != base.dtype or not a.flags.c_contiguous or _address(a) != at:
            return None
        at += a.nbytes
    total = sum(a.size for a in arrays)
    if start + total > base.size:
        return None
    return base[start:start + total]
