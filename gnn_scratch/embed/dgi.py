"""Deep Graph Infomax (Veličković, Fedus, Hamilton, Liò, Bengio & Hjelm, ICLR 2019), as the authors' code
(github.com/PetarV-/DGI) trains it on Cora, every backward by hand (derivations/dgi.md).

A GNN encoder is trained without labels to tell the nodes of the real graph from those of a corrupted
one, each scored against a summary of the real graph:

    H   = PReLU(A_hat X W + b)             the encoder E (one GCN layer, 512 channels, one PReLU slope)
    H~  = PReLU(A_hat X~ W + b)            the same encoder on the corruption X~ = X[perm] (rows shuffled)
    s   = sigma((1/N) sum_i H[i])          the readout: the sigmoid of the mean
    z_i = H[i] W_d s + b_d,  z~_i = H~[i] W_d s + b_d        the bilinear discriminator D
    L   = BCE-with-logits over the 2N scores, labels 1 for z, 0 for z~ (the mean of the 2N terms)

The embeddings are H of the real graph (``DGI.embed``), judged by a logistic regression trained on
them, frozen (``logreg_accuracies``: the paper's 50 repeats).

How the code is laid out (and why). Both branches run as *one* pass of the shared encoder over the
disjoint union of two copies of the graph (a ``GraphBatch``), with features [X; X~]: A_hat of the
union is block-diagonal, so each half of the output is exactly that branch, and the encoder's
backward computes dW = [X; X~]^T dZ = X^T dZ_real + X~^T dZ_corrupt -- the two branches' gradients
add, as the shared weights require, with no second cache and no second call. The readout's
gradient reaches the real half only: the summary depends on every real node and on no corrupted one.

DGI lives here, beside the other embedding methods, because what it produces is an embedding (a fit
without labels, then ``embed``); its layers (``nn.GCNConv``, ``nn.activations.PReLU``,
``nn.bilinear.Bilinear``, ``nn.bce.BCEWithLogitsLoss``) live in ``nn`` where any model can use them.
Features are host data (NumPy or scipy.sparse): each step's [X; X[perm]] is built on the host and
goes to the graph's device, as the parameters do with ``DGI.to``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import ops
from ..device import item, to, to_host
from ..graph import GraphBatch
from ..nn.activations import PReLU
from ..nn.bce import BCEWithLogitsLoss
from ..nn.bilinear import Bilinear
from ..nn.checks import check_features, check_graph, float_dtype, positive_int
from ..nn.conv.gcn_conv import GCNConv
from ..nn.init import as_rng
from ..nn.linear import Linear
from ..nn.loss import SoftmaxCrossEntropy, accuracy
from ..nn.module import Module
from ..optim import Adam

# The reference's hyper-parameters on Cora (execute.py): hid_units, lr, l2_coef, patience, nb_epochs.
HIDDEN_CHANNELS = 512
LR = 0.001
WEIGHT_DECAY = 0.0
PATIENCE = 20
MAX_EPOCHS = 10000
# Its logistic regression on the frozen embeddings: 50 fresh models, Adam(lr 0.01, no decay), 100 epochs.
PROBE_RUNS, PROBE_EPOCHS, PROBE_LR = 50, 100, 0.01


def _pair(graph):
    """The disjoint union of two copies of ``graph`` (real nodes 0..N-1, corrupted N..2N-1), once per graph."""
    return graph.derived(("dgi", "pair"), lambda g: GraphBatch.from_graphs([g, g]))


def _whole(graph):
    """``graph`` as a batch of one graph: the readout's mean over its nodes (``ops.global_mean_pool``)."""
    return graph.derived(("dgi", "whole"), lambda g: GraphBatch.from_graphs([g]))


def _labels(pair, dtype):
    """The discriminator's targets (2N, 1) on the pair's device: 1 for the N real nodes, 0 for the N corrupted."""
    return pair.derived(("dgi", "labels", np.dtype(dtype).str),
                        lambda g: np.repeat(np.array([[1], [0]], dtype=dtype), g.num_nodes // 2, axis=0))


def check_permutation(perm, num_nodes):
    """``perm`` as an int64 array, or ValueError / TypeError unless it is a permutation of 0..num_nodes-1."""
    p = np.asarray(perm)
    if p.dtype.kind not in "iu":
        raise TypeError(f"perm must be an integer array (a permutation of the node ids), got dtype {p.dtype}")
    if p.shape != (num_nodes,):
        raise ValueError(f"perm must have shape ({num_nodes},) (one entry per node), got {p.shape}")
    if num_nodes and (p.min() < 0 or p.max() >= num_nodes or np.bincount(p, minlength=num_nodes).max() != 1):
        raise ValueError(f"perm must be a permutation of 0..{num_nodes - 1} (each node id exactly once)")
    return p.astype(np.int64, copy=False)


def corruption(num_nodes, rng):
    """DGI's corruption function: a uniformly random row permutation, drawn from the generator ``rng``."""
    return as_rng(rng).permutation(num_nodes)


@dataclass
class FitResult:
    """What ``DGI.fit`` did: the loss of every epoch run, the epoch whose weights were kept, and why it stopped."""
    losses: list = field(default_factory=list)
    best_epoch: int = -1
    best_loss: float = float("inf")
    stopped_early: bool = False

    @property
    def epochs(self):
        return len(self.losses)


class DGI(Module):
    """Deep Graph Infomax (Veličković et al., ICLR 2019) with the reference code's transductive encoder.

    Encoder: ``GCNConv(in_channels, hidden_channels)`` (A + I, symmetric normalisation, Xavier-uniform W,
    zero bias, as the reference's ``GCN`` layer) and ``PReLU()`` (one shared slope, 0.25). Readout
    sigma(mean). Discriminator ``Bilinear(hidden, hidden, 1)`` (Xavier-uniform, zero bias). Loss: binary
    cross-entropy with logits over the 2N scores (the mean), labels 1 (real) / 0 (corrupted).

    ``forward(x, graph, perm)`` returns the loss (a 0-d array of the parameters' dtype); ``backward()``
    then adds every parameter's gradient and returns dL/dx (host, (N, F_in)), or None when the input is
    data (scipy.sparse, or ``needs_input_grad = False``). ``embed(x, graph)`` gives the embeddings
    H (N, hidden); ``fit`` trains as the reference does.

    x: (N, in_channels) float of the model's dtype, host (NumPy or scipy.sparse); graph: a square
    ``Graph`` of N nodes; perm: (N,) a permutation of 0..N-1 (the corruption: corrupted row i is
    x[perm[i]]). Raises ValueError / TypeError naming the argument for anything else.
    """

    needs_input_grad = True

    def __init__(self, in_channels, hidden_channels=HIDDEN_CHANNELS, seed=0, dtype=np.float32):
        super().__init__()
        in_channels = positive_int("in_channels", in_channels)
        hidden_channels = positive_int("hidden_channels", hidden_channels)
        dtype = float_dtype(dtype)
        rng = as_rng(seed)
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.encoder = GCNConv(in_channels, hidden_channels, seed=rng, dtype=dtype)
        self.act = PReLU(1, 0.25, dtype=dtype)
        self.discriminator = Bilinear(hidden_channels, hidden_channels, 1, seed=rng, dtype=dtype)
        self.bce = BCEWithLogitsLoss()

    def __call__(self, x, graph, perm):
        return self.forward(x, graph, perm)

    def _checked(self, x, graph):
        check_graph(self, graph)
        if graph.num_dst != graph.num_src:
            raise ValueError(f"graph must be square (one node set), got shape {graph.shape}")
        return check_features(x, num_cols=self.in_channels, dtype=self.param_dtype, graph=graph)

    def forward(self, x, graph, perm):
        """The DGI loss of features x on graph, with the corruption x[perm]: a 0-d array."""
        x = self._checked(x, graph)
        N, D = graph.num_nodes, self.hidden_channels
        perm = check_permutation(perm, N)
        pair, whole = _pair(graph), _whole(graph)
        x_both = to(x[np.concatenate([np.arange(N), perm])], graph.device)   # [X; X~], X~ = X[perm]
        H = self.act(self.encoder(x_both, pair))                              # (2N, D): [H; H~], one pass
        s = ops.sigmoid(ops.global_mean_pool(H[:N], whole))                   # (1, D): sigma(mean_i H[i])
        logits = self.discriminator(H, s.reshape(D))                          # (2N, 1): [z; z~]
        loss = self.bce.forward(logits, _labels(pair, logits.dtype))          # mean over the 2N scores
        self._cache = (N, perm, whole, s)
        return loss

    def backward(self):
        """Add dL/d(every parameter) into ``grads``; return dL/dx (host (N, F_in)) or None (see the class)."""
        N, perm, whole, s = self._saved()
        D = self.hidden_channels
        dlogits = self.bce.backward()                                         # (sigma(z) - y) / 2N
        dH, ds = self.discriminator.backward(dlogits)                         # dH = g (W_d s)^T; ds = W_d^T H^T g
        dm = ops.sigmoid_backward(ds.reshape(1, D), s)                        # through sigma: ds s (1 - s)
        ops.add_(dH[:N], ops.global_mean_pool_backward(whole, dm))           # the mean: dm / N to every real row
        self.encoder.needs_input_grad = self.needs_input_grad
        dx_both = self.encoder.backward(self.act.backward(dH))               # dW sums both halves' terms
        if dx_both is None:
            return None
        dx_both = to_host(dx_both)
        dx = dx_both[:N].copy()                                               # the real branch reads x[i] ...
        dx[perm] += dx_both[N:]                                               # ... the corrupted row i reads x[perm[i]]
        return dx

    def embed(self, x, graph):
        """The embeddings H = PReLU(A_hat x W + b) of the real graph: (N, hidden_channels), on graph's device.

        The encoder's caches now hold this pass: a ``backward`` needs a new ``forward`` first.
        """
        x = self._checked(x, graph)
        H = self.act(self.encoder(to(x, graph.device), graph))
        self._cache = None
        return H

    def fit(self, x, graph, epochs=MAX_EPOCHS, patience=PATIENCE, lr=LR, weight_decay=WEIGHT_DECAY, seed=0,
            callback=None):
        """Train as the reference (execute.py): Adam, a fresh corruption every epoch, early stopping on the loss.

        Each epoch: draw perm (``seed``'s generator), compute the loss; if it is the lowest so far, keep a
        copy of the weights that gave it, else count one epoch without improvement and stop when
        ``patience`` are counted (before stepping); then backward and one Adam step. At the end the kept
        weights are loaded back. ``callback(epoch, loss)`` is called every epoch (a progress bar).
        Returns a ``FitResult``. x is data: no input gradient is computed.
        """
        epochs = positive_int("epochs", epochs)
        patience = positive_int("patience", patience)
        x = self._checked(x, graph)
        rng = np.random.default_rng(seed)
        opt = Adam(self.parameters(), lr=lr, weight_decay=weight_decay)
        result, best_state, wait = FitResult(), None, 0
        needs_input_grad, self.needs_input_grad = self.needs_input_grad, False
        try:
            for epoch in range(epochs):
                perm = corruption(graph.num_nodes, rng)
                opt.zero_grad()
                loss = item(self.forward(x, graph, perm))
                result.losses.append(loss)
                if callback is not None:
                    callback(epoch, loss)
                if loss < result.best_loss:
                    result.best_loss, result.best_epoch, wait = loss, epoch, 0
                    best_state = self.state_dict()
                else:
                    wait += 1
                if wait == patience:
                    result.stopped_early = True
                    break
                self.backward()
                opt.step()
        finally:
            self.needs_input_grad = needs_input_grad
        if best_state is not None:
            self.load_state_dict(best_state)
        self._cache = None
        return result


def dgi_embedding(x, graph, hidden_channels=HIDDEN_CHANNELS, seed=0, dtype=np.float32, **fit_kwargs):
    """(embeddings (N, hidden) host, model, FitResult): a DGI trained on (x, graph) with ``DGI.fit``'s defaults.

    ``seed`` seeds the weights and the corruptions. Features as the reference uses them: row-normalise
    first (``gnn_scratch.data.row_normalize``).
    """
    model = DGI(x.shape[1], hidden_channels, seed=seed, dtype=dtype)
    result = model.fit(x, graph, seed=seed, **fit_kwargs)
    return to_host(model.embed(x, graph)), model, result


def logreg_accuracies(Z, y, train_idx, test_idx, runs=PROBE_RUNS, epochs=PROBE_EPOCHS, lr=PROBE_LR,
                      weight_decay=0.0, seed=0, num_classes=None):
    """Test accuracies (%) of ``runs`` logistic regressions on frozen embeddings, as the DGI reference's LogReg.

    Each run: a fresh ``Linear(d, C)`` (Xavier-uniform W, zero bias; the generator ``seed`` draws every
    run's init in turn), softmax cross-entropy over the training nodes, ``epochs`` full-batch Adam steps
    (lr 0.01, no decay), then the accuracy over the test nodes (arg-max, first maximum on ties).
    Z: (N, d) float host embeddings; y: (N,) int labels; train_idx, test_idx: node ids. Returns (runs,) float64.
    """
    Z = np.asarray(Z)
    if Z.ndim != 2 or Z.dtype.kind != "f":
        raise ValueError(f"Z must be a (N, d) float array of embeddings, got {Z.dtype} {Z.shape}")
    y = np.asarray(y)
    if y.shape != (Z.shape[0],) or y.dtype.kind not in "iu":
        raise ValueError(f"y must be ({Z.shape[0]},) integer labels, got {y.dtype} {y.shape}")
    train_idx, test_idx = np.asarray(train_idx), np.asarray(test_idx)
    C = int(y[np.concatenate([train_idx, test_idx])].max()) + 1 if num_classes is None else int(num_classes)
    Z_train, y_train = np.ascontiguousarray(Z[train_idx]), y[train_idx]
    Z_test, y_test = np.ascontiguousarray(Z[test_idx]), y[test_idx]
    runs, epochs = positive_int("runs", runs), positive_int("epochs", epochs)
    rng = np.random.default_rng(seed)
    accs = np.empty(runs)
    for r in range(runs):
        probe = Linear(Z.shape[1], C, seed=rng, dtype=Z.dtype)
        probe.needs_input_grad = False
        opt = Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
        xent = SoftmaxCrossEntropy()
        for _ in range(epochs):
            opt.zero_grad()
            xent.forward(probe(Z_train), y_train)
            probe.backward(xent.backward())
            opt.step()
        accs[r] = 100.0 * accuracy(probe(Z_test), y_test)
    return accs
