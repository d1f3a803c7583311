"""numba-cuda against the NumPy it runs with: the aliases its modules expect must exist once gnn_scratch loads it."""
import subprocess
import sys

import pytest

pytest.importorskip("numba_cuda")   # numba-cuda itself: numba's built-in numba.cuda has no np/ package

# NumPy 2.5 removed np.row_stack; numba-cuda 0.30.4's array module registers an overload of it at import
# (on a GPU every kernel compile imports that module). Here NumPy may still have the alias, so the child
# process deletes it -- after SciPy, which reads it at import in older releases -- before gnn_scratch
# is imported.
CHILD = """
import numpy as np, scipy.sparse
if hasattr(np, "row_stack"):
    del np.row_stack
import gnn_scratch, gnn_scratch.kernels.cuda
import numba.cuda.np.arrayobj
assert np.row_stack is np.vstack
print("ok")
"""


def test_numba_cuda_array_module_imports_without_numpys_row_stack():
    got = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True)
    assert got.returncode == 0 and got.stdout.strip() == "ok", got.stderr[-2000:]
