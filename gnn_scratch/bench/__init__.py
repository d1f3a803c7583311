"""Benchmarks of gnn_scratch beside its peers (scipy.sparse, PyG on the CPU): ``gnn-scratch bench``.

    gnn-scratch bench                    # everything; writes benchmarks/results.json, BENCHMARKS.md, the plot
    gnn-scratch bench --quick            # small graphs, fewer repeats, no 1M graph, no start-up (< 2 min)
    gnn-scratch bench --only kernels     # one part: kernels | models | memory | startup | scaling
    gnn-scratch bench --gpu --out gpu.json   # the GPU benchmark instead (one NVIDIA GPU): ``gpu``

``scripts/bench.py`` is the same command. Modules: ``harness`` (timing, interleaving, statistics,
bytes-moved bound, graphs), ``kernels``, ``models`` (+ ``pyg_mirror``, ``worker``), ``memory``,
``startup`` (+ ``pyg_train_gcn``), ``scaling``, ``report`` (BENCHMARKS.md and the plot), ``suite``
(the command line); ``gpu``: kernels and training steps on one GPU beside cuSPARSE and PyG on the
same GPU (``scripts/bench_gpu.py`` is the same command).
"""


def main(argv=None):
    """Run the benchmark command line (see ``suite.build_parser``)."""
    from .suite import main as _main
    return _main(argv)
