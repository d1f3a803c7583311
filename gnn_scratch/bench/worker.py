"""``python -m gnn_scratch.bench.worker CONFIG_JSON``: one benchmark configuration in a fresh process;
``python -m gnn_scratch.bench.worker serve CONFIG_JSON``: a long-lived timing server (``models.serve``,
with the side classes of the config's ``part``: "models" by default, "graphs", "temporal", "hetero",
"embeddings").

The parent (``bench/models.py``, ``bench/scaling.py``) passes a JSON config whose ``task`` is
"memory" (``models.memory_config``); the worker prints ``BENCH_RESULT <json>`` as its last line of stdout
and its progress on stderr. A failure is reported as ``{"error": ...}`` in the same line.
"""
import json
import sys
import traceback
import warnings


def _sides(part):
    """The (ours, PyG) server-state classes of a benchmark part (``models.serve``'s ``sides``)."""
    if part == "graphs":
        from .graphs import OursEpochSide, PyGEpochSide
        return OursEpochSide, PyGEpochSide
    if part == "temporal":
        from .temporal import OursTemporalSide, PyGTemporalSide
        return OursTemporalSide, PyGTemporalSide
    if part == "hetero":
        from .hetero import OursHeteroSide, PyGHeteroSide
        return OursHeteroSide, PyGHeteroSide
    if part == "embeddings":   # the peer (PecanPy + gensim) runs embeddings_peer.py, not this worker
        from .embeddings import OursEmbedSide
        return OursEmbedSide, OursEmbedSide
    if part != "models":
        raise ValueError(f"no benchmark server for part {part!r}")
    from .models import OursSide, PyGSide
    return OursSide, PyGSide


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    warnings.filterwarnings("ignore", category=UserWarning)   # torch's "sparse CSR is in beta" and the like
    if argv and argv[0] == "serve":   # a long-lived server (models.Server): JSON lines on stdin / stdout
        from .models import serve
        protocol, sys.stdout = sys.stdout, sys.stderr   # a stray print must not corrupt the protocol
        try:
            cfg = json.loads(argv[1])
            serve(cfg, stdout=protocol, sides=_sides(cfg.get("part", "models")))
        except Exception as e:   # noqa: BLE001 -- e.g. the graph did not load: say so, then exit
            traceback.print_exc(file=sys.stderr)
            print(json.dumps(dict(error=f"{type(e).__name__}: {str(e)[:500]}")), file=protocol, flush=True)
            return 1
        return 0
    cfg = json.loads(argv[0])
    try:
        if cfg["task"] == "memory":
            from .models import memory_config as fn
        else:
            raise ValueError(f"unknown task {cfg['task']!r}")
        result = fn(cfg)
    except Exception as e:   # noqa: BLE001 -- reported to the parent as this row's error
        traceback.print_exc(file=sys.stderr)
        result = dict(error=f"{type(e).__name__}: {str(e)[:500]}")
    print("BENCH_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
