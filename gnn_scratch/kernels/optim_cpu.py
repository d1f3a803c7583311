"""SGD and Adam updates on the host: Adam as one fused Numba pass over p, grad, m and v.

NumPy's Adam is about twelve passes over the parameter; the kernel reads each array once. The
scalars are computed in double and cast to the parameter's dtype, as NumPy casts the Python
floats of the reference. SGD's NumPy expression is already one or two passes: it is the
reference's. Contract: ``optim_reference``.
"""
import numpy as np
from numba import njit

from .optim_reference import adam_update as _adam_reference
from .optim_reference import sgd_update  # noqa: F401


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


@njit(cache=True, nogil=True, error_model="numpy")
def _adam(p, grad, m, v, weight_decay, beta1, beta2, step_size, bias2, eps):
    # serial: parameters are small, and a parallel launch would cost more than it saves.
    # error_model="numpy": IEEE division and square root, as the NumPy reference (eps = 0 with v = 0
    # gives nan there too); Numba's divide-by-zero test kept this loop scalar: 175 -> 6 us on the
    # 31k parameters of GIN, the same bits (vdivps / vsqrtps round exactly like their scalar forms).
    one = p.dtype.type(1)
    c1 = one - beta1
    c2 = one - beta2
    for k in range(p.size):
        d = grad[k] + weight_decay * p[k]
        mk = beta1 * m[k] + c1 * d
        vk = beta2 * v[k] + c2 * d * d
        m[k] = mk
        v[k] = vk
        p[k] -= step_size * mk / (np.sqrt(vk / bias2) + eps)


def adam_update(p, grad, m, v, t, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """One Adam step in place (see ``optim_reference.adam_update``); non-contiguous arrays take the reference."""
    if t < 1:
        raise ValueError(f"the step number t counts from 1, got {t}")
    dt = p.dtype
    if not (dt in _FLOATS and grad.dtype == dt and m.dtype == dt and v.dtype == dt and p.flags.c_contiguous
            and grad.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
        return _adam_reference(p, grad, m, v, t, lr, betas, eps, weight_decay)
    b1, b2 = betas
    dt = p.dtype.type
    _adam(p.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1), dt(weight_decay), dt(b1), dt(b2),
          dt(lr / (1 - b1 ** t)), dt(1 - b2 ** t), dt(eps))
