"""Mini-batch training on sampled blocks with a background sampler, and layer-wise inference.

Training (``fit_minibatch``): every epoch shuffles the training nodes, cuts them into batches of
``batch_size`` seeds, samples one block per layer around each batch (``sampling.sample_blocks``)
and takes one optimiser step per batch. A producer thread samples (and gathers the input rows of
x) up to ``prefetch`` batches ahead through a bounded ``queue.Queue``; the Numba sampler releases
the GIL, so sampling overlaps the model's NumPy / Numba work. Batch b of epoch e is sampled with
the seed (seed, e, b), so the batches do not depend on which thread draws them or when: threaded
and unthreaded training are bit-identical.

Inference (``layerwise_inference``): layer 1 for every node, then layer 2 for every node, ..., each
layer in row blocks of ``batch_size`` destinations with their *full* in-neighbourhood, no sampling.
Each node's hidden state is computed once per layer (neighbourhood sampling at inference would
recompute shared neighbours once per batch, L-hop neighbourhoods explode), and peak memory is one
layer's output plus one block.
"""
from __future__ import annotations

import queue
import threading
import time

import numpy as np

from .loop import BestEpoch, epoch_line, evaluate, model_dtype, prepare_features
from .nn import SoftmaxCrossEntropy
from .sampling import full_block, sample_blocks

_END = object()


class _Failure:
    """An exception raised in the producer thread, carried to the consumer to be re-raised there."""

    def __init__(self, exc):
        self.exc = exc


class BackgroundProducer:
    """Iterate over ``iterable`` in a daemon thread, at most ``maxsize`` items ahead of the consumer.

    Use as an iterator, preferably in a ``with`` block: leaving it early (break, exception) calls
    ``close``, which stops the producer at its next item and joins the thread. An exception raised
    by the producer is re-raised by the consumer's next ``next()``, with the original traceback.
    ``wait_s`` accumulates the time the consumer spent blocked waiting for an item.
    """

    def __init__(self, iterable, maxsize=2):
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be a positive int (the queue bound), got {maxsize!r}")
        self._queue = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._done = False
        self.wait_s = 0.0
        self._thread = threading.Thread(target=self._produce, args=(iter(iterable),), daemon=True,
                                        name="gnn_scratch-sampler")
        self._thread.start()

    def _put(self, item):
        """Put unless asked to stop; the timeout lets a blocked producer notice ``close``."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, it):
        try:
            for item in it:
                if not self._put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 -- every failure must reach the consumer
            self._put(_Failure(exc))
            return
        self._put(_END)

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        t0 = time.perf_counter()
        item = self._queue.get()
        self.wait_s += time.perf_counter() - t0
        if item is _END or isinstance(item, _Failure):
            self._done = True
            self._thread.join()
            if isinstance(item, _Failure):
                raise item.exc
            raise StopIteration
        return item

    def close(self):
        """Stop the producer and join its thread; safe to call twice."""
        self._stop.set()
        self._done = True
        while self._thread.is_alive():
            try:                                   # unblock a producer waiting on a full queue
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class _Unthreaded:
    """The same interface as ``BackgroundProducer`` but sampling inline; ``wait_s`` = time spent sampling."""

    def __init__(self, iterable):
        self._it = iter(iterable)
        self.wait_s = 0.0

    def __iter__(self):
        return self

    def __next__(self):
        t0 = time.perf_counter()
        try:
            return next(self._it)
        finally:
            self.wait_s += time.perf_counter() - t0

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def minibatches(graph, x, nodes, batch_size, fanouts, seed=0, epoch=0, shuffle=True):
    """Yield (MiniBatch, x rows of its input nodes) for each batch of ``nodes`` in one epoch.

    nodes: (N_train,) seed node ids, shuffled with the seed (seed, epoch) unless ``shuffle`` is False.
    Batch b is sampled with the seed (seed, epoch, b). x: (N, F) dense or scipy.sparse.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    nodes = np.asarray(nodes, dtype=np.int64)
    if shuffle:
        nodes = np.random.default_rng([seed, epoch]).permutation(nodes)
    for b, start in enumerate(range(0, nodes.size, batch_size)):
        mb = sample_blocks(graph, nodes[start:start + batch_size], fanouts, seed=(seed, epoch, b))
        yield mb, x[mb.input_nodes]


def batch_stream(graph, x, nodes, batch_size, fanouts, seed=0, epoch=0, use_thread=True, prefetch=2):
    """The epoch's batches from a background producer (``use_thread``) or sampled inline."""
    it = minibatches(graph, x, nodes, batch_size, fanouts, seed, epoch)
    return BackgroundProducer(it, prefetch) if use_thread else _Unthreaded(it)


def layerwise_inference(model, x, graph, batch_size=1024):
    """The model's output for every node, one layer at a time over row blocks: (N, C).

    model: a model with ``num_layers`` and ``layer_forward(layer, h, block)`` (``models.SAGE``), run
    in evaluation mode (restored afterwards). x: (N, F) dense or scipy.sparse; graph: square Graph.
    Layer l computes rows [lo, hi) from the rows of h_{l-1} in their full in-neighbourhood; the
    blocks are built once per (graph, batch_size) and reused by every layer and every call.
    Equals ``model.forward(x, graph)`` in eval mode.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    was_training = model.training
    model.eval()
    try:
        N = graph.num_nodes
        # the row blocks depend only on the graph and batch_size: built once per graph (cached on it)
        blocks = graph.cached(("layerwise_blocks", int(batch_size)), lambda: [
            full_block(graph, np.arange(lo, min(lo + batch_size, N))) for lo in range(0, N, batch_size)])
        h = x
        for layer in range(model.num_layers):
            outs = [model.layer_forward(layer, h[frontier], block) for block, frontier in blocks]
            h = np.concatenate(outs, axis=0)
        return h
    finally:
        model.train(was_training)


def fit_minibatch(model, data, optimizer, epochs=200, patience=None, batch_size=64, fanouts=(25, 10), x=None,
                  seed=0, use_thread=True, prefetch=2, eval_batch_size=4096, log=None):
    """Train ``model`` on sampled mini-batches of the training nodes; keep the best validation epoch.

    The same selection rule as ``train.fit`` (``loop.BestEpoch``): after every epoch the accuracies
    come from ``layerwise_inference`` (full neighbourhoods); the reported test accuracy is the one at
    the epoch of best validation accuracy (ties: lower validation loss); ``patience`` epochs with
    neither a better validation loss nor accuracy stop training. Returns a ``loop.Result`` whose
    ``sampler_wait_s`` attribute holds the time the training loop waited for batches. Raises
    ValueError when ``fanouts`` does not give one fan-out per layer.
    """
    x = prepare_features(data, dtype=model_dtype(model)) if x is None else x
    graph, y = data.graph, data.y
    fanouts = list(fanouts)
    if len(fanouts) != model.num_layers:
        raise ValueError(f"fanouts must give one fan-out per layer ({model.num_layers}), got {fanouts}")
    train_nodes = np.flatnonzero(data.train_mask)
    loss_fn = SoftmaxCrossEntropy()
    tracker = BestEpoch(patience)
    best, wait_s = tracker.result, 0.0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        losses = []
        with batch_stream(graph, x, train_nodes, batch_size, fanouts, seed, epoch, use_thread, prefetch) as stream:
            for mb, x_in in stream:
                optimizer.zero_grad()
                losses.append(loss_fn.forward(model.forward(x_in, mb.blocks), y[mb.seeds]))
                model.backward(loss_fn.backward())
                optimizer.step()
            wait_s += stream.wait_s
        Z = layerwise_inference(model, x, graph, eval_batch_size)
        best.epoch_ms.append(1e3 * (time.perf_counter() - t0))
        val_loss, accs = evaluate(Z, y, data)
        if log:
            log(epoch_line(epoch, np.mean(losses), accs, val_loss, best.epoch_ms[-1]))
        if tracker.update(epoch, model, val_loss, accs):
            break
    model.load_state_dict(best.state)
    best.sampler_wait_s = wait_s
    return best
