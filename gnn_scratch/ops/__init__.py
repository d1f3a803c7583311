"""Operations over arrays and graphs, each forward beside its backward: allocate, dispatch, return.

Layers compose these and never ask where an array lives: every op allocates on its inputs'
device and runs the implementation the registry picks (``kernels/registry.py``).

* ``sparse``      -- graph operations: SpMM, SDDMM, edge softmax, mean / max aggregation, GCN normalisation;
* ``dense``       -- products, column sums, bias, GAT's per-head pieces, row normalisation;
* ``elementwise`` -- activations and dropout masks;
* ``loss``        -- the masked softmax cross-entropy, accuracy, the mean squared error;
* ``optim``       -- SGD and Adam updates;
* ``pool``        -- graph readouts over a ``GraphBatch``: global add / mean / max pooling;
* ``norm``        -- batch normalisation: statistics, normalisation, backward;
* ``gin``         -- GIN's aggregation (1 + eps) x_i + sum_j x_j;
* ``gates``       -- recurrent cells' gates: sigmoid, tanh, the GRU and LSTM state updates;
* ``temporal``    -- attention over time: a row softmax, the (N, F, P) <-> (P, N, F) window transposes.
* ``dgi``         -- Deep Graph Infomax's pieces: PReLU, bilinear row scores, binary cross-entropy with logits.
* ``transformer`` -- graph transformers' pieces: a scale, LayerNorm, TransformerConv's beta gate.
* ``attention``   -- full self-attention within each graph of a batch, fused (FlashAttention) with its backward.
"""
from .dense import (add_, add_bias, col_sum, head_dot, head_dot_backward_att, head_dot_backward_Z_,  # noqa: F401
                    head_mean, head_mean_backward, matmul, matmul_nt, matmul_tn, mul, row_normalize,
                    row_normalize_backward, sub_, zero_)
from .elementwise import (dropout, elu, elu_backward, elu_inference, keep_mask, leaky_relu, leaky_relu_backward, relu,  # noqa: F401
                          relu_backward)
from .loss import accuracy, cross_entropy, cross_entropy_backward, mse, mse_backward  # noqa: F401
from .gates import (gru_state, gru_state_backward, lstm_gate, lstm_state, lstm_state_backward,  # noqa: F401
                    sigmoid, sigmoid_backward, tanh, tanh_backward)
from .transformer import beta_gate, beta_gate_backward, layer_norm, layer_norm_backward, scale  # noqa: F401
from .attention import flash_attention, flash_attention_backward  # noqa: F401
from .temporal import periods_first, periods_last, row_softmax, row_softmax_backward  # noqa: F401
from .dgi import (bce_with_logits, bce_with_logits_backward, bilinear_rows, bilinear_rows_backward,  # noqa: F401
                  prelu, prelu_backward)
from .gin import gin_aggregate, gin_aggregate_backward  # noqa: F401
from .norm import batch_norm, batch_norm_backward, batch_norm_relu, batch_norm_relu_backward, batch_norm_stats  # noqa: F401
from .optim import adam_update, sgd_update  # noqa: F401
from .pool import (global_add_pool, global_add_pool_backward, global_max_pool, global_max_pool_backward,  # noqa: F401
                   global_mean_pool, global_mean_pool_backward)
from .sparse import (edge_softmax, edge_softmax_backward, edge_weight_or_ones, gcn_norm, max_aggregate,  # noqa: F401
                     max_aggregate_backward, mean_aggregate, mean_aggregate_backward, mean_aggregate_bias,
                     ones_on_edges, sddmm_add, sddmm_add_backward, sddmm_dot, spmm, spmm_bias, spmm_bias_matmul,
                     spmm_backward_edge_val, spmm_backward_X, spmm_transposed)
