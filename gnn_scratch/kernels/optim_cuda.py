"""SGD and Adam updates on the GPU (numba.cuda): one thread per parameter element, in place.
"""
import math

from .dense_cuda import _contiguous, _flat, _flat_launch  # the launch helpers of the dense kernels
from .cuda import _check, _check_float, _device, _jit, _launch, cuda, require_cuda


# ======================================================================================= optimisers
@_jit
def _sgd_kernel(p, g, v, lr, momentum, use_momentum, wd, use_wd):
    for k in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        d = g[k]
        if use_wd:
            d = d + wd * p[k]
        if use_momentum:
            vk = v[k] * momentum
            vk = vk + d
            v[k] = vk
            d = vk
        p[k] = p[k] - lr * d


def sgd_update(p, grad, v, lr, momentum=0.0, weight_decay=0.0):
    """In place: d = g + w p;  v <- mu v + d, d = v (when mu != 0);  p <- p - lr d.

    p, grad, v: same shape, one float dtype (v unused and may be p when mu = 0). Scalars are cast
    to p's dtype first, as NumPy casts them in ``optim.SGD``, and the operations come in the same
    order, so the result equals the CPU optimiser's (bit for bit where the GPU does not contract a
    multiply-add into an FMA). O(size), one thread per element.
    """
    require_cuda()
    p, grad, v = _device(p=p, grad=grad, v=v)
    _check("grad", grad, p.shape)
    _check("v", v, p.shape)
    _check_float(("p", p), ("grad", grad), ("v", v))
    _contiguous(p=p, grad=grad, v=v)
    dt = p.dtype.type
    _launch(_sgd_kernel, _flat_launch(p.size), _flat(p), _flat(grad), _flat(v), dt(lr), dt(momentum),
            bool(momentum), dt(weight_decay), bool(weight_decay))


@_jit
def _adam_kernel(p, g, m, v, b1, c1, b2, c2, step, bias2, eps, wd, use_wd):
    for k in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        d = g[k]
        if use_wd:
            d = d + wd * p[k]
        mk = m[k] * b1
        mk = mk + c1 * d
        m[k] = mk
        vk = v[k] * b2
        vk = vk + (c2 * d) * d
        v[k] = vk
        p[k] = p[k] - (step * mk) / (math.sqrt(vk / bias2) + eps)


def adam_update(p, grad, m, v, t, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """One Adam step in place, as ``optim.Adam`` (t = the step number, from 1):

        d = g + w p;   m <- b1 m + (1 - b1) d;   v <- b2 v + (1 - b2) d^2
        p <- p - [lr / (1 - b1^t)] m / (sqrt(v / (1 - b2^t)) + eps)

    p, grad, m, v: same shape, one float dtype. The scalars (1 - b1, lr / (1 - b1^t), ...) are
    computed in double on the host and cast to p's dtype, exactly as NumPy does with the CPU
    optimiser's Python floats. O(size), one thread per element, all four arrays read once.
    """
    require_cuda()
    p, grad, m, v = _device(p=p, grad=grad, m=m, v=v)
    for name, a in (("grad", grad), ("m", m), ("v", v)):
        _check(name, a, p.shape)
    _check_float(("p", p), ("grad", grad), ("m", m), ("v", v))
    _contiguous(p=p, grad=grad, m=m, v=v)
    if t < 1:
        raise ValueError(f"the step number t counts from 1, got {t}")
    b1, b2 = betas
    dt = p.dtype.type
    _launch(_adam_kernel, _flat_launch(p.size), _flat(p), _flat(grad), _flat(m), _flat(v), dt(b1), dt(1 - b1),
            dt(b2), dt(1 - b2), dt(lr / (1 - b1 ** t)), dt(1 - b2 ** t), dt(eps), dt(weight_decay),
            bool(weight_decay))
