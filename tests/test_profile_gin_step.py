"""scripts/profile_gin_step.py: the per-op breakdown of the bench's GIN step (issue 13's accounting)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = str(REPO / "scripts" / "profile_gin_step.py")


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_the_step_is_broken_down_by_phase_and_op(data_root):
    if not (data_root / "tu" / "PROTEINS").is_dir():
        pytest.skip(f"PROTEINS not found under {data_root}")
    from gnn_scratch.bench.harness import torch_available
    pyg = torch_available()
    p = _run("--iters", "3", "--repeats", "1", "--data-root", str(data_root), *([] if pyg else ["--no-pyg"]))
    assert p.returncode == 0, p.stderr[-3000:]
    head = re.search(r"ours ([\d.]+) ms, (PyG \(index cut\) ([\d.]+) ms, ratio ([\d.]+)x|PyG not run)", p.stdout)
    assert head, p.stdout
    assert float(head.group(1)) > 0
    if pyg:
        assert float(head.group(3)) > 0 and float(head.group(4)) > 0
    for phase in ("forward", "backward", "batch cut (select)", "optimiser"):
        assert re.search(rf"^\| {re.escape(phase)} \| [\d.]+ \|$", p.stdout, re.M), phase
    # GIN with 5 layers on data features: 4 aggregations forward, 3 backward (conv1 computes no dx)
    # each op row: in the step, then alone (repeated on its own inputs), both timed
    for op in (r"gin_aggregate \(7\)", r"matmul \(13\)"):
        m = re.search(rf"^\| {op} \| ([\d.]+) \| ([\d.]+) \|", p.stdout, re.M)
        assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0, p.stdout
    assert re.search(r"Alone \(each call of an epoch .*\): [\d.]+ ms a step, the products [\d.]+ ms", p.stdout)
    assert "| rest (Python, checks, allocation) |" in p.stdout
    if pyg:
        assert "aten::" in p.stdout


@pytest.mark.parametrize("flag", ["--repeats", "--iters", "--batch-size", "--threads"])
def test_counts_below_one_are_refused(flag):
    p = _run(flag, "0", timeout=120)
    assert p.returncode == 2 and f"argument {flag}: expected a positive integer, got '0'" in p.stderr
    assert len(p.stderr.splitlines()) == 1 and "Traceback" not in p.stderr
