#!/usr/bin/env python3
"""Benchmarks of gnn_scratch beside scipy.sparse and PyG on the CPU -- the same as ``gnn-scratch bench``.

    python scripts/bench.py                      # everything: benchmarks/results.json, BENCHMARKS.md, benchmarks/bench.png
    python scripts/bench.py --quick              # under two minutes
    python scripts/bench.py --only kernels       # one part: kernels | models | memory | startup | scaling

The implementation lives in ``gnn_scratch/bench/`` (installed with the package); this file runs it
from a checkout, on the checkout's code.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gnn_scratch.bench.suite import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
