"""The peer side of the embeddings benchmark: PecanPy (walks) + gensim's Word2Vec (skip-gram), in its own process.

Run by ``bench/embeddings.py`` as ``PEER_PYTHON embeddings_peer.py CONFIG_JSON`` (a timing server speaking
``models.serve``'s protocol: JSON lines in, JSON lines out) or ``PEER_PYTHON embeddings_peer.py --probe``
(prints the peer's versions as JSON, or fails). It imports nothing from gnn_scratch, so PEER_PYTHON may be
another interpreter (a venv with numpy < 2, PecanPy's declared requirement) or the library's own.

PecanPy 2.0.9 (its only release) depends on nptyping 2.5, which reads numpy aliases removed in numpy 2
(``np.bool8``, ``np.object0``, ``np.int0``, ...) at import. When PecanPy was installed ``--no-deps`` beside
numpy 2, ``_alias_shim`` puts those names back on the numpy module -- in THIS process only, never in the
library's process -- and only the names that are missing. numpy < 2 has them all and is left untouched.

Commands: {"cmd": "model", "p", "q", "num_walks", "walk_length", "dim", "window", "negatives", "sample",
"walks_path", "emb_path", "mode"} builds the timed functions (``walks``: PecanPy's ``simulate_walks`` including
its pre-processing; ``sgns``: gensim Word2Vec on OUR walks read from ``walks_path``; ``pipeline``: PecanPy's
``embed``, the walks + Word2Vec in one call as its users run it, the result saved to ``emb_path``);
{"cmd": "run", "key"} -> {"t": seconds}; {"cmd": "quit"}.
"""
import gc
import json
import os
import sys
import time

# every numpy name nptyping 2.5 reads that numpy 2 removed, and what numpy 1.26 meant by it
ALIASES = dict(bool8="bool_", object0="object_", int0="intp", uint0="uintp", void0="void", bytes0="bytes_",
               str0="str_", float_="float64", complex_="complex128", string_="bytes_", unicode_="str_",
               longfloat="longdouble", singlecomplex="complex64", cfloat="complex128", longcomplex="clongdouble",
               clongfloat="clongdouble")


def _alias_shim():
    """Restore the numpy aliases nptyping 2.5 reads, where this numpy lacks them (numpy >= 2)."""
    import warnings

    import numpy as np
    added = []
    for old, new in ALIASES.items():
        with warnings.catch_warnings():          # numpy 1.2x still serves them, with a DeprecationWarning
            warnings.simplefilter("ignore")
            present = hasattr(np, old)
        if not present:
            setattr(np, old, getattr(np, new))
            added.append(old)
    return added


def versions():
    """{pecanpy, gensim, numpy, numba, shim}: raises ImportError when the peer is not installed."""
    shim = _alias_shim()
    import gensim
    import numba
    import numpy as np
    import pecanpy
    from pecanpy import pecanpy as _  # noqa: F401 -- the classes, where nptyping is read
    from importlib.metadata import version
    return dict(pecanpy=version("pecanpy"), gensim=gensim.__version__, numpy=np.__version__,
                numba=numba.__version__, shim=shim, python=sys.version.split()[0],
                executable=sys.executable, pecanpy_file=os.path.dirname(pecanpy.__file__))


def pecanpy_mode(p, q, mode="auto"):
    """PecanPy's fastest mode for (p, q) on a graph that fits in memory: FirstOrderUnweighted for p = q = 1
    (no second-order bias), else PreComp (per-edge alias tables; SparseOTF needs no tables but was slower on
    BlogCatalog: 45 vs 38 s)."""
    if mode != "auto":
        return mode
    return "FirstOrderUnweighted" if p == 1 and q == 1 else "PreComp"


class PeerSide:
    """The graph (a CSR .npz in PecanPy's format) and the timed functions of one (p, q)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.threads = int(cfg.get("threads", 1))
        self.fns = {}

    def model(self, msg):
        import numpy as np
        from gensim.models import Word2Vec
        from pecanpy import pecanpy as pp
        cfg, threads = self.cfg, self.threads
        mode = pecanpy_mode(msg["p"], msg["q"], msg.get("mode", "auto"))
        cls = getattr(pp, mode)
        steps = int(msg["walk_length"]) - 1      # PecanPy's walk_length counts steps: L - 1 steps = L nodes
        seed = int(msg.get("seed", 0))

        def graph():
            g = cls(p=msg["p"], q=msg["q"], workers=threads, verbose=False, random_state=seed)
            g.read_npz(cfg["graph_path"], weighted=False)
            return g

        g0 = graph()
        walks = np.load(msg["walks_path"])
        ours = [[g0.nodes[i] for i in w[w >= 0]] for w in walks]     # our walks as gensim sentences (untimed)
        w2v = dict(vector_size=int(msg["dim"]), window=int(msg["window"]), sg=1, negative=int(msg["negatives"]),
                   min_count=0, workers=threads, epochs=1, seed=seed + 1)

        def walk():
            g = graph()                              # a fresh object: PreComp's tables are built inside the timing
            t0 = time.perf_counter()
            out = g.simulate_walks(int(msg["num_walks"]), steps)
            t = time.perf_counter() - t0
            self.last_walks = len(out), sum(len(x) for x in out)
            return t

        def sgns():
            t0 = time.perf_counter()
            Word2Vec(ours, sample=float(msg.get("sample", 0.0)), **w2v)
            return time.perf_counter() - t0

        def pipeline():
            g = graph()
            t0 = time.perf_counter()
            Z = g.embed(dim=int(msg["dim"]), num_walks=int(msg["num_walks"]), walk_length=steps,
                        window_size=int(msg["window"]), epochs=1)
            t = time.perf_counter() - t0
            np.save(msg["emb_path"], np.asarray(Z, dtype=np.float32))
            return t

        self.fns = dict(walks=walk, sgns=sgns, pipeline=pipeline)
        return dict(mode=mode, walk_steps=steps, sentences=len(ours), threads=threads,
                    pipeline_w2v="PecanPy embed(): Word2Vec(sg=1, min_count=0, gensim defaults negative=5, sample=1e-3)")


def serve(cfg, stdin=sys.stdin, stdout=sys.stdout):
    _alias_shim()
    side = PeerSide(cfg)
    print(json.dumps(dict(ready=True, versions=versions())), file=stdout, flush=True)
    for line in stdin:
        msg = json.loads(line)
        try:
            if msg["cmd"] == "quit":
                break
            if msg["cmd"] == "model":
                reply = side.model(msg)
            elif msg["cmd"] == "drop":
                side.fns = {}
                reply = {}
            elif msg["cmd"] == "run":
                fn = side.fns[msg["key"]]
                gc.collect()
                gc.disable()
                try:
                    reply = dict(t=fn())          # each function times its own timed region
                finally:
                    gc.enable()
            else:
                raise ValueError(f"unknown command {msg['cmd']!r}")
        except Exception as e:   # noqa: BLE001 -- reported to the parent, the server goes on
            reply = dict(error=f"{type(e).__name__}: {str(e)[:500]}")
        print(json.dumps(reply), file=stdout, flush=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--probe":
        print(json.dumps(versions()))
        return 0
    protocol, sys.stdout = sys.stdout, sys.stderr        # a stray print must not corrupt the protocol
    try:
        serve(json.loads(argv[0]), stdout=protocol)
    except Exception as e:   # noqa: BLE001 -- e.g. PecanPy missing: say so, then exit
        print(json.dumps(dict(error=f"{type(e).__name__}: {str(e)[:500]}")), file=protocol, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
