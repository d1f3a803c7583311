"""Heterogeneous graph attention of Wang et al. (2019), PyG's ``HANConv``, with a hand-derived backward
(derivations/han.md)."""
from collections.abc import Mapping

import numpy as np

from ... import ops
from ...device import empty, empty_like, issparse, zeros_like
from ...graph import Graph
from ...graph.csr import check_feature_array
from ...kernels.registry import run
from ...threads import single_blas_pool
from ..checks import finite_real, float_dtype, positive_int, probability
from ..init import as_rng, glorot
from ..module import Module, check_grad_out


def edge_type_key(edge_type):
    """PyG's name of a relation (src, name, dst): 'src__name__dst' (the key of its lin_src / lin_dst)."""
    return "__".join(edge_type)


def _check_metadata(metadata):
    """(node_types, edge_types) as a list of str and a list of (src, name, dst) str triples, or an error."""
    if not (isinstance(metadata, (tuple, list)) and len(metadata) == 2
            and all(isinstance(m, (tuple, list)) for m in metadata)):
        raise TypeError(f"metadata must be a pair (node_types, edge_types) of lists, got {metadata!r}")
    node_types, edge_types = list(metadata[0]), [tuple(et) for et in metadata[1]]
    if not node_types or not all(isinstance(nt, str) for nt in node_types):
        raise ValueError(f"metadata[0] must be a non-empty list of node type names (str), got {metadata[0]!r}")
    if len(set(node_types)) != len(node_types):
        raise ValueError(f"metadata[0] lists a node type twice: {node_types}")
    for et in edge_types:
        if len(et) != 3 or not all(isinstance(s, str) for s in et):
            raise ValueError(f"metadata[1] must hold (src_type, relation, dst_type) string triples, got {et!r}")
        for side, nt in (("source", et[0]), ("destination", et[2])):
            if nt not in node_types:
                raise ValueError(f"edge type {et!r} has {side} type {nt!r}, which is not among the node types "
                                 f"{node_types}")
    if len(set(edge_types)) != len(edge_types):
        raise ValueError(f"metadata[1] lists an edge type twice: {edge_types}")
    keys = [edge_type_key(et) for et in edge_types]
    if len(set(keys)) != len(keys):
        raise ValueError(f"metadata[1] has two edge types with the same name 'src__relation__dst': {keys}")
    return node_types, edge_types


def _uniform(rng, bound, shape, dtype):
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class HANConv(Module):
    """Heterogeneous graph attention (HAN, Wang et al., WWW 2019), as PyG's ``HANConv``.

    Node-level attention, for each relation r = (s, name, t) of ``graphs`` (an edge type or a metapath
    graph) with H heads of D = out_channels / H features:
        Z_v = x_v W_v + b_v                        per node type v, viewed (N_v, H, D)   (PyG's ``proj``)
        a_src[j, h] = <Z_s[j, h], lin_src_r[h]>,   a_dst[i, h] = <Z_t[i, h], lin_dst_r[h]>
        alpha^r_ij  = softmax over the edges j -> i of r of LeakyReLU(a_dst[i, h] + a_src[j, h])
        Y_r[i, h]   = ReLU( sum_{e: j -> i} alpha^r_e d_e Z_s[j, h] )          (N_t, C), C = out_channels
    (no self-loops are added; a repeated edge counts once per copy; a node with no in-edge of r gets
    Y_r[i] = 0; d is the attention dropout, training only). Semantic-level attention, for each
    destination type t over its T relations r = 1..T (in the order of ``graphs``):
        w_r    = q . mean_i tanh(Y_r[i] W_k + b_k)              (PyG's ``k_lin`` and ``q``)
        beta   = softmax(w_1, ..., w_T)
        out[t] = sum_r beta_r Y_r                               (N_t, C)
    A node type that no relation of ``graphs`` enters gets ``None`` (as PyG).

    Parameters (``params`` keys; PyG's names, PyG's ``Linear`` weights transposed):
        ``proj.<v>.W`` (F_v, C), ``proj.<v>.b`` (C,)    for each node type v of the metadata
        ``lin_src.<s__name__t>``, ``lin_dst.<s__name__t>`` (H, D)  for each edge type (PyG: (1, H, D))
        ``k_lin.W`` (C, C), ``k_lin.b`` (C,), ``q`` (C,)              (PyG: q (1, C))
    Initialised like PyG: proj and k_lin U(-1/sqrt(fan_in), 1/sqrt(fan_in)), lin_src / lin_dst and q Glorot.

    ``forward(x_dict, graphs)``: x_dict {node type: (N_v, F_v) float (dense, or scipy.sparse)}; graphs
    {edge type (s, name, t): ``Graph``} destination-major (rows = the N_t nodes of t, ``num_src`` = N_s),
    or a ``HeteroGraph`` (its ``.graphs``). Edge weights are ignored (HAN's attention replaces them).
    Returns {node type: (N_v, C) or None}, one entry per node type of x_dict, in its order.
    After each forward ``self.semantic_attention[t]`` is beta, a (T,) host array, for every destination
    type t, and ``self.semantic_edge_types[t]`` the T relations in the same order: which relation
    (metapath) the layer trusts.

    ``backward(grad_dict)``: {node type: (N_v, C) dL/dout, or None / absent for no gradient} ->
    {node type: dL/dx_v} (None for a scipy.sparse x_v or with ``needs_input_grad = False``; zeros for
    a type no gradient reaches); adds into every gradient. Derivation: derivations/han.md.

    Node-level attention runs the fused GAT kernels ``gat_forward`` / ``gat_backward``
    (kernels/gat_cpu.py: one pass per destination row, online softmax, alpha recomputed in the
    backward; never E x H x D). Deterministic: the same seed gives the same bits; the attention-dropout
    masks come from 64-bit keys drawn from ``self.rng``, one per relation in the order of ``graphs``,
    at each training forward. The semantic attention's small (T,)-sized pieces are NumPy, so the layer
    runs on the host (``check_device_support`` refuses the GPU).

    Raises: TypeError / ValueError for bad constructor arguments (metadata, in_channels that miss a
    node type, out_channels not divisible by heads); at forward, ValueError naming the argument for a
    node type or edge type not in the metadata, a relation whose source or destination type has no
    features in x_dict, an x of the wrong shape (rows against the graph's sides, columns against
    in_channels), NaN / Inf in x; TypeError for a wrong dtype or a graph that is not a ``Graph``.
    """

    needs_input_grad = True

    def __init__(self, in_channels, out_channels, metadata, heads=1, negative_slope=0.2, dropout=0.0, seed=0,
                 dtype=np.float32):
        super().__init__()
        node_types, edge_types = _check_metadata(metadata)
        out_channels, heads = positive_int("out_channels", out_channels), positive_int("heads", heads)
        if out_channels % heads:
            raise ValueError(f"out_channels must be divisible by heads (D = out_channels / heads features per "
                             f"head), got out_channels={out_channels}, heads={heads}")
        if isinstance(in_channels, Mapping):
            missing = [nt for nt in node_types if nt not in in_channels]
            extra = [nt for nt in in_channels if nt not in node_types]
            if missing or extra:
                raise ValueError(f"in_channels must have one entry per node type {node_types}: "
                                 f"missing {missing}, unknown {extra}")
            in_channels = {nt: positive_int(f"in_channels[{nt!r}]", in_channels[nt]) for nt in node_types}
        else:
            c = positive_int("in_channels", in_channels)
            in_channels = {nt: c for nt in node_types}
        self.node_types, self.edge_types = node_types, edge_types
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.negative_slope = finite_real("negative_slope", negative_slope)
        self.dropout = probability("dropout", dropout)
        dtype = float_dtype(dtype)
        C, H, D = out_channels, heads, out_channels // heads
        # One generator: the weights in PyG's reset order (proj, lin_src, lin_dst, k_lin, q), then the mask keys.
        self.rng = as_rng(seed)
        for nt in node_types:
            bound = 1.0 / np.sqrt(in_channels[nt])
            self.add_param(f"proj.{nt}.W", _uniform(self.rng, bound, (in_channels[nt], C), dtype))
            self.add_param(f"proj.{nt}.b", _uniform(self.rng, bound, (C,), dtype))
        for side in ("lin_src", "lin_dst"):
            for et in edge_types:
                self.add_param(f"{side}.{edge_type_key(et)}", glorot(self.rng, H, D, dtype=dtype))
        bound = 1.0 / np.sqrt(C)
        self.add_param("k_lin.W", _uniform(self.rng, bound, (C, C), dtype))
        self.add_param("k_lin.b", _uniform(self.rng, bound, (C,), dtype))
        self.add_param("q", glorot(self.rng, 1, C, dtype=dtype).reshape(C))
        self.semantic_attention = {}
        self.semantic_edge_types = {}

    def __repr__(self):
        return (f"HANConv({self.in_channels}, {self.out_channels}, heads={self.heads}, "
                f"edge_types={len(self.edge_types)}, dropout={self.dropout})")

    def check_device_support(self):
        """Raise ValueError: the semantic attention's (T,)-sized pieces are NumPy, host only for now."""
        raise ValueError("HANConv runs on the host only: its semantic attention is computed with NumPy")

    # ------------------------------------------------------------------ input checks
    def _check_inputs(self, x_dict, graphs):
        """(x_dict with checked arrays, graphs as an ordered dict edge type -> Graph), or a one-line error."""
        if not isinstance(x_dict, Mapping):
            raise TypeError(f"x_dict must be a dict {{node type: (N, F) features}}, got {type(x_dict).__name__}")
        if graphs is None:
            raise ValueError("HANConv.forward needs the graphs: forward(x_dict, graphs) with graphs "
                             "{(src_type, relation, dst_type): Graph} or a HeteroGraph")
        graphs = getattr(graphs, "graphs", graphs)          # a HeteroGraph hands over its relations
        if not isinstance(graphs, Mapping):
            raise TypeError(f"graphs must be a dict {{(src_type, relation, dst_type): Graph}} or a HeteroGraph, "
                            f"got {type(graphs).__name__}")
        dt = self.param_dtype
        xs = {}
        for nt, x in x_dict.items():
            if nt not in self.in_channels:
                raise ValueError(f"x_dict has node type {nt!r}, which is not among the metadata's node types "
                                 f"{self.node_types}")
            # always scanned for NaN / Inf: Module's own input scan does not look inside a dict, and a model
            # calling this layer hands it its data (HAN is a first layer); one pass, less than the projection
            xs[nt] = check_feature_array(x, f"x_dict[{nt!r}]", None, self.in_channels[nt], dt)
        known = set(self.edge_types)
        gs = {}
        for et, g in graphs.items():
            key = tuple(et) if isinstance(et, (tuple, list)) else et
            if key not in known:
                raise ValueError(f"graphs has edge type {et!r}, which is not among the metadata's edge types "
                                 f"{self.edge_types}")
            if not isinstance(g, Graph):
                raise TypeError(f"graphs[{key!r}] must be a gnn_scratch Graph, got {type(g).__name__}")
            src, _, dst = key
            for side, nt, n in (("source", src, g.num_src), ("destination", dst, g.num_dst)):
                if nt not in xs:
                    raise ValueError(f"x_dict has no features for node type {nt!r}, the {side} type of "
                                     f"graphs[{key!r}]")
                if xs[nt].shape[0] != n:
                    raise ValueError(f"x_dict[{nt!r}] must have {n} rows, the {side} nodes of graphs[{key!r}], "
                                     f"got shape {tuple(xs[nt].shape)}")
            gs[key] = g
        return xs, gs

    # ------------------------------------------------------------------ forward
    def _keep_mask(self, E, like):
        """(E, H) uint8 attention-dropout keep mask (a fresh key from self.rng), or (0, H) without dropout."""
        if not (self.training and self.dropout > 0.0):
            return empty((0, self.heads), np.uint8, like=like)
        key = self.rng.integers(0, 1 << 64, dtype=np.uint64)
        return ops.keep_mask((E, self.heads), key, 1.0 - self.dropout, like=like)

    def _keep_scale(self, dtype):
        return dtype.type(1.0 / (1.0 - self.dropout))

    @single_blas_pool
    def forward(self, x_dict, graphs=None):
        """{node type: (N_v, C) float, or None for a type that no relation enters}."""
        xs, gs = self._check_inputs(x_dict, graphs)
        H, D, C = self.heads, self.out_channels // self.heads, self.out_channels
        P = self.params
        # Z_v = x_v W_v + b_v, viewed (N_v, H, D) (a free reshape)
        Z = {}
        for nt, x in xs.items():
            z = ops.matmul(x, P[f"proj.{nt}.W"])
            ops.add_bias(z, P[f"proj.{nt}.b"])
            Z[nt] = z.reshape(x.shape[0], H, D)
        into = {nt: [et for et in gs if et[2] == nt] for nt in xs}
        # the pre-ReLU outputs of the T relations into each type, stacked (T, N_t, C) for the semantic step
        stacks = {nt: empty((len(ets), xs[nt].shape[0], C), Z[nt].dtype, like=Z[nt])
                  for nt, ets in into.items() if ets}
        relations = {}
        for et, g in gs.items():        # in the order of graphs: the order the dropout keys are drawn in
            src, _, dst = et
            key = edge_type_key(et)
            a_src = ops.head_dot(Z[src], P[f"lin_src.{key}"])                         # (N_s, H)
            a_dst = ops.head_dot(Z[dst], P[f"lin_dst.{key}"])                         # (N_t, H)
            keep = self._keep_mask(g.num_edges, Z[dst])
            dt = Z[dst].dtype
            n = g.num_dst
            row_max, row_sum = empty((n, H), dt, like=Z[dst]), empty((n, H), dt, like=Z[dst])
            t = into[dst].index(et)
            run("gat_forward", H * D * g.num_edges, g.indptr, g.indices, a_dst, a_src, Z[src],
                dt.type(self.negative_slope), keep, self._keep_scale(dt), stacks[dst][t].reshape(n, H, D),
                row_max, row_sum)
            relations[et] = (g, a_src, a_dst, keep, row_max, row_sum)
        out_dict, groups = {}, {}
        self.semantic_attention, self.semantic_edge_types = {}, {}
        for nt in xs:
            if not into[nt]:
                out_dict[nt] = None
                continue
            Ys, pos = ops.relu(stacks[nt])                                            # Y_r = ReLU(.)
            out, beta, K, K_mean = self._semantic(Ys)
            out_dict[nt] = out
            groups[nt] = (Ys, pos, K, K_mean, beta)
            self.semantic_attention[nt] = np.array(beta).reshape(-1)
            self.semantic_edge_types[nt] = tuple(into[nt])
        self._cache = (xs, Z, into, relations, groups)
        return out_dict

    def _semantic(self, Ys):
        """out = sum_r beta_r Y_r with beta = softmax_r(q . mean_i tanh(Y_r[i] W_k + b_k)); Ys (T, N, C)."""
        T, N, C = Ys.shape
        K = ops.matmul(Ys.reshape(T * N, C), self.params["k_lin.W"])
        ops.add_bias(K, self.params["k_lin.b"])
        K = ops.tanh(K).reshape(T, N, C)                                # K_r = tanh(Y_r W_k + b_k)
        K_mean = K.mean(axis=1)                                         # (T, C): mean over the N nodes
        score = K_mean @ self.params["q"]                               # w_r = q . K_mean_r
        beta = ops.row_softmax(score.reshape(1, T))                     # (1, T)
        out = ops.matmul(beta, Ys.reshape(T, N * C)).reshape(N, C)      # sum_r beta_r Y_r
        return out, beta, K, K_mean

    # ------------------------------------------------------------------ backward
    def _check_grad(self, grad_out, groups, xs):
        if not isinstance(grad_out, Mapping):
            raise TypeError(f"grad_out must be a dict {{node type: (N, C) gradient}} like the forward's output, "
                            f"got {type(grad_out).__name__}")
        for nt, G in grad_out.items():
            if G is None:
                continue
            if nt not in groups:
                what = "no output (None)" if nt in xs else "no entry in the forward's output"
                raise ValueError(f"grad_out has a gradient for node type {nt!r}, which had {what}")
            spec = ((xs[nt].shape[0], self.out_channels), self.param_dtype)
            check_grad_out(G, spec, name=f"grad_out[{nt!r}]")
        return grad_out

    @single_blas_pool
    def backward(self, grad_out):
        """{node type: dL/dx_v (N_v, F_v)} (None for sparse x_v); adds into every parameter's gradient."""
        xs, Z, into, relations, groups = self._saved()
        grad_out = self._check_grad(grad_out, groups, xs)
        P, grads = self.params, self.grads
        H, D, C = self.heads, self.out_channels // self.heads, self.out_channels
        dZ = {}                              # dL/dZ_v (N_v, H, D), made when a gradient first reaches v

        def dZ_of(nt):
            if nt not in dZ:
                dZ[nt] = ops.zero_(empty_like(Z[nt]))
            return dZ[nt]

        for nt, (Ys, pos, K, K_mean, beta) in groups.items():
            G = grad_out.get(nt)
            if G is None:
                continue
            T, N, _ = Ys.shape
            dYs = self._semantic_backward(G, Ys, K, K_mean, beta)                # (T, N, C)
            dpre = ops.relu_backward(dYs, pos)                                    # through the ReLU
            for t, et in enumerate(into[nt]):
                src = et[0]
                key = edge_type_key(et)
                g, a_src, a_dst, keep, row_max, row_sum = relations[et]
                dt = Z[src].dtype
                dZ_msg, da_src, da_dst = empty_like(Z[src]), empty_like(a_src), empty_like(a_dst)
                # two E x H workspaces, freed on return: never E x H x D
                grad_pre = empty((g.num_edges, H), dt, like=Z[src])
                alpha_d = empty((g.num_edges, H), dt, like=Z[src])
                run("gat_backward", H * D * g.num_edges, g.indptr, g.indices, g.t_indptr, g.t_indices, g.t_perm,
                    a_dst, a_src, Z[src], dt.type(self.negative_slope), keep, self._keep_scale(dt), row_max,
                    row_sum, dpre[t].reshape(N, H, D), grad_pre, alpha_d, dZ_msg, da_dst, da_src)
                # score path: a_src = <Z_s, lin_src>, a_dst = <Z_t, lin_dst>
                ops.head_dot_backward_att(da_src, Z[src], out=grads[f"lin_src.{key}"], accumulate=True)
                ops.head_dot_backward_att(da_dst, Z[nt], out=grads[f"lin_dst.{key}"], accumulate=True)
                ops.add_(dZ_of(src), dZ_msg)                                      # message path
                ops.head_dot_backward_Z_(dZ_of(src), da_src, P[f"lin_src.{key}"])  # dZ_s += da_src lin_src
                ops.head_dot_backward_Z_(dZ_of(nt), da_dst, P[f"lin_dst.{key}"])   # dZ_t += da_dst lin_dst
        dx = {}
        for nt, x in xs.items():
            if nt not in dZ:            # no gradient reached this type: its parameters get nothing
                dx[nt] = None if (issparse(x) or not self.needs_input_grad) else zeros_like(x)
                continue
            d = dZ[nt].reshape(x.shape[0], C)
            ops.matmul_tn(x, d, out=grads[f"proj.{nt}.W"], accumulate=True)         # dW_v += x_v^T dZ_v
            ops.col_sum(d, out=grads[f"proj.{nt}.b"], accumulate=True)              # db_v += sum_n dZ_v[n]
            dx[nt] = None if (issparse(x) or not self.needs_input_grad) else ops.matmul_nt(d, P[f"proj.{nt}.W"])
        return dx

    def _semantic_backward(self, G, Ys, K, K_mean, beta):
        """dL/dY_r (T, N, C) from G = dL/dout (N, C); adds into k_lin.W, k_lin.b and q (derivations/han.md § 3)."""
        T, N, C = Ys.shape
        P, grads = self.params, self.grads
        G_flat = G.reshape(1, N * C)
        dbeta = ops.matmul_nt(G_flat, Ys.reshape(T, N * C))                  # dL/dbeta_r = <G, Y_r>: (1, T)
        dscore = ops.row_softmax_backward(dbeta, beta).reshape(T)            # beta_r (dbeta_r - <beta, dbeta>)
        dYs = ops.matmul_tn(beta, G_flat).reshape(T, N, C)                   # dY_r = beta_r G (the sum's path)
        grads["q"] += dscore @ K_mean                                        # dq = sum_r dscore_r K_mean_r
        dK_row = np.multiply.outer(dscore / N, P["q"])                       # dL/dK_r[i] = dscore_r q / N: (T, C)
        dA = ((1 - K * K) * dK_row[:, None, :]).reshape(T * N, C)           # through tanh: (1 - K^2)
        ops.matmul_tn(Ys.reshape(T * N, C), dA, out=grads["k_lin.W"], accumulate=True)   # dW_k += Y^T dA
        ops.col_sum(dA, out=grads["k_lin.b"], accumulate=True)                            # db_k += sum dA
        ops.add_(dYs.reshape(T * N, C), ops.matmul_nt(dA, P["k_lin.W"]))                  # dY += dA W_k^T
        return dYs
