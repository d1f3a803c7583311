"""An LSTM run over many variable-length sequences at once, with backpropagation through time by hand.

GraphSAGE's LSTM aggregator (Hamilton et al., 2017) reads each destination node's neighbours as a
sequence and keeps the final hidden state. Neighbourhoods have every length from 0 to the maximum
degree, so the sequences are **packed by length** (the layout of torch's ``PackedSequence``): the
sequences are sorted by decreasing length once, and step t processes the b_t sequences longer than
t, which are then exactly the first b_t rows of the running state. No padding, no masks, no wasted
arithmetic: the total work is one cell evaluation per edge, batched into T = max degree matrix
products. (Padding to T with a mask would cost N_dst * T cell evaluations, 10-50x more on a
power-law graph; grouping nodes by equal degree would need one small matrix product per (degree,
step) pair instead of one per step.)

Cell (derivations/lstm.md, gate order i, f, g, o as in torch):
    a_t = x_t W_x + h_{t-1} W_h + b                     (b_t, 4H)
    i = sigma(a^i),  f = sigma(a^f),  g = tanh(a^g),  o = sigma(a^o)
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t),   h_0 = c_0 = 0
The input projection x_t W_x is taken once per *source node* (N_src rows) and gathered per edge,
not once per edge: a neighbour shared by many destinations is projected once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .. import ops
from ..graph import Graph
from .checks import check_features, float_dtype, positive_int
from .init import as_rng
from .module import Module


@dataclass
class PackedSequences:
    """N_seq sequences of source-node ids laid out step-major, longest sequences first.

    order:       (N_seq,) int64  sequence ids sorted by decreasing length (stable: ties keep id order)
    lengths:     (N_seq,) int64  length of each sequence, in sequence-id order
    batch_sizes: (T,) int64      b_t = number of sequences longer than t (non-increasing)
    offsets:     (T + 1,) int64  step t occupies packed rows offsets[t] : offsets[t + 1]
    items:       (P,) int32      the source node of each packed row, P = sum(lengths)
    num_src:     int             number of source nodes the items index into

    Row offsets[t] + k holds step t of sequence order[k]; so at every step the active sequences
    are a prefix of ``order``, and h_{t-1} of the active ones is the first b_t rows of step t - 1.
    """
    order: np.ndarray
    lengths: np.ndarray
    batch_sizes: np.ndarray
    offsets: np.ndarray
    items: np.ndarray
    num_src: int
    _gather: Graph | None = None

    @property
    def num_seq(self):
        return int(self.order.size)

    @property
    def num_steps(self):
        return int(self.batch_sizes.size)

    @property
    def num_items(self):
        return int(self.items.size)

    def gather_graph(self):
        """The (P, N_src) graph with one edge per packed row, items[p] -> p, built once.

        Gathering is A X and its backward, a scatter-add onto the sources, is A^T G: an SpMM over
        the cached transpose, row-parallel and deterministic (no np.add.at).
        """
        if self._gather is None:
            self._gather = Graph(np.arange(self.num_items + 1, dtype=np.int64), self.items, num_src=self.num_src)
        return self._gather


def pack_sequences(indptr, items, num_src):
    """Pack the sequences items[indptr[s] : indptr[s + 1]] (one per row s) by decreasing length.

    indptr (N_seq + 1,) int64, items (E,) int source ids in sequence order, num_src int.
    Returns a ``PackedSequences``. O(E + N_seq log N_seq).
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    lengths = np.diff(indptr)
    n = lengths.size
    order = np.argsort(-lengths, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    T = int(lengths.max()) if n else 0
    # b_t = #(length > t) = n - #(length <= t)
    batch_sizes = n - np.cumsum(np.bincount(lengths, minlength=T + 1))[:T]
    offsets = np.zeros(T + 1, dtype=np.int64)
    np.cumsum(batch_sizes, out=offsets[1:])
    rows = np.repeat(np.arange(n), lengths)
    step = np.arange(indptr[-1]) - indptr[rows]                # position of each item in its sequence
    packed = np.empty(indptr[-1], dtype=np.int32)
    packed[offsets[step] + rank[rows]] = items
    return PackedSequences(order, lengths, batch_sizes.astype(np.int64), offsets, packed, int(num_src))


def pack_neighbours(graph, rng=None):
    """Each destination's in-neighbours as a sequence, in a random order drawn from ``rng`` (CSR order if None).

    graph: (N_dst, N_src) ``Graph``. The permutation is uniform within every row: edges are sorted
    by (row, a uniform key per edge), which draws exactly E numbers from ``rng``, so restoring the
    generator replays the same permutation. Returns a ``PackedSequences`` with N_seq = N_dst.
    """
    items = graph.indices
    if rng is not None and graph.num_edges:
        keys = rng.random(graph.num_edges)
        perm = np.lexsort((keys, graph.dst_of_edge()))
        items = items[perm]
    return pack_sequences(graph.indptr, items, graph.num_src)


def _sigmoid(a):
    """sigma(a) = 1 / (1 + e^-a), written with tanh so that no exp can overflow."""
    return 0.5 * (np.tanh(0.5 * a) + 1.0)


class LSTM(Module):
    """Final hidden state of an LSTM run over each packed sequence: h_{len(s)} for every sequence s.

    x: (N_src, F_in) node features (dense, or scipy.sparse for a first layer), the items' inputs;
    seqs: ``PackedSequences`` over those N_src nodes. Output: (N_seq, H), rows in sequence-id order,
    0 for an empty sequence (h_0 = 0: the empty-neighbourhood rule).
    Params: W_x (F_in, 4H), W_h (H, 4H), b (4H,); gate blocks i, f, g, o along the last axis.
    torch's two biases b_ih + b_hh are one here (their sum is all that matters).
    With ``needs_input_grad = False`` backward skips dx and returns None.

    Backward through time (derivations/lstm.md), G = dL/dh_final:
        dc_t += dh_t * o * (1 - tanh(c_t)^2)
        do = dh_t * tanh(c_t);  di = dc_t * g;  dg = dc_t * i;  df = dc_t * c_{t-1}
        da = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]
        dh_{t-1} = da W_h^T;  dc_{t-1} = dc_t * f;  dW_h += h_{t-1}^T da;  db += sum da
        dA_src = scatter of da onto source nodes;  dW_x = x^T dA_src;  dx = dA_src W_x^T
    """

    needs_input_grad = True

    def __init__(self, in_channels, hidden_channels, seed=0, dtype=np.float32):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.hidden_channels = positive_int("hidden_channels", hidden_channels)
        dtype = float_dtype(dtype)
        rng = as_rng(seed)
        H = self.hidden_channels
        k = 1.0 / np.sqrt(H)  # torch.nn.LSTM's U(-1/sqrt(H), 1/sqrt(H)) for every weight
        self.add_param("W_x", rng.uniform(-k, k, (self.in_channels, 4 * H)).astype(dtype))
        self.add_param("W_h", rng.uniform(-k, k, (H, 4 * H)).astype(dtype))
        self.add_param("b", rng.uniform(-k, k, 4 * H).astype(dtype))

    def forward(self, x, seqs=None):
        if not isinstance(seqs, PackedSequences):
            raise TypeError(f"LSTM.forward needs the sequences: forward(x, seqs) with seqs a PackedSequences, "
                            f"got {type(seqs).__name__}")
        x = check_features(x, seqs.num_src, self.in_channels, self.params["W_x"].dtype)   # (N_src, in_channels)
        W_x, W_h, b = self.params["W_x"], self.params["W_h"], self.params["b"]
        H, N = self.hidden_channels, seqs.num_seq
        A_src = np.asarray(x @ W_x)                           # (N_src, 4H): one projection per node
        A_in = A_src[seqs.items]                              # (P, 4H) gathered per packed row
        P = seqs.num_items
        gates = np.empty((P, 4 * H), dtype=W_x.dtype)         # activated i, f, g, o
        C = np.empty((P, H), dtype=W_x.dtype)                 # c_t
        TC = np.empty((P, H), dtype=W_x.dtype)                # tanh(c_t)
        Hs = np.empty((P, H), dtype=W_x.dtype)                # h_t
        h = np.zeros((N, H), dtype=W_x.dtype)                 # running state, rank order
        c = np.zeros((N, H), dtype=W_x.dtype)
        for t in range(seqs.num_steps):
            lo, hi = seqs.offsets[t], seqs.offsets[t + 1]
            n = hi - lo
            a = A_in[lo:hi] + h[:n] @ W_h + b
            gt = gates[lo:hi]
            gt[:, :2 * H] = _sigmoid(a[:, :2 * H])
            gt[:, 2 * H:3 * H] = np.tanh(a[:, 2 * H:3 * H])
            gt[:, 3 * H:] = _sigmoid(a[:, 3 * H:])
            i, f, g, o = gt[:, :H], gt[:, H:2 * H], gt[:, 2 * H:3 * H], gt[:, 3 * H:]
            C[lo:hi] = f * c[:n] + i * g
            TC[lo:hi] = np.tanh(C[lo:hi])
            Hs[lo:hi] = o * TC[lo:hi]
            h[:n], c[:n] = Hs[lo:hi], C[lo:hi]
        # a sequence's row of h was last written at its final step: h now holds every h_final
        out = np.empty_like(h)
        out[seqs.order] = h
        self._cache = (x, seqs, gates, C, TC, Hs)
        return out

    def backward(self, grad_out):
        x, seqs, gates, C, TC, Hs = self._saved()
        W_x, W_h = self.params["W_x"], self.params["W_h"]
        H = self.hidden_channels
        dh = np.ascontiguousarray(grad_out[seqs.order], dtype=W_x.dtype)  # rank order; dL/dh_final
        dc = np.zeros_like(dh)
        dA_in = np.empty((seqs.num_items, 4 * H), dtype=W_x.dtype)
        for t in range(seqs.num_steps - 1, -1, -1):
            lo, hi = seqs.offsets[t], seqs.offsets[t + 1]
            n = hi - lo
            gt, tc = gates[lo:hi], TC[lo:hi]
            i, f, g, o = gt[:, :H], gt[:, H:2 * H], gt[:, 2 * H:3 * H], gt[:, 3 * H:]
            # rows k < n that end at t still hold G_k; rows that go on hold dL/dh_t from step t + 1
            dh_t = dh[:n]
            dc_t = dc[:n] + dh_t * o * (1.0 - tc * tc)
            da = dA_in[lo:hi]
            da[:, :H] = dc_t * g * i * (1.0 - i)
            da[:, 2 * H:3 * H] = dc_t * i * (1.0 - g * g)
            da[:, 3 * H:] = dh_t * tc * o * (1.0 - o)
            if t > 0:
                plo = seqs.offsets[t - 1]                     # h_{t-1}, c_{t-1}: first n rows of step t-1
                c_prev, h_prev = C[plo:plo + n], Hs[plo:plo + n]
                da[:, H:2 * H] = dc_t * c_prev * f * (1.0 - f)
                self.grads["W_h"] += h_prev.T @ da
                dh[:n] = da @ W_h.T
                dc[:n] = dc_t * f
            else:
                da[:, H:2 * H] = 0.0                          # c_0 = 0: the forget gate saw nothing
        self.grads["b"] += dA_in.sum(axis=0)
        if seqs.num_items:
            dA_src = ops.spmm_backward_X(seqs.gather_graph(), ops.ones_on_edges(seqs.gather_graph(), dA_in.dtype),
                                         dA_in)
        else:
            dA_src = np.zeros((seqs.num_src, 4 * H), dtype=W_x.dtype)
        self.grads["W_x"] += np.asarray(x.T @ dA_src)
        if sp.issparse(x) or not self.needs_input_grad:
            return None
        return dA_src @ W_x.T
