"""scripts/profile_cold_forward.py runs every case and reports a time for each (issue 19's cold-start table)."""
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = ("hot", "sleep 1 ms", "sleep 10 ms", "busy loop 20 ms", "sleep 10 ms, then read the data",
         "sleep 10 ms, then a 20-node forward", "20-node forward, hot", "20-node forward, after sleep 10 ms")


def test_every_case_is_timed(data_root):
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "profile_cold_forward.py"), "--repeats", "2",
                        "--data-root", str(data_root)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert p.returncode == 0, p.stderr
    for case in CASES:
        m = re.search(rf"^  {re.escape(case)}\s+([\d.]+)\s+([\d.]+)$", p.stdout, re.M)
        assert m, f"no line for {case!r} in:\n{p.stdout}"
        assert float(m.group(2)) > 0


def test_bad_repeats_is_refused():
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "profile_cold_forward.py"), "--repeats", "0"],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert p.returncode == 2 and "argument --repeats: expected a positive integer, got '0'" in p.stderr
    assert len(p.stderr.splitlines()) == 1 and "Traceback" not in p.stderr
