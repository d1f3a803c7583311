#!/usr/bin/env python3
"""The GPU benchmark from a checkout: the same as ``gnn-scratch bench --gpu`` (code: gnn_scratch/bench/gpu.py).

    python scripts/bench_gpu.py --out gpu.json
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gnn_scratch.bench.gpu import *  # noqa: E402,F401,F403  (old imports of this file keep working)
from gnn_scratch.bench.gpu import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
