"""Peak memory and time of full attention (forward + backward) on one graph: fused kernels, dense NumPy, torch SDPA.

    nice python scripts/bench_attention_memory.py                        # N = 1k ... 64k, H = 1, d = 64, float32
    nice python scripts/bench_attention_memory.py --sizes 1024,4096 --time-sizes 1024 --threads 1 --json att.json

The measurement itself is ``gnn_scratch.bench.attention.run`` (its docstring says how: one fresh
process per measurement; memory read both by tracemalloc and as the resident-set high-water mark;
forward and backward timed beside torch's scaled_dot_product_attention, every library given the
same thread count). The dense reference is skipped where its two (H, N, N) arrays would exceed
--dense-limit-gib. Prints markdown tables; --json keeps the rows.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gnn_scratch.bench import attention  # noqa: E402
from gnn_scratch.bench.harness import machine  # noqa: E402
from gnn_scratch.tasks import options  # noqa: E402


def _ints(text):
    """argparse type of --sizes / --time-sizes: comma-separated positive integers (empty items skipped)."""
    items = [v.strip() for v in text.split(",") if v.strip()]
    try:
        return tuple(options.check("positive_int", int(v), "N") for v in items)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers (graph sizes N), "
                                         f"got {text!r}") from None


def _threads(text):
    """argparse type of --threads: comma-separated thread counts, each a positive integer or 'default'."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        return tuple(None if t == "default" else options.check("positive_int", int(t), "threads") for t in items)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated thread counts, each a positive integer or "
                                         f"'default', got {text!r}") from None


def _output_path(text):
    return Path(options.output_file(text))


def main(argv=None):
    p = options.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=_ints, default=attention.SIZES, help="N of the memory table (comma-separated)")
    p.add_argument("--time-sizes", type=_ints, default=attention.TIME_SIZES, help="N of the time table")
    p.add_argument("--heads", type=options.positive_int, default=1)
    p.add_argument("--dim", type=options.positive_int, default=64, help="head dimension d (= dv)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--repeats", type=options.positive_int, default=3, help="timed rounds per N (median reported)")
    p.add_argument("--dense-limit-gib", type=options.non_negative_float, default=attention.DENSE_LIMIT / 2**30)
    p.add_argument("--threads", type=_threads, default="1,default",
                   help="thread counts of the time table, comma-separated; 'default' = Numba's (the cores)")
    p.add_argument("--no-torch", action="store_true", help="leave torch out of the time table")
    p.add_argument("--json", type=_output_path, help="write the rows (and the machine) to this file")
    args = p.parse_args(argv)
    threads = args.threads
    contenders = tuple(c for c in attention.CONTENDERS if not (args.no_torch and c == "torch"))
    rows = attention.run(sizes=args.sizes, time_sizes=args.time_sizes, H=args.heads, d=args.dim, dtype=args.dtype,
                         repeats=args.repeats, threads=threads, contenders=contenders,
                         dense_limit=int(args.dense_limit_gib * 2**30))
    print()
    print(attention.format_tables(rows))
    if args.json:
        args.json.write_text(json.dumps(dict(machine=machine(), rows=rows), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
