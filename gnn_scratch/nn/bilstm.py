"""A bidirectional LSTM over packed sequences whose output is the mean over steps of both directions.

HetGNN (Zhang et al., KDD 2019, eqs. 2 and 4) encodes a set of vectors -- a node's content pieces,
or its sampled neighbours of one type -- with a Bi-LSTM and averages the step outputs:

    out(s) = (1/l_s) sum_{t < l_s} [ h->_t(s) || h<-_t(s) ]      (N_seq, 2H)

h-> runs over the sequence in order, h<- over it reversed. The mean runs over every step of both
directions, so the pairing of h->_t with h<-_{l-1-t} does not matter: the output is
[mean_t h->_t || mean_t h<-_t]. An empty sequence outputs 0 (the empty-neighbourhood rule).

Both directions are ``SequenceLSTM``: ``nn/lstm.py``'s packed LSTM (the same cell, parameters,
packing and forward loop) whose output is the hidden state of *every* packed row rather than only
the final one; its backward is ``LSTM.backward``'s loop with the per-step gradient added to dh_t
(derivations/hetgnn.md section 2, derivations/lstm.md section 4).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .. import ops
from ..threads import single_blas_pool
from .checks import positive_int
from .lstm import LSTM, PackedSequences, pack_sequences
from .module import Module


def reverse_sequences(seqs):
    """The same sequences, each read backwards, as a new ``PackedSequences`` (same order, lengths, batch sizes).

    Packed row offsets[t] + k (step t of sequence order[k], length l) takes the item of row
    offsets[l - 1 - t] + k. O(P).
    """
    P = seqs.num_items
    steps = np.repeat(np.arange(seqs.num_steps), seqs.batch_sizes)          # t of each packed row
    rank = np.arange(P) - seqs.offsets[steps]                               # k of each packed row
    length = seqs.lengths[seqs.order[rank]]
    items = seqs.items[seqs.offsets[length - 1 - steps] + rank] if P else seqs.items.copy()
    return PackedSequences(seqs.order, seqs.lengths, seqs.batch_sizes, seqs.offsets, items, seqs.num_src)


def equal_length_sequences(items, num_src):
    """items (N_seq, l) int: N_seq sequences of one length l (row s = sequence s), packed. l may be 0."""
    items = np.asarray(items)
    if items.ndim != 2:
        raise ValueError(f"items must be a (N_seq, length) array of source ids, got shape {items.shape}")
    n, length = items.shape
    if items.size and (items.min() < 0 or items.max() >= num_src):
        raise ValueError(f"items must hold source ids in [0, {num_src}), got [{items.min()}, {items.max()}]")
    return pack_sequences(np.arange(n + 1, dtype=np.int64) * length, items.reshape(-1), num_src)


class SequenceLSTM(LSTM):
    """``LSTM`` returning h_t of every packed row: (P, H) in packed (step-major) order, not only h_final.

    x: (N_src, F_in), seqs: ``PackedSequences``. Backward takes G (P, H) = dL/dh_t of every row and
    runs LSTM.backward's loop with dh_t = G_t + da_{t+1} W_h^T (derivations/hetgnn.md section 2).
    """

    @single_blas_pool
    def forward(self, x, seqs=None):
        super().forward(x, seqs)
        return self._cache[5]                                 # Hs: (P, H), h_t of every packed row

    @single_blas_pool
    def backward(self, grad_out):
        x, seqs, gates, C, TC, Hs = self._saved()
        W_x, W_h = self.params["W_x"], self.params["W_h"]
        H = self.hidden_channels
        dh = np.zeros((seqs.num_seq, H), dtype=W_x.dtype)    # dL/dh_t through step t + 1 (rank order)
        dc = np.zeros_like(dh)
        dA_in = np.empty((seqs.num_items, 4 * H), dtype=W_x.dtype)
        for t in range(seqs.num_steps - 1, -1, -1):
            lo, hi = seqs.offsets[t], seqs.offsets[t + 1]
            n = hi - lo
            gt, tc = gates[lo:hi], TC[lo:hi]
            i, f, g, o = gt[:, :H], gt[:, H:2 * H], gt[:, 2 * H:3 * H], gt[:, 3 * H:]
            # rows k < n that end at t were never written by a later step: dh holds 0 there
            dh_t = dh[:n] + grad_out[lo:hi]
            dc_t = dc[:n] + dh_t * o * (1.0 - tc * tc)
            da = dA_in[lo:hi]
            da[:, :H] = dc_t * g * i * (1.0 - i)
            da[:, 2 * H:3 * H] = dc_t * i * (1.0 - g * g)
            da[:, 3 * H:] = dh_t * tc * o * (1.0 - o)
            if t > 0:
                plo = seqs.offsets[t - 1]
                c_prev, h_prev = C[plo:plo + n], Hs[plo:plo + n]
                da[:, H:2 * H] = dc_t * c_prev * f * (1.0 - f)
                self.grads["W_h"] += h_prev.T @ da
                dh[:n] = da @ W_h.T
                dc[:n] = dc_t * f
            else:
                da[:, H:2 * H] = 0.0                          # c_0 = 0: the forget gate saw nothing
        self.grads["b"] += dA_in.sum(axis=0)
        if seqs.num_items:
            gather = seqs.gather_graph()
            dA_src = ops.spmm_backward_X(gather, ops.ones_on_edges(gather, dA_in.dtype), dA_in)
        else:
            dA_src = np.zeros((seqs.num_src, 4 * H), dtype=W_x.dtype)
        self.grads["W_x"] += np.asarray(x.T @ dA_src)
        if sp.issparse(x) or not self.needs_input_grad:
            return None
        return dA_src @ W_x.T


class BiLSTM(Module):
    """HetGNN's Bi-LSTM encoder: out(s) = mean over the steps of s of [h->_t || h<-_t], (N_seq, 2H).

    x: (N_src, F_in) float, the items' inputs; seqs: ``PackedSequences`` over those N_src rows.
    Children ``fwd``, ``bwd``: two ``SequenceLSTM(F_in, H)`` (params W_x (F_in, 4H), W_h (H, 4H),
    b (4H,) each). An empty sequence outputs 0. Backward: G (N_seq, 2H) -> each packed row of the
    forward direction gets G[s, :H] / l_s, of the backward one G[s, H:] / l_s; returns dx (N_src, F_in)
    (the sum of both directions' input gradients), None with ``needs_input_grad = False``.
    Raises TypeError when seqs is not a ``PackedSequences``.
    """

    def __init__(self, in_channels, hidden_channels, seed=0, dtype=np.float32):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.hidden_channels = positive_int("hidden_channels", hidden_channels)
        rng = np.random.default_rng(seed)
        s_f, s_b = (int(v) for v in rng.integers(0, 2**31, 2))
        self.fwd = SequenceLSTM(in_channels, hidden_channels, seed=s_f, dtype=dtype)
        self.bwd = SequenceLSTM(in_channels, hidden_channels, seed=s_b, dtype=dtype)

    @property
    def needs_input_grad(self):
        return self.fwd.needs_input_grad

    @needs_input_grad.setter
    def needs_input_grad(self, value):
        self.fwd.needs_input_grad = self.bwd.needs_input_grad = bool(value)

    @single_blas_pool
    def forward(self, x, seqs=None):
        if not isinstance(seqs, PackedSequences):
            raise TypeError(f"BiLSTM.forward needs the sequences: forward(x, seqs) with seqs a PackedSequences, "
                            f"got {type(seqs).__name__}")
        rev = reverse_sequences(seqs)
        H = self.hidden_channels
        h_f = self.fwd.forward(x, seqs)                       # (P, H), packed rows
        h_b = self.bwd.forward(x, rev)
        # packed row p belongs to sequence order[rank(p)]; the mean is a segment sum / length
        row_seq = self._row_sequence(seqs)
        inv_len = np.zeros(seqs.num_seq, dtype=h_f.dtype)
        nz = seqs.lengths > 0
        inv_len[nz] = 1.0 / seqs.lengths[nz]
        out = np.zeros((seqs.num_seq, 2 * H), dtype=h_f.dtype)
        S = self._segment_matrix(row_seq, seqs.num_seq, h_f.dtype)
        out[:, :H] = S @ h_f
        out[:, H:] = S @ h_b
        out *= inv_len[:, None]
        self._cache = (row_seq, inv_len)
        return out

    @staticmethod
    def _row_sequence(seqs):
        steps = np.repeat(np.arange(seqs.num_steps), seqs.batch_sizes)
        return seqs.order[np.arange(seqs.num_items) - seqs.offsets[steps]]

    @staticmethod
    def _segment_matrix(row_seq, num_seq, dtype):
        """(N_seq, P) 0/1 CSR with a one where packed row p belongs to sequence s: a deterministic segment sum."""
        P = row_seq.size
        return sp.csr_matrix((np.ones(P, dtype=dtype), (row_seq, np.arange(P))), shape=(num_seq, P))

    @single_blas_pool
    def backward(self, grad_out):
        row_seq, inv_len = self._saved()
        H = self.hidden_channels
        G = grad_out * inv_len[:, None]                      # d out / d h_t = 1 / l_s
        dx_f = self.fwd.backward(np.ascontiguousarray(G[row_seq, :H]))
        dx_b = self.bwd.backward(np.ascontiguousarray(G[row_seq, H:]))
        if dx_f is None:
            return None
        return dx_f + dx_b
