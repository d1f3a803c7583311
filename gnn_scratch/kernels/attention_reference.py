"""Full multi-head self-attention within each graph of a batch, in plain NumPy: the readable truth.

Two versions of one function live here:

* ``dense_attention`` / ``dense_attention_backward`` -- the definition, written as it reads: per
  graph, the (H, n, n) score matrix S = scale Q Kᵀ, its row softmax P, O = P V, and the textbook
  backward. O(n²) memory per graph: the truth the fused kernels are tested against, and the
  baseline of the memory table (derivations/flash_attention.md, section 7).
* ``flash_attention_forward`` / ``flash_attention_backward`` -- the registered ops of the
  ``attention`` family (``attention_cpu`` in Numba, ``attention_cuda`` in numba.cuda): FlashAttention
  (Dao et al., NeurIPS 2022), written with NumPy tiles. The forward walks the keys of a query tile
  in tiles of ``BC``, keeping a running row max m and sum l (the online softmax), and saves only
  the row log-sum-exp L = m + log l; the backward recomputes each tile of P = exp(S - L) from L and
  never holds more than one (BR x BC) tile per head. O(N d) memory.

The contract of the family (``attention_cpu`` and ``attention_cuda`` follow it):

* ``graph_ptr`` (B+1,) int64: graph k owns the contiguous node rows graph_ptr[k] : graph_ptr[k+1]
  (a ``GraphBatch``'s ``graph_ptr``; one graph is [0, N]); non-decreasing, graph_ptr[0] = 0,
  graph_ptr[B] = N. A node attends to every node of its own graph, itself included, and to no
  other: the attention matrix is block-diagonal. An empty graph has no rows and costs nothing.
* ``Q``, ``K`` (N, H, d), ``V`` (N, H, dv): one float dtype, C-contiguous. ``scale`` a scalar of
  that dtype (the ops' default is 1 / sqrt(d)).
* Forward outputs, preallocated and fully overwritten: ``O`` (N, H, dv) and ``L`` (N, H), the row
  log-sum-exp L[i, h] = log sum_j exp(S[i, j, h]) (max-shifted: never overflows).
* Backward: ``dO`` (N, H, dv) the upstream gradient; ``D`` (N, H) a workspace overwritten with
  D[i, h] = <dO[i, h], O[i, h]>; ``dQ``, ``dK`` (N, H, d), ``dV`` (N, H, dv) overwritten.
* No row is empty (a node sees at least itself), so l >= 1 and L is finite for finite inputs.

Derived in derivations/flash_attention.md.
"""
import numpy as np

# Tile sizes of this readable version (query rows x key rows): the algorithm, not a tuned choice.
BR = 64
BC = 64


def _segments(graph_ptr):
    """(a, b) node range of each non-empty graph."""
    return [(int(a), int(b)) for a, b in zip(graph_ptr[:-1], graph_ptr[1:]) if b > a]


def _heads(X):
    """(n, H, f) rows -> (H, n, f): one matrix per head, for batched matmuls."""
    return X.transpose(1, 0, 2)


# ====================================================================================== the definition
def dense_attention(Q, K, V, graph_ptr, scale=None):
    """The definition, one graph at a time: O = softmax(scale Q Kᵀ) V per head, L = row log-sum-exp.

    Q, K (N, H, d), V (N, H, dv) float; graph_ptr (B+1,) int (graph k = rows graph_ptr[k] : graph_ptr[k+1]);
    scale default 1 / sqrt(d). Returns O (N, H, dv) and L (N, H) in Q's dtype. Materialises the
    (H, n, n) scores of each graph: O(n² H) memory for a graph of n nodes (what the fused kernels avoid).
    """
    N, H, d = Q.shape
    scale = Q.dtype.type(1 / np.sqrt(d) if scale is None else scale)
    O = np.zeros((N, H, V.shape[2]), Q.dtype)
    L = np.zeros((N, H), Q.dtype)
    for a, b in _segments(np.asarray(graph_ptr)):
        S = np.matmul(_heads(Q[a:b]), _heads(K[a:b]).transpose(0, 2, 1))   # (H, n, n)
        S *= scale
        m = S.max(axis=2, keepdims=True)
        S -= m
        np.exp(S, out=S)                                                     # S is now exp(S - m)
        l = S.sum(axis=2, keepdims=True)
        S /= l                                                               # P, the attention
        O[a:b] = np.matmul(S, _heads(V[a:b])).transpose(1, 0, 2)
        L[a:b] = (m + np.log(l))[:, :, 0].T
    return O, L


def dense_attention_backward(dO, Q, K, V, graph_ptr, scale=None):
    """Gradients of ``dense_attention``'s O, the textbook way: P recomputed, then per graph and head

        dV = Pᵀ dO,   dP = dO Vᵀ,   dS = P ⊙ (dP - rowsum(P ⊙ dP)),   dQ = scale dS K,   dK = scale dSᵀ Q.

    dO (N, H, dv); Q, K, V, graph_ptr, scale as ``dense_attention``. Returns dQ, dK (N, H, d), dV
    (N, H, dv). Two (H, n, n) arrays per graph (P and dP, which becomes dS in place).
    """
    N, H, d = Q.shape
    scale = Q.dtype.type(1 / np.sqrt(d) if scale is None else scale)
    dQ, dK, dV = np.zeros_like(Q), np.zeros_like(K), np.zeros_like(V)
    for a, b in _segments(np.asarray(graph_ptr)):
        q, k, v, do = _heads(Q[a:b]), _heads(K[a:b]), _heads(V[a:b]), _heads(dO[a:b])
        P = np.matmul(q, k.transpose(0, 2, 1))
        P *= scale
        P -= P.max(axis=2, keepdims=True)
        np.exp(P, out=P)
        P /= P.sum(axis=2, keepdims=True)
        dV[a:b] = np.matmul(P.transpose(0, 2, 1), do).transpose(1, 0, 2)
        dS = np.matmul(do, v.transpose(0, 2, 1))                             # dP
        dS -= np.einsum("hij,hij->hi", P, dS)[:, :, None]                  # rowsum(P ⊙ dP), no (n, n) temporary
        dS *= P                                                              # dS = P ⊙ (dP - rowsum(P ⊙ dP))
        dQ[a:b] = (scale * np.matmul(dS, k)).transpose(1, 0, 2)
        dK[a:b] = (scale * np.matmul(dS.transpose(0, 2, 1), q)).transpose(1, 0, 2)
    return dQ, dK, dV


# ============================================================================ FlashAttention, in tiles
def flash_attention_forward(graph_ptr, Q, K, V, scale, O, L):
    """FlashAttention's forward: O = softmax(scale Q Kᵀ) V within each graph, L = row log-sum-exp.

    graph_ptr (B+1,) int64; Q, K (N, H, d); V (N, H, dv); scale a scalar of Q's dtype;
    O (N, H, dv) and L (N, H) overwritten. O(sum_k n_k² H (d + dv)) work, O(BR BC H) extra memory.

    For a query tile (rows i) the key tiles j are visited in order, with per row and head
        S = scale q kᵀ,   m' = max(m, rowmax S),   P = exp(S - m'),
        l' = l exp(m - m') + rowsum P,   acc' = acc exp(m - m') + P v
    (m = -inf, l = 0, acc = 0 before the first tile); at the end O = acc / l and L = m + log l.
    """
    for a, b in _segments(graph_ptr):
        for i0 in range(a, b, BR):
            i1 = min(b, i0 + BR)
            q = _heads(Q[i0:i1]) * scale                                   # (H, n, d)
            H, n = q.shape[:2]
            m = np.full((H, n), -np.inf, Q.dtype)
            l = np.zeros((H, n), Q.dtype)
            acc = np.zeros((H, n, V.shape[2]), Q.dtype)
            for j0 in range(a, b, BC):
                j1 = min(b, j0 + BC)
                S = np.matmul(q, _heads(K[j0:j1]).transpose(0, 2, 1))       # (H, n, c)
                m_new = np.maximum(m, S.max(axis=2))
                r = np.exp(m - m_new)                                      # exp(-inf) = 0 on the first tile
                P = np.exp(S - m_new[:, :, None])
                l = l * r + P.sum(axis=2)
                acc = acc * r[:, :, None] + np.matmul(P, _heads(V[j0:j1]))
                m = m_new
            O[i0:i1] = (acc / l[:, :, None]).transpose(1, 0, 2)
            L[i0:i1] = (m + np.log(l)).T


def flash_attention_backward(graph_ptr, Q, K, V, O, L, dO, scale, D, dQ, dK, dV):
    """FlashAttention's backward: dQ, dK, dV of O, with each tile of P recomputed from the saved L.

    graph_ptr, Q, K, V, scale as the forward; O (N, H, dv) and L (N, H) saved by it; dO (N, H, dv);
    D (N, H) overwritten with D[i, h] = <dO[i, h], O[i, h]>; dQ, dK (N, H, d), dV (N, H, dv) overwritten.
    O(sum_k n_k² H (d + dv)) work, O(BR BC H) extra memory.

    For every (query tile i, key tile j) pair of a graph, per head:
        P = exp(scale q kᵀ - L_i)       dV_j += Pᵀ dO_i       dP = dO_i vᵀ
        dS = P ⊙ (dP - D_i)             dQ_i += scale dS k    dK_j += scale dSᵀ q
    D_i = rowsum(P ⊙ dP) = <dO_i, O_i> (derivations/flash_attention.md, section 4). Here one
    serial loop accumulates all three; the parallel kernels split it in two passes (by query
    tiles for dQ, by key tiles for dK and dV) so that each output row has one writer.
    """
    D[:] = np.sum(dO * O, axis=2)
    dQ[:] = 0
    dK[:] = 0
    dV[:] = 0
    for a, b in _segments(graph_ptr):
        for i0 in range(a, b, BR):
            i1 = min(b, i0 + BR)
            q = _heads(Q[i0:i1]) * scale                                   # (H, n, d)
            do = _heads(dO[i0:i1])                                         # (H, n, dv)
            Li, Di = L[i0:i1].T[:, :, None], D[i0:i1].T[:, :, None]        # (H, n, 1)
            for j0 in range(a, b, BC):
                j1 = min(b, j0 + BC)
                k, v = _heads(K[j0:j1]), _heads(V[j0:j1])
                P = np.exp(np.matmul(q, k.transpose(0, 2, 1)) - Li)        # (H, n, c)
                dV[j0:j1] += np.matmul(P.transpose(0, 2, 1), do).transpose(1, 0, 2)
                dS = P * (np.matmul(do, v.transpose(0, 2, 1)) - Di)
                dQ[i0:i1] += (scale * np.matmul(dS, k)).transpose(1, 0, 2)
                dK[j0:j1] += np.matmul(dS.transpose(0, 2, 1), q).transpose(1, 0, 2)
