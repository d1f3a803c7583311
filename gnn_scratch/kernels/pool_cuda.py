"""Graph readouts on the GPU (numba.cuda): the same names, argument order and semantics as ``pool_reference``.

Launch: ``cuda._row_launch``'s layout with a *graph* as the row -- a warp (up to a block, for wide
features) owns one graph, its lanes split the features, and each lane walks the graph's node rows
in order. Forward: each output element is reduced by one thread in node order (the reference's
sums, bit for bit). Backward: the owner of graph k writes the rows of k's nodes. No atomics,
deterministic. A batch of few, large graphs leaves most of the GPU idle; graph classification
batches many small ones.
"""
from .cuda import _check, _check_float, _device, _jit, _launch, _row_launch, cuda, require_cuda


@_jit
def _pool_mean_kernel(graph_ptr, X, out):
    for k in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, out.shape[0],
                   cuda.gridDim.x * cuda.blockDim.y):
        lo, hi = graph_ptr[k], graph_ptr[k + 1]
        for f in range(cuda.threadIdx.x, out.shape[1], cuda.blockDim.x):
            acc = out.dtype.type(0)
            for n in range(lo, hi):
                acc += X[n, f]
            if hi > lo:
                acc = acc / out.dtype.type(hi - lo)
            out[k, f] = acc


@_jit
def _pool_max_kernel(graph_ptr, X, out, argmax):
    for k in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, out.shape[0],
                   cuda.gridDim.x * cuda.blockDim.y):
        lo, hi = graph_ptr[k], graph_ptr[k + 1]
        for f in range(cuda.threadIdx.x, out.shape[1], cuda.blockDim.x):
            if lo == hi:                       # empty segment: 0, argmax -1
                out[k, f] = 0
                argmax[k, f] = -1
                continue
            best_n = lo
            best = X[lo, f]
            for n in range(lo + 1, hi):
                v = X[n, f]
                if v > best:                   # strict: the first node of the segment wins ties
                    best = v
                    best_n = n
            out[k, f] = best
            argmax[k, f] = best_n


@_jit
def _pool_broadcast_kernel(graph_ptr, G, dX, mean):
    for k in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, G.shape[0],
                   cuda.gridDim.x * cuda.blockDim.y):
        lo, hi = graph_ptr[k], graph_ptr[k + 1]
        for f in range(cuda.threadIdx.x, G.shape[1], cuda.blockDim.x):
            g = G[k, f]
            if mean and hi > lo:
                g = g / G.dtype.type(hi - lo)
            for n in range(lo, hi):
                dX[n, f] = g


@_jit
def _pool_max_backward_kernel(graph_ptr, argmax, G, dX):
    for k in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, G.shape[0],
                   cuda.gridDim.x * cuda.blockDim.y):
        lo, hi = graph_ptr[k], graph_ptr[k + 1]
        for f in range(cuda.threadIdx.x, G.shape[1], cuda.blockDim.x):
            win = argmax[k, f]
            for n in range(lo, hi):
                dX[n, f] = G[k, f] if n == win else G.dtype.type(0)


def _check_pool(graph_ptr, X, out, names=("X", "out")):
    """Shapes and dtypes of (graph_ptr, node array X (N, F), graph array out (B, F)); returns B."""
    _check("graph_ptr", graph_ptr, (None,), kind="iu")
    if graph_ptr.shape[0] < 1:
        raise ValueError("graph_ptr must have length B + 1 >= 1, got 0")
    B = graph_ptr.shape[0] - 1
    _check(names[0], X, (None, None))
    _check(names[1], out, (B, X.shape[1]))
    _check_float((names[0], X), (names[1], out))
    return B


def pool_mean(graph_ptr, X, out):
    """out[k] = (1/n_k) sum_{n in segment k} X[n] (0 for n_k = 0). graph_ptr (B+1,) int, X (N, F), out (B, F)
    overwritten. O(N F). Launch: a warp (up to a block) per graph, features across lanes, nodes in order."""
    require_cuda()
    graph_ptr, X, out = _device(graph_ptr=graph_ptr, X=X, out=out)
    B = _check_pool(graph_ptr, X, out)
    _launch(_pool_mean_kernel, _row_launch(B, X.shape[1]), graph_ptr, X, out)


def pool_max(graph_ptr, X, out, argmax):
    """out[k, f] = max_{n in segment k} X[n, f]; argmax (B, F) int64 the winning node (first on ties, -1 if empty).

    Shapes and launch as ``pool_mean``; out and argmax overwritten. O(N F).
    """
    require_cuda()
    graph_ptr, X, out, argmax = _device(graph_ptr=graph_ptr, X=X, out=out, argmax=argmax)
    B = _check_pool(graph_ptr, X, out)
    _check("argmax", argmax, (B, X.shape[1]), kind="iu")
    _launch(_pool_max_kernel, _row_launch(B, X.shape[1]), graph_ptr, X, out, argmax)


def pool_sum_backward(graph_ptr, G, dX):
    """dX[n] = G[k] for every node n of segment k. G (B, F), dX (N, F) overwritten. O(N F).

    Launch: the owner of graph k (a warp, features across lanes) writes k's node rows; no atomics.
    """
    require_cuda()
    graph_ptr, G, dX = _device(graph_ptr=graph_ptr, G=G, dX=dX)
    B = _check_pool(graph_ptr, dX, G, ("dX", "G"))
    _launch(_pool_broadcast_kernel, _row_launch(B, G.shape[1]), graph_ptr, G, dX, False)


def pool_mean_backward(graph_ptr, G, dX):
    """dX[n] = G[k] / n_k for every node n of segment k. Shapes and launch as ``pool_sum_backward``."""
    require_cuda()
    graph_ptr, G, dX = _device(graph_ptr=graph_ptr, G=G, dX=dX)
    B = _check_pool(graph_ptr, dX, G, ("dX", "G"))
    _launch(_pool_broadcast_kernel, _row_launch(B, G.shape[1]), graph_ptr, G, dX, True)


def pool_max_backward(graph_ptr, argmax, G, dX):
    """dX[n, f] = G[k, f] if n = argmax[k, f] (n in segment k), else 0. argmax, G (B, F); dX (N, F) overwritten.

    Launch as ``pool_sum_backward``: each lane writes its feature of every node row of its graph.
    """
    require_cuda()
    graph_ptr, argmax, G, dX = _device(graph_ptr=graph_ptr, argmax=argmax, G=G, dX=dX)
    B = _check_pool(graph_ptr, dX, G, ("dX", "G"))
    _check("argmax", argmax, (B, G.shape[1]), kind="iu")
    _launch(_pool_max_backward_kernel, _row_launch(B, G.shape[1]), graph_ptr, argmax, G, dX)
