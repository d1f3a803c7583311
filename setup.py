from setuptools import find_packages, setup

setup(
    name="gnn_scratch",
    version="0.1.0",
    description="Graph neural networks from scratch in NumPy and Numba, with hand-derived, checked gradients",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["gnn_scratch", "gnn_scratch.*"]),
    python_requires=">=3.10",
    install_requires=["numpy>=1.24", "scipy>=1.10", "numba>=0.59", "matplotlib>=3.7"],
    extras_require={
        # numba-cuda provides numba.cuda and its simulator: the CUDA kernels are tested without a GPU
        # pytest-xdist: the README's test command runs the suite in one worker process per core (`-n auto`);
        # a test process is mostly one-threaded Python, so on 2 cores that halves the suite's wall time
        "test": ["pytest>=7", "pytest-xdist>=3", "hypothesis>=6", "numba-cuda"],
        # The peers: the benchmark scripts' and the oracle tests' (pytest -m oracle; .ci/run runs them).
        # Install torch==2.13.0 (CPU build) FIRST: an unpinned torch pulls gigabytes of CUDA libraries.
        # PyG Temporal is a peer too, but not listed: it declares torch-sparse / torch-scatter, which
        # build from source for an hour; install it after this extra with
        # `pip install --no-deps torch-geometric-temporal==0.56.2` (its cells need neither; .ci/run does).
        # gensim (>= 4.4 works with numpy 2) is the word2vec beside which the embeddings part times skip-gram.
        # PecanPy is NOT listed: its only release (2.0.9) needs nptyping 2.5, which pins numpy < 2 -- pip would
        # downgrade numpy. Install it with `pip install --no-deps pecanpy==2.0.9 nptyping==2.5.0 numba-progress`
        # (the bench's peer process shims the numpy aliases nptyping reads), or in its own venv given to
        # `gnn-scratch bench --peer-python` / $GNN_SCRATCH_PEER_PYTHON.
        "bench": ["torch", "torch-geometric", "gensim>=4.4"],
        "cuda": ["numba-cuda"],
        # layer-wise inference on a Dask cluster (gnn_scratch.distributed, `gnn-scratch embed`); tested with 2026.8.0
        "distributed": ["dask[distributed]>=2026.8.0"],
    },
    entry_points={"console_scripts": ["gnn-scratch=gnn_scratch.cli:main"]},
)
