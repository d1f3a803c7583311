"""Every command-line script in scripts/ checks its arguments before any work: --help works, and a bad value ends
the command with one ``error:`` line on standard error naming the option, exit status 2, nothing on standard output
and no traceback (``tasks.options.Parser`` and its argparse types, as the main command line)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# one process per script: --help, then the bad value (the second run finds the script's imports loaded)
DRIVER = r"""
import contextlib, io, json, runpy, sys
path, bad = sys.argv[1], sys.argv[2:]
res = []
for argv in (["--help"], bad):
    sys.argv = [path] + argv
    out, err = io.StringIO(), io.StringIO()
    code = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as e:
            code = e.code
    res.append(dict(code=code, out=out.getvalue(), err=err.getvalue()))
print("RESULT " + json.dumps(res))
"""

MISSING = "{missing}"          # replaced by a path in a folder that does not exist

# script: (a bad command line, what its one error line must say)
BAD = {
    "bench_attention_memory": (["--repeats", "0"], "argument --repeats: expected a positive integer, got '0'"),
    "bench_dask_inference": (["--workers", "0"], "argument --workers: expected a positive integer"),
    "bench_gat_memory": (["--json", MISSING], "argument --json: expected a file in an existing folder"),
    "bench_sampler": (["--fanout", "25,0"], "argument --fanout: expected comma-separated fan-outs"),
    "dgi_cora": (["--runs", "0"], "argument --runs: expected a positive integer, got '0'"),
    "embeddings_blogcatalog": (["--grid", "0,1"], "argument --grid: expected comma-separated positive finite"),
    "fixed_point_experiments": (["--cora-runs", "0"], "argument --cora-runs: expected a positive integer"),
    "graph_transformer_sbm": (["--models", "gt,gat"], "argument --models: expected comma-separated models"),
    "hetero_acm_dblp": (["--datasets", "acm,imdb"], "argument --datasets: expected comma-separated datasets"),
    "karate_embedding": (["--dim", "1"], "argument --dim: expected at least 2 dimensions"),
    "kipf_table3": (["--datasets", "cora,mutag"], "argument --datasets: expected comma-separated datasets"),
    "measure_memory_bounds": (["--nodes", "0"], "argument --nodes: expected a positive integer"),
    "oversmoothing": (["--depths", "1,2"], "argument --depths: expected comma-separated depths"),
    "oversquashing": (["--time-scale", "nan"], "argument --time-scale: expected a finite number > 0"),
    "pinsage_generated": (["--band", "5", "5"], "argument --band: expected LO < HI"),
    "plot_attention": (["--dataset", "mutag"], "argument --dataset: invalid choice: 'mutag'"),
    "plot_spectrum": (["--out", MISSING], "argument --out: expected a file in an existing folder"),
    "profile_cold_forward": (["--data-root", MISSING], "argument --data-root: expected an existing folder"),
    "profile_gin_step": (["--top", "0"], "argument --top: expected a positive integer"),
    "profile_inference": (["--graphs", "cora,pubmed"], "argument --graphs: expected comma-separated graphs"),
    "sage_inductive": (["--runs", "0"], "argument --runs: expected a positive integer"),
    "sage_unsupervised": (["--l2", "-1"], "argument --l2: expected a finite number >= 0"),
    "temporal_chickenpox": (["--plot-row", "foo"], "argument --plot-row: invalid choice: 'foo'"),
    "temporal_losloop": (["--horizons", "0,3"], "argument --horizons: expected comma-separated pre_len values"),
    "wl_expressiveness": (["--tol", "nan"], "argument --tol: expected a finite number >= 0"),
    "wl_kernel": (["--inner-folds", "1"], "argument --inner-folds: expected at least 2 folds"),
}


def test_every_script_with_a_command_line_is_listed():
    """A new script with a command line gets a line in BAD (and so the one-line-error checks)."""
    scripts = {p.stem for p in (REPO / "scripts").glob("*.py") if "ArgumentParser(" in p.read_text(encoding="utf-8")
               or "options.Parser(" in p.read_text(encoding="utf-8")}
    assert scripts == set(BAD)


@pytest.mark.parametrize("script", sorted(BAD))
def test_help_works_and_a_bad_value_is_one_error_line(script, tmp_path):
    args, said = BAD[script]
    args = [str(tmp_path / "missing" / "x.out") if a == MISSING else a for a in args]
    path = str(REPO / "scripts" / f"{script}.py")
    p = subprocess.run([sys.executable, "-c", DRIVER, path, *args], capture_output=True, text=True, timeout=300,
                       cwd=REPO)
    line = [s for s in p.stdout.splitlines() if s.startswith("RESULT ")]
    assert p.returncode == 0 and line, p.stderr[-3000:]
    helped, refused = json.loads(line[-1][len("RESULT "):])
    assert helped["code"] == 0 and "usage:" in helped["out"] and not helped["err"], helped
    assert refused["code"] == 2, refused
    assert refused["out"] == "", refused                                  # no work done, nothing printed
    lines = refused["err"].splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}.py: error: ") and said in lines[0], refused["err"]


def test_names_keeps_the_spelling_of_the_allowed_names_and_a_folder_is_no_model():
    """``options.names`` ignores case but returns the names as spelled (profile_inference's "random-1M" is a dict
    key); ``options.model_input`` turns a folder into a usage error, not a traceback."""
    import argparse

    from gnn_scratch.tasks import options
    graphs = options.names(("cora", "random-1M"), "graphs")
    assert graphs("random-1m,Cora") == "random-1M,cora" and graphs("random-1M") == "random-1M"
    with pytest.raises(argparse.ArgumentTypeError, match="expected comma-separated graphs among cora, random-1M"):
        graphs("cora,pubmed")
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder, not a model file"):
        options.model_input(str(REPO))
