"""Software prefetch for the Numba CPU kernels: an LLVM ``prefetch`` hint Numba has no builtin for.

The gathering kernels (SpMM, SDDMM, the max backward) load one random row of a feature matrix per
edge, so they are bound by how many of those loads are in flight at once (DRAM latency x loads in
flight; ``scripts/measure_memory_bounds.py`` measures both). Asking for the row needed a few edges
later, while the current one is summed, raises that number without changing any arithmetic.

* ``prefetch_line(arr, row, offset)`` -- a Numba ``intrinsic`` emitting ``llvm.prefetch`` (read,
  high temporal locality = ``prefetcht0``, data cache) for byte ``offset`` of row ``row`` of a
  C-contiguous 2-D or 3-D array. A hint only: it never faults, even past the end of the array.
* ``prefetch_row(X, j)`` -- every cache line row ``j`` touches, whether or not it starts on one.
* ``prefetch_distance(X)`` -- how many edges ahead: about ``PREFETCH_BYTES`` of rows, 4 to 64 edges;
  ``NO_PREFETCH`` (past the end of any edge list) for an array of at most ``PREFETCH_MIN_BYTES``.
"""
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic

from ..device import CACHE_LINE   # the line size the allocator aligns large arrays to: one constant for both

_SERIAL = dict(cache=True, nogil=True)

# About this many bytes of gathered rows ahead of the current edge (width 64 float32: 16 edges).
PREFETCH_BYTES = 4096
# An array this small stays in L2 (1-2 MB per core on the machines measured) once a kernel has read it,
# so a hint for its rows only costs instructions: Cora's SpMM on one thread ran 0.75-0.84x without them
# (width 7, 16, 64). The kernels test ``e + pd < E``; this distance makes that false for every edge.
PREFETCH_MIN_BYTES = 1 << 20
NO_PREFETCH = 1 << 62


@intrinsic
def prefetch_line(typingctx, arr, row, offset):
    """Ask the CPU to load the cache line at byte ``offset`` of row ``row`` of ``arr``.

    A hint only: it never faults (even past the end of ``arr``) and cannot change a result.
    """
    sig = types.void(arr, row, offset)

    def codegen(context, builder, signature, args):
        arr_ty, row_ty, offset_ty = signature.args
        ary = context.make_array(arr_ty)(context, builder, args[0])
        row_stride = builder.extract_value(ary.strides, 0)
        r = context.cast(builder, args[1], row_ty, types.intp)
        o = context.cast(builder, args[2], offset_ty, types.intp)
        base = builder.bitcast(ary.data, ir.IntType(8).as_pointer())
        ptr = builder.gep(base, [builder.add(builder.mul(r, row_stride), o)])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        # read, high temporal locality (prefetcht0), data cache
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(**_SERIAL)
def prefetch_distance(X, needed=False):
    """How many edges ahead to prefetch rows of ``X``: ~``PREFETCH_BYTES`` of rows, 4 to 64 edges, or
    ``NO_PREFETCH`` when ``X`` holds at most ``PREFETCH_MIN_BYTES`` (it sits in cache) unless ``needed``
    (a kernel that also prefetches a large per-edge array at the same distance says so)."""
    if not needed and X.size * X.itemsize <= PREFETCH_MIN_BYTES:
        return NO_PREFETCH
    row_bytes = max(X.strides[0], 1)
    return max(4, min(64, PREFETCH_BYTES // row_bytes))


@njit(**_SERIAL)
def prefetch_row(X, j):
    """Prefetch every cache line of row ``j`` of the C-contiguous array ``X``, aligned or not."""
    for offset in range(0, X.strides[0], CACHE_LINE):
        prefetch_line(X, j, offset)
    # a row that does not start on a line ends in one line more (NumPy's arrays are only 16-byte
    # aligned): without this hint every gather of such a row waits for that line from DRAM
    prefetch_line(X, j, X.strides[0] - 1)
