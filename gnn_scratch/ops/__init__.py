"""Operations over arrays and graphs, each a forward with its backward: allocate, dispatch, return.

Layers compose these and never ask where an array lives. ``sparse`` holds the graph operations
(SpMM, SDDMM, edge softmax, mean / max aggregation, GCN normalisation); the dense products, sums
and element-wise operations are re-exported here under the same names wherever they live.
"""
from ..dense import add_, add_bias, col_sum, matmul, matmul_nt, matmul_tn, mul  # noqa: F401
from .sparse import *  # noqa: F401,F403
from .sparse import (_call, _empty, _is_numba, call_kernel, edge_softmax, edge_softmax_backward,  # noqa: F401
                     edge_weight_or_ones, gcn_norm, max_aggregate, max_aggregate_backward, mean_aggregate,
                     mean_aggregate_backward, ones_on_edges, sddmm_add, sddmm_add_backward, sddmm_dot, spmm,
                     spmm_backward_X, spmm_backward_edge_val, spmm_transposed, transposed_edge_val)
