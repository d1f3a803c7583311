"""Sparse kernels in three interchangeable implementations with one contract.

* ``reference`` -- plain NumPy, the readable truth;
* ``cpu``       -- Numba ``njit(parallel=True, cache=True)``, row-parallel over destinations;
* ``cuda``      -- ``numba.cuda``, one warp or block per destination row.

The contract (names, argument order, shapes, empty-row and tie rules) is written once, at the top
of ``reference.py``. ``backend_for(*arrays)`` picks the implementation from where the data lives:
arrays exposing ``__cuda_array_interface__`` run on the GPU, host arrays on the CPU backend chosen
with ``set_cpu_backend`` ("cpu" by default, "reference" for checking).
"""
import importlib

_CPU_BACKENDS = ("cpu", "reference")
_cpu_backend = "cpu"


def set_cpu_backend(name):
    """Choose the kernels used for host arrays: "cpu" (Numba) or "reference" (NumPy)."""
    global _cpu_backend
    if name not in _CPU_BACKENDS:
        raise ValueError(f"cpu backend must be one of {_CPU_BACKENDS}, got {name!r}")
    _cpu_backend = name


def get_cpu_backend():
    """Name of the kernels used for host arrays."""
    return _cpu_backend


def load(name):
    """The kernel module ``name`` ("reference", "cpu" or "cuda"), imported on first use."""
    if name not in ("reference", "cpu", "cuda"):
        raise ValueError(f"kernel backend must be 'reference', 'cpu' or 'cuda', got {name!r}")
    return importlib.import_module(f"{__name__}.{name}")


def is_device_array(a):
    """True for arrays that live on a GPU: they expose ``__cuda_array_interface__``, or are Numba
    device arrays (which under the CUDA simulator have no such interface but must still go to ``cuda``)."""
    if hasattr(a, "__cuda_array_interface__"):
        return True
    if type(a).__module__.startswith("numba"):
        from numba.cuda.cudadrv.devicearray import is_cuda_ndarray
        return is_cuda_ndarray(a)
    return False


def backend_for(*arrays):
    """The kernel module that should process ``arrays``: CUDA if any is on the GPU, else the CPU backend."""
    if any(is_device_array(a) for a in arrays):
        return load("cuda")
    return load(_cpu_backend)
