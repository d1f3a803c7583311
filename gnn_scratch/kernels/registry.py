"""The op registry: every kernel-level operation, registered once with its three implementations.

An op is a name with one contract (argument order, shapes, preallocated outputs, empty-row and tie
rules, written in the reference module's docstrings) and three interchangeable implementations:

* ``reference`` -- plain NumPy, the readable truth;
* ``cpu``       -- what runs on the host: Numba kernels, row-parallel over destinations, or
                   BLAS / scipy where those are already the fast path (the dense products);
* ``cuda``      -- numba.cuda kernels (tested on the CPU under Numba's simulator).

``implementation(name, *arrays)`` is the one dispatch decision per call: the CUDA version when any
of ``arrays`` lives on the GPU (``device.device_of``), else the host version chosen with
``set_cpu_backend`` ("cpu" by default, "reference" to check the fast kernels). Nothing above this
module picks an implementation.

Ops are grouped by concern, one module per (family, implementation):

    family       modules                                   what
    sparse       reference / cpu / cuda                    SpMM, SDDMM, edge softmax, mean / max aggregation
    fused        gat_reference / gat_cpu / gat_cuda        GAT's one-pass attention and its backward
    dense        dense_reference / dense_cpu / dense_cuda  products, sums, GAT's per-head pieces, row norms, a GCN
                                                           layer's SpMM times the next layer's W
    elementwise  elementwise_{reference,cpu,cuda}          activations, dropout and keep masks (``rng``)
    loss         loss_{reference,cpu,cuda}                 masked softmax cross-entropy, accuracy counts, MSE
    optim        optim_{reference,cpu,cuda}                SGD and Adam updates
    pool         pool_{reference,cpu,cuda}                 graph readouts: sum / mean / max per graph of a batch
    norm         norm_{reference,cpu,cuda}                 batch normalisation: statistics, normalisation, backward
    gin          gin_{reference,cpu,cuda}                  GIN's neighbour sum plus the (1 + eps) root row
    gates        gates_{reference,cpu,cuda}                recurrent cells' gates: sigmoid, tanh, the GRU and LSTM states
    temporal     temporal_{reference,cpu,cuda}             attention over time: row softmax, window transposes
    dgi          dgi_{reference,cpu,cuda}                  Deep Graph Infomax: PReLU, bilinear row scores, BCE with logits
    transformer  transformer_{reference,cpu,cuda}          graph transformers: a scale, LayerNorm, TransformerConv's beta gate
    attention    attention_{reference,cpu,cuda}            full self-attention within each graph: FlashAttention and its backward
"""
import importlib

import numpy as np

from ..device import _HOST_TYPES, device_of, is_device
from ..threads import call_numba, launch_numba_pool

IMPLEMENTATIONS = ("reference", "cpu", "cuda")

# family -> the module holding each implementation
FAMILIES = {
    "sparse": dict(reference="reference", cpu="cpu", cuda="cuda"),
    "fused": dict(reference="gat_reference", cpu="gat_cpu", cuda="gat_cuda"),
    "dense": dict(reference="dense_reference", cpu="dense_cpu", cuda="dense_cuda"),
    "elementwise": dict(reference="elementwise_reference", cpu="elementwise_cpu", cuda="elementwise_cuda"),
    "loss": dict(reference="loss_reference", cpu="loss_cpu", cuda="loss_cuda"),
    "optim": dict(reference="optim_reference", cpu="optim_cpu", cuda="optim_cuda"),
    "pool": dict(reference="pool_reference", cpu="pool_cpu", cuda="pool_cuda"),
    "norm": dict(reference="norm_reference", cpu="norm_cpu", cuda="norm_cuda"),
    "gin": dict(reference="gin_reference", cpu="gin_cpu", cuda="gin_cuda"),
    "gates": dict(reference="gates_reference", cpu="gates_cpu", cuda="gates_cuda"),
    "temporal": dict(reference="temporal_reference", cpu="temporal_cpu", cuda="temporal_cuda"),
    "dgi": dict(reference="dgi_reference", cpu="dgi_cpu", cuda="dgi_cuda"),
    "transformer": dict(reference="transformer_reference", cpu="transformer_cpu", cuda="transformer_cuda"),
    "attention": dict(reference="attention_reference", cpu="attention_cpu", cuda="attention_cuda"),
}

OPS = {}   # op name -> family


def register(family, *names):
    """Register ``names`` as ops of ``family``: each module of the family must define each name."""
    if family not in FAMILIES:
        raise ValueError(f"unknown op family {family!r}; known: {sorted(FAMILIES)}")
    for name in names:
        if name in OPS:
            raise ValueError(f"op {name!r} is registered twice")
        OPS[name] = family


register("sparse", "spmm_sum", "spmm_sum_bias", "spmm_sum_perm", "spmm_mean", "spmm_mean_bias", "spmm_mean_backward",
         "scale_rows_by_inverse_degree", "spmm_max", "spmm_max_backward", "sddmm_dot", "sddmm_add", "segment_sum",
         "segment_sum_perm", "edge_softmax", "edge_softmax_backward")
register("fused", "gat_forward", "gat_backward")
register("dense", "matmul", "matmul_tn", "matmul_nt", "col_sum", "fill", "add", "sub", "add_bias", "mul",
         "head_dot", "head_dot_backward_att", "head_dot_backward_Z", "head_mean", "head_mean_backward",
         "row_normalize", "row_normalize_backward")
register("dense", "spmm_sum_bias_matmul")     # an evaluation-mode GCN layer times the next W (issue 19)
register("elementwise", "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "elu", "elu_backward",
         "dropout", "keep_mask")
register("elementwise", "elu_inference")      # ELU with a vectorised expm1, evaluation mode (issue 19)
register("loss", "cross_entropy", "cross_entropy_backward", "accuracy_counts", "mse", "mse_backward")
register("optim", "sgd_update", "adam_update")
register("pool", "pool_mean", "pool_max", "pool_sum_backward", "pool_mean_backward", "pool_max_backward")
register("norm", "batch_norm_stats", "batch_norm_forward", "batch_norm_backward")
register("norm", "batch_norm_relu_forward", "batch_norm_relu_backward")      # BatchNorm then ReLU, fused
register("gin", "gin_aggregate")
register("gates", "sigmoid", "tanh", "sigmoid_backward", "tanh_backward", "gru_state", "gru_state_backward",
         "lstm_gate", "lstm_state", "lstm_state_backward")
register("temporal", "row_softmax", "row_softmax_backward", "periods_first", "periods_last")
register("dgi", "prelu", "prelu_backward", "bilinear_rows", "bilinear_rows_backward", "bce_with_logits",
         "bce_with_logits_backward")
register("transformer", "scale", "layer_norm", "layer_norm_backward", "beta_gate", "beta_gate_backward")
register("attention", "flash_attention_forward", "flash_attention_backward")

_CPU_BACKENDS = ("cpu", "reference")
_cpu_backend = "cpu"


def set_cpu_backend(name):
    """Choose the implementations used for host arrays: "cpu" (Numba / BLAS) or "reference" (NumPy)."""
    global _cpu_backend
    if name not in _CPU_BACKENDS:
        raise ValueError(f"cpu backend must be one of {_CPU_BACKENDS}, got {name!r}")
    _cpu_backend = name


def get_cpu_backend():
    """Name of the implementations used for host arrays."""
    return _cpu_backend


def module(family, implementation):
    """The kernel module of ``family`` for ``implementation`` ("reference", "cpu" or "cuda"), imported on first use.

    Raises ValueError for an unknown name, RuntimeError when the CUDA kernels cannot run (no GPU
    and no simulator).
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    mod = importlib.import_module(f"{__package__}.{FAMILIES[family][implementation]}")
    if implementation == "cuda":
        from .cuda import require_cuda
        require_cuda()
    return mod


_resolved = {}   # (name, implementation) -> function: a dispatch costs one dict lookup after the first


def resolve(name, implementation):
    """The function implementing op ``name`` in ``implementation``."""
    fn = _resolved.get((name, implementation))
    if fn is None:
        if name not in OPS:
            raise KeyError(f"no op named {name!r} is registered")
        fn = _resolved[(name, implementation)] = getattr(module(OPS[name], implementation), name)
    return fn


def implementation_for(*arrays):
    """"cuda" when any of ``arrays`` is on the GPU, else the host backend ("cpu" or "reference")."""
    return "cuda" if device_of(*arrays) == "cuda" else _cpu_backend


def implementation(name, *arrays):
    """The function that runs op ``name`` on ``arrays``: the one dispatch decision of a call."""
    return resolve(name, implementation_for(*arrays))


def _refuse_mixed_placement(name, args):
    """ValueError when a GPU op is handed a host array: nothing is copied behind the caller's back."""
    for i, a in enumerate(args):
        if (isinstance(a, np.ndarray) and a.ndim > 0) or getattr(a, "format", None) in ("csr", "csc", "coo") \
                and not hasattr(a, "with_data"):
            raise ValueError(f"op {name!r} got arrays on the GPU and a host array (argument {i}, shape {a.shape}): "
                             f"the graph and the features must live together -- move the graph with "
                             f"graph.to('cuda') and arrays with gnn_scratch.device.to(x, 'cuda')")


_dispatch = {}   # (name, implementation) -> (function, whether it is a parallel Numba kernel, its one-thread form)


def run(name, work, *args):
    """Op ``name`` on ``args`` (outputs among them, preallocated), dispatched once on where they live.

    ``work`` (elements, or edges x features) sizes the call: a parallel Numba kernel with less than
    ``threads.SERIAL_GRAIN`` of it runs on one thread, since waking the pool would cost more.
    """
    # ``implementation_for`` and ``resolve`` written out: this runs a few hundred times per training step
    where = _cpu_backend
    for a in args:
        if type(a) not in _HOST_TYPES and is_device(a):
            where = "cuda"
            _refuse_mixed_placement(name, args)
            break
    entry = _dispatch.get((name, where))
    if entry is None:
        if where != "cuda":
            launch_numba_pool()    # before any Python wrapper of this op can start the pool another way
        fn = resolve(name, where)
        parallel = bool(getattr(fn, "targetoptions", {}).get("parallel"))
        # a parallel kernel's form for one thread, which call_numba runs below the grain (kernels/cpu.py)
        one_thread = getattr(module(OPS[name], where), "ONE_THREAD", {}).get(name) if parallel else None
        entry = _dispatch[(name, where)] = (fn, parallel, one_thread)
    fn, parallel, one_thread = entry
    if parallel:
        return call_numba(fn, work, *args, one_thread=one_thread)
    return fn(*args)
